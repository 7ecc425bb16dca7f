"""Retrying a failed payment: the service and the admin view.

localstripe cannot confirm again an intent whose charge failed (real Stripe can), so the
success, decline and unclear-answer paths fake the gateway at its boundary (its functions and
dataclasses); the test marked `stripe` sends the real requests to localstripe and checks that
its refusal is reported and charges nothing."""

import dataclasses
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway
from payments.exceptions import CardDeclined, GatewayTimeout
from payments.models import Payment, PaymentRetry
from payments.services import payment_retry as service
from payments.services.payment_retry import (
    ERROR_IN_FLIGHT,
    ERROR_NO_CUSTOMER,
    ERROR_NO_DEFAULT_METHOD,
    ERROR_NO_PERMISSION,
    ERROR_NOT_FAILED,
    ERROR_REASON_REQUIRED,
    MESSAGE_DECLINED,
    MESSAGE_UNKNOWN,
    PaymentRetryNotAllowed,
    payment_retry,
)
from tests.factories import PaymentFactory, PaymentMethodFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    user = UserFactory(username="finance")
    user.user_permissions.add(Permission.objects.get(codename="retry_payment"))
    return user


@pytest.fixture
def failed_payment(db):
    payment = PaymentFactory(failed=True, amount=7000, stripe_payment_intent_id="pi_failed")
    PaymentMethodFactory(customer=payment.customer, stripe_id="pm_old", card_last4="0341")
    PaymentMethodFactory(
        customer=payment.customer, stripe_id="pm_new", card_last4="4242", is_default=True
    )
    return payment


def intent_for(payment, **changes):
    base = gateway.StripePaymentIntent(
        id=payment.stripe_payment_intent_id,
        amount=payment.amount,
        currency=payment.currency,
        status="succeeded",
        created=payment.created,
        customer_id=payment.customer.stripe_id,
        payment_method_id="pm_new",
        payment_method_type="card",
        latest_charge_id="ch_retry",
        charge_status="succeeded",
        stripe_fee=233,
        amount_received=payment.amount,
    )
    return dataclasses.replace(base, **changes)


class FakeStripe:
    """Stands in for gateway.stripe_payment_intent_confirm / _retrieve; records calls."""

    def __init__(self, payment, *, outcome="succeeded"):
        self.payment = payment
        self.outcome = outcome
        self.confirms = []

    def confirm(self, *, payment_intent_id, payment_method_id, idempotency_key):
        self.confirms.append((payment_intent_id, payment_method_id, idempotency_key))
        if self.outcome == "declined":
            raise CardDeclined(code="card_declined", decline_code="insufficient_funds")
        if self.outcome == "timeout":
            raise GatewayTimeout()
        return intent_for(self.payment)

    def retrieve(self, *, payment_intent_id):
        return intent_for(
            self.payment,
            status="requires_payment_method",
            charge_status="failed",
            failure_code="card_declined",
            decline_code="insufficient_funds",
            stripe_fee=None,
            amount_received=0,
        )


@pytest.fixture
def fake_stripe(monkeypatch, failed_payment):
    def install(outcome="succeeded"):
        fake = FakeStripe(failed_payment, outcome=outcome)
        monkeypatch.setattr(service.gateway, "stripe_payment_intent_confirm", fake.confirm)
        monkeypatch.setattr(service.gateway, "stripe_payment_intent_retrieve", fake.retrieve)
        return fake

    return install


# --- The service ---------------------------------------------------------------------------


def test_retry_confirms_with_the_default_method_and_mirrors_the_result(
    failed_payment, fake_stripe, staff
):
    fake = fake_stripe()
    result = payment_retry(
        payment=failed_payment, reason="Customer updated card", acting_user=staff
    )
    retry = PaymentRetry.objects.get()
    key = f"payment_retry:{retry.pk}"
    assert fake.confirms == [("pi_failed", "pm_new", key)]
    assert result.succeeded and result.idempotency_key == key and result.retry_id == retry.pk
    failed_payment.refresh_from_db()
    assert failed_payment.status == Payment.Status.SUCCEEDED
    assert failed_payment.stripe_fee == 233
    assert failed_payment.payment_method.stripe_id == "pm_new"
    assert (retry.status, retry.amount, retry.currency, retry.attempts) == (
        PaymentRetry.Status.SUCCEEDED,
        7000,
        "usd",
        1,
    )
    assert (retry.requested_by, retry.stripe_status) == (staff, "succeeded")
    assert retry.finished_at is not None
    audit = AdminAction.objects.get(pk=result.audit_id)
    assert (audit.actor, audit.action, audit.amount, audit.currency) == (
        staff,
        "payment_retry",
        7000,
        "usd",
    )
    assert (audit.target_type, audit.target_id) == ("payments.payment", str(failed_payment.pk))
    assert audit.reason == "Customer updated card"
    assert audit.details["idempotency_key"] == key
    assert audit.details["payment_retry_id"] == retry.pk


