"""The instructors' earnings ledger follows the payments (payments/earnings.py): one entry per
effect, written exactly once whatever replays it, adding up to each payment's net, and held
for PAYOUT_HOLD_DAYS.

Figures (the fee policy's, as in test_ledger_walkthrough.py): 100.00 paid, Stripe's fee 3.20,
the platform's 20% = 20.00 -> earning 76.80; a refund of 25.00 returns 5.00 of the platform's
fee -> -20.00; a lost dispute of the remaining 75.00 -> -75.00; won after lost -> +75.00.
"""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments import earnings, sync, webhooks
from payments.earnings_selectors import earning_balances
from payments.gateway import StripeDispute, StripePaymentIntent, StripeRefund
from payments.models import EarningEntry, Instructor, Payment, WebhookEvent
from tests.factories import InstructorFactory, PaymentFactory
from tests.payments.webhook_support import make_event

pytestmark = pytest.mark.django_db

PI = "pi_earn"
Kind = EarningEntry.Kind


def _intent(now, pi=PI, **changes) -> StripePaymentIntent:
    base = StripePaymentIntent(
        id=pi,
        amount=10_000,
        currency="usd",
        status="succeeded",
        created=now - timedelta(minutes=30),
        latest_charge_id=f"ch_{pi[3:]}",
        charge_status="succeeded",
        charge_created=now - timedelta(minutes=29),
        stripe_fee=320,
        amount_received=10_000,
        metadata={"instructor_account": "acct_earn", "product_kind": "course"},
    )
    return replace(base, **changes)


def _refund(now, refund_id="re_earn", amount=2500, status="succeeded", pi=PI) -> StripeRefund:
    return StripeRefund(
        id=refund_id,
        payment_intent_id=pi,
        charge_id=f"ch_{pi[3:]}",
        amount=amount,
        currency="usd",
        status=status,
        created=now - timedelta(minutes=20),
    )


def _dispute(now, status, amount=7_500, fee=1500) -> StripeDispute:
    return StripeDispute(
        id="dp_earn",
        charge_id="ch_earn",
        payment_intent_id=PI,
        amount=amount,
        currency="usd",
        status=status,
        created=now - timedelta(minutes=10),
        reason="fraudulent",
        evidence_due_by=now + timedelta(days=7),
        fee=fee,
    )


def _entries(pi=PI) -> list[tuple[str, str, int]]:
    return list(
        EarningEntry.objects.filter(payment__stripe_payment_intent_id=pi)
        .order_by("pk")
        .values_list("kind", "reference", "amount")
    )


def _sum_matches_net(pi=PI) -> int:
    payment = Payment.objects.get(stripe_payment_intent_id=pi)
    total = payment.earning_entries.aggregate(total=Sum("amount"))["total"] or 0
    assert total == payment.net
    return total


def test_a_captured_payment_earns_its_net_once_held_for_the_hold_period():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_payment_intents([_intent(now)])  # the sync again, a webhook re-read
    assert _entries() == [(Kind.EARNING, f"payment:{PI}:earning", 7680)]
    entry = EarningEntry.objects.get()
    payment = Payment.objects.get()
    assert entry.instructor == payment.instructor == Instructor.objects.get()
    assert entry.payment == payment and entry.currency == "usd"
    assert entry.occurred_at == payment.succeeded_at
    assert entry.available_at == payment.succeeded_at + timedelta(days=7)

    instructor = payment.instructor_id
    held = earning_balances(now=now)[(instructor, "usd")]
    assert (held.balance, held.available, held.on_hold) == (7680, 0, 7680)
    later = earning_balances(now=entry.available_at)[(instructor, "usd")]
    assert (later.balance, later.available, later.on_hold) == (7680, 7680, 0)


def test_the_hold_period_is_a_setting(settings):
    settings.PAYOUT_HOLD_DAYS = 2
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    payment = Payment.objects.get()
    assert EarningEntry.objects.get().available_at == payment.succeeded_at + timedelta(days=2)


def test_an_uncaptured_payment_earns_nothing_until_it_succeeds():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now, status="processing", charge_status="pending")])
    sync.upsert_payment_intents([_intent(now, status="requires_capture")])
    assert _entries() == []
    sync.upsert_payment_intents([_intent(now)])
    assert _entries() == [(Kind.EARNING, f"payment:{PI}:earning", 7680)]


def test_a_payment_without_an_instructor_earns_nothing():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now, metadata={"product_kind": "course"})])
    assert Payment.objects.get().instructor is None
    assert not EarningEntry.objects.exists()


def test_a_refund_reverses_its_share_pro_rata_once():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    for _ in range(3):  # the refunds service, the webhook, the sync
        sync.upsert_refunds([_refund(now)])
        sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
    assert _entries() == [
        (Kind.EARNING, f"payment:{PI}:earning", 7680),
        # 25.00 back to the customer, 5.00 of the platform's fee back to the instructor.
        (Kind.REFUND, "refund:re_earn", -2000),
    ]
    assert _sum_matches_net() == 5680
    refund = EarningEntry.objects.get(kind=Kind.REFUND)
    earning = EarningEntry.objects.get(kind=Kind.EARNING)
    # During the hold the refund nets inside "on hold": the same availability as its earning.
    assert refund.available_at == earning.available_at
    assert refund.occurred_at == now - timedelta(minutes=20)


