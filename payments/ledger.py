"""The one place that derives money: a payment's business status, refunded amount, fees and
what the instructor and the platform keep, and what a refund and a dispute do to each.

Everything that shows or stores these figures reads them from here: the sync and webhooks
(through `payment_derived_values`), the refund rules (`payment_refund_committed`), the payment
page and its changelist (the stored columns, written by this module), the rollups, reports and
exports (which sum those columns) and `--fix-inconsistencies` (which recomputes them here and
repairs what disagrees). A figure computed twice will disagree one day (DESIGN decision 11).

All amounts are integer minor units of the payment's currency.

Fee policy (settings, documented in the README):
- Stripe's processing fee is what Stripe's balance transaction says; Stripe does not return it
  on a refund, and it is a cost of the sale: the instructor bears it.
- The platform fee is PLATFORM_FEE_BPS of the captured amount. On refunds the marketplace
  returns its fee pro rata, as Stripe's `refund_application_fee` does
  (PLATFORM_FEE_ON_REFUND = "pro_rata"), or keeps all of it ("keep").
- A lost dispute: with DISPUTE_LOSS_BORNE_BY = "instructor" the instructor bears the disputed
  amount and the platform pays Stripe's dispute fee; with "platform" it is the other way round
  (the platform bears the disputed amount, the instructor the dispute fee). A dispute that is
  open or won moves no money in the ledger (Stripe returns the funds when it is won).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, Sum

from payments.models import Dispute, Payment, Refund
from payments.money import percent_of, pro_rata

PLATFORM_FEE_POLICIES = ("pro_rata", "keep")
DISPUTE_LOSS_POLICIES = ("instructor", "platform")
ERR_POLICY = "{name} must be one of {allowed}, not {value!r}."

# Stripe PaymentIntent statuses after which nothing else happens to the intent itself.
FINAL_STRIPE_STATUSES = frozenset({"succeeded", "canceled"})
# Dispute statuses. A payment counts as disputed while any of its disputes is not closed,
# or after one was lost. CLOSED is Stripe's final statuses; every other status is open,
# including one we do not know yet: an unknown status may hold the money (as an open
# dispute does), so the payment reads as disputed and cannot be refunded until the status
# is known. Treating it as closed could refund money the bank is already taking back.
# OPEN_DISPUTE_STATUSES names the known open ones (for filters and worklists).
CLOSED_DISPUTE_STATUSES = Dispute.FINAL_STATUSES
OPEN_DISPUTE_STATUSES = frozenset(set(Dispute.Status.values) - CLOSED_DISPUTE_STATUSES)


def dispute_is_open(status: str) -> bool:
    """Open (money held or at stake): anything not closed, an unknown status included."""
    return status not in CLOSED_DISPUTE_STATUSES


# Mirror refunds count as committed (money left or leaving: succeeded, pending,
# requires_action) unless Stripe says they failed or were canceled. Pending ones may still
# fail, and then stop counting when the sync or a webhook updates the mirror. A refund status
# we do not know counts as committed (the refundable amount is lower, never higher, than it
# might be): only these statuses give the money back.
RELEASED_REFUND_STATUSES = frozenset({Refund.Status.FAILED, Refund.Status.CANCELED})


def _policy(name: str, allowed: tuple[str, ...]) -> str:
    value = getattr(settings, name)
    if value not in allowed:
        raise ImproperlyConfigured(ERR_POLICY.format(name=name, allowed=allowed, value=value))
    return value


def platform_fee_gross(amount: int) -> int:
    """PLATFORM_FEE_BPS of `amount`, rounded half up."""
    return percent_of(amount, settings.PLATFORM_FEE_BPS)


# --- What we know about one payment ----------------------------------------------------------


@dataclass(frozen=True)
class PaymentFacts:
    """Everything the figures depend on besides the payment row itself: its local refunds
    and disputes, summed. Read in a fixed number of queries for a page of payments by
    `payment_facts`."""

    refunds_succeeded: int = 0
    refunds_committed: int = 0  # every status but failed and canceled
    dispute_open: bool = False
    dispute_known: bool = False  # we hold at least one dispute row for the payment
    disputed_lost: int = 0
    dispute_fees: int = 0


def payment_facts(payment_pks: Iterable[int]) -> dict[int, PaymentFacts]:
    """Facts for these payments: two grouped queries (refunds, disputes), whatever the count."""
    pks = sorted({pk for pk in payment_pks if pk})
    if not pks:
        return {}
    refunds = {
        row["payment_id"]: row
        for row in Refund.objects.filter(payment_id__in=pks)
        .order_by()
        .values("payment_id")
        .annotate(
            succeeded=Sum("amount", filter=Q(status=Refund.Status.SUCCEEDED), default=0),
            committed=Sum("amount", filter=~Q(status__in=RELEASED_REFUND_STATUSES), default=0),
        )
    }
    disputes: dict[int, dict] = {}
    for payment_id, status, amount, fee in (
        Dispute.objects.filter(payment_id__in=pks)
        .order_by()
        .values_list("payment_id", "status", "amount", "fee")
    ):
        row = disputes.setdefault(payment_id, {"open": False, "lost": 0, "fees": 0})
        row["open"] = row["open"] or dispute_is_open(status)
        if status == Dispute.Status.LOST:
            row["lost"] += amount
        row["fees"] += fee
    facts = {}
    for pk in pks:
        refund = refunds.get(pk, {})
        dispute = disputes.get(pk)
        facts[pk] = PaymentFacts(
            refunds_succeeded=refund.get("succeeded", 0),
            refunds_committed=refund.get("committed", 0),
            dispute_open=bool(dispute and dispute["open"]),
            dispute_known=dispute is not None,
            disputed_lost=dispute["lost"] if dispute else 0,
            dispute_fees=dispute["fees"] if dispute else 0,
        )
    return facts


# --- Status and refunded amount ----------------------------------------------------------------


def is_disputed(*, facts: PaymentFacts, charge_disputed: bool) -> bool:
    """Disputed while a dispute is open or after one was lost. Our dispute rows decide when we
    hold any; before the first one arrives, Stripe's `charge.disputed` flag does."""
    if facts.dispute_known:
        return facts.dispute_open or facts.disputed_lost > 0
    return charge_disputed


