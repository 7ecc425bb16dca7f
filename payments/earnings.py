"""Writes the instructors' earnings ledger (payments.models.EarningEntry) from the payments.

A payment's entries follow from payments/ledger.py's figures, never from figures of their own:
- `payment:<pi>:earning` (kind earning): the net to the instructor before refunds and
  disputes (amount - Stripe's fee - the platform's whole fee);
- `refund:<re>` (kind refund): what each succeeded refund takes off the net, the platform
  returning its fee pro rata (or not) as the fee policy says;
- `dispute:<dp>:lost` / `dispute:<dp>:won` (kinds dispute_lost / dispute_won): what a lost
  dispute takes off the net under DISPUTE_LOSS_BORNE_BY, and what it gives back when Stripe
  later turns it into a win (funds reinstated);
- `payment:<pi>:correction:<n>` (kind correction): whatever the rows above do not explain,
  so that the entries of a payment always add up to its stored `net` (a refund Stripe reports
  on the charge that we have not mirrored yet, a Stripe fee known only after the earning was
  written, a payment whose instructor changed, a refund that failed after it succeeded).

Each effect's amount is its marginal change of the net: the ledger's net with the effects
already written plus this one, minus the net with those already written (effects are taken
in a fixed order: the earning, refunds by creation, disputes by creation). The corrections
then close the gap to the stored net, so the sum is exact whatever order things arrived in,
and nothing written is ever edited.

`available_at`: the earning's is the payment's success (else creation) + PAYOUT_HOLD_DAYS,
and every later entry of the same payment shares it: a refund during the hold nets inside
"on hold", one after it comes off "available" at once (a clawback when it was paid out).

Invariant (checked and repaired by management/maintenance.py's --fix-inconsistencies): for
each captured payment with an instructor, its entries sum to the payment's `net`, all of them
the instructor's; any other payment's entries sum to zero per instructor.

Concurrency: `record_payment_earnings` locks the payments (FOR UPDATE, pk order, as every
writer of payments does) before it reads their entries, so two writers of the same payment
run one after the other and the second finds the first one's entries; references are unique
besides, so a replay never applies an effect twice. The sync's upserts call it in their own
transaction, after they have written the derived columns: the mirror and its ledger entries
commit together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from payments import ledger
from payments.models import Dispute, EarningEntry, Payment, Refund
from payments.money import format_money

# Payments per batch: each batch costs the same few queries (see record_payment_earnings).
BATCH = 1000

# The kinds that belong to a payment (the invariant sums these).
PAYMENT_KINDS = frozenset(
    {
        EarningEntry.Kind.EARNING,
        EarningEntry.Kind.REFUND,
        EarningEntry.Kind.DISPUTE_LOST,
        EarningEntry.Kind.DISPUTE_WON,
        EarningEntry.Kind.CORRECTION,
    }
)

# Descriptions shown on the instructor's entries and statements.
DESCRIBE_EARNING = "Payment {payment}: {amount} less Stripe's and the platform's fees"
DESCRIBE_REFUND = "Refund {refund} of {amount} on payment {payment}"
DESCRIBE_DISPUTE_LOST = "Dispute {dispute} on payment {payment} lost"
DESCRIBE_DISPUTE_WON = "Dispute {dispute} on payment {payment} won after it was lost"
DESCRIBE_CORRECTION = "Correction: payment {payment}'s net is {net}; its entries made {entries}"
DESCRIBE_CORRECTION_MOVED = "Correction: payment {payment} is no longer this instructor's"


def earning_reference(payment_intent_id: str) -> str:
    return f"payment:{payment_intent_id}:earning"


def refund_reference(refund_id: str) -> str:
    return f"refund:{refund_id}"


def dispute_reference(dispute_id: str, outcome: str) -> str:
    return f"dispute:{dispute_id}:{outcome}"


def correction_reference(payment_intent_id: str, n: int) -> str:
    return f"payment:{payment_intent_id}:correction:{n}"


def _correction_prefix(payment_intent_id: str) -> str:
    return f"payment:{payment_intent_id}:correction:"


def hold_until(payment: Payment) -> datetime:
    """When a payment's earning becomes available for payout."""
    return (payment.succeeded_at or payment.created) + timedelta(days=settings.PAYOUT_HOLD_DAYS)


