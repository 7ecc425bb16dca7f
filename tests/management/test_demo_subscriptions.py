"""The demo's subscriptions are real subscriptions in localstripe in every status staff meet,
mirrored by the sync's subscription pass; some saved cards expire this month; the start-up
line counts them as the screens do; canceling one works against the peer."""

import io

import pytest

from management.demo_counts import subscription_counts, subscription_line
from management.demo_subscriptions import (
    DEMO_SUBSCRIPTIONS,
    WARN_NO_STRIPE,
    seed_subscriptions,
)
from payments import card_expiry, gateway
from payments.models import PaymentMethod, Subscription

pytestmark = pytest.mark.django_db


@pytest.mark.stripe
def test_subscriptions_in_every_status_come_from_the_peer(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    assert seed_subscriptions(stdout=io.StringIO()) == {"subscriptions": len(DEMO_SUBSCRIPTIONS)}

    counts = subscription_counts()
    assert counts["statuses"] == {
        "active": 6,  # two of them end with their period
        "trialing": 2,
        "past_due": 2,
        "canceled": 2,
        "incomplete": 1,
    }
    assert counts["ending"] == 2
    assert counts["cards_expiring_this_month"] == 3
    expiring = PaymentMethod.objects.filter(card_expiry.card_expiry_q(card_expiry.THIS_MONTH))
    assert {m.customer.name for m in expiring} == {"Sub Demo Bo", "Sub Demo Emil", "Sub Demo Mo"}
    assert "2 past_due" in subscription_line(counts)
    past_due = Subscription.objects.filter(status="past_due")
    assert {s.latest_invoice_status for s in past_due} == {"open"}
    assert {s.currency for s in Subscription.objects.all()} == {"usd", "eur", "gbp"}
    for row in Subscription.objects.all():
        at_peer = gateway.stripe_subscription_retrieve(subscription_id=row.stripe_id)
        assert (at_peer.status, at_peer.cancel_at_period_end) == (
            row.status,
            row.cancel_at_period_end,
        )
    # A second seeding adds nothing.
    assert seed_subscriptions()["subscriptions"] == 0


def test_without_a_peer_no_subscriptions_are_seeded(settings):
    settings.STRIPE_API_BASE = ""
    out = io.StringIO()
    assert seed_subscriptions(stdout=out) == {"subscriptions": 0}
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert not Subscription.objects.exists()
