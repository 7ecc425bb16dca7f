"""Demo customer adjustments: pending credits and debits of money and of hours waiting in the
queue, a few applied (money in the demo's localstripe customer balance, hours in the hours
ledger) and one rejected, all through payments.services.customer_adjustments as staff would
make them (audited; four-eyes: one demo person requests, another decides).

The students are created in the peer through the gateway and mirrored by the sync's customer
upsert, so approving a money adjustment in the demo lands in their Stripe balance. Without a
reachable peer only the hours ones are seeded (a money one could not be applied) and a
warning says so. Called by `seed_demo`; idempotent (nothing when adjustments exist).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db.models import Count

from management.demo_refunds import stripe_reachable
from payments import gateway, sync
from payments.exceptions import GatewayError
from payments.models import Customer, CustomerAdjustment
from payments.services.customer_adjustments import (
    customer_adjustment_apply,
    customer_adjustment_approve,
    customer_adjustment_reject,
    customer_adjustment_request,
)

GROUP_FINANCE = "Finance staff"
GROUP_SENIOR = "Senior approvers"
# Who requests and who decides (each needs the other: four-eyes).
DEMO_ADJUSTMENT_STAFF = [
    ("adjustments.lena", [GROUP_FINANCE]),
    ("adjustments.omar", [GROUP_FINANCE, GROUP_SENIOR]),
]

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r}: only hours adjustments were seeded "
    "(a money adjustment is applied to the customer's Stripe balance)."
)


@dataclass(frozen=True)
class DemoStudent:
    email: str
    name: str


STUDENTS = [
    DemoStudent("mia.schneider@students.example.com", "Mia Schneider"),
    DemoStudent("haruto.sato@students.example.com", "Haruto Sato"),
    DemoStudent("olivia.bennett@students.example.com", "Olivia Bennett"),
    DemoStudent("lucas.martin@students.example.com", "Lucas Martin"),
]

REASON_NO_SHOW = "The tutor did not show up for the booked lesson."
REASON_DOUBLE = "Charged twice for one lesson by the booking system."
REASON_GOODWILL = "Goodwill after a complaint about lesson quality."
REASON_MAKE_UP = "Make-up lessons after a platform outage."
REASON_NOT_DEDUCTED = "A lesson taken but not deducted (booking import missed it)."
REJECT_NOTE = "Already refunded through the refund queue."


def _log(stdout, message: str) -> None:
    if stdout is not None:
        stdout.write(message)


def _staff() -> dict:
    call_command("loaddata", "groups", verbosity=0)
    User = get_user_model()
    users = {}
    for username, groups in DEMO_ADJUSTMENT_STAFF:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.set(Group.objects.filter(name__in=groups))
        # A fresh object: the permission cache of an earlier one would miss the groups.
        users[username.split(".")[1]] = User.objects.get(pk=user.pk)
    return users


def _student(spec: DemoStudent) -> Customer:
    """The student in the peer (made through the gateway once per e-mail), mirrored by the
    sync's customer upsert as production mirrors it."""
    made = gateway.stripe_customer_create(
        email=spec.email, name=spec.name, idempotency_key=f"demo:student:{spec.email}"
    )
    sync.upsert_customers([made])
    return Customer.objects.get(stripe_id=made.id)


def _money(customer, user, direction, amount, currency, reason):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit=CustomerAdjustment.Unit.MONEY,
        amount=amount,
        currency=currency,
        reason=reason,
        acting_user=user,
    )


def _hours(customer, user, direction, minutes, reason):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit=CustomerAdjustment.Unit.HOURS,
        minutes=minutes,
        reason=reason,
        acting_user=user,
    )


def seed_customer_adjustments(*, stdout=None) -> dict[str, int]:
    """Pending money and hours adjustments, a few applied and one rejected (idempotent).
    Returns the adjustments per status."""
    if CustomerAdjustment.objects.exists():
        _log(stdout, "Customer adjustments already present; nothing to do.")
        return adjustment_counts()
    staff = _staff()
    lena, omar = staff["lena"], staff["omar"]
    peer = stripe_reachable()
    students = []
    if peer:
        try:
            students = [_student(spec) for spec in STUDENTS]
        except GatewayError:
            peer = False
    if not peer:
        _log(stdout, WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))
        students = list(Customer.objects.order_by("pk")[: len(STUDENTS)])
    if len(students) < len(STUDENTS):
        return adjustment_counts()
    mia, haruto, olivia, lucas = students

    # Hours: Mia's make-up hours applied, then a debit of a lesson not deducted (pending,
    # approvable: she has the hours); Lucas's credit waiting; a large one for a senior.
    applied = _hours(mia, lena, "credit", 180, REASON_MAKE_UP)
    customer_adjustment_approve(adjustment=applied, acting_user=omar, note="Outage confirmed.")
    _hours(mia, lena, "debit", 60, REASON_NOT_DEDUCTED)
    _hours(lucas, omar, "credit", 90, REASON_MAKE_UP)
    _hours(olivia, lena, "credit", 900, REASON_MAKE_UP)  # above 10 h: a senior approves

    if peer:
        # Money, in the peer: one applied per currency the demo shows first, then the queue.
        for customer, direction, amount, currency, reason in (
            (mia, "credit", 1500, "usd", REASON_NO_SHOW),
            (haruto, "credit", 3000, "jpy", REASON_NO_SHOW),
        ):
            adjustment = _money(customer, lena, direction, amount, currency, reason)
            customer_adjustment_approve(adjustment=adjustment, acting_user=omar, note="Checked.")
            # The approval's task does this after commit when a cluster runs; the demo may
            # have none yet, and applying twice is a no-op.
            customer_adjustment_apply(adjustment_id=adjustment.pk)
        _money(mia, omar, "credit", 2500, "usd", REASON_GOODWILL)
        _money(olivia, lena, "debit", 1250, "eur", REASON_DOUBLE)
        _money(haruto, lena, "credit", 2000, "jpy", REASON_GOODWILL)
        _money(lucas, lena, "credit", 18000, "usd", REASON_GOODWILL)  # above $100: a senior
        rejected = _money(olivia, omar, "credit", 4000, "eur", REASON_NO_SHOW)
        customer_adjustment_reject(adjustment=rejected, acting_user=lena, note=REJECT_NOTE)
    counts = adjustment_counts()
    _log(stdout, adjustment_line(counts))
    return counts


def adjustment_counts() -> dict[str, int]:
    """Adjustments per status (every status present, 0 if none), as the queue's status
    filter counts them."""
    counts = dict.fromkeys(CustomerAdjustment.Status.values, 0)
    counts.update(
        CustomerAdjustment.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return counts


def adjustment_line(counts: dict[str, int] | None = None) -> str:
    counts = counts or adjustment_counts()
    return "Customer adjustments: " + ", ".join(f"{n} {status}" for status, n in counts.items())