def test_double_submit_charges_once(failed_payment, fake_stripe, staff):
    fake = fake_stripe()
    payment_retry(payment=failed_payment, reason="first click", acting_user=staff)
    with pytest.raises(PaymentRetryNotAllowed) as second:
        payment_retry(payment=failed_payment, reason="second click", acting_user=staff)
    assert second.value.message == ERROR_NOT_FAILED.format(status="succeeded")
    assert len(fake.confirms) == 1
    assert PaymentRetry.objects.count() == 1


def test_a_retry_in_flight_refuses_a_second_one(failed_payment, fake_stripe, staff):
    fake = fake_stripe(outcome="timeout")
    result = payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    assert result.message == MESSAGE_UNKNOWN and not result.succeeded
    assert PaymentRetry.objects.get().status == PaymentRetry.Status.UNKNOWN
    with pytest.raises(PaymentRetryNotAllowed) as again:
        payment_retry(payment=failed_payment, reason="again", acting_user=staff)
    assert again.value.message == ERROR_IN_FLIGHT
    assert len(fake.confirms) == 1
    assert PaymentRetry.objects.count() == 1
    # The refused click changed nothing, so it left no audit row either.
    assert AdminAction.objects.filter(action="payment_retry").count() == 1


def test_a_stripe_5xx_is_an_unknown_outcome_like_a_timeout(
    failed_payment, fake_stripe, staff, monkeypatch
):
    from payments.exceptions import GatewayServerError

    fake_stripe()

    def server_error(**kwargs):
        raise GatewayServerError()

    monkeypatch.setattr(service.gateway, "stripe_payment_intent_confirm", server_error)
    result = payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    assert result.message == MESSAGE_UNKNOWN
    retry = PaymentRetry.objects.get(pk=result.retry_id)
    assert retry.status == PaymentRetry.Status.UNKNOWN and retry.finished_at is None


def backdate(retry_id):
    """As if the retry's last attempt was sent long ago (its worker gone)."""
    PaymentRetry.objects.filter(pk=retry_id).update(
        last_attempt_at=timezone.now() - timedelta(minutes=10)
    )


def test_an_interrupted_retry_is_resent_with_the_same_key(failed_payment, fake_stripe, staff):
    fake = fake_stripe(outcome="timeout")
    first = payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    backdate(first.retry_id)
    fake.outcome = "succeeded"
    # The customer changed the default card meanwhile: the resumed retry still sends the
    # first card, since Stripe refuses a key reused with other parameters.
    failed_payment.customer.payment_methods.update(is_default=False)
    second = payment_retry(payment=failed_payment, reason="y", acting_user=staff)
    assert second.succeeded
    assert second.retry_id == first.retry_id
    assert fake.confirms == [("pi_failed", "pm_new", first.idempotency_key)] * 2
    retry = PaymentRetry.objects.get()
    assert (retry.status, retry.attempts) == (PaymentRetry.Status.SUCCEEDED, 2)
    # One audit row per staff action, each written once.
    audits = AdminAction.objects.filter(action="payment_retry").order_by("id")
    assert [a.details["attempt"] for a in audits] == [1, 2]
    assert [a.reason for a in audits] == ["x", "y"]


class Crash(BaseException):
    """The worker dies (killed, out of memory) right after Stripe answered."""


def test_a_crash_after_the_stripe_call_is_resumed_with_the_same_key(
    failed_payment, fake_stripe, staff, monkeypatch
):
    fake = fake_stripe()

    def confirm_then_crash(**kwargs):
        fake.confirm(**kwargs)  # Stripe charged ...
        raise Crash  # ... and we never heard back

    monkeypatch.setattr(service.gateway, "stripe_payment_intent_confirm", confirm_then_crash)
    with pytest.raises(Crash):
        payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    retry = PaymentRetry.objects.get()
    assert retry.status == PaymentRetry.Status.PROCESSING
    # Right after the crash it looks like a click still in flight: refused, nothing sent.
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    assert refused.value.message == ERROR_IN_FLIGHT
    backdate(retry.pk)
    monkeypatch.setattr(service.gateway, "stripe_payment_intent_confirm", fake.confirm)
    result = payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    assert result.succeeded and result.retry_id == retry.pk
    assert [c[2] for c in fake.confirms] == [retry.idempotency_key] * 2
    assert PaymentRetry.objects.get().status == PaymentRetry.Status.SUCCEEDED


