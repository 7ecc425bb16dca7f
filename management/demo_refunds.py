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
from payments.models import Payment
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

# (age, amount in USD cents) of the Stripe-backed pending requests: URGENT, HIGH, LARGE, NORMAL.
STRIPE_BACKED = [
    (timedelta(days=5), 2500, 2500),
    (timedelta(days=4), 1500, 4000),
    (timedelta(days=4, hours=6), 3900, 3900),
    (timedelta(days=2), 1200, 6000),
    (timedelta(days=1, hours=5), 800, 2000),
    (timedelta(hours=5), 12000, 15000),
    (timedelta(hours=2), 7500, 7500),
    (timedelta(minutes=40), 1999, 4999),
    (timedelta(hours=3), 2000, 2000),
]


# The instructor of the Stripe-backed demo purchases (the metadata contract's fields).
DEMO_INSTRUCTOR = {
    "instructor_account": "acct_demorefunds01",
    "instructor_email": "grace.hopper@instructors.example.com",
    "instructor_name": "Grace Hopper",
    "instructor_id": "ins_0001",
}


def demo_payment_create(
    *,
    amount: int,
    email: str,
    name: str,
    key: str,
    hour_package: bool = False,
    test_payment_method: str = TEST_PAYMENT_METHOD_SUCCEEDS,
) -> Payment:
    """A confirmed card payment of `amount` US cents in the configured (test-mode) Stripe,
    with the checkout's metadata, mirrored through the sync as production mirrors it.
    Raises payments.exceptions.GatewayError."""
    metadata = {
        **DEMO_INSTRUCTOR,
        "product_kind": "hour_package" if hour_package else "course",
        "product_id": "hour_package_002" if hour_package else "course_001",
        "product_name": "10 tutoring hours" if hour_package else "Python for Data Analysis",
    }
    if hour_package:
        metadata["package_minutes"] = "600"
    purchase = demo_purchase_create(
        amount=amount,
        currency="usd",
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
    """Seed demo refund requests (idempotent: does nothing when requests exist)."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    if RefundRequest.objects.exists():
        log("Refund requests already present; nothing to do.")
        return {"refund_requests": 0}
    rng = random.Random(seed)
    now = timezone.now()
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

    counts = {"stripe_backed": 0, "local": 0}
    if stripe_reachable():
        for i, (age, amount, price) in enumerate(STRIPE_BACKED):
            email, name = f"refund.demo.{i}@example.com", f"Refund Demo {i}"
            payment = demo_payment_create(
                amount=price, email=email, name=name, key=f"{seed}:{i}", hour_package=i % 3 == 0
            )
            with transaction.atomic():
                request = RefundRequest.objects.create(
                    payment=payment,
                    amount=amount,
                    currency=payment.currency,
                    reason=RefundRequest.Reason.REQUESTED_BY_CUSTOMER,
                    internal_reason=rng.choice(
                        ["course_canceled", "quality", "instructor_no_show", "goodwill"]
                    ),
                    customer_note="Please refund me, the course was not what I expected.",
                    requested_by=requesters[i % 2],
                )
                _set_created(request, now - age)
            counts["stripe_backed"] += 1
    else:
        log(WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))

    # History in every other status. APPROVED / PROCESSING ones need a payment that exists in
    # Stripe (running `manage_payments --process-pending-refunds` refunds them for real).
    approver = User.objects.filter(is_superuser=True).order_by("pk").first()
    if counts["stripe_backed"]:
        for j, (status, age) in enumerate(
            [
                (RefundRequest.Status.APPROVED, timedelta(hours=1)),
                (RefundRequest.Status.PROCESSING, timedelta(hours=2)),
            ]
        ):
            i = len(STRIPE_BACKED) + j
            email, name = f"refund.demo.{i}@example.com", f"Refund Demo {i}"
            payment = demo_payment_create(amount=3000, email=email, name=name, key=f"{seed}:{i}")
            request = RefundRequest.objects.create(
                payment=payment,
                amount=1000,
                currency="usd",
                status=status,
                requested_by=requesters[1],
                approved_by=approver,
                approved_at=now - age + timedelta(minutes=30),
                customer_note="Demo: approved, not yet refunded",
                # A worker "crashed" on the PROCESSING one: the command resumes it.
                processing_started_at=(
                    now - age if status == RefundRequest.Status.PROCESSING else None
                ),
                processing_attempts=1 if status == RefundRequest.Status.PROCESSING else 0,
            )
            RefundRequest.objects.filter(pk=request.pk).update(
                idempotency_key=f"refund:{request.pk}"
            )
            _set_created(request, now - age)
            counts["stripe_backed"] += 1

    captured = list(
        Payment.objects.filter(status=Payment.Status.SUCCEEDED, amount__gte=1000)
        .exclude(refund_requests__isnull=False)
        .order_by("-created")[:40]
    )
    history = [
        (RefundRequest.Status.PROCESSED, timedelta(days=6)),
        (RefundRequest.Status.PROCESSED, timedelta(days=9)),
        (RefundRequest.Status.REJECTED, timedelta(days=3)),
        (RefundRequest.Status.REJECTED, timedelta(days=12)),
        (RefundRequest.Status.FAILED, timedelta(days=4)),
        (RefundRequest.Status.CANCELED, timedelta(days=8)),
    ]
    for (status, age), payment in zip(history, captured, strict=False):
        amount = max(1, payment.amount // rng.choice([2, 4, 1]))
        fields = {
            "payment": payment,
            "amount": amount,
            "currency": payment.currency,
            "status": status,
            "reason": rng.choice(list(RefundRequest.Reason.values)),
            "requested_by": requesters[0],
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
        request = RefundRequest.objects.create(**fields)
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
                        amount=amount,
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
        _set_created(request, now - age)
        counts["local"] += 1
    # A few local pending ones as well, when there is no Stripe (every priority still shows).
    if not counts["stripe_backed"]:
        for age, amount, _ in STRIPE_BACKED[:4]:
            payment = next((p for p in captured[len(history) :] if p.amount >= amount), None)
            if payment is None:
                break
            captured.remove(payment)
            request = RefundRequest.objects.create(
                payment=payment,
                amount=min(amount, payment.amount),
                currency=payment.currency,
                requested_by=requesters[1],
            )
            _set_created(request, now - age)
            counts["local"] += 1
    total = counts["stripe_backed"] + counts["local"]
    log(
        f"{total} refund requests ({counts['stripe_backed']} pending on localstripe payments, "
        f"{counts['local']} local)"
    )
    return {"refund_requests": total, **counts}
