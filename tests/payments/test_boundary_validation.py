"""Every Stripe object the sync and the webhooks accept is checked at the boundary
(payments/validation.py): ids with the right prefix, a currency we know, amounts >= 0 and,
for refunds and disputes, within their payment. In a sync page a bad object is skipped and
recorded (the rest lands); in a webhook its event fails at once, with the reason, changing
nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django_q.models import Schedule

from payments import gateway, sync, validation, webhooks
from payments.gateway import (
    Page,
    customer_from_stripe,
    dispute_from_stripe,
    payment_intent_from_stripe,
    payment_method_from_stripe,
    refund_from_stripe,
)
from payments.models import (
    Customer,
    Dispute,
    FraudAlert,
    Payment,
    PaymentMethod,
    Refund,
    SyncRun,
    WebhookEvent,
)
from payments.sync_runs import stripe_sync
from payments.webhooks import ERROR_INVALID_OBJECT, TASK_PATH
from tests.factories import CustomerFactory, PaymentFactory
from tests.payments.test_sync_upserts import intent_payload, refund_payload
from tests.payments.webhook_support import make_event

pytestmark = pytest.mark.django_db

T0 = 1_790_000_000


def dispute_payload(dispute_id="du_1", **extra) -> dict:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": 5000,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "status": "needs_response",
        "reason": "fraudulent",
        "created": T0,
        **extra,
    }


@pytest.fixture
def payment():
    return PaymentFactory(
        stripe_payment_intent_id="pi_1", stripe_charge_id="ch_1", amount=5000, currency="usd"
    )


# --- The checks, one by one ----------------------------------------------------------------

ERR = validation


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (dispute_payload(), None),
        (dispute_payload(id="dp_legacy"), None),
        (
            dispute_payload(id="pi_not_a_dispute"),
            ERR.ERR_BAD_ID.format(kind="Dispute", id="pi_not_a_dispute", prefixes="du_ or dp_"),
        ),
        (
            dispute_payload(id=""),
            ERR.ERR_BAD_ID.format(kind="Dispute", id="", prefixes="du_ or dp_"),
        ),
        (
            dispute_payload(currency="usdx"),
            ERR.ERR_BAD_CURRENCY.format(kind="dispute", id="du_1", currency="usdx"),
        ),
        (
            dispute_payload(amount=-1),
            ERR.ERR_NEGATIVE_AMOUNT.format(kind="dispute", id="du_1", field="amount", amount=-1),
        ),
        (
            dispute_payload(charge="re_1"),
            ERR.ERR_BAD_REF.format(field="charge", id="re_1", kind="charge", prefixes="ch_ or py_"),
        ),
    ],
)
def test_dispute_checks(payload, expected):
    assert validation.dispute_problem(dispute_from_stripe(payload)) == expected


def test_refunds_and_disputes_are_checked_against_their_payment():
    dispute = dispute_from_stripe(dispute_payload(amount=5001))
    assert validation.dispute_problem(dispute, payment=(5001, "usd")) is None
    assert validation.dispute_problem(
        dispute, payment=(5000, "usd")
    ) == ERR.ERR_ABOVE_PAYMENT.format(
        kind="dispute", id="du_1", amount="$50.01", payment_amount="$50.00"
    )
    refund = refund_from_stripe(refund_payload("re_1", amount=100))
    assert validation.refund_problem(
        refund, payment=(5000, "eur")
    ) == ERR.ERR_OTHER_CURRENCY.format(
        kind="refund", id="re_1", currency="usd", payment_currency="eur"
    )


def test_payment_intent_customer_and_method_checks():
    good = payment_intent_from_stripe(intent_payload())
    assert validation.payment_intent_problem(good) is None
    assert validation.payment_intent_problem(
        payment_intent_from_stripe(intent_payload(currency="usdx"))
    ) == ERR.ERR_BAD_CURRENCY.format(kind="payment intent", id="pi_1", currency="usdx")
    assert validation.payment_intent_problem(
        payment_intent_from_stripe(intent_payload(amount=-5))
    ) == ERR.ERR_NEGATIVE_AMOUNT.format(kind="payment intent", id="pi_1", field="amount", amount=-5)
    assert validation.payment_intent_problem(
        payment_intent_from_stripe(intent_payload("ch_1"))
    ) == ERR.ERR_BAD_ID.format(kind="Payment intent", id="ch_1", prefixes="pi_")
    assert (
        validation.customer_problem(customer_from_stripe({"id": "cus_1", "email": "a@example.com"}))
        is None
    )
    assert validation.customer_problem(customer_from_stripe({"id": "acct_1"})) == (
        ERR.ERR_BAD_ID.format(kind="Customer", id="acct_1", prefixes="cus_")
    )
    assert (
        validation.payment_method_problem(
            payment_method_from_stripe({"id": "card_1", "customer": "cus_1"})
        )
        is None
    )
    assert validation.payment_method_problem(
        payment_method_from_stripe({"id": "pm_1", "customer": "pi_1"})
    ) == ERR.ERR_BAD_REF.format(field="customer", id="pi_1", kind="customer", prefixes="cus_")
    assert validation.early_fraud_warning_problem({"id": "issfr_1", "charge": "ch_1"}) is None
    assert validation.early_fraud_warning_problem({"id": "evt_1", "charge": "ch_1"}) == (
        ERR.ERR_BAD_ID.format(kind="Early fraud warning", id="evt_1", prefixes="issfr_")
    )


# --- In a sync page: skipped, recorded, the rest lands ---------------------------------------


def test_a_bad_payment_intent_is_skipped_and_the_rest_of_the_page_lands():
    CustomerFactory(stripe_id="cus_1")
    good = payment_intent_from_stripe(intent_payload("pi_good"))
    bad = payment_intent_from_stripe(intent_payload("pi_bad", currency="usdx"))
    result = sync.upsert_payment_intents([bad, good])
    assert (result.created, result.skipped) == (1, 1)
    assert result.invalid == {
        "pi_bad": ERR.ERR_BAD_CURRENCY.format(kind="payment intent", id="pi_bad", currency="usdx")
    }
    assert list(Payment.objects.values_list("stripe_payment_intent_id", flat=True)) == ["pi_good"]


def test_refunds_above_or_beside_their_payment_are_refused(payment):
    rows = [
        refund_from_stripe(refund_payload("re_ok", amount=1000)),
        refund_from_stripe(refund_payload("re_big", amount=5001)),
        refund_from_stripe({**refund_payload("re_eur", amount=10), "currency": "eur"}),
        refund_from_stripe({**refund_payload("re_neg", amount=10), "amount": -10}),
    ]
    result = sync.upsert_refunds(rows)
    assert result.created == 1
    assert set(result.invalid) == {"re_big", "re_eur", "re_neg"}
    assert result.invalid["re_big"] == ERR.ERR_ABOVE_PAYMENT.format(
        kind="refund", id="re_big", amount="$50.01", payment_amount="$50.00"
    )
    assert list(Refund.objects.values_list("stripe_id", flat=True)) == ["re_ok"]
    payment.refresh_from_db()
    assert payment.amount_refunded == 1000


def test_bad_disputes_change_nothing(payment):
    rows = [
        dispute_from_stripe(dispute_payload("du_neg", amount=-100)),
        dispute_from_stripe(dispute_payload("du_big", amount=5001)),
        dispute_from_stripe(dispute_payload("du_usdx", currency="usdx")),
        dispute_from_stripe(dispute_payload("pi_1")),
    ]
    result = sync.upsert_disputes(rows)
    assert (result.created, result.skipped) == (0, 4)
    assert set(result.invalid) == {"du_neg", "du_big", "du_usdx", "pi_1"}
    assert not Dispute.objects.exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_a_bad_customer_and_method_are_skipped():
    result = sync.upsert_customers(
        [customer_from_stripe({"id": "cus_ok"}), customer_from_stripe({"id": "usr_1"})]
    )
    assert (result.created, list(result.invalid)) == (1, ["usr_1"])
    result = sync.upsert_payment_methods(
        [
            payment_method_from_stripe({"id": "pm_ok", "customer": "cus_ok"}),
            payment_method_from_stripe({"id": "tok_1", "customer": "cus_ok"}),
        ]
    )
    assert (result.created, list(result.invalid)) == (1, ["tok_1"])
    assert list(Customer.objects.values_list("stripe_id", flat=True)) == ["cus_ok"]
    assert list(PaymentMethod.objects.values_list("stripe_id", flat=True)) == ["pm_ok"]


def test_the_sync_run_records_refused_objects_with_their_error(monkeypatch):
    def lister(items):
        def pages(*, created_gt, starting_after, client):
            return iter([Page(items=items, has_more=False, last_id=items[-1].id if items else "")])

        return pages

    CustomerFactory(stripe_id="cus_1")
    intents = [
        payment_intent_from_stripe(intent_payload("pi_1", amount=5000)),
        payment_intent_from_stripe(intent_payload("pi_2", amount=-1)),
    ]
    disputes = [
        dispute_from_stripe(dispute_payload("du_ok")),
        dispute_from_stripe(dispute_payload("du_usdx", currency="usdx")),
    ]
    monkeypatch.setattr(gateway, "stripe_customer_list_pages", lister([]))
    monkeypatch.setattr(gateway, "stripe_payment_intent_list_pages", lister(intents))
    monkeypatch.setattr(gateway, "stripe_refund_list_pages", lister([]))
    monkeypatch.setattr(gateway, "stripe_dispute_list_pages", lister(disputes))
    monkeypatch.setattr(gateway, "stripe_transfer_list_pages", lister([]))
    monkeypatch.setattr(gateway, "stripe_promotion_code_list_pages", lister([]))
    monkeypatch.setattr(gateway, "stripe_subscription_list_pages", lister([]))

    report = stripe_sync()
    assert report.status == SyncRun.Status.SUCCEEDED
    run = SyncRun.objects.get(pk=report.run_id)
    assert run.outcomes["payment_intent"]["invalid"] == {
        "pi_2": ERR.ERR_NEGATIVE_AMOUNT.format(
            kind="payment intent", id="pi_2", field="amount", amount=-1
        )
    }
    assert run.outcomes["dispute"] == {
        "status": "succeeded",
        "error": "",
        "invalid": {
            "du_usdx": ERR.ERR_BAD_CURRENCY.format(kind="dispute", id="du_usdx", currency="usdx")
        },
        "invalid_count": 1,
    }
    assert run.counts["dispute"] == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 1}
    assert list(Dispute.objects.values_list("stripe_id", flat=True)) == ["du_ok"]


# --- In a webhook: failed at once with the reason, the object not written -------------------


def process(event_type: str, data_object: dict) -> WebhookEvent:
    event = make_event(event_type, data_object)
    row = WebhookEvent.objects.create(
        stripe_id=event["id"],
        type=event_type,
        object_id=str(data_object.get("id") or ""),
        created=datetime.fromtimestamp(event["created"], tz=UTC),
        payload=event,
    )
    webhooks.webhook_event_process(event_pk=row.pk)
    row.refresh_from_db()
    return row


def assert_refused(event: WebhookEvent, error: str) -> None:
    assert event.status == WebhookEvent.Status.FAILED
    assert event.error == ERROR_INVALID_OBJECT.format(error=error)
    assert event.attempts == 1
    assert not Schedule.objects.filter(func=TASK_PATH).exists()  # never retried


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"amount": -100},
            ERR.ERR_NEGATIVE_AMOUNT.format(kind="dispute", id="du_1", field="amount", amount=-100),
        ),
        (
            {"amount": 9000},
            ERR.ERR_ABOVE_PAYMENT.format(
                kind="dispute", id="du_1", amount="$90.00", payment_amount="$50.00"
            ),
        ),
        (
            {"currency": "usdx"},
            ERR.ERR_BAD_CURRENCY.format(kind="dispute", id="du_1", currency="usdx"),
        ),
    ],
)
def test_a_dispute_event_with_a_bad_dispute_fails_and_changes_nothing(
    payment, monkeypatch, changes, error
):
    bad = dispute_from_stripe(dispute_payload(**changes))
    monkeypatch.setattr(webhooks.gateway, "stripe_dispute_retrieve", lambda **kwargs: bad)
    event = process("charge.dispute.created", dispute_payload(**changes))
    assert_refused(event, error)
    assert not Dispute.objects.exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_an_event_whose_object_is_not_a_dispute_never_reaches_stripe(payment, monkeypatch):
    def retrieve(**kwargs):
        raise AssertionError("must not be called")

    monkeypatch.setattr(webhooks.gateway, "stripe_dispute_retrieve", retrieve)
    event = process("charge.dispute.created", {"id": "pi_1", "object": "payment_intent"})
    assert_refused(event, ERR.ERR_BAD_ID.format(kind="Dispute", id="pi_1", prefixes="du_ or dp_"))


def test_a_payment_intent_in_usdx_fails_before_anything_is_written(monkeypatch):
    intent = payment_intent_from_stripe(intent_payload("pi_x", currency="usdx"))
    monkeypatch.setattr(webhooks.gateway, "stripe_payment_intent_retrieve", lambda **kw: intent)

    def customer(**kwargs):
        raise AssertionError("the customer must not be mirrored for a refused payment")

    monkeypatch.setattr(webhooks.gateway, "stripe_customer_retrieve", customer)
    event = process("payment_intent.succeeded", {"id": "pi_x"})
    assert_refused(
        event, ERR.ERR_BAD_CURRENCY.format(kind="payment intent", id="pi_x", currency="usdx")
    )
    assert not Payment.objects.exists() and not Customer.objects.exists()


def test_a_refund_above_its_payment_fails(payment, monkeypatch):
    refund = refund_from_stripe(refund_payload("re_big", amount=7000))
    monkeypatch.setattr(webhooks.gateway, "stripe_refund_retrieve", lambda **kw: refund)
    monkeypatch.setattr(
        webhooks.gateway,
        "stripe_payment_intent_retrieve",
        lambda **kw: payment_intent_from_stripe(intent_payload("pi_1", amount=5000)),
    )
    event = process("refund.created", {"id": "re_big", "payment_intent": "pi_1"})
    assert_refused(
        event,
        ERR.ERR_ABOVE_PAYMENT.format(
            kind="refund", id="re_big", amount="$70.00", payment_amount="$50.00"
        ),
    )
    assert not Refund.objects.exists()


def test_an_early_fraud_warning_with_a_bad_id_opens_no_alert(payment):
    event = process(
        "radar.early_fraud_warning.created",
        {"id": "fw_1", "object": "radar.early_fraud_warning", "charge": "ch_1"},
    )
    assert_refused(
        event, ERR.ERR_BAD_ID.format(kind="Early fraud warning", id="fw_1", prefixes="issfr_")
    )
    assert not FraudAlert.objects.exists()


def test_a_refund_status_we_do_not_know_is_stored_and_counts_as_committed(payment):
    from payments import ledger

    sync.upsert_refunds([refund_from_stripe(refund_payload("re_new", amount=1200, status="held"))])
    refund = Refund.objects.get()
    assert refund.status == "held"
    payment.refresh_from_db()
    # Not refunded yet (only succeeded refunds are), but not refundable again either.
    assert payment.amount_refunded == 0
    assert ledger.payment_refund_committed(payment=payment) == 1200


def test_an_intent_is_refused_with_a_bad_embedded_payment_method():
    payload = intent_payload("pi_pm")
    payload["payment_method"] = {**payload["payment_method"], "id": "tok_1"}
    result = sync.upsert_payment_intents([payment_intent_from_stripe(payload)])
    assert result.invalid == {
        "pi_pm": ERR.ERR_BAD_ID.format(
            kind="Payment method", id="tok_1", prefixes="pm_ or card_ or src_ or ba_"
        )
    }
    assert not Payment.objects.exists() and not PaymentMethod.objects.exists()
