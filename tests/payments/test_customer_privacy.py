"""A customer's GDPR export (JSON) and erasure (pseudonymise, keep money and audit): the
permissions, the confirmation pages (POST acts), the audit rows, what changes and what stays,
and that neither the sync nor webhooks bring the personal data back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from backoffice.models import AdminAction
from payments import sync, webhooks
from payments.customer_privacy import EXPORT_FORMAT
from payments.gateway import StripeCustomer, StripeDispute, payment_intent_from_stripe
from payments.models import Customer, Dispute, DisputeResponse, Payment, WebhookEvent
from payments.services.customer_privacy import (
    AUDIT_ERASE,
    AUDIT_EXPORT,
    ERR_ALREADY_ERASED,
    ERR_CONFIRMATION,
    ERR_ERASE_NOT_ALLOWED,
    ERR_EXPORT_NOT_ALLOWED,
    ERR_REASON_REQUIRED,
    CustomerPrivacyError,
    customer_data_export,
    customer_erase,
)
from refunds.models import RefundRequest
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    PaymentFactory,
    PaymentMethodFactory,
    RefundFactory,
    RefundRequestFactory,
)
from tests.payments.test_sync_upserts import intent_payload

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
NAME = "Jane Doe"
IP = "203.0.113.7"
PERSONAL = (EMAIL, NAME, IP, "1 Example Street", "+44 20 7946 0958", "Please refund me, Jane")


@pytest.fixture
def staff():
    call_command("demo_staff", verbosity=0)
    return {u.username: u for u in get_user_model().objects.all()}


@pytest.fixture
def jane():
    """A customer with personal data in every place the erasure reaches."""
    customer = CustomerFactory(stripe_id="cus_jane", email=EMAIL, name=NAME)
    customer.name = NAME + " "  # an earlier name in the history
    customer.save()
    customer.name = NAME
    customer.save()
    PaymentMethodFactory(customer=customer, stripe_id="pm_jane", card_fingerprint="fp_jane")
    payment = PaymentFactory(
        customer=customer,
        stripe_payment_intent_id="pi_jane",
        stripe_charge_id="ch_jane",
        billing_details={
            "name": NAME,
            "email": EMAIL,
            "phone": "+44 20 7946 0958",
            "address": {"line1": "1 Example Street", "country": "GB"},
        },
        ip_address=IP,
        metadata={"product_name": "Algebra I", "client_ip": IP, "student_name": NAME},
        description=f"Algebra I for {EMAIL}",
        metadata_problems=[f"instructor_email is not ours: {EMAIL}"],
        status=Payment.Status.DISPUTED,
    )
    payment.save()  # a history row with the IP, the description and the problems
    RefundFactory(payment=payment, stripe_id="re_jane", amount=1000)
    RefundRequestFactory(payment=payment, customer_note="Please refund me, Jane")
    # A note the customer took back: blank now, but its history rows still hold it.
    withdrawn = RefundRequestFactory(payment=payment, customer_note="Call me on +44 20 7946 0958")
    withdrawn.customer_note = ""
    withdrawn.save()
    dispute = DisputeFactory(
        payment=payment,
        stripe_id="dp_jane",
        evidence={
            "customer_name": NAME,
            "customer_email_address": EMAIL,
            "product_description": "Algebra I",
        },
    )
    DisputeResponse.objects.create(
        dispute=dispute,
        kind=DisputeResponse.Kind.SAVE,
        status=DisputeResponse.Status.SUCCEEDED,
        evidence={"customer_name": NAME, "billing_address": "1 Example Street"},
    )
    for stripe_id, object_id, obj in [
        ("evt_cus", "cus_jane", {"id": "cus_jane", "object": "customer", "email": EMAIL}),
        (
            "evt_ch",
            "ch_jane",
            {"id": "ch_jane", "object": "charge", "billing_details": {"name": NAME}},
        ),
        (
            "evt_pm",
            "pm_other",
            {
                "id": "pm_other",
                "customer": "cus_jane",
                "billing_details": {"phone": "+44 20 7946 0958"},
            },
        ),
    ]:
        WebhookEvent.objects.create(
            stripe_id=stripe_id,
            type="x.updated",
            object_id=object_id,
            created=timezone.now(),
            payload={"id": stripe_id, "data": {"object": obj}},
        )
    return customer


@pytest.fixture
def someone_else():
    other = CustomerFactory(stripe_id="cus_other", email="other@example.com", name="Other Person")
    payment = PaymentFactory(customer=other, billing_details={"name": "Other Person"})
    WebhookEvent.objects.create(
        stripe_id="evt_other",
        type="customer.updated",
        object_id="cus_other",
        created=timezone.now(),
        payload={
            "id": "evt_other",
            "data": {"object": {"id": "cus_other", "name": "Other Person"}},
        },
    )
    return other, payment


def everything_about(customer: Customer) -> str:
    """Every stored text that may hold the customer's personal data, as one string."""
    payments = Payment.objects.filter(customer=customer)
    parts = [
        list(Customer.objects.filter(pk=customer.pk).values()),
        list(Customer.history.filter(id=customer.pk).values("email", "name")),
        list(payments.values("billing_details", "ip_address", "metadata", "description")),
        list(
            Payment.history.filter(id__in=payments.values("pk")).values(
                "ip_address", "description", "metadata_problems"
            )
        ),
        list(Dispute.objects.filter(payment__in=payments).values("evidence")),
        list(DisputeResponse.objects.filter(dispute__payment__in=payments).values("evidence")),
        list(RefundRequest.objects.filter(payment__in=payments).values("customer_note")),
        list(
            RefundRequest.history.filter(payment_id__in=payments.values("pk")).values(
                "customer_note"
            )
        ),
        list(
            WebhookEvent.objects.filter(stripe_id__in=["evt_cus", "evt_ch", "evt_pm"]).values(
                "payload"
            )
        ),
    ]
    return json.dumps(parts, default=str)