@dataclass(frozen=True)
class _Known:
    """An entry already written for a payment (what the plan starts from)."""

    instructor_id: int
    reference: str
    kind: str
    amount: int
    available_at: datetime


class _NetOf:
    """The ledger's net to the instructor of one payment with only some of its effects
    applied: the earning, a set of refunds, and disputes as lost or won."""

    def __init__(self, payment: Payment):
        self.payment = payment
        self.earned = False
        self.refunded = 0
        self.disputes: dict[str, tuple[str, int, int]] = {}  # id -> (outcome, amount, fee)

    def value(self) -> int:
        if not self.earned:
            return 0
        lost = sum(amount for outcome, amount, _ in self.disputes.values() if outcome == "lost")
        fees = sum(fee for _, _, fee in self.disputes.values())
        figures = ledger.payment_figures(
            status=Payment.Status.SUCCEEDED,
            amount=self.payment.amount,
            currency=self.payment.currency,
            refunded=min(self.payment.amount, self.refunded),
            stripe_fee=self.payment.stripe_fee,
            facts=ledger.PaymentFacts(disputed_lost=lost, dispute_fees=fees),
        )
        return figures.net_to_instructor


def plan_payment_entries(
    payment: Payment,
    *,
    refunds: Sequence[Refund],
    disputes: Sequence[Dispute],
    known: Sequence[_Known],
    now: datetime,
) -> list[EarningEntry]:
    """The entries `payment` is missing (unsaved), given its refund and dispute rows and the
    entries it has. Pure: reads nothing from the database."""
    pi = payment.stripe_payment_intent_id
    references = {entry.reference for entry in known}
    target = payment.instructor_id if payment.status in Payment.CAPTURED_STATUSES else None
    # Every entry of a payment shares its earning's availability (the hold).
    available_at = next(
        (entry.available_at for entry in known if entry.kind == EarningEntry.Kind.EARNING),
        known[0].available_at if known else hold_until(payment),
    )
    plan: list[EarningEntry] = []

    def add(kind: str, amount: int, reference: str, occurred_at: datetime, description: str):
        if amount:
            plan.append(
                EarningEntry(
                    instructor_id=target,
                    currency=payment.currency,
                    amount=amount,
                    kind=kind,
                    reference=reference,
                    payment_id=payment.pk,
                    occurred_at=occurred_at,
                    available_at=available_at,
                    description=description[:255],
                )
            )

    if target is not None:
        net = _NetOf(payment)
        # The state the written entries describe (their amounts may have been worked out
        # on other figures: the corrections below absorb that).
        net.earned = earning_reference(pi) in references
        for refund in refunds:
            if refund_reference(refund.stripe_id) in references:
                net.refunded += refund.amount
        for dispute in disputes:
            if dispute_reference(dispute.stripe_id, "won") in references:
                net.disputes[dispute.stripe_id] = ("won", dispute.amount, dispute.fee)
            elif dispute_reference(dispute.stripe_id, "lost") in references:
                net.disputes[dispute.stripe_id] = ("lost", dispute.amount, dispute.fee)

        def step(change) -> int:
            before = net.value()
            change()
            return net.value() - before

        if not net.earned:
            amount = step(lambda: setattr(net, "earned", True))
            add(
                EarningEntry.Kind.EARNING,
                amount,
                earning_reference(pi),
                payment.succeeded_at or payment.created,
                DESCRIBE_EARNING.format(
                    payment=pi, amount=format_money(payment.amount, payment.currency)
                ),
            )
        for refund in sorted(refunds, key=lambda r: (r.created, r.stripe_id)):
            reference = refund_reference(refund.stripe_id)
            if refund.status != Refund.Status.SUCCEEDED or reference in references:
                continue

            def refunded(amount=refund.amount):
                net.refunded += amount

            add(
                EarningEntry.Kind.REFUND,
                step(refunded),
                reference,
                refund.created,
                DESCRIBE_REFUND.format(
                    refund=refund.stripe_id,
                    amount=format_money(refund.amount, refund.currency),
                    payment=pi,
                ),
            )
        for dispute in sorted(disputes, key=lambda d: (d.created, d.stripe_id)):
            state = net.disputes.get(dispute.stripe_id, (None,))[0]
            outcome = dispute.status
            if outcome == Dispute.Status.LOST and state is None:
                kind, description = EarningEntry.Kind.DISPUTE_LOST, DESCRIBE_DISPUTE_LOST
                occurred_at = dispute.closed_at or now
            elif outcome == Dispute.Status.WON and state == "lost":
                # Only a dispute we recorded as lost has anything to reinstate; one won
                # outright never moved the net.
                kind, description = EarningEntry.Kind.DISPUTE_WON, DESCRIBE_DISPUTE_WON
                occurred_at = now
            else:
                continue

            def decided(d=dispute, outcome=outcome):
                net.disputes[d.stripe_id] = (outcome, d.amount, d.fee)

            add(
                kind,
                step(decided),
                dispute_reference(dispute.stripe_id, outcome),
                occurred_at,
                description.format(dispute=dispute.stripe_id, payment=pi),
            )

    # Close the gap to the stored net, per instructor: the payment's instructor is owed its
    # net, anyone else who holds entries of it (the instructor changed, the payment is not
    # captured) nothing.
    sums: dict[int, int] = defaultdict(int)
    for entry in known:
        sums[entry.instructor_id] += entry.amount
    for entry in plan:
        sums[entry.instructor_id] += entry.amount
    if target is not None:
        sums.setdefault(target, 0)
    prefix = _correction_prefix(pi)
    n = sum(1 for reference in references if reference.startswith(prefix))
    for instructor_id in sorted(sums):
        owed = payment.net if instructor_id == target else 0
        gap = owed - sums[instructor_id]
        if not gap:
            continue
        n += 1
        if instructor_id == target:
            description = DESCRIBE_CORRECTION.format(
                payment=pi,
                net=format_money(payment.net, payment.currency),
                entries=format_money(sums[instructor_id], payment.currency),
            )
        else:
            description = DESCRIBE_CORRECTION_MOVED.format(payment=pi)
        plan.append(
            EarningEntry(
                instructor_id=instructor_id,
                currency=payment.currency,
                amount=gap,
                kind=EarningEntry.Kind.CORRECTION,
                reference=correction_reference(pi, n),
                payment_id=payment.pk,
                occurred_at=now,
                available_at=available_at,
                description=description[:255],
            )
        )
    return plan