def test_with_the_keep_policy_the_platform_keeps_its_fee_on_refunds(settings):
    settings.PLATFORM_FEE_ON_REFUND = "keep"
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now)])
    assert _entries()[1] == (Kind.REFUND, "refund:re_earn", -2500)
    assert _sum_matches_net() == 5180


def test_pending_and_failed_refunds_move_nothing():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now, status="pending")])
    sync.upsert_refunds([_refund(now, refund_id="re_failed", status="failed")])
    assert [kind for kind, _, _ in _entries()] == [Kind.EARNING]
    sync.upsert_refunds([_refund(now, status="succeeded")])
    assert [kind for kind, _, _ in _entries()] == [Kind.EARNING, Kind.REFUND]
    _sum_matches_net()


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_a_dispute_lost_then_maybe_won_moves_the_earnings_once_each(outcome):
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now)])
    sync.upsert_disputes([_dispute(now, "needs_response", fee=0)])
    # Open: nothing is decided, nothing moves.
    assert [kind for kind, _, _ in _entries()] == [Kind.EARNING, Kind.REFUND]
    for _ in range(2):
        sync.upsert_disputes([_dispute(now, "lost")])
    assert _entries()[-1] == (Kind.DISPUTE_LOST, "dispute:dp_earn:lost", -7500)
    assert _sum_matches_net() == -1820
    if outcome == "won":
        # Stripe turns a lost dispute into a win when the cardholder withdraws it.
        for _ in range(2):
            sync.upsert_disputes([_dispute(now, "won")])
        assert _entries()[-1] == (Kind.DISPUTE_WON, "dispute:dp_earn:won", 7500)
        assert _sum_matches_net() == 5680
    assert not EarningEntry.objects.filter(kind=Kind.CORRECTION).exists()


def test_a_dispute_won_outright_moves_nothing():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_disputes([_dispute(now, "needs_response")])
    sync.upsert_disputes([_dispute(now, "won")])
    assert [kind for kind, _, _ in _entries()] == [Kind.EARNING]
    _sum_matches_net()


def test_a_lost_dispute_borne_by_the_platform_costs_the_instructor_the_fee(settings):
    settings.DISPUTE_LOSS_BORNE_BY = "platform"
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_disputes([_dispute(now, "lost", amount=10_000)])
    assert _entries()[-1] == (Kind.DISPUTE_LOST, "dispute:dp_earn:lost", -1500)
    _sum_matches_net()


def test_a_refund_stripe_reports_before_we_mirror_it_is_corrected_then_explained():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
    assert _entries()[-1] == (Kind.CORRECTION, f"payment:{PI}:correction:1", -2000)
    _sum_matches_net()
    sync.upsert_refunds([_refund(now)])
    assert _entries()[-2:] == [
        (Kind.REFUND, "refund:re_earn", -2000),
        (Kind.CORRECTION, f"payment:{PI}:correction:2", 2000),
    ]
    assert _sum_matches_net() == 5680
    sync.upsert_refunds([_refund(now)])
    sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
    assert len(_entries()) == 4


def test_a_stripe_fee_known_after_the_earning_is_a_correction():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now, stripe_fee=None)])
    assert _entries() == [(Kind.EARNING, f"payment:{PI}:earning", 8000)]
    sync.upsert_payment_intents([_intent(now)])
    assert _entries()[-1] == (Kind.CORRECTION, f"payment:{PI}:correction:1", -320)
    _sum_matches_net()


def test_a_payment_that_changes_instructor_moves_its_earnings():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    first = Payment.objects.get().instructor_id
    sync.upsert_payment_intents([_intent(now, metadata={"instructor_account": "acct_other"})])
    second = Payment.objects.get().instructor_id
    assert first != second
    balances = earning_balances()
    assert balances[(first, "usd")].balance == 0
    assert balances[(second, "usd")].balance == 7680
    _sum_matches_net()


def test_record_payment_earnings_is_idempotent_and_counts_what_it_wrote():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now)])
    payment = Payment.objects.get()
    EarningEntry.objects.all().delete()  # as if stored before the ledger existed
    assert earnings.record_payment_earnings([payment.pk]) == 2
    assert earnings.record_payment_earnings([payment.pk]) == 0
    assert _sum_matches_net() == 5680


