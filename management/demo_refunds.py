"""Demo refund requests: every priority and status, and PENDING ones that belong to payments
which really exist in the demo's localstripe, so approving one in the demo refunds it there.

Called by `seed_demo` after the payments exist. Without a reachable STRIPE_API_BASE it seeds
the local-only requests and warns.

The product never takes payments itself: `demo_payment_create` below buys through
management.demo_purchases (the demo's test purchase, composed from generic gateway calls and
refusing anything but a test-mode key) and mirrors the purchase with the sync's upserts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from management.demo_purchases import (
    TEST_PAYMENT_METHOD_SUCCEEDS,
    demo_purchase_create,
    demo_purchase_mirror,
)
from payments import sync
from payments.gateway import StripeRefund
from payments.models import Instructor, Payment
from refunds.models import RefundRequest

# Staff groups for the refund roles, defined in fixtures/groups.json with the other roles.
GROUP_REQUESTERS = "Refund requesters"
GROUP_APPROVERS = "Refund approvers"
GROUP_SENIOR = "Senior refund approvers"
# Demo staff who *request* refunds (so that the `demo` login can approve them: four-eyes).
DEMO_REQUESTERS = ["support.alice", "support.bob"]

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r}: seeded refund requests without "
    "Stripe-backed payments (approving those would fail). Start localstripe and re-run."
)


@dataclass(frozen=True)
class DemoRequest:
    """One demo refund request: its age (drives URGENT / HIGH), the amount asked and the
    payment's price, both in minor units of `currency` (above REFUND_LARGE_AMOUNT -> LARGE)."""

    age: timedelta
    amount: int
    price: int
    currency: str = "usd"


def _d(days: float = 0, hours: float = 0, minutes: float = 0) -> timedelta:
    return timedelta(days=days, hours=hours, minutes=minutes)