def test_the_database_refuses_a_second_open_retry(failed_payment, fake_stripe, staff):
    """Even code that skips the service's check cannot open two retries of one payment."""
    from django.db import IntegrityError, transaction

    fake_stripe(outcome="timeout")
    payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentRetry.objects.create(
            payment=failed_payment,
            amount=failed_payment.amount,
            currency="usd",
            stripe_payment_intent_id="pi_failed",
            stripe_payment_method_id="pm_new",
            idempotency_key="other",
        )


def test_a_decline_keeps_the_payment_failed_and_is_recorded(failed_payment, fake_stripe, staff):
    fake_stripe(outcome="declined")
    result = payment_retry(payment=failed_payment, reason="try again", acting_user=staff)
    assert not result.succeeded
    assert result.message == MESSAGE_DECLINED.format(code="insufficient_funds")
    failed_payment.refresh_from_db()
    assert failed_payment.status == Payment.Status.FAILED
    retry = PaymentRetry.objects.get(pk=result.retry_id)
    assert (retry.status, retry.decline_code) == (
        PaymentRetry.Status.DECLINED,
        "insufficient_funds",
    )
    assert AdminAction.objects.filter(pk=result.audit_id).exists()
    # The next retry is a new attempt with a new key.
    fake_stripe(outcome="succeeded")
    again = payment_retry(payment=failed_payment, reason="new card", acting_user=staff)
    assert again.retry_id != retry.pk
    assert again.idempotency_key == f"payment_retry:{again.retry_id}"


def test_the_service_checks_the_permission(failed_payment, fake_stripe):
    fake = fake_stripe()
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=failed_payment, reason="x", acting_user=UserFactory())
    assert refused.value.message == ERROR_NO_PERMISSION
    assert fake.confirms == [] and not PaymentRetry.objects.exists()


@pytest.mark.parametrize("status", [Payment.Status.SUCCEEDED, Payment.Status.PENDING])
def test_only_failed_payments_can_be_retried(status, staff, fake_stripe, failed_payment):
    fake = fake_stripe()
    Payment.objects.filter(pk=failed_payment.pk).update(status=status)
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    label = dict(Payment.Status.choices)[status].lower()
    assert refused.value.message == ERROR_NOT_FAILED.format(status=label)
    assert fake.confirms == []
    assert not AdminAction.objects.exists() and not PaymentRetry.objects.exists()


def test_no_default_method(staff, fake_stripe, failed_payment):
    fake = fake_stripe()
    failed_payment.customer.payment_methods.update(is_default=False)
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=failed_payment, reason="x", acting_user=staff)
    assert refused.value.message == ERROR_NO_DEFAULT_METHOD
    assert fake.confirms == []


def test_no_customer(staff):
    payment = PaymentFactory(failed=True, customer=None)
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=payment, reason="x", acting_user=staff)
    assert refused.value.message == ERROR_NO_CUSTOMER


def test_reason_is_required(staff, failed_payment):
    with pytest.raises(PaymentRetryNotAllowed) as refused:
        payment_retry(payment=failed_payment, reason="  ", acting_user=staff)
    assert refused.value.message == ERROR_REASON_REQUIRED


# --- The admin -----------------------------------------------------------------------------


def retry_url(payment):
    return reverse("admin:payments_payment_retry", args=[payment.pk])


def change_url(payment):
    return reverse("admin:payments_payment_change", args=[payment.pk])


@pytest.fixture
def retrier(db):
    user = UserFactory(username="retrier")
    user.user_permissions.add(
        Permission.objects.get(codename="view_payment"),
        Permission.objects.get(codename="retry_payment"),
    )
    return user


@pytest.fixture
def reader(db):
    user = UserFactory(username="reader")
    user.user_permissions.add(Permission.objects.get(codename="view_payment"))
    return user


def test_button_shows_on_failed_payments_for_staff_with_the_permission(
    client, retrier, reader, failed_payment
):
    client.force_login(retrier)
    assert retry_url(failed_payment) in client.get(change_url(failed_payment)).content.decode()
    succeeded = PaymentFactory()
    assert retry_url(succeeded) not in client.get(change_url(succeeded)).content.decode()
    client.force_login(reader)
    assert retry_url(failed_payment) not in client.get(change_url(failed_payment)).content.decode()


def test_retry_view_get_is_405(client, retrier, failed_payment):
    client.force_login(retrier)
    assert client.get(retry_url(failed_payment)).status_code == 405


def test_retry_view_without_permission_is_403(client, reader, failed_payment, fake_stripe):
    fake = fake_stripe()
    client.force_login(reader)
    response = client.post(retry_url(failed_payment), {"confirm": "1", "reason": "x"})
    assert response.status_code == 403
    assert fake.confirms == []


