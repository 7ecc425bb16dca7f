"""Staff with the refund roles, and a fake gateway that records calls (for tests that are not
about Stripe itself; the `stripe`-marked tests use localstripe)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from payments import gateway
from payments.gateway import StripeRefund
from tests.factories import UserFactory


def _user(username: str, *codenames: str):
    user = UserFactory(username=username)
    if codenames:
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    # Permission caches are per instance: reload.
    return type(user).objects.get(pk=user.pk)


VIEW = ("view_refundrequest", "view_payment")


@pytest.fixture
def requester(db):
    return _user("requester", "add_refundrequest", *VIEW)


@pytest.fixture
def approver(db):
    return _user("approver", "approve_refundrequest", "add_refundrequest", *VIEW)


@pytest.fixture
def senior(db):
    return _user(
        "senior", "approve_refundrequest", "approve_large_refundrequest", "add_refundrequest", *VIEW
    )


@pytest.fixture
def viewer(db):
    """Staff who may look at the queue but decide nothing."""
    return _user("viewer", *VIEW)


class FakeStripe:
    """Stands in for payments.gateway's refund functions: remembers every refund it 'made'.
    `fail_before` raises before anything happens; `fail_after` raises after the refund was
    recorded (Stripe accepted, the answer was lost)."""

    def __init__(self):
        self.refunds: list[StripeRefund] = []
        self.create_calls = 0
        self.list_calls = 0
        self.fail_before: Exception | None = None
        self.fail_after: Exception | None = None
        self.status = "succeeded"
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def stripe_refund_create(
        self, *, payment_intent_id, amount, idempotency_key, reason=None, metadata=None, **kw
    ):
        with self._lock:
            self.create_calls += 1
            if self.fail_before is not None:
                raise self.fail_before
            refund = StripeRefund(
                id=f"re_fake{next(self._ids):06d}",
                payment_intent_id=payment_intent_id,
                charge_id="",
                amount=amount,
                currency="usd",
                status=self.status,
                created=datetime.now(UTC),
                reason=reason or "",
                metadata={str(k): str(v) for k, v in (metadata or {}).items()},
            )
            self.refunds.append(refund)
            if self.fail_after is not None:
                raise self.fail_after
            return refund

    def stripe_refund_list(self, *, payment_intent_id, **kw):
        with self._lock:
            self.list_calls += 1
            return [r for r in self.refunds if r.payment_intent_id == payment_intent_id]


@pytest.fixture
def fake_stripe(monkeypatch):
    fake = FakeStripe()
    monkeypatch.setattr(gateway, "stripe_refund_create", fake.stripe_refund_create)
    monkeypatch.setattr(gateway, "stripe_refund_list", fake.stripe_refund_list)
    return fake
