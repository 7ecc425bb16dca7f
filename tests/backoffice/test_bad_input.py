"""Bad input never answers 500: every changelist of every registered ModelAdmin, with every
parameter it reads set to garbage, answers the page (with a message) or a redirect to it; every
object page, and every page an admin mounts in get_urls, answers a bad object id with a 404 or
a redirect with a message. See tests/backoffice/bad_input_support.py for the values."""

import pytest

from payments.models import Dispute, Payment
from tests.backoffice.bad_input_support import (
    registered_admins,
    sweep_changelist,
    sweep_object_pages,
)
from tests.factories import DisputeFactory, PaymentFactory

pytestmark = pytest.mark.django_db

ADMINS = registered_admins()


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=[m._meta.label for m, _ in ADMINS])
def test_no_changelist_parameter_answers_garbage_with_a_server_error(
    admin_client, superuser, model, model_admin
):
    assert sweep_changelist(admin_client, model_admin, superuser) > 0


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=[m._meta.label for m, _ in ADMINS])
def test_no_object_page_answers_a_bad_id_with_a_server_error(admin_client, model, model_admin):
    assert sweep_object_pages(admin_client, model_admin) > 0


HUGE = 99999999999999999999999


def test_ids_past_the_column_match_nothing_without_asking_the_database():
    payment = PaymentFactory()
    dispute = DisputeFactory(payment=payment)
    assert list(Payment.objects.filter(pk__in=[HUGE, payment.pk])) == [payment]
    assert list(Payment.objects.filter(pk__in=[HUGE, -HUGE])) == []
    assert list(Dispute.objects.filter(payment_id=HUGE)) == []
    assert list(Dispute.objects.filter(payment__in=[HUGE, payment.pk])) == [dispute]
    assert list(Dispute.objects.filter(payment_id__lt=HUGE)) == [dispute]
    assert list(Dispute.objects.filter(payment_id__gt=-HUGE)) == [dispute]


@pytest.mark.parametrize("object_id", [str(HUGE), "abc"])
def test_an_object_id_the_key_cannot_hold_is_answered_with_the_does_not_exist_message(
    admin_client, object_id
):
    response = admin_client.get(f"/admin/payments/dispute/{object_id}/change/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0] == ("/admin/", 302)
    assert [str(m) for m in response.context["messages"]] == [
        # Django's own message for a missing object.
        f"dispute with ID “{object_id}” doesn’t exist. Perhaps it was deleted?"  # noqa: RUF001
    ]


def test_a_year_past_the_calendar_is_an_invalid_lookup(admin_client):
    response = admin_client.get("/admin/axes/accesslog/", {"attempt_time__year": str(HUGE)})
    assert response.status_code == 302
    assert response["Location"] == "/admin/axes/accesslog/?e=1"