# --- Export -----------------------------------------------------------------------------------


def test_export_holds_every_section_without_full_card_numbers_and_is_audited(staff, jane):
    document = customer_data_export(customer=jane, acting_user=staff["senior"])
    assert document["format"] == EXPORT_FORMAT
    assert document["customer"]["email"] == EMAIL
    assert document["customer"]["stripe_id"] == "cus_jane"
    [method] = document["payment_methods"]
    assert (method["card_brand"], method["card_last4"]) == ("visa", "4242")
    assert "card_fingerprint" not in method
    [payment] = document["payments"]
    assert payment["amount"] == {"amount": 5000, "currency": "usd", "display": "$50.00"}
    assert payment["billing_details"]["email"] == EMAIL
    assert payment["ip_address"] == IP
    assert "card_fingerprint" not in payment
    assert [r["stripe_id"] for r in document["refunds"]] == ["re_jane"]
    assert [d["stripe_id"] for d in document["disputes"]] == ["dp_jane"]
    assert document["refund_requests"][0]["customer_note"] == "Please refund me, Jane"
    assert document["balance"] is None
    json.dumps(document)  # JSON-ready as it is
    row = AdminAction.objects.get(action=AUDIT_EXPORT)
    assert row.actor == staff["senior"]
    assert row.target_id == str(jane.pk)
    assert EMAIL not in row.target_repr and "cus_jane" in row.target_repr


def test_export_needs_the_permission(staff, jane):
    for username in ("auditor", "analyst"):
        with pytest.raises(CustomerPrivacyError, match=ERR_EXPORT_NOT_ALLOWED):
            customer_data_export(customer=jane, acting_user=staff[username])
    assert not AdminAction.objects.filter(action=AUDIT_EXPORT).exists()


