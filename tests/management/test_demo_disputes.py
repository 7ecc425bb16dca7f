"""The demo's open disputes are real disputes in localstripe, mirrored through the sync's
upsert: every deadline band shows, and responding to one works against the peer exactly as
it would against Stripe."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from management.demo_disputes import OPEN_DISPUTES, WARN_NO_STRIPE, seed_open_disputes
from payments import gateway
from payments.models import Dispute

pytestmark = pytest.mark.django_db


@pytest.mark.stripe
def test_open_disputes_come_from_the_peer_with_varied_deadlines(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    before = timezone.now()
    assert seed_open_disputes(stdout=io.StringIO()) == {"open_disputes": len(OPEN_DISPUTES)}

    disputes = list(Dispute.objects.select_related("payment").order_by("evidence_due_by"))
    assert {d.status for d in disputes} == {"needs_response", "warning_needs_response"}
    assert {d.payment.status for d in disputes} == {"disputed"}
    left = [d.evidence_due_by - before for d in disputes]
    for days in (1, 3, 7):
        assert any(timedelta(days=days - 1) <= gap < timedelta(days=days) for gap in left), days
    assert any(gap > timedelta(days=7) for gap in left)
    for dispute in disputes:
        at_peer = gateway.stripe_dispute_retrieve(dispute_id=dispute.stripe_id)
        assert (at_peer.status, at_peer.evidence_due_by) == (
            dispute.status,
            dispute.evidence_due_by,
        )

    # Responding works as on a real account: the peer holds the same dispute.
    first = disputes[0]
    saved = gateway.stripe_dispute_update(
        dispute_id=first.stripe_id,
        evidence={"customer_name": "Dispute Demo"},
        submit=False,
        idempotency_key="demo-test:save",
    )
    assert saved.has_evidence
    # A second seeding adds nothing.
    assert seed_open_disputes()["open_disputes"] == 0
    assert Dispute.objects.count() == len(OPEN_DISPUTES)


def test_without_a_peer_no_open_disputes_are_seeded(settings, monkeypatch):
    settings.STRIPE_API_BASE = ""
    out = io.StringIO()
    assert seed_open_disputes(stdout=out) == {"open_disputes": 0}
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert not Dispute.objects.exists()