_PAYMENT_COLUMNS = (
    "pk",
    "stripe_payment_intent_id",
    "instructor_id",
    "amount",
    "currency",
    "status",
    "stripe_fee",
    "net",
    "created",
    "succeeded_at",
)


def _plan_batch(pks: list[int], *, now: datetime) -> list[EarningEntry]:
    """Lock these payments and plan their missing entries: four queries whatever the count
    (payments, their entries, refunds, disputes)."""
    payments = list(
        Payment.objects.select_for_update()
        .filter(pk__in=pks)
        .order_by("pk")
        .only(*_PAYMENT_COLUMNS)
    )
    known: dict[int, list[_Known]] = defaultdict(list)
    for payment_id, instructor_id, reference, kind, amount, available_at in (
        EarningEntry.objects.filter(payment_id__in=pks)
        .order_by("occurred_at", "pk")
        .values_list("payment_id", "instructor_id", "reference", "kind", "amount", "available_at")
    ):
        known[payment_id].append(_Known(instructor_id, reference, kind, amount, available_at))
    # Only payments that can owe anything need their refunds and disputes.
    wanted = [
        p.pk
        for p in payments
        if p.instructor_id is not None and p.status in Payment.CAPTURED_STATUSES
    ]
    refunds: dict[int, list[Refund]] = defaultdict(list)
    disputes: dict[int, list[Dispute]] = defaultdict(list)
    if wanted:
        for refund in Refund.objects.filter(payment_id__in=wanted).only(
            "payment_id", "stripe_id", "amount", "currency", "status", "created"
        ):
            refunds[refund.payment_id].append(refund)
        for dispute in Dispute.objects.filter(payment_id__in=wanted).only(
            "payment_id", "stripe_id", "amount", "fee", "status", "created", "closed_at"
        ):
            disputes[dispute.payment_id].append(dispute)
    plan: list[EarningEntry] = []
    for payment in payments:
        if payment.pk not in known and payment.pk not in wanted:
            continue  # owes nothing, holds nothing
        plan += plan_payment_entries(
            payment,
            refunds=refunds[payment.pk],
            disputes=disputes[payment.pk],
            known=known[payment.pk],
            now=now,
        )
    return plan