def payment_status(
    *,
    stripe_status: str,
    charge_status: str,
    failure_code: str,
    amount: int,
    amount_refunded: int,
    disputed: bool,
) -> str:
    """Our business status from Stripe's PaymentIntent status plus refunds and disputes."""
    if stripe_status == "succeeded":
        if disputed:
            return Payment.Status.DISPUTED
        if amount > 0 and amount_refunded >= amount:
            return Payment.Status.REFUNDED
        if amount_refunded > 0:
            return Payment.Status.PARTIALLY_REFUNDED
        return Payment.Status.SUCCEEDED
    if stripe_status == "canceled":
        return Payment.Status.CANCELED
    if stripe_status in ("processing", "requires_capture"):
        return Payment.Status.PROCESSING
    if stripe_status == "requires_action":
        return Payment.Status.REQUIRES_ACTION
    if stripe_status == "requires_payment_method" and (failure_code or charge_status == "failed"):
        return Payment.Status.FAILED
    return Payment.Status.PENDING


def refunded_amount(*, amount: int, stripe_reported: int, refunds_succeeded: int) -> int:
    """What has been refunded: never below what Stripe's charge reports (it may know refunds we
    have not mirrored yet), nor below our succeeded refund rows, never above the amount."""
    return max(0, min(amount, max(stripe_reported, refunds_succeeded)))


def amount_taken_back(*, amount: int, amount_refunded: int, facts: PaymentFacts) -> int:
    """What the customer no longer pays for: what was refunded plus what lost disputes took
    (a charge is refunded or lost, not both: never more than the amount). Hour packages take
    back the minutes this pays for (payments/hours.py)."""
    refunded = max(0, min(amount, amount_refunded))
    return refunded + max(0, min(facts.disputed_lost, amount - refunded))


def payment_refund_committed(*, payment: Payment, facts: PaymentFacts | None = None) -> int:
    """Minor units refunded or being refunded: the refunded amount, or the sum of mirrored
    refunds Stripe accepted (pending ones included) where that is larger. This is what the
    refund rules subtract from the captured amount."""
    facts = facts or payment_facts([payment.pk]).get(payment.pk, PaymentFacts())
    return min(payment.amount, max(payment.amount_refunded, facts.refunds_committed))


# --- Fees and net ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFigures:
    """A payment's money, line by line; the lines add up:
    amount - refunded - stripe_fee - platform_fee - instructor_dispute_loss = net_to_instructor
    platform_fee - platform_dispute_loss = net_to_platform."""

    currency: str
    captured: bool
    amount: int
    refunded: int
    stripe_fee: int
    platform_fee_gross: int
    platform_fee_returned: int
    platform_fee: int  # what the platform keeps after refunds
    disputed_lost: int
    dispute_fees: int
    instructor_dispute_loss: int
    platform_dispute_loss: int
    net_to_instructor: int
    net_to_platform: int


