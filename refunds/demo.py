"""Demo refund requests: every priority and status, and PENDING ones that belong to payments
which really exist in the demo's localstripe, so approving one in the demo refunds it there.

Called by `seed_demo` after the payments exist. Without a reachable STRIPE_API_BASE it seeds
the local-only requests and warns.

The product never takes payments itself: `stripe_demo_payment_create` below buys through
management.demo_purchases (the demo's test purchase, composed from generic gateway calls and
refusing anything but a test-mode key).
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

from payments.models import Customer, Payment, PaymentMethod, Refund
from payments.money import percent_of

from .models import RefundRequest

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


@dataclass(frozen=True)
class DemoStripePayment:
    customer_id: str
    payment_method_id: str
    payment_intent_id: str
    charge_id: str
    amount: int
    currency: str
    status: str


def stripe_demo_payment_create(
    *, amount: int, currency: str, email: str, name: str, key: str
) -> DemoStripePayment:
    """A confirmed card payment in the configured (test-mode) Stripe, through the gateway.
    Raises payments.exceptions.GatewayError."""
    # Imported late, and the one import of `management` from `refunds`: this module is demo
    # seeding that only management's `seed_demo` (and tests) run, and the test purchase is
    # demo code that belongs with the demo app rather than in the product.
    from management.demo_purchases import demo_purchase_create

    purchase = demo_purchase_create(
        amount=amount, currency=currency, email=email, name=name, key=f"demo:{key}"
    )
    intent = purchase.payment_intent
    return DemoStripePayment(
        customer_id=purchase.customer_id,
        payment_method_id=purchase.payment_method_id,
        payment_intent_id=intent.id,
        charge_id=intent.latest_charge_id,
        amount=intent.amount,
        currency=intent.currency,
        status=intent.status,
    )


def payment_from_demo_stripe(
    stripe_payment: DemoStripePayment, *, email: str, name: str, created=None, **extra
) -> Payment:
    """The local Payment (and Customer, PaymentMethod) rows mirroring a demo Stripe payment."""
    created = created or timezone.now()
    customer, _ = Customer.objects.get_or_create(
        stripe_id=stripe_payment.customer_id,
        defaults={"email": email, "name": name, "created": created},
    )
    method, _ = PaymentMethod.objects.get_or_create(
        stripe_id=stripe_payment.payment_method_id,
        defaults={
            "customer": customer,
            "type": "card",
            "card_brand": "visa",
            "card_last4": "4242",
            "card_exp_month": 12,
            "card_exp_year": created.year + 3,
            "created": created,
        },
    )
    amount = stripe_payment.amount
    stripe_fee = percent_of(amount, 290) + 30
    platform_fee = percent_of(amount, settings.PLATFORM_FEE_BPS)
    return Payment.objects.create(
        stripe_payment_intent_id=stripe_payment.payment_intent_id,
        stripe_charge_id=stripe_payment.charge_id,
        customer=customer,
        payment_method=method,
        amount=amount,
        currency=stripe_payment.currency,
        status=Payment.Status.SUCCEEDED,
        stripe_status=stripe_payment.status,
        stripe_fee=stripe_fee,
        platform_fee=platform_fee,
        net=amount - stripe_fee - platform_fee,
        created=created,
        succeeded_at=created + timedelta(seconds=3),
        **extra,
    )


def refund_groups_ensure() -> dict[str, Group]:
    """The three refund roles, loaded from the staff groups fixture (idempotent)."""
    call_command("loaddata", "groups", verbosity=0)
    names = [GROUP_REQUESTERS, GROUP_APPROVERS, GROUP_SENIOR]
    return {group.name: group for group in Group.objects.filter(name__in=names)}


def _stripe_reachable() -> bool:
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
    if _stripe_reachable():
        for i, (age, amount, price) in enumerate(STRIPE_BACKED):
            email, name = f"refund.demo.{i}@example.com", f"Refund Demo {i}"
            stripe_payment = stripe_demo_payment_create(
                amount=price, currency="usd", email=email, name=name, key=f"{seed}:{i}"
            )
            with transaction.atomic():
                payment = payment_from_demo_stripe(
                    stripe_payment,
                    email=email,
                    name=name,
                    # Stripe's own creation time (localstripe can't back-date): the sync would
                    # otherwise move it, leaving "succeeded" before "created".
                    description="10 tutoring hours" if i % 3 == 0 else "Python for Data Analysis",
                    product_kind=(
                        Payment.ProductKind.HOUR_PACKAGE
                        if i % 3 == 0
                        else Payment.ProductKind.COURSE
                    ),
                    package_minutes=600 if i % 3 == 0 else None,
                )
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
            stripe_payment = stripe_demo_payment_create(
                amount=3000, currency="usd", email=email, name=name, key=f"{seed}:{i}"
            )
            payment = payment_from_demo_stripe(stripe_payment, email=email, name=name)
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
            # Keep the payment, its Refund mirror and the request in agreement.
            stripe_id = f"re_demo{seed}x{request.pk:06d}"
            Refund.objects.create(
                stripe_id=stripe_id,
                payment=payment,
                amount=amount,
                currency=payment.currency,
                status=Refund.Status.SUCCEEDED,
                reason=request.reason,
                created=now - age + timedelta(hours=2),
            )
            payment.amount_refunded += amount
            payment.status = (
                Payment.Status.REFUNDED
                if payment.amount_refunded >= payment.amount
                else Payment.Status.PARTIALLY_REFUNDED
            )
            payment.save(update_fields=["amount_refunded", "status", "updated_at"])
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