def test_retry_view_asks_for_a_reason_then_retries(client, retrier, failed_payment, fake_stripe):
    fake = fake_stripe()
    client.force_login(retrier)
    form = client.post(retry_url(failed_payment))
    assert form.status_code == 200
    body = form.content.decode()
    assert "Charge again" in body and "Visa •••• 4242" in body
    assert fake.confirms == []
    missing = client.post(retry_url(failed_payment), {"confirm": "1", "reason": ""})
    assert missing.status_code == 200 and fake.confirms == []
    done = client.post(
        retry_url(failed_payment),
        {"confirm": "1", "reason": "Card replaced"},
        REMOTE_ADDR="10.1.2.3",
        HTTP_USER_AGENT="pytest",
        follow=True,
    )
    assert "it is now Succeeded" in done.content.decode()
    audit = AdminAction.objects.get(action="payment_retry")
    assert (audit.ip_address, audit.user_agent, audit.reason) == (
        "10.1.2.3",
        "pytest",
        "Card replaced",
    )
    assert len(fake.confirms) == 1


def test_retry_view_explains_a_refusal(client, retrier, failed_payment, fake_stripe):
    fake_stripe()
    failed_payment.customer.payment_methods.update(is_default=False)
    client.force_login(retrier)
    response = client.post(retry_url(failed_payment), {"confirm": "1", "reason": "x"}, follow=True)
    assert ERROR_NO_DEFAULT_METHOD in response.content.decode()


# --- Against localstripe -------------------------------------------------------------------


@pytest.mark.stripe
def test_against_localstripe_a_refused_confirm_charges_nothing(localstripe, settings, staff):
    """The real request goes to localstripe, which cannot confirm an intent whose charge
    failed (real Stripe can): the refusal is reported, the retry recorded as refused, and no
    charge is made; the next retry is a new one with a new key, since Stripe refused before
    charging."""
    import stripe

    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    settings.STRIPE_MAX_RETRIES = 0
    peer = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
    customer = peer.v1.customers.create(params={"email": "retry@example.com"})

    def card(number):
        method = peer.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
            }
        )
        peer.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        return method

    bad, good = card("4000000000000341"), card("4242424242424242")
    with pytest.raises(stripe.CardError):
        peer.v1.payment_intents.create(
            params={
                "amount": 900,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": bad.id,
                "confirm": True,
            }
        )
    intent_id = peer.v1.payment_intents.list().data[0].id
    from payments import sync

    sync.upsert_customers([gateway.stripe_customer_retrieve(customer_id=customer.id)])
    sync.upsert_payment_intents(
        [gateway.stripe_payment_intent_retrieve(payment_intent_id=intent_id)]
    )
    sync.upsert_payment_methods([gateway.stripe_payment_method_retrieve(payment_method_id=good.id)])
    payment = Payment.objects.get(stripe_payment_intent_id=intent_id)
    assert payment.status == Payment.Status.FAILED
    payment.customer.payment_methods.filter(stripe_id=good.id).update(is_default=True)

    with pytest.raises(PaymentRetryNotAllowed):
        payment_retry(payment=payment, reason="new card", acting_user=staff)
    retry = PaymentRetry.objects.get()
    assert retry.status == PaymentRetry.Status.FAILED and retry.error
    assert AdminAction.objects.get(action="payment_retry").details["payment_retry_id"] == retry.pk
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    charges = peer.v1.charges.list(params={"customer": customer.id}).data
    assert [c.status for c in charges] == ["failed"]  # nothing was charged


# --- The list of retries ----------------------------------------------------------------------


def make_retries(count):
    for _ in range(count):
        payment = PaymentFactory(failed=True)
        PaymentRetry.objects.create(
            payment=payment,
            status=PaymentRetry.Status.DECLINED,
            idempotency_key=f"payment_retry:test-{payment.pk}",
            amount=payment.amount,
            currency=payment.currency,
            stripe_payment_intent_id=payment.stripe_payment_intent_id,
            stripe_payment_method_id="pm_x",
            requested_by=UserFactory(),
            decline_code="insufficient_funds",
        )


def test_retries_list_shows_outcomes_in_constant_queries(admin_client, monkeypatch):
    from django.contrib import admin
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_retries(30)
    url = reverse("admin:payments_paymentretry_changelist")
    model_admin = admin.site._registry[PaymentRetry]
    counts = []
    for per_page in (5, 25):
        monkeypatch.setattr(model_admin, "list_per_page", per_page)
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(url)
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == per_page
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    assert "insufficient_funds" in response.content.decode()


def test_retries_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    make_retries(1)
    retry = PaymentRetry.objects.get()
    change = reverse("admin:payments_paymentretry_change", args=[retry.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"status": "succeeded"}).status_code == 403
    delete = reverse("admin:payments_paymentretry_delete", args=[retry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:payments_paymentretry_add")).status_code == 403
    retry.refresh_from_db()
    assert retry.status == PaymentRetry.Status.DECLINED
