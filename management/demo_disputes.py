"""Demo disputes that need a response: real disputes in the demo's localstripe, so that
saving, submitting and accepting evidence in the demo goes to the peer exactly as it would to
a real Stripe account.

Each one is a purchase with one of Stripe's dispute test payment methods (the peer opens the
dispute when the charge succeeds, as Stripe does), mirrored the way production mirrors:
the purchase through management.demo_purchases, the dispute re-read through the gateway and
written with the sync's upsert. Closed, historical disputes stay generated Stripe-shaped data
(management/demo_data.py).

Stripe sets `evidence_due_by` itself (7 days out for a test dispute). To show every deadline
alert band (under 1, 3 and 7 days, and later) the demo moves each deadline with the peer's
test-only `POST /_config/disputes/{id}` (scripts/localstripe_ext.py): a demo-only step with
no production counterpart, taken only with a test key and an explicit STRIPE_API_BASE.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from management.demo_purchases import (
    ERR_TEST_MODE_ONLY,
    TEST_PAYMENT_METHOD_DISPUTED,
    TEST_PAYMENT_METHOD_DISPUTED_NOT_RECEIVED,
    TEST_PAYMENT_METHOD_INQUIRY,
)
from management.demo_refunds import demo_payment_create, stripe_reachable
from payments import gateway, sync
from payments.models import Dispute

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r}: no open disputes seeded (the demo's "
    "open disputes live in localstripe, so that responding to them works)."
)


@dataclass(frozen=True, slots=True)
class OpenDispute:
    due_in: timedelta  # from now to evidence_due_by
    test_payment_method: str
    amount: int  # US cents
    name: str


OPEN_DISPUTES = [
    OpenDispute(timedelta(hours=9), TEST_PAYMENT_METHOD_DISPUTED, 14900, "Dispute Demo Ava"),
    OpenDispute(timedelta(hours=20), TEST_PAYMENT_METHOD_INQUIRY, 3900, "Dispute Demo Ben"),
    OpenDispute(timedelta(days=2, hours=5), TEST_PAYMENT_METHOD_DISPUTED, 8900, "Dispute Demo Cy"),
    OpenDispute(
        timedelta(days=2, hours=22),
        TEST_PAYMENT_METHOD_DISPUTED_NOT_RECEIVED,
        5900,
        "Dispute Demo Dee",
    ),
    OpenDispute(timedelta(days=5), TEST_PAYMENT_METHOD_INQUIRY, 2500, "Dispute Demo Eli"),
    OpenDispute(
        timedelta(days=6, hours=12), TEST_PAYMENT_METHOD_DISPUTED, 19900, "Dispute Demo Fay"
    ),
    OpenDispute(
        timedelta(days=13), TEST_PAYMENT_METHOD_DISPUTED_NOT_RECEIVED, 4900, "Dispute Demo Gus"
    ),
    OpenDispute(timedelta(days=19), TEST_PAYMENT_METHOD_DISPUTED, 12900, "Dispute Demo Hal"),
]


def _peer_move_deadline(dispute_id: str, due_by_unix: int) -> None:
    """The peer's test-only deadline setter (Stripe has none: it sets the deadline)."""
    if not str(settings.STRIPE_SECRET_KEY).startswith("sk_test") or not settings.STRIPE_API_BASE:
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    base = settings.STRIPE_API_BASE.rstrip("/")
    body = urllib.parse.urlencode({"evidence_due_by": due_by_unix}).encode()
    request = urllib.request.Request(f"{base}/_config/disputes/{dispute_id}", data=body)
    with urllib.request.urlopen(request, timeout=5) as response:
        json.load(response)


def seed_open_disputes(*, seed: int = 42, stdout=None) -> dict[str, int]:
    """Open the demo's disputes in localstripe and mirror them (idempotent: nothing when
    open disputes exist already). Without a reachable peer, warns and seeds none."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    open_statuses = [Dispute.Status.NEEDS_RESPONSE, Dispute.Status.WARNING_NEEDS_RESPONSE]
    if Dispute.objects.filter(status__in=open_statuses).exists():
        log("Open disputes already present; nothing to do.")
        return {"open_disputes": 0}
    if not stripe_reachable():
        log(WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))
        return {"open_disputes": 0}
    now = timezone.now()
    seeded = 0
    for index, spec in enumerate(OPEN_DISPUTES):
        email = f"{spec.name.lower().replace(' ', '.')}@example.com"
        payment = demo_payment_create(
            amount=spec.amount,
            email=email,
            name=spec.name,
            key=f"{seed}:dispute:{index}",
            test_payment_method=spec.test_payment_method,
        )
        for opened in gateway.stripe_dispute_list(
            payment_intent_id=payment.stripe_payment_intent_id
        ):
            _peer_move_deadline(opened.id, int((now + spec.due_in).timestamp()))
            current = gateway.stripe_dispute_retrieve(dispute_id=opened.id)
            with transaction.atomic():
                sync.upsert_disputes([current])
            seeded += 1
    log(f"{seeded} open disputes in localstripe (deadlines from 9 hours to 19 days)")
    return {"open_disputes": seeded}