# Pending requests on payments that really exist in localstripe, so approving one refunds it
# there. The queue's tiers with the default settings (REFUND_URGENT_AFTER_DAYS=3,
# REFUND_HIGH_AFTER_DAYS=1, REFUND_LARGE_AMOUNT usd/eur 50, gbp 40, jpy 7500).
PENDING = [
    # URGENT: waiting over 3 days.
    DemoRequest(_d(5), 2500, 2500),
    DemoRequest(_d(4), 1500, 4000),
    DemoRequest(_d(4, 6), 3900, 3900),
    DemoRequest(_d(6, 2), 9900, 9900),
    DemoRequest(_d(3, 8), 1200, 2400),
    DemoRequest(_d(7), 4500, 4500, "eur"),
    DemoRequest(_d(3, 20), 2000, 3500, "gbp"),
    DemoRequest(_d(8), 3000, 3000, "jpy"),
    # HIGH: over a day.
    DemoRequest(_d(2), 1200, 6000),
    DemoRequest(_d(1, 5), 800, 2000),
    DemoRequest(_d(2, 12), 4999, 4999),
    DemoRequest(_d(1, 2), 15000, 15000),
    DemoRequest(_d(2, 20), 2900, 2900),
    DemoRequest(_d(1, 9), 1900, 3900, "eur"),
    DemoRequest(_d(2, 3), 2500, 2500, "gbp"),
    DemoRequest(_d(1, 15), 9000, 9000, "jpy"),
    # LARGE: younger, above the currency's threshold (the last needs a senior approver).
    DemoRequest(_d(hours=5), 12000, 15000),
    DemoRequest(_d(hours=2), 7500, 7500),
    DemoRequest(_d(hours=9), 9900, 9900),
    DemoRequest(_d(hours=14), 25000, 25000),
    DemoRequest(_d(hours=1), 8000, 8000, "eur"),
    DemoRequest(_d(hours=7), 6500, 6500, "gbp"),
    DemoRequest(_d(hours=4), 12000, 12000, "jpy"),
    DemoRequest(_d(hours=20), 60000, 60000),
    # NORMAL: younger and small.
    DemoRequest(_d(minutes=40), 1999, 4999),
    DemoRequest(_d(hours=3), 2000, 2000),
    DemoRequest(_d(hours=6), 500, 2500),
    DemoRequest(_d(hours=11), 3500, 3500),
    DemoRequest(_d(hours=16), 4900, 4900),
    DemoRequest(_d(hours=22), 1000, 3000),
    DemoRequest(_d(hours=8), 2500, 2500, "eur"),
    DemoRequest(_d(hours=13), 1500, 3000, "gbp"),
    DemoRequest(_d(hours=2, minutes=30), 4000, 4000, "jpy"),
]
APPROVED, PROCESSING = RefundRequest.Status.APPROVED, RefundRequest.Status.PROCESSING
PROCESSED, REJECTED = RefundRequest.Status.PROCESSED, RefundRequest.Status.REJECTED
FAILED, CANCELED = RefundRequest.Status.FAILED, RefundRequest.Status.CANCELED
# Approved but not yet refunded, and one a worker "crashed" on (PROCESSING): also on
# localstripe payments, so `manage_payments --process-pending-refunds` refunds them for real.
IN_FLIGHT = [
    (APPROVED, DemoRequest(_d(hours=1), 1000, 3000)),
    (APPROVED, DemoRequest(_d(hours=3), 2000, 4000, "eur")),
    (APPROVED, DemoRequest(_d(hours=5), 1500, 1500)),
    (PROCESSING, DemoRequest(_d(hours=2), 1000, 3000)),
    (PROCESSING, DemoRequest(_d(hours=4), 2000, 2000, "jpy")),
]
# History on the generated (local) payments: (status, age, currency), every decided status
# early in the list, so a small demo database still shows each one.
HISTORY = [
    (PROCESSED, _d(6), "usd"),
    (REJECTED, _d(3), "usd"),
    (FAILED, _d(4), "usd"),
    (CANCELED, _d(8), "usd"),
    (PROCESSED, _d(7), "eur"),
    (REJECTED, _d(5), "eur"),
    (FAILED, _d(6), "gbp"),
    (CANCELED, _d(9), "eur"),
    (PROCESSED, _d(10), "gbp"),
    (REJECTED, _d(8), "jpy"),
    (PROCESSED, _d(12), "jpy"),
    *[(PROCESSED, _d(days), "usd") for days in (9, 11, 14, 20)],
    *[(REJECTED, _d(days), "usd") for days in (12, 15, 18)],
    *[(FAILED, _d(days), "usd") for days in (13, 16)],
    *[(CANCELED, _d(days), "usd") for days in (10, 17, 21)],
]


# The instructor of the Stripe-backed demo purchases (the metadata contract's fields).
DEMO_INSTRUCTOR = {
    "instructor_account": "acct_demorefunds01",
    "instructor_email": "grace.hopper@instructors.example.com",
    "instructor_name": "Grace Hopper",
    "instructor_id": "ins_0001",
}


def _demo_instructor() -> dict[str, str]:
    """DEMO_INSTRUCTOR with the connected account the demo gave her in the peer
    (management/demo_connect.py), when it did: the purchase's metadata names a real one."""
    account = (
        Instructor.objects.filter(email=DEMO_INSTRUCTOR["instructor_email"])
        .exclude(stripe_account_id="")
        .values_list("stripe_account_id", flat=True)
        .first()
    )
    return {**DEMO_INSTRUCTOR, "instructor_account": account} if account else DEMO_INSTRUCTOR


def demo_payment_create(
    *,
    amount: int,
    email: str,
    name: str,
    key: str,
    currency: str = "usd",
    hour_package: bool = False,
    test_payment_method: str = TEST_PAYMENT_METHOD_SUCCEEDS,
) -> Payment:
    """A confirmed card payment of `amount` minor units of `currency` in the configured
    (test-mode) Stripe,
    with the checkout's metadata, mirrored through the sync as production mirrors it.
    Raises payments.exceptions.GatewayError."""
    metadata = {
        **_demo_instructor(),
        "product_kind": "hour_package" if hour_package else "course",
        "product_id": "hour_package_002" if hour_package else "course_001",
        "product_name": "10 tutoring hours" if hour_package else "Python for Data Analysis",
    }
    if hour_package:
        metadata["package_minutes"] = "600"
    purchase = demo_purchase_create(
        amount=amount,
        currency=currency,
        email=email,
        name=name,
        key=f"demo:{key}",
        metadata=metadata,
        test_payment_method=test_payment_method,
    )
    return demo_purchase_mirror(purchase)