def record_payment_entries(
    payment_pks: Iterable[int], *, now: datetime | None = None
) -> list[EarningEntry]:
    """Write the earnings entries these payments are missing (see the module docstring) and
    return them. Five queries per BATCH payments; joins the caller's transaction (whose
    payment locks it keeps) or runs in its own."""
    now = now or timezone.now()
    pks = sorted({pk for pk in payment_pks if pk})
    written: list[EarningEntry] = []
    for start in range(0, len(pks), BATCH):
        with transaction.atomic():
            plan = _plan_batch(pks[start : start + BATCH], now=now)
            if plan:
                # Under the payments' locks no one else writes these references; a
                # conflict would be a writer that skipped the lock, and it wrote the same
                # effect: leave its row.
                EarningEntry.objects.bulk_create(plan, ignore_conflicts=True)
            written += plan
    return written


def record_payment_earnings(payment_pks: Iterable[int]) -> int:
    """Write the earnings entries these payments are missing; the number written. Inside
    `recording_deferred()`, only notes the payments and returns 0: the block writes them
    when it ends."""
    pending = _DEFERRED.get()
    if pending is not None:
        pending.update(pk for pk in payment_pks if pk)
        return 0
    return len(record_payment_entries(payment_pks))


_DEFERRED: ContextVar[set[int] | None] = ContextVar("earnings_deferred", default=None)


@contextmanager
def recording_deferred():
    """Record the earnings of every payment the block's upserts touch once, when the block
    ends (inside the caller's transaction), instead of after each upsert. For a caller that
    lands a payment and its refunds and disputes together (the demo's batches): each refund
    is then recorded as a refund, not first as a correction for a refunded amount Stripe
    reported on the payment before its refund row existed. Nothing is written if the block
    raises (its transaction rolls back anyway)."""
    pending: set[int] = set()
    token = _DEFERRED.set(pending)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
    record_payment_entries(pending)


# --- The invariant -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EarningsGap:
    """A payment whose entries do not add up as the invariant says: what its instructor is
    owed (`net`, 0 when not captured or without an instructor) and what its entries sum to
    per instructor (minor units of `currency`)."""

    payment_id: int
    payment_intent_id: str
    instructor_id: int | None
    currency: str
    net: int
    entries: dict[int, int]
    has_earning: bool


def earnings_gaps(payment_pks: Iterable[int]) -> list[EarningsGap]:
    """Which of these payments break the invariant (module docstring), or are captured with
    an instructor and hold no earning entry yet (stored before the ledger existed: the
    backfill). Two queries, read without locks: record_payment_entries re-plans a gap under
    the payment's lock before it writes anything."""
    pks = sorted({pk for pk in payment_pks if pk})
    if not pks:
        return []
    sums: dict[int, dict[int, int]] = defaultdict(dict)
    earned: set[int] = set()
    rows = (
        EarningEntry.objects.filter(payment_id__in=pks, kind__in=PAYMENT_KINDS)
        .order_by()
        .values("payment_id", "instructor_id")
        .annotate(
            total=Sum("amount"), earnings=Count("pk", filter=Q(kind=EarningEntry.Kind.EARNING))
        )
    )
    for row in rows:
        sums[row["payment_id"]][row["instructor_id"]] = row["total"]
        if row["earnings"]:
            earned.add(row["payment_id"])
    gaps = []
    for pk, pi, instructor_id, status, currency, amount, net in (
        Payment.objects.filter(pk__in=pks)
        .order_by("pk")
        .values_list(
            "pk", "stripe_payment_intent_id", "instructor_id", "status", "currency", "amount", "net"
        )
    ):
        owes = instructor_id is not None and status in Payment.CAPTURED_STATUSES
        entries = sums.get(pk, {})
        expected = {instructor_id: net} if owes and net else {}
        actual = {who: total for who, total in entries.items() if total}
        # A captured payment with no entry at all was stored before the ledger: its history
        # (earning, refunds, disputes) is written even when it nets to zero.
        unrecorded = owes and not entries and amount > 0
        if actual != expected or unrecorded:
            gaps.append(
                EarningsGap(
                    payment_id=pk,
                    payment_intent_id=pi,
                    instructor_id=instructor_id if owes else None,
                    currency=currency,
                    net=net if owes else 0,
                    entries=entries,
                    has_earning=pk in earned,
                )
            )
    return gaps