def test_a_batch_costs_the_same_queries_whatever_its_size():
    def queries(n: int, prefix: str) -> int:
        pks = [
            PaymentFactory(stripe_payment_intent_id=f"pi_{prefix}{i}", instructor=instructor).pk
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            assert earnings.record_payment_earnings(pks) == n
        return len(ctx.captured_queries)

    instructor = InstructorFactory()
    assert queries(3, "a") == queries(60, "b")


def test_the_sync_page_still_costs_a_fixed_number_of_statements():
    now = timezone.now()

    def statements(n: int, prefix: str) -> int:
        rows = [_intent(now, pi=f"pi_{prefix}{i}") for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            sync.upsert_payment_intents(rows)
        return len(ctx.captured_queries)

    statements(1, "warm")  # creates the instructor once
    assert statements(5, "a") == statements(50, "b")
    assert EarningEntry.objects.count() == 56


def _webhook(event_type: str, data: dict) -> WebhookEvent:
    event = make_event(event_type, data)
    return WebhookEvent.objects.create(
        stripe_id=event["id"],
        type=event_type,
        object_id=data["id"],
        created=timezone.now(),
        payload=event,
    )


def _process_again(event: WebhookEvent) -> None:
    """What a replay (or Stripe's redelivery of an event we lost track of) does."""
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.RECEIVED)
    assert webhooks.webhook_event_process(event_pk=event.pk) == WebhookEvent.Status.PROCESSED


def test_replayed_webhooks_apply_each_effect_once(monkeypatch):
    now = timezone.now()
    state = {"intent": _intent(now), "refunds": [], "dispute": None}
    gateway = webhooks.gateway
    monkeypatch.setattr(gateway, "stripe_payment_intent_retrieve", lambda **kw: state["intent"])
    monkeypatch.setattr(gateway, "stripe_refund_list", lambda **kw: state["refunds"])
    monkeypatch.setattr(gateway, "stripe_dispute_retrieve", lambda **kw: state["dispute"])

    succeeded = _webhook("payment_intent.succeeded", {"id": PI})
    _process_again(succeeded)
    _process_again(succeeded)
    # Refunded in Stripe's dashboard: charge.refunded says so before we hold the refund.
    state["intent"] = _intent(now, amount_refunded=2500)
    state["refunds"] = [_refund(now)]
    refunded = _webhook("charge.refunded", {"id": "ch_earn", "payment_intent": PI})
    for _ in range(3):
        _process_again(refunded)
    state["dispute"] = _dispute(now, "lost")
    lost = _webhook("charge.dispute.closed", {"id": "dp_earn"})
    _process_again(lost)
    _process_again(succeeded)  # an old event, late
    _process_again(lost)
    assert _entries() == [
        (Kind.EARNING, f"payment:{PI}:earning", 7680),
        (Kind.REFUND, "refund:re_earn", -2000),
        (Kind.DISPUTE_LOST, "dispute:dp_earn:lost", -7500),
    ]
    assert _sum_matches_net() == -1820


def test_a_refund_after_the_hold_comes_off_the_available_balance_at_once():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    earning = EarningEntry.objects.get()
    after_hold = earning.available_at + timedelta(days=1)
    instructor = earning.instructor_id
    assert earning_balances(now=after_hold)[(instructor, "usd")].available == 7680
    sync.upsert_refunds([_refund(now)])
    balance = earning_balances(now=after_hold)[(instructor, "usd")]
    assert (balance.available, balance.on_hold) == (5680, 0)


def test_a_refund_that_fails_after_succeeding_is_given_back_by_a_correction():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now)])
    sync.upsert_refunds([_refund(now, status="failed")])
    assert _entries()[1:] == [
        (Kind.REFUND, "refund:re_earn", -2000),
        (Kind.CORRECTION, f"payment:{PI}:correction:1", 2000),
    ]
    assert _sum_matches_net() == 7680
    # Every entry of the payment is available when its earning is.
    assert EarningEntry.objects.values("available_at").distinct().count() == 1


def test_a_deferred_block_records_refunds_as_refunds():
    """The demo lands a payment (its charge already refunded) and its refunds together."""
    now = timezone.now()
    with earnings.recording_deferred():
        sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
        assert not EarningEntry.objects.exists()
        sync.upsert_refunds([_refund(now)])
    assert _entries() == [
        (Kind.EARNING, f"payment:{PI}:earning", 7680),
        (Kind.REFUND, "refund:re_earn", -2000),
    ]
    _sum_matches_net()


def test_a_deferred_block_that_raises_records_nothing():
    now = timezone.now()
    with pytest.raises(RuntimeError), earnings.recording_deferred():
        sync.upsert_payment_intents([_intent(now)])
        raise RuntimeError("the caller's transaction rolls back")
    assert not EarningEntry.objects.exists()
    assert earnings.record_payment_earnings(Payment.objects.values_list("pk", flat=True)) == 1


def test_the_demo_ledger_adds_up_without_corrections():
    from datetime import UTC, datetime

    from management import maintenance
    from management.demo_data import DemoGenerator, demo_size

    DemoGenerator(seed=5, now=datetime(2026, 11, 1, 12, tzinfo=UTC)).run(demo_size(300))
    assert EarningEntry.objects.filter(kind=Kind.REFUND).exists()
    assert not EarningEntry.objects.filter(kind=Kind.CORRECTION).exists()
    assert maintenance.fix_earnings(dry_run=True)["payments_off"] == 0