def refund_groups_ensure() -> dict[str, Group]:
    """The three refund roles, loaded from the staff groups fixture (idempotent)."""
    call_command("loaddata", "groups", verbosity=0)
    names = [GROUP_REQUESTERS, GROUP_APPROVERS, GROUP_SENIOR]
    return {group.name: group for group in Group.objects.filter(name__in=names)}


def stripe_reachable() -> bool:
    base = (settings.STRIPE_API_BASE or "").rstrip("/")
    if not base:
        return False  # never create demo objects in real Stripe
    import time
    import urllib.request

    # localstripe may still be starting (scripts/demo.sh launches it just before seeding).
    for _ in range(10):
        try:
            request = urllib.request.Request(f"{base}/v1/customers?limit=1")
            request.add_header("Authorization", f"Bearer {settings.STRIPE_SECRET_KEY}")
            with urllib.request.urlopen(request, timeout=2):
                return True
        except Exception:
            time.sleep(0.5)
    return False


def _set_created(refund_request: RefundRequest, created) -> None:
    # created_at is auto_now_add: back-date it with an UPDATE (ages drive the priority).
    RefundRequest.objects.filter(pk=refund_request.pk).update(created_at=created)


def seed_refund_requests(*, seed: int = 42, stdout=None) -> dict[str, int]:
    """Seed about 60 demo refund requests (idempotent: does nothing when requests exist):
    PENDING and IN_FLIGHT on localstripe payments, HISTORY on generated payments. Without a
    reachable peer, the pending ones go on generated payments (approving them would fail)
    and there are none in flight."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    if RefundRequest.objects.exists():
        log("Refund requests already present; nothing to do.")
        return {"refund_requests": 0}
    rng = random.Random(seed)
    now = timezone.now()
    requesters = _demo_requesters()
    approver = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    counts = {"stripe_backed": 0, "local": 0}

    def create(payment: Payment, spec_amount: int, age: timedelta, **fields) -> RefundRequest:
        with transaction.atomic():
            request = RefundRequest.objects.create(
                payment=payment,
                amount=min(spec_amount, payment.amount),
                currency=payment.currency,
                reason=fields.pop("reason", RefundRequest.Reason.REQUESTED_BY_CUSTOMER),
                internal_reason=rng.choice(
                    ["course_canceled", "quality", "instructor_no_show", "goodwill"]
                ),
                **fields,
            )
            _set_created(request, now - age)
        return request

    if stripe_reachable():
        for i, spec in enumerate(PENDING):
            payment = _stripe_payment(spec, seed=seed, index=i, hour_package=i % 3 == 0)
            create(
                payment,
                spec.amount,
                spec.age,
                customer_note="Please refund me, the course was not what I expected.",
                requested_by=requesters[i % 2],
            )
            counts["stripe_backed"] += 1
        for j, (status, spec) in enumerate(IN_FLIGHT):
            payment = _stripe_payment(spec, seed=seed, index=len(PENDING) + j)
            processing = status == RefundRequest.Status.PROCESSING
            request = create(
                payment,
                spec.amount,
                spec.age,
                status=status,
                requested_by=requesters[1],
                approved_by=approver,
                approved_at=now - spec.age + timedelta(minutes=30),
                customer_note="Demo: approved, not yet refunded",
                # A worker "crashed" on the PROCESSING ones: the command resumes them.
                processing_started_at=now - spec.age if processing else None,
                processing_attempts=1 if processing else 0,
            )
            RefundRequest.objects.filter(pk=request.pk).update(
                idempotency_key=f"refund:{request.pk}"
            )
            counts["stripe_backed"] += 1
    else:
        log(WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))

    for status, age, currency in HISTORY:
        payment = _local_payment(currency=currency, at_least=1)
        if payment is None:
            continue
        _history_request(
            create,
            payment,
            status,
            age,
            rng=rng,
            seed=seed,
            requester=requesters[0],
            approver=approver,
            now=now,
        )
        counts["local"] += 1
    if not counts["stripe_backed"]:
        # No peer: the queue still shows every priority, on generated payments.
        for spec in PENDING:
            payment = _local_payment(currency=spec.currency, at_least=spec.amount)
            if payment is None:
                continue
            create(payment, spec.amount, spec.age, requested_by=requesters[1])
            counts["local"] += 1
    total = counts["stripe_backed"] + counts["local"]
    # Rows written, by where their payment lives; the queue as its screens count it is
    # printed once everything is seeded (management/demo_counts.py).
    log(
        f"Refund requests: {total} written ({counts['stripe_backed']} on localstripe "
        f"payments, {counts['local']} on generated payments)"
    )
    return {"refund_requests": total, **counts}


def _demo_requesters() -> list:
    groups = refund_groups_ensure()
    User = get_user_model()
    requesters = []
    for username in DEMO_REQUESTERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
        )
        if created:
            user.set_unusable_password()  # they exist to have requested; nobody logs in as them
            user.save()
        user.groups.add(groups[GROUP_REQUESTERS])
        requesters.append(user)
    return requesters


def _stripe_payment(spec: DemoRequest, *, seed: int, index: int, hour_package=False) -> Payment:
    return demo_payment_create(
        amount=spec.price,
        currency=spec.currency,
        email=f"refund.demo.{index}@example.com",
        name=f"Refund Demo {index}",
        key=f"{seed}:{index}",
        hour_package=hour_package,
    )


def _local_payment(*, currency: str, at_least: int) -> Payment | None:
    """The newest generated, fully captured payment in `currency` of at least `at_least`
    minor units that has no refund request yet."""
    return (
        Payment.objects.filter(
            status=Payment.Status.SUCCEEDED, currency=currency, amount__gte=max(at_least, 100)
        )
        .exclude(refund_requests__isnull=False)
        .order_by("-created")
        .first()
    )


def _history_request(create, payment, status, age, *, rng, seed, requester, approver, now):
    """A decided request: processed (with its Stripe refund mirrored through the sync),
    rejected, failed or canceled."""
    fields = {
        "status": status,
        "reason": rng.choice(list(RefundRequest.Reason.values)),
        "requested_by": requester,
        "customer_note": "Demo history",
    }
    if status in (RefundRequest.Status.PROCESSED, RefundRequest.Status.FAILED):
        fields.update(approved_by=approver, approved_at=now - age + timedelta(hours=1))
    if status == RefundRequest.Status.REJECTED:
        fields.update(
            rejection_reason="Outside the 14-day refund window.",
            rejected_by=approver,
            rejected_at=now - age + timedelta(hours=2),
        )
    if status == RefundRequest.Status.FAILED:
        fields.update(failure_message="Stripe rejected the request.")
    amount = max(1, payment.amount // rng.choice([2, 4, 1]))
    request = create(payment, amount, age, **fields)
    updates = {}
    if status in (RefundRequest.Status.PROCESSED, RefundRequest.Status.FAILED):
        updates["idempotency_key"] = f"refund:{request.pk}"
    if status == RefundRequest.Status.PROCESSED:
        # The refund as Stripe reports it, through the sync's upsert: the mirror row, then
        # the payment's refunded amount, status and net re-derived by the ledger.
        stripe_id = f"re_demo{seed}x{request.pk:06d}"
        sync.upsert_refunds(
            [
                StripeRefund(
                    id=stripe_id,
                    payment_intent_id=payment.stripe_payment_intent_id,
                    charge_id=payment.stripe_charge_id,
                    amount=request.amount,
                    currency=payment.currency,
                    status="succeeded",
                    created=now - age + timedelta(hours=2),
                    reason=request.reason,
                )
            ]
        )
        updates.update(stripe_refund_id=stripe_id, processed_at=now - age + timedelta(hours=2))
    if updates:
        RefundRequest.objects.filter(pk=request.pk).update(**updates)
