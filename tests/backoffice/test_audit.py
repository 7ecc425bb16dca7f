"""The audit trail: one helper writes it (target and client derived), and a row, once
written, is never changed or deleted: not by save(), delete(), queryset writes, the admin,
nor (on PostgreSQL) raw SQL."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import RequestFactory
from django.urls import reverse

from backoffice.audit import (
    ERR_TARGET_ID_REQUIRED,
    ClientInfo,
    audit_record,
    client_info_from_request,
)
from backoffice.models import ERR_AUDIT_IMMUTABLE, AdminAction, AuditRowImmutable
from payments.models import Payment
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db

UPDATED = ERR_AUDIT_IMMUTABLE.format(what="updated")
DELETED = ERR_AUDIT_IMMUTABLE.format(what="deleted")


@pytest.fixture
def row(db):
    return audit_record(acting_user=None, action="test", target=PaymentFactory())


# --- audit_record ----------------------------------------------------------------------------


def test_audit_record_derives_the_target_and_records_the_client():
    payment = PaymentFactory(amount=1250, currency="eur")
    user = UserFactory()
    row = audit_record(
        acting_user=user,
        action="payment_note",
        target=payment,
        amount=payment.amount,
        currency=payment.currency,
        reason="why",
        result=AdminAction.Result.FAILURE,
        details={"k": 1},
        client=ClientInfo(ip_address="2001:db8::1", user_agent="Firefox"),
    )
    row = AdminAction.objects.get(pk=row.pk)
    assert (row.target_type, row.target_id, row.target_repr) == (
        "payments.payment",
        str(payment.pk),
        str(payment),
    )
    assert (row.actor, row.action, row.amount, row.currency, row.reason) == (
        user,
        "payment_note",
        1250,
        "eur",
        "why",
    )
    assert (row.result, row.details) == (AdminAction.Result.FAILURE, {"k": 1})
    assert (row.ip_address, row.user_agent) == ("2001:db8::1", "Firefox")


@pytest.mark.parametrize("acting_user", [None, AnonymousUser()])
def test_a_system_job_or_an_anonymous_user_records_no_actor(acting_user):
    row = audit_record(acting_user=acting_user, action="job", target=PaymentFactory())
    assert row.actor is None
    assert (row.ip_address, row.user_agent, row.details) == (None, "", {})


def test_an_action_about_many_rows_names_the_model_and_an_explicit_id():
    row = audit_record(
        acting_user=None, action="batch", target=Payment, target_id="REC-1", target_repr="3 rows"
    )
    assert (row.target_type, row.target_id) == ("payments.payment", "REC-1")
    assert row.target_repr == "3 rows"
    with pytest.raises(ValueError) as refused:
        audit_record(acting_user=None, action="batch", target=Payment)
    assert str(refused.value) == ERR_TARGET_ID_REQUIRED


def test_long_values_are_cut_to_the_columns_and_a_bad_ip_is_dropped():
    payment = PaymentFactory()
    row = audit_record(
        acting_user=None,
        action="x",
        target=payment,
        target_repr="r" * 300,
        client=ClientInfo(ip_address="not-an-ip", user_agent="u" * 600),
    )
    row = AdminAction.objects.get(pk=row.pk)
    assert len(row.target_repr) == 255 and len(row.user_agent) == 500
    assert row.ip_address is None


# --- client_info_from_request ----------------------------------------------------------------


def request(**meta):
    return RequestFactory().post("/admin/x/", **meta)


def test_client_is_remote_addr_and_forwarded_for_is_ignored_without_a_trusted_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    client = client_info_from_request(
        request(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6", HTTP_USER_AGENT="UA")
    )
    assert client == ClientInfo(ip_address="10.0.0.5", user_agent="UA")


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        # The proxy appends what it saw; anything to its left came from the client.
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (1, "203.0.113.9", "203.0.113.9"),
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        # Fewer entries than proxies: the header is not ours; fall back to the peer.
        (2, "203.0.113.9", "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "garbage", None),
    ],
)
def test_behind_trusted_proxies_the_client_is_read_from_the_right(
    settings, count, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = count
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}
    client = client_info_from_request(request(**meta))
    assert client.ip_address == expected


def test_the_user_agent_is_cut_to_the_column():
    client = client_info_from_request(request(HTTP_USER_AGENT="u" * 900))
    assert len(client.user_agent) == AdminAction._meta.get_field("user_agent").max_length


# --- Written once ----------------------------------------------------------------------------


def test_saving_a_written_row_again_is_refused(row):
    row.reason = "rewritten"
    with pytest.raises(AuditRowImmutable, match=UPDATED):
        row.save()
    loaded = AdminAction.objects.get(pk=row.pk)
    with pytest.raises(AuditRowImmutable, match=UPDATED):
        loaded.save(update_fields=["reason"])
    assert AdminAction.objects.get(pk=row.pk).reason == ""


def test_a_new_row_with_an_existing_pk_cannot_overwrite_it(row):
    impostor = AdminAction(pk=row.pk, action="forged", target_type="x", target_id="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        impostor.save()
    assert AdminAction.objects.get(pk=row.pk).action == "test"


def test_deleting_a_row_is_refused(row):
    with pytest.raises(AuditRowImmutable, match=DELETED):
        row.delete()
    assert AdminAction.objects.filter(pk=row.pk).exists()


def test_queryset_updates_and_deletes_are_refused(row):
    with pytest.raises(AuditRowImmutable, match=UPDATED):
        AdminAction.objects.filter(pk=row.pk).update(reason="x")
    with pytest.raises(AuditRowImmutable, match=DELETED):
        AdminAction.objects.all().delete()
    assert AdminAction.objects.get(pk=row.pk).reason == ""


def test_the_admin_is_read_only_even_for_a_superuser(admin_client, row):
    change = reverse("admin:backoffice_adminaction_change", args=[row.pk])
    delete = reverse("admin:backoffice_adminaction_delete", args=[row.pk])
    assert admin_client.get(change).status_code == 200  # viewable
    assert admin_client.post(change, {"action": "forged", "reason": "x"}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:backoffice_adminaction_add")).status_code == 403
    assert AdminAction.objects.get(pk=row.pk).action == "test"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE backoffice_adminaction SET reason = 'x' WHERE id = %s",
        "DELETE FROM backoffice_adminaction WHERE id = %s",
    ],
)
def test_on_postgresql_the_database_refuses_raw_updates_and_deletes(row, sql):
    message = r"Append-only table: \w+ on backoffice_adminaction"
    refused = pytest.raises(DatabaseError, match=message)
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [row.pk])
    assert AdminAction.objects.get(pk=row.pk).reason == ""