def payment_figures(
    *,
    status: str,
    amount: int,
    currency: str,
    refunded: int,
    stripe_fee: int,
    facts: PaymentFacts,
) -> PaymentFigures:
    """The money of one payment in `status`. Only captured money has fees and a net."""
    captured = status in Payment.CAPTURED_STATUSES
    if not captured:
        return PaymentFigures(currency, False, amount, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    gross = platform_fee_gross(amount)
    returned = (
        pro_rata(gross, refunded, amount)
        if _policy("PLATFORM_FEE_ON_REFUND", PLATFORM_FEE_POLICIES) == "pro_rata"
        else 0
    )
    platform_fee = gross - returned
    # A charge is refunded or lost in a dispute, not both: never count more than is left.
    lost = min(facts.disputed_lost, amount - refunded)
    if _policy("DISPUTE_LOSS_BORNE_BY", DISPUTE_LOSS_POLICIES) == "instructor":
        instructor_loss, platform_loss = lost, facts.dispute_fees
    else:
        instructor_loss, platform_loss = facts.dispute_fees, lost
    return PaymentFigures(
        currency=currency,
        captured=True,
        amount=amount,
        refunded=refunded,
        stripe_fee=stripe_fee,
        platform_fee_gross=gross,
        platform_fee_returned=returned,
        platform_fee=platform_fee,
        disputed_lost=lost,
        dispute_fees=facts.dispute_fees,
        instructor_dispute_loss=instructor_loss,
        platform_dispute_loss=platform_loss,
        net_to_instructor=amount - refunded - stripe_fee - platform_fee - instructor_loss,
        net_to_platform=platform_fee - platform_loss,
    )


# --- The stored columns ------------------------------------------------------------------------

# Payment columns this module owns: nothing else writes them.
DERIVED_FIELDS = ("status", "amount_refunded", "stripe_fee", "platform_fee", "net")


def payment_derived_values(
    *,
    stripe_status: str,
    charge_status: str,
    failure_code: str,
    amount: int,
    currency: str,
    stripe_amount_refunded: int,
    stripe_fee: int,
    charge_disputed: bool,
    facts: PaymentFacts,
) -> dict:
    """The derived Payment columns (DERIVED_FIELDS) from Stripe's snapshot and local facts."""
    refunded = refunded_amount(
        amount=amount,
        stripe_reported=stripe_amount_refunded,
        refunds_succeeded=facts.refunds_succeeded,
    )
    status = payment_status(
        stripe_status=stripe_status,
        charge_status=charge_status,
        failure_code=failure_code,
        amount=amount,
        amount_refunded=refunded,
        disputed=is_disputed(facts=facts, charge_disputed=charge_disputed),
    )
    figures = payment_figures(
        status=status,
        amount=amount,
        currency=currency,
        refunded=refunded,
        stripe_fee=stripe_fee,
        facts=facts,
    )
    return {
        "status": status,
        "amount_refunded": refunded,
        "stripe_fee": figures.stripe_fee,
        "platform_fee": figures.platform_fee,
        "net": figures.net_to_instructor,
    }


def payment_rederive(payment: Payment, facts: PaymentFacts) -> dict:
    """payment_derived_values for a stored payment (after its refunds or disputes changed, or
    to check it): Stripe's side comes from the columns the last snapshot wrote."""
    values = payment_derived_values(
        stripe_status=payment.stripe_status,
        charge_status="",
        failure_code=payment.failure_code,
        amount=payment.amount,
        currency=payment.currency,
        stripe_amount_refunded=payment.stripe_amount_refunded,
        stripe_fee=payment.stripe_fee,
        charge_disputed=payment.charge_disputed,
        facts=facts,
    )
    if payment.stripe_status != "succeeded":
        # Refunds and disputes only move captured payments; the rest is the snapshot's word
        # (whose charge status is not stored).
        values["status"] = payment.status
    return values


def payment_breakdown(*, payment: Payment) -> PaymentFigures:
    """The figures of a stored payment, for its page and its receipt (two queries)."""
    facts = payment_facts([payment.pk]).get(payment.pk, PaymentFacts())
    return payment_figures(
        status=payment.status,
        amount=payment.amount,
        currency=payment.currency,
        refunded=payment.amount_refunded,
        stripe_fee=payment.stripe_fee,
        facts=facts,
    )
