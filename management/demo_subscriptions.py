"""Demo subscriptions: students subscribed to tutoring memberships in the demo's localstripe,
in every status staff meet (active, trialing, past due, canceled, set to end at the end of
the period, incomplete), and saved cards that expire this month.

Everything is made at the peer through the gateway's calls (customers, their test cards,
prices, subscriptions, the cancellations), then mirrored the way the sync mirrors: the
subscription pass's own pager and upsert (payments.sync.upsert_subscriptions), after the
customers and their payment methods. Nothing here writes the mirror directly.

Two steps have no production counterpart, taken only with a test key and an explicit
STRIPE_API_BASE: a declined renewal needs the current period to end, which the peer's
test-only `POST /_config/subscriptions/{id}/renew` does at once (Stripe's test clocks do the
same by moving time); and the cards' new expiry is Stripe's own card update
(gateway.stripe_payment_method_card_expiry_update), made here to show this month's expiries.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from management.demo_purchases import (
    ERR_TEST_MODE_ONLY,
    TEST_PAYMENT_METHOD_DECLINES,
    TEST_PAYMENT_METHOD_SUCCEEDS,
)
from management.demo_refunds import stripe_reachable
from payments import gateway, sync
from payments.models import Subscription

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r}: no subscriptions seeded (the demo's "
    "subscriptions live in localstripe, so that canceling and resuming them works)."
)


@dataclass(frozen=True, slots=True)
class DemoSubscription:
    name: str
    plan: str  # a key of PLANS
    # What happens after the subscription starts: "" (stays active), "trial", "past_due",
    # "cancel_now", "cancel_at_period_end", "incomplete" (the first payment is declined).
    story: str = ""
    card_expires_this_month: bool = False


# (product, nickname, minor units, currency, interval)
PLANS = {
    "monthly": ("Tutoring membership", "Monthly tutoring", 4900, "usd", "month"),
    "yearly": ("Tutoring membership", "Yearly tutoring", 39000, "eur", "year"),
    "weekly": ("Conversation club", "Weekly conversation club", 1500, "gbp", "week"),
}

DEMO_SUBSCRIPTIONS = [
    DemoSubscription("Sub Demo Amara", "monthly"),
    DemoSubscription("Sub Demo Bo", "yearly", card_expires_this_month=True),
    DemoSubscription("Sub Demo Chen", "weekly"),
    DemoSubscription("Sub Demo Dara", "monthly", "trial"),
    DemoSubscription("Sub Demo Emil", "yearly", "trial", card_expires_this_month=True),
    DemoSubscription("Sub Demo Femi", "monthly", "past_due"),
    DemoSubscription("Sub Demo Gia", "weekly", "past_due"),
    DemoSubscription("Sub Demo Hugo", "monthly", "cancel_at_period_end"),
    DemoSubscription("Sub Demo Iris", "yearly", "cancel_at_period_end"),
    DemoSubscription("Sub Demo Jon", "monthly", "cancel_now"),
    DemoSubscription("Sub Demo Kai", "weekly", "cancel_now"),
    DemoSubscription("Sub Demo Lea", "monthly", "incomplete"),
    DemoSubscription("Sub Demo Mo", "monthly", card_expires_this_month=True),
]
TRIAL_DAYS = 14
CANCEL_COMMENTS = {
    "cancel_at_period_end": "Student finishes the course this term",
    "cancel_now": "Duplicate subscription opened by mistake",
}


def _peer_renew(subscription_id: str) -> None:
    """The peer's test clock: the current period ends now (Stripe: a test clock advance)."""
    if not str(settings.STRIPE_SECRET_KEY).startswith("sk_test") or not settings.STRIPE_API_BASE:
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    base = settings.STRIPE_API_BASE.rstrip("/")
    request = urllib.request.Request(
        f"{base}/_config/subscriptions/{subscription_id}/renew", data=b""
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        json.load(response)


def _subscribe(spec: DemoSubscription, *, prices: dict, key: str) -> tuple[str, str]:
    """The student, their card, their subscription and its story, at the peer. Returns
    (customer id, subscription id)."""
    email = f"{spec.name.lower().replace(' ', '.')}@example.com"
    customer = gateway.stripe_customer_create(
        email=email, name=spec.name, idempotency_key=f"{key}:customer"
    )
    first_card = (
        TEST_PAYMENT_METHOD_DECLINES
        if spec.story == "incomplete"
        else (TEST_PAYMENT_METHOD_SUCCEEDS)
    )
    card = gateway.stripe_payment_method_attach(
        payment_method_id=first_card, customer_id=customer.id, idempotency_key=f"{key}:card"
    )
    gateway.stripe_customer_default_payment_method_set(
        customer_id=customer.id, payment_method_id=card.id, idempotency_key=f"{key}:default"
    )
    if spec.card_expires_this_month:
        today = timezone.localdate()
        gateway.stripe_payment_method_card_expiry_update(
            payment_method_id=card.id,
            exp_month=today.month,
            exp_year=today.year,
            idempotency_key=f"{key}:expiry",
        )
    subscription = gateway.stripe_subscription_create(
        customer_id=customer.id,
        price_id=prices[spec.plan].id,
        trial_period_days=TRIAL_DAYS if spec.story == "trial" else None,
        idempotency_key=f"{key}:subscription",
    )
    if spec.story == "past_due":
        # The card on file now declines, and the renewal comes due.
        declining = gateway.stripe_payment_method_attach(
            payment_method_id=TEST_PAYMENT_METHOD_DECLINES,
            customer_id=customer.id,
            idempotency_key=f"{key}:declining",
        )
        gateway.stripe_customer_default_payment_method_set(
            customer_id=customer.id,
            payment_method_id=declining.id,
            idempotency_key=f"{key}:default:declining",
        )
        _peer_renew(subscription.id)
    elif spec.story == "cancel_at_period_end":
        gateway.stripe_subscription_cancel_at_period_end(
            subscription_id=subscription.id,
            cancel=True,
            comment=CANCEL_COMMENTS[spec.story],
            idempotency_key=f"{key}:cancel",
        )
    elif spec.story == "cancel_now":
        gateway.stripe_subscription_cancel(
            subscription_id=subscription.id,
            comment=CANCEL_COMMENTS[spec.story],
            idempotency_key=f"{key}:cancel",
        )
    return customer.id, subscription.id


def _mirror(customer_ids: list[str]) -> None:
    """As the sync does: customers, their payment methods, their defaults; then the
    subscription pass's pages through its upsert."""
    customers = [gateway.stripe_customer_retrieve(customer_id=cid) for cid in customer_ids]
    methods = [
        method
        for cid in customer_ids
        for method in gateway.stripe_payment_method_list_for_customer(customer_id=cid)
    ]
    with transaction.atomic():
        sync.upsert_customers(customers)
        sync.upsert_payment_methods(methods)
        sync.apply_default_payment_methods(customers)
    for page in gateway.stripe_subscription_list_pages():
        sync.upsert_subscriptions(page.items)


def seed_subscriptions(*, seed: int = 42, stdout=None) -> dict[str, int]:
    """Subscribe the demo's students at the peer and mirror them (idempotent: nothing when
    subscriptions exist already). Without a reachable peer, warns and seeds none."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    if Subscription.objects.exists():
        log("Subscriptions already present; nothing to do.")
        return {"subscriptions": 0}
    if not stripe_reachable():
        log(WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))
        return {"subscriptions": 0}
    if settings.STRIPE_LIVEMODE or not str(settings.STRIPE_SECRET_KEY).startswith("sk_test"):
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    prices = {
        plan: gateway.stripe_price_create(
            product_name=product,
            nickname=nickname,
            unit_amount=amount,
            currency=currency,
            interval=interval,
            idempotency_key=f"demo:{seed}:price:{plan}",
        )
        for plan, (product, nickname, amount, currency, interval) in PLANS.items()
    }
    customer_ids = [
        _subscribe(spec, prices=prices, key=f"demo:{seed}:subscription:{index}")[0]
        for index, spec in enumerate(DEMO_SUBSCRIPTIONS)
    ]
    _mirror(customer_ids)
    seeded = Subscription.objects.count()
    log(f"{seeded} subscriptions in localstripe (active, trialing, past due, ending, canceled)")
    return {"subscriptions": seeded}
