"""Billing actions under real row locks: many staff confirming "Cancel now" on one
subscription at the same moment send exactly one cancel to Stripe (one audit row, one
action); the others are refused, in flight or by the rules. The gateway is faked at its
boundary (slow, so the clicks overlap)."""

import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from backoffice.models import AdminAction
from payments import sync
from payments.models import BillingAction, Subscription
from payments.services import billing_actions as service
from tests.factories import CustomerFactory, UserFactory
from tests.payments.subscription_support import stripe_subscription
from tests.payments.test_payment_retry_postgres import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def test_concurrent_cancels_send_one_request(monkeypatch):
    CustomerFactory(stripe_id="cus_test0001")
    sync.upsert_subscriptions([stripe_subscription()])
    sub = Subscription.objects.get()
    staff = UserFactory(username="finance")
    permission, _ = Permission.objects.get_or_create(
        codename="manage_subscription",
        content_type=ContentType.objects.get_for_model(Subscription),
        defaults={"name": "Can cancel and resume subscriptions"},
    )
    staff.user_permissions.add(permission)
    sent, lock = [], threading.Lock()

    def cancel(*, subscription_id, comment, idempotency_key):
        with lock:
            sent.append(idempotency_key)
        time.sleep(0.2)  # Stripe thinking: the other clicks arrive meanwhile
        return stripe_subscription(status="canceled", cancellation_comment=comment)

    monkeypatch.setattr(service.gateway, "stripe_subscription_cancel", cancel)
    results, errors = run_concurrently(
        lambda: service.subscription_cancel_now(
            subscription=sub, reason="Fraud", acting_user=staff
        ),
        THREADS,
    )
    assert all(isinstance(e, service.BillingActionNotAllowed) for e in errors), errors
    assert all(
        "has not answered yet" in e.message or e.message.startswith("This subscription is")
        for e in errors
    ), {e.message for e in errors}
    assert len(results) == 1 and results[0].succeeded
    assert len(sent) == 1
    assert BillingAction.objects.get().status == "succeeded"
    assert AdminAction.objects.filter(action="subscription_cancel_now").count() == 1
    assert Subscription.objects.get().status == "canceled"