def test_export_in_the_admin_is_a_confirmation_then_a_post_download(client, staff, jane):
    url = reverse("admin:payments_customer_export_data", args=[jane.pk])
    client.force_login(staff["auditor"])
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    client.force_login(staff["senior"])
    page = client.get(url)
    assert page.status_code == 200
    assert b'method="post"' in page.content
    assert not AdminAction.objects.filter(action=AUDIT_EXPORT).exists()  # a GET exports nothing
    response = client.post(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    assert json.loads(response.content)["customer"]["email"] == EMAIL
    assert AdminAction.objects.filter(action=AUDIT_EXPORT, actor=staff["senior"]).count() == 1


# --- Erasure ----------------------------------------------------------------------------------


def test_erasure_pseudonymises_personal_data_and_keeps_money_and_audit(staff, jane, someone_else):
    before = everything_about(jane)
    assert all(value in before for value in PERSONAL)
    audit_before = AdminAction.objects.count()
    money_before = list(
        Payment.objects.filter(customer=jane).values("amount", "amount_refunded", "net", "status")
    )

    result = customer_erase(
        customer=jane, reason="Ticket 4711", confirmation="cus_jane", acting_user=staff["senior"]
    )

    jane.refresh_from_db()
    assert jane.erased_at is not None
    assert (jane.email, jane.name, jane.stripe_id) == ("", Customer.ERASED_NAME, "cus_jane")
    assert str(jane) == "Erased customer cus_jane"
    after = everything_about(jane)
    assert not [value for value in PERSONAL if value in after], after
    # Money rows and their ids stay.
    assert (
        list(
            Payment.objects.filter(customer=jane).values(
                "amount", "amount_refunded", "net", "status"
            )
        )
        == money_before
    )
    assert Dispute.objects.get(stripe_id="dp_jane").evidence["product_description"] == "Algebra I"
    assert RefundRequest.objects.filter(payment__customer=jane).count() == 2
    assert result.changed["webhook_events"] == 3
    assert result.changed["refund_requests"] == 1
    # One audit row more, with the reason and no e-mail; none removed.
    assert AdminAction.objects.count() == audit_before + 1
    row = AdminAction.objects.get(action=AUDIT_ERASE)
    assert (row.actor, row.reason) == (staff["senior"], "Ticket 4711")
    assert EMAIL not in json.dumps(row.details) + row.target_repr
    # Nobody else's data changed.
    other, other_payment = someone_else
    other.refresh_from_db()
    other_payment.refresh_from_db()
    assert (other.email, other.erased_at) == ("other@example.com", None)
    assert other_payment.billing_details == {"name": "Other Person"}
    assert WebhookEvent.objects.get(stripe_id="evt_other").payload["data"]["object"]["name"] == (
        "Other Person"
    )


@pytest.mark.parametrize(
    ("username", "reason", "confirmation", "error"),
    [
        ("auditor", "Ticket 1", "cus_jane", ERR_ERASE_NOT_ALLOWED),
        ("analyst", "Ticket 1", "cus_jane", ERR_ERASE_NOT_ALLOWED),
        ("senior", "  ", "cus_jane", ERR_REASON_REQUIRED),
        ("senior", "Ticket 1", "cus_someone", ERR_CONFIRMATION.format(stripe_id="cus_jane")),
    ],
)
def test_erasure_refusals_change_nothing(staff, jane, username, reason, confirmation, error):
    before = everything_about(jane)
    with pytest.raises(CustomerPrivacyError) as refused:
        customer_erase(
            customer=jane, reason=reason, confirmation=confirmation, acting_user=staff[username]
        )
    assert str(refused.value) == error
    assert everything_about(jane) == before
    assert not AdminAction.objects.filter(action=AUDIT_ERASE).exists()


def test_a_second_erasure_is_refused(staff, jane):
    customer_erase(customer=jane, reason="T1", confirmation="cus_jane", acting_user=staff["senior"])
    with pytest.raises(CustomerPrivacyError, match="already erased"):
        customer_erase(
            customer=jane, reason="T2", confirmation="cus_jane", acting_user=staff["demo"]
        )
    assert ERR_ALREADY_ERASED.startswith("This customer's personal data was already erased")
    assert AdminAction.objects.filter(action=AUDIT_ERASE).count() == 1


def test_erasure_in_the_admin_confirms_then_posts(client, staff, jane):
    url = reverse("admin:payments_customer_erase", args=[jane.pk])
    page_url = reverse("admin:payments_customer_change", args=[jane.pk])
    client.force_login(staff["analyst"])
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x", "confirmation": "cus_jane"}).status_code == 403
    assert b"erase-personal-data" not in client.get(page_url).content
    client.force_login(staff["senior"])
    assert b"erase-personal-data" in client.get(page_url).content
    assert client.get(url).status_code == 200
    wrong = client.post(url, {"reason": "Ticket 9", "confirmation": "cus_wrong"})
    assert wrong.status_code == 200
    assert escape(ERR_CONFIRMATION.format(stripe_id="cus_jane")) in wrong.content.decode()
    jane.refresh_from_db()
    assert jane.erased_at is None
    done = client.post(url, {"reason": "Ticket 9", "confirmation": "cus_jane"}, follow=True)
    assert done.redirect_chain[-1][0] == page_url
    html = done.content.decode()
    assert 'data-testid="customer-erased"' in html
    assert "erase-personal-data" not in html  # nothing left to erase
    assert EMAIL not in html
    # The list shows the erased badge.
    listing = client.get(reverse("admin:payments_customer_changelist")).content.decode()
    assert 'data-testid="customer-erased-badge"' in listing


# --- The mirror keeps an erased customer erased ------------------------------------------------


def _erased(staff, customer):
    customer_erase(
        customer=customer,
        reason="Ticket",
        confirmation=customer.stripe_id,
        acting_user=staff["senior"],
    )
    customer.refresh_from_db()
    return customer


def test_sync_never_brings_personal_data_back(staff, jane):
    jane = _erased(staff, jane)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    # Stripe still holds the customer's data and sends it.
    sync.upsert_customers(
        [StripeCustomer(id="cus_jane", email=EMAIL, name=NAME, livemode=False, created=created)]
    )
    payload = intent_payload(
        "pi_jane",
        customer="cus_jane",
        description=f"Algebra I for {EMAIL}",
        metadata={"client_ip": IP, "student_name": NAME},
    )
    payload["latest_charge"]["id"] = "ch_jane"
    payload["latest_charge"]["billing_details"] = {"name": NAME, "email": EMAIL}
    sync.upsert_payment_intents([payment_intent_from_stripe(payload)])
    sync.upsert_disputes(
        [
            StripeDispute(
                id="dp_jane",
                charge_id="ch_jane",
                payment_intent_id="pi_jane",
                amount=5000,
                currency="usd",
                status="needs_response",
                created=created,
                evidence={"customer_name": NAME, "customer_email_address": EMAIL},
            )
        ]
    )
    jane.refresh_from_db()
    assert (jane.email, jane.name) == ("", Customer.ERASED_NAME)
    after = everything_about(jane)
    assert not [value for value in PERSONAL if value in after], after
    # A second pass over the same objects changes nothing.
    again = sync.upsert_customers(
        [StripeCustomer(id="cus_jane", email=EMAIL, name=NAME, livemode=False, created=created)]
    )
    assert again.unchanged == 1


def test_webhook_events_about_an_erased_customer_are_kept_masked(
    staff, jane, someone_else, monkeypatch
):
    _erased(staff, jane)
    fresh = WebhookEvent.objects.create(
        stripe_id="evt_after",
        type="customer.updated",
        object_id="cus_jane",
        created=timezone.now(),
        payload={
            "id": "evt_after",
            "type": "customer.updated",
            "data": {
                "object": {"id": "cus_jane", "object": "customer", "email": EMAIL, "name": NAME}
            },
        },
    )
    other = WebhookEvent.objects.create(
        stripe_id="evt_other_after",
        type="customer.updated",
        object_id="cus_other",
        created=timezone.now(),
        payload={
            "id": "evt_other_after",
            "data": {"object": {"id": "cus_other", "object": "customer", "name": "Other Person"}},
        },
    )
    handled = []
    monkeypatch.setitem(webhooks.HANDLERS, "customer.updated", handled.append)
    webhooks.webhook_event_process(event_pk=fresh.pk)
    webhooks.webhook_event_process(event_pk=other.pk)
    assert [e.stripe_id for e in handled] == ["evt_after", "evt_other_after"]
    fresh.refresh_from_db()
    other.refresh_from_db()
    assert fresh.status == WebhookEvent.Status.PROCESSED
    assert EMAIL not in json.dumps(fresh.payload) and NAME not in json.dumps(fresh.payload)
    assert other.payload["data"]["object"]["name"] == "Other Person"


def test_the_roles_holding_the_privacy_permissions(staff):
    for perm in ("payments.export_customer_data", "payments.erase_customer"):
        assert staff["senior"].has_perm(perm)
        assert not staff["analyst"].has_perm(perm)
        assert not staff["auditor"].has_perm(perm)


# --- The audit trail and the admin's log keep no personal data -------------------------------


def test_audit_rows_about_a_customer_name_them_by_id_never_by_email(jane):
    """The audit trail is append-only and outlives an erasure: a customer is named there by
    pk and Stripe id (Customer.audit_repr), whichever service writes the row."""
    from backoffice.audit import audit_record
    from payments.services.customer_block import customer_block, customer_unblock
    from tests.factories import UserFactory

    boss = UserFactory(is_superuser=True)
    customer_block(customer=jane, reason="Chargebacks", acting_user=boss)
    customer_unblock(customer=jane, note="Sorted out", acting_user=boss)
    audit_record(acting_user=boss, action="test.any", target=jane)
    rows = AdminAction.objects.filter(target_type="payments.customer")
    assert rows.count() == 3
    assert {row.target_repr for row in rows} == {f"Customer #{jane.pk} (cus_jane)"}


def test_a_refund_requests_audit_row_does_not_copy_the_customers_note(jane):
    from refunds.services import AUDIT_CREATE, refund_request_create
    from tests.factories import UserFactory

    payment = PaymentFactory(customer=jane, status=Payment.Status.SUCCEEDED, amount=5000)
    boss = UserFactory(is_superuser=True)
    refund_request_create(
        payment=payment,
        amount=1000,
        acting_user=boss,
        customer_note="Please refund me, Jane",
        admin_notes="Goodwill, ticket 9",
    )
    refund_request_create(
        payment=payment, amount=1000, acting_user=boss, customer_note="Jane again, sorry"
    )
    rows = AdminAction.objects.filter(action=AUDIT_CREATE).order_by("pk")
    assert [row.reason for row in rows] == ["Goodwill, ticket 9", ""]
    assert all("Jane" not in json.dumps(row.details) for row in rows)
    assert [row.details.get("customer_note") for row in rows] == ["kept on the request"] * 2


def test_erasure_renames_the_customer_in_the_admins_log(staff, jane):
    """django.contrib.admin's LogEntry (the "history" of an admin page) is not append-only
    and keeps str(customer), the e-mail: the erasure renames the customer's rows there."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    other = CustomerFactory(stripe_id="cus_keep", email="keep@example.com")
    for customer in (jane, other):
        LogEntry.objects.create(
            user=staff["senior"],
            content_type=ContentType.objects.get_for_model(Customer),
            object_id=str(customer.pk),
            object_repr=str(customer),
            action_flag=CHANGE,
            change_message="[]",
        )
    customer_erase(
        customer=jane, reason="Ticket 1", confirmation="cus_jane", acting_user=staff["senior"]
    )
    reprs = dict(LogEntry.objects.values_list("object_id", "object_repr"))
    assert reprs == {
        str(jane.pk): f"Customer #{jane.pk} (cus_jane)",
        str(other.pk): "keep@example.com",
    }
