"""The dispute mirror: every Stripe status stored (unknown ones too), webhooks re-read the
dispute through the gateway and land it through the sync's upsert, and a dispute never moves
back in its life whatever order events and sync pages arrive in (permutations, Hypothesis).

The gateway's dispute retrieve is patched at the module boundary (payments.webhooks.gateway),
as the other handler tests do: it answers with the dispute as Stripe holds it when the event
is processed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from payments import ledger, sync, webhooks
from payments.gateway import StripeDispute, dispute_from_stripe
from payments.models import Dispute, Payment, WebhookEvent
from tests.factories import PaymentFactory
from tests.payments.webhook_support import make_event

T0 = 1_790_000_000
PI, CHARGE, DISPUTE = "pi_disputed", "ch_disputed", "du_1"
AMOUNT = 5000


def snapshot(status: str, *, fee: int = 1500, amount: int = AMOUNT, **extra) -> StripeDispute:
    """The dispute as the gateway maps it (through the real mapper)."""
    return dispute_from_stripe(
        {
            "id": DISPUTE,
            "object": "dispute",
            "amount": amount,
            "currency": "usd",
            "charge": CHARGE,
            "payment_intent": PI,
            "reason": "fraudulent",
            "status": status,
            "created": T0,
            "evidence_details": {"due_by": T0 + 7 * 86400},
            "balance_transactions": [{"fee": fee, "currency": "usd"}] if fee else [],
            **extra,
        }
    )


def disputed_payment() -> Payment:
    return PaymentFactory(stripe_payment_intent_id=PI, stripe_charge_id=CHARGE, amount=AMOUNT)


class StripeNow:
    """Stands in for gateway.stripe_dispute_retrieve: the dispute as Stripe holds it now."""

    def __init__(self) -> None:
        self.current: StripeDispute | None = None
        self.calls: list[str] = []

    def __call__(self, *, dispute_id: str, client=None) -> StripeDispute:
        self.calls.append(dispute_id)
        assert self.current is not None and self.current.id == dispute_id
        return self.current


@pytest.fixture
def stripe_now(monkeypatch):
    fake = StripeNow()
    monkeypatch.setattr(webhooks.gateway, "stripe_dispute_retrieve", fake)
    return fake


def deliver(event_type: str, payload_status: str) -> WebhookEvent:
    """Store a dispute event (its payload carrying `payload_status`) and process it."""
    event = make_event(event_type, {"id": DISPUTE, "object": "dispute", "status": payload_status})
    row = WebhookEvent.objects.create(
        stripe_id=event["id"],
        type=event_type,
        object_id=DISPUTE,
        created=datetime.fromtimestamp(event["created"], tz=UTC),
        payload=event,
    )
    webhooks.webhook_event_process(event_pk=row.pk)
    row.refresh_from_db()
    return row


# --- Every status, known or not ------------------------------------------------------------

STRIPE_STATUSES = [
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "charge_refunded",
    "prevented",
]


def test_the_model_knows_every_stripe_status_and_orders_them_all():
    assert set(Dispute.Status.values) == set(STRIPE_STATUSES)
    assert set(Dispute.LIFECYCLE) == set(STRIPE_STATUSES)
    finals = {"won", "lost", "charge_refunded", "prevented", "warning_closed"}
    assert Dispute.FINAL_STATUSES == ledger.CLOSED_DISPUTE_STATUSES == finals
    # Every final ranks above every non-final status, and above an unknown one.
    lowest_final = min(sync.dispute_status_rank(s) for s in finals)
    assert all(sync.dispute_status_rank(s) < lowest_final for s in set(STRIPE_STATUSES) - finals)
    assert sync.dispute_status_rank("something_new") < lowest_final


# Each status: (payment disputed?, the dispute amount comes off the net?)
LEDGER_BY_STATUS = {
    "warning_needs_response": (True, False),
    "warning_under_review": (True, False),
    "needs_response": (True, False),
    "under_review": (True, False),
    "warning_closed": (False, False),
    "won": (False, False),
    "lost": (True, True),
    "charge_refunded": (False, False),
    "prevented": (False, False),
    # Unknown: open (money may be held), so the payment cannot be refunded meanwhile.
    "escalated_to_arbitration": (True, False),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "expected"), LEDGER_BY_STATUS.items())
def test_every_status_is_stored_and_the_ledger_follows(status, expected):
    disputed, lost = expected
    payment = disputed_payment()
    net_before = payment.net
    result = sync.upsert_disputes([snapshot(status, fee=0)])
    assert (result.created, result.skipped, result.invalid) == (1, 0, {})
    dispute = Dispute.objects.get()
    assert dispute.status == status
    assert (dispute.closed_at is not None) == (status in Dispute.FINAL_STATUSES)
    payment.refresh_from_db()
    assert (payment.status == Payment.Status.DISPUTED) == disputed
    assert payment.net == (net_before - AMOUNT if lost else net_before)


# --- Final statuses hold -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("final", sorted(Dispute.FINAL_STATUSES))
@pytest.mark.parametrize(
    "older", ["warning_needs_response", "needs_response", "under_review", "brand_new"]
)
def test_a_final_status_is_never_replaced_by_a_non_final_one(final, older):
    disputed_payment()
    sync.upsert_disputes([snapshot(final)])
    closed_at = Dispute.objects.get().closed_at
    result = sync.upsert_disputes([snapshot(older, amount=AMOUNT - 1)])
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1)
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.amount, dispute.closed_at) == (final, AMOUNT, closed_at)


@pytest.mark.django_db
def test_lost_then_won_is_won_and_won_then_lost_stays_won():
    """Stripe marks a lost dispute won when the cardholder withdraws it (funds reinstated);
    it never turns won into lost, so a `lost` after `won` is a stale snapshot."""
    payment = disputed_payment()
    sync.upsert_disputes([snapshot("lost")])
    payment.refresh_from_db()
    assert payment.status == Payment.Status.DISPUTED
    sync.upsert_disputes([snapshot("won")])
    payment.refresh_from_db()
    assert (Dispute.objects.get().status, payment.status) == ("won", Payment.Status.SUCCEEDED)
    sync.upsert_disputes([snapshot("lost")])
    payment.refresh_from_db()
    assert (Dispute.objects.get().status, payment.status) == ("won", Payment.Status.SUCCEEDED)


@pytest.mark.django_db
def test_an_unknown_status_is_replaced_by_a_final_one_not_by_an_older_open_one():
    disputed_payment()
    sync.upsert_disputes([snapshot("needs_response")])
    sync.upsert_disputes([snapshot("awaiting_network")])
    assert Dispute.objects.get().status == "awaiting_network"
    sync.upsert_disputes([snapshot("needs_response")])
    assert Dispute.objects.get().status == "awaiting_network"
    sync.upsert_disputes([snapshot("lost")])
    assert Dispute.objects.get().status == "lost"


# --- The webhook handler re-reads ----------------------------------------------------------


@pytest.mark.django_db
def test_the_handler_re_reads_the_dispute_and_ignores_the_payload(stripe_now):
    disputed_payment()
    stripe_now.current = snapshot("won")
    event = deliver("charge.dispute.created", payload_status="needs_response")
    assert event.status == WebhookEvent.Status.PROCESSED
    assert stripe_now.calls == [DISPUTE]
    assert Dispute.objects.get().status == "won"


@pytest.mark.django_db
def test_an_older_event_processed_after_the_sync_stored_won_changes_nothing(stripe_now):
    """The issue's bug: an old event put a won dispute back to under_review and the payment
    back to disputed. Here the re-read answers an older state too (a lagging replica, say):
    still nothing moves back."""
    payment = disputed_payment()
    sync.upsert_disputes([snapshot("won")])
    stripe_now.current = snapshot("under_review")
    assert deliver("charge.dispute.updated", "under_review").status == "processed"
    payment.refresh_from_db()
    assert (Dispute.objects.get().status, payment.status) == ("won", Payment.Status.SUCCEEDED)


@pytest.mark.django_db
def test_a_dispute_of_a_payment_we_do_not_hold_retries(stripe_now, monkeypatch):
    from payments.exceptions import ResourceMissing

    def missing(*, payment_intent_id, client=None):
        raise ResourceMissing("No such payment_intent")

    monkeypatch.setattr(webhooks.gateway, "stripe_payment_intent_retrieve", missing)
    stripe_now.current = snapshot("needs_response")
    event = deliver("charge.dispute.created", "needs_response")
    assert event.status == WebhookEvent.Status.RETRYING
    assert not Dispute.objects.exists()


# --- Permutations: events and sync pages in any order converge ------------------------------

# A dispute's life at Stripe (each step a snapshot a webhook re-read or a sync page may
# carry), and the alternative ends it may have.
TIMELINES = [
    ["needs_response", "under_review", "lost"],
    ["needs_response", "under_review", "won"],
    ["needs_response", "under_review", "lost", "won"],  # withdrawn after it was lost
    ["warning_needs_response", "warning_under_review", "warning_closed"],
    ["warning_needs_response", "needs_response", "under_review", "won"],  # escalated
    ["needs_response", "charge_refunded"],
    ["prevented"],
    ["needs_response", "lost"],  # accepted (closed) by us
]
EVENT_TYPES = {
    "won": "charge.dispute.closed",
    "lost": "charge.dispute.closed",
    "warning_closed": "charge.dispute.closed",
    "charge_refunded": "charge.dispute.closed",
    "prevented": "charge.dispute.closed",
}


def _timeline_snapshots(timeline: list[str]) -> list[StripeDispute]:
    # Stripe's fee appears with the withdrawal and stays; the evidence deadline is fixed.
    return [snapshot(status, fee=0 if status == "prevented" else 1500) for status in timeline]


def _state() -> tuple:
    dispute = Dispute.objects.get()
    payment = Payment.objects.get()
    return (
        (dispute.status, dispute.amount, dispute.fee, dispute.closed_at is not None),
        (payment.status, payment.amount_refunded, payment.net, payment.platform_fee),
        ledger.payment_breakdown(payment=payment),
    )


class TestDisputePermutations(TestCase):
    """Every order of a dispute's webhook events and sync snapshots ends where applying only
    the last snapshot ends, the payment's ledger figures included."""

    def _apply(self, kind: str, snap: StripeDispute, stripe_now: StripeNow) -> None:
        if kind == "sync":
            sync.upsert_disputes([snap])
            return
        # A webhook: its re-read answers the state Stripe held when it was processed.
        stripe_now.current = snap
        event_type = EVENT_TYPES.get(snap.status, "charge.dispute.updated")
        assert deliver(event_type, payload_status="needs_response").status == "processed"

    def _run(self, steps: list[tuple[str, StripeDispute]]) -> tuple:
        stripe_now = StripeNow()
        original = webhooks.gateway.stripe_dispute_retrieve
        webhooks.gateway.stripe_dispute_retrieve = stripe_now
        try:
            for kind, snap in steps:
                self._apply(kind, snap, stripe_now)
        finally:
            webhooks.gateway.stripe_dispute_retrieve = original
        return _state()

    def _expected(self, last: StripeDispute) -> tuple:
        sync.upsert_disputes([last])
        return _state()

    @given(
        timeline=st.sampled_from(TIMELINES),
        kinds=st.lists(st.sampled_from(["sync", "event"]), min_size=8, max_size=8),
        order=st.randoms(use_true_random=False),
    )
    @hypothesis_settings(max_examples=80, deadline=None)
    def test_any_order_converges(self, timeline, kinds, order):
        payment = disputed_payment()
        snapshots = _timeline_snapshots(timeline)
        # Each snapshot arrives once by webhook or sync (and the last one once more by the
        # other path), in a shuffled order.
        steps = [(kinds[i], snap) for i, snap in enumerate(snapshots)]
        steps.append(("sync" if kinds[len(snapshots)] == "event" else "event", snapshots[-1]))
        order.shuffle(steps)
        got = self._run(steps)

        Dispute.objects.all().delete()
        WebhookEvent.objects.all().delete()
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)
        assert got == self._expected(snapshots[-1])

    def test_all_orders_of_one_life_by_brute_force(self):
        """All 5! orders of one dispute's life through both paths, exhaustively."""
        payment = disputed_payment()
        snaps = _timeline_snapshots(["needs_response", "under_review", "lost", "won"])
        steps = [
            ("event", snaps[0]),
            ("sync", snaps[1]),
            ("event", snaps[2]),
            ("sync", snaps[0]),
            ("event", snaps[3]),
        ]
        finals = set()
        for order in itertools.permutations(steps):
            Dispute.objects.all().delete()
            WebhookEvent.objects.all().delete()
            Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)
            finals.add(self._run(list(order)))
        assert len(finals) == 1
        (dispute, payment_figures, breakdown) = finals.pop()
        assert dispute == ("won", AMOUNT, 1500, True)
        assert payment_figures[0] == Payment.Status.SUCCEEDED
        assert breakdown.disputed_lost == 0
