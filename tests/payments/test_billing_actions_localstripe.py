"""Staff changes to subscriptions and saved payment methods, through the services against the
project's localstripe launcher (real HTTP): each one is permission-checked, audited with its
idempotency key, sent once and mirrored back through the sync's upserts. A change with no
answer from Stripe blocks the next one on the same object until it is settled by reading the
object back, and a second click never sends it twice."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from backoffice.audit import ClientInfo
from backoffice.models import AdminAction
from payments import gateway, sync
from payments.exceptions import GatewayTimeout
from payments.models import BillingAction, PaymentMethod, Subscription
from payments.services import billing_actions as service
from tests.factories import UserFactory
from tests.management.stripe_peer import setup_peer
from tests.payments.subscription_support import monthly_price, subscribe

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


def staff(*codenames, username="agent"):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def mirrored_subscription(key="ada", **kwargs):
    """A subscription made at the peer and mirrored as the webhooks mirror it."""
    price = monthly_price(key)
    customer, method, sub = subscribe(email=f"{key}@example.com", price=price, key=key, **kwargs)
    sync.upsert_customers([gateway.stripe_customer_retrieve(customer_id=customer.id)])
    sync.upsert_payment_methods(
        gateway.stripe_payment_method_list_for_customer(customer_id=customer.id)
    )
    sync.upsert_customers([gateway.stripe_customer_retrieve(customer_id=customer.id)])
    sync.upsert_subscriptions([sub])
    return Subscription.objects.get(stripe_id=sub.id), customer, method


def test_cancel_at_period_end_resume_and_cancel_now(peer):
    sub, _, _ = mirrored_subscription()
    agent = staff("manage_subscription")
    client = ClientInfo(ip_address="203.0.113.9", user_agent="pytest")

    result = service.subscription_cancel_at_period_end(
        subscription=sub, reason="Moving abroad", acting_user=agent, client=client
    )
    assert result.succeeded, result.message
    sub.refresh_from_db()
    assert sub.cancel_at_period_end and sub.status == "active"
    assert (sub.cancellation_reason, sub.cancellation_comment) == (
        "cancellation_requested",
        "Moving abroad",
    )
    action = result.action
    assert (action.status, action.idempotency_key, action.requested_by) == (
        "succeeded",
        f"billing_action:{action.pk}",
        agent,
    )
    audit = AdminAction.objects.get(action="subscription_cancel_at_period_end")
    assert (audit.actor, audit.reason, audit.amount, audit.currency, audit.ip_address) == (
        agent,
        "Moving abroad",
        4900,
        "usd",
        "203.0.113.9",
    )
    assert audit.details["idempotency_key"] == action.idempotency_key
    assert audit.target_id == str(sub.pk)
    # Stripe holds what the mirror shows.
    assert gateway.stripe_subscription_retrieve(subscription_id=sub.stripe_id).cancel_at_period_end

    # Asked again: the rules refuse before anything is sent.
    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.subscription_cancel_at_period_end(
            subscription=sub, reason="again", acting_user=agent
        )
    assert refused.value.message.startswith("This subscription already ends")

    resumed = service.subscription_resume(subscription=sub, acting_user=agent)
    assert resumed.succeeded
    sub.refresh_from_db()
    assert (sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at) == (False, None, None)

    with pytest.raises(service.BillingActionNotAllowed) as no_reason:
        service.subscription_cancel_now(subscription=sub, reason="  ", acting_user=agent)
    assert no_reason.value.message == service.ERR_REASON_REQUIRED
    canceled = service.subscription_cancel_now(
        subscription=sub, reason="Chargeback on the first payment", acting_user=agent
    )
    assert canceled.succeeded
    sub.refresh_from_db()
    assert (sub.status, sub.cancellation_comment) == ("canceled", "Chargeback on the first payment")
    assert sub.ended_at is not None
    with pytest.raises(service.BillingActionNotAllowed) as final:
        service.subscription_resume(subscription=sub, acting_user=agent)
    assert final.value.message == service.ERR_FINAL.format(status="canceled")
    assert list(AdminAction.objects.order_by("pk").values_list("action", flat=True)) == [
        "subscription_cancel_at_period_end",
        "subscription_resume",
        "subscription_cancel_now",
    ]
    assert BillingAction.objects.filter(status="succeeded").count() == 3


def test_without_the_permission_nothing_is_sent_or_audited(peer, monkeypatch):
    sub, _, method = mirrored_subscription()
    sent = []
    monkeypatch.setattr(gateway, "stripe_subscription_cancel", lambda **kw: sent.append(kw))
    monkeypatch.setattr(gateway, "stripe_payment_method_detach", lambda **kw: sent.append(kw))
    reader = staff("view_subscription", "view_paymentmethod", username="reader")
    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.subscription_cancel_now(subscription=sub, reason="x", acting_user=reader)
    assert refused.value.message == service.ERR_NO_PERMISSION_SUBSCRIPTION
    row = PaymentMethod.objects.get(stripe_id=method.id)
    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.payment_method_detach(method=row, reason="x", acting_user=reader)
    assert refused.value.message == service.ERR_NO_PERMISSION_PAYMENT_METHOD
    # The other permission does not do either.
    wrong = staff("manage_saved_payment_method", username="cards")
    with pytest.raises(service.BillingActionNotAllowed):
        service.subscription_cancel_now(subscription=sub, reason="x", acting_user=wrong)
    assert sent == []
    assert not AdminAction.objects.exists()
    assert not BillingAction.objects.exists()


def test_make_default_and_detach_a_saved_card(peer):
    _, customer, first = mirrored_subscription()
    second = gateway.stripe_payment_method_attach(
        payment_method_id="pm_card_visa", customer_id=customer.id, idempotency_key="ada:second"
    )
    sync.upsert_payment_methods([second])
    agent = staff("manage_saved_payment_method")
    old_default = PaymentMethod.objects.get(stripe_id=first.id)
    new_default = PaymentMethod.objects.get(stripe_id=second.id)
    assert old_default.is_default and not new_default.is_default

    result = service.payment_method_set_default(method=new_default, acting_user=agent)
    assert result.succeeded, result.message
    old_default.refresh_from_db()
    new_default.refresh_from_db()
    assert (old_default.is_default, new_default.is_default) == (False, True)
    remote = gateway.stripe_customer_retrieve(customer_id=customer.id)
    assert remote.default_payment_method_id == second.id

    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.payment_method_set_default(method=new_default, acting_user=agent)
    assert refused.value.message == service.ERR_ALREADY_DEFAULT

    detached = service.payment_method_detach(
        method=old_default, reason="Customer asked to remove the old card", acting_user=agent
    )
    assert detached.succeeded, detached.message
    old_default.refresh_from_db()
    assert old_default.customer_id is None
    assert gateway.stripe_payment_method_retrieve(payment_method_id=first.id).customer_id == ""
    audits = AdminAction.objects.order_by("pk")
    assert [(a.action, a.target_id, a.actor) for a in audits] == [
        ("payment_method_set_default", str(new_default.pk), agent),
        ("payment_method_detach", str(old_default.pk), agent),
    ]
    assert audits[1].reason == "Customer asked to remove the old card"
    assert audits[1].details["customer"] == customer.id
    # Detached: nothing more to do with it.
    with pytest.raises(service.BillingActionNotAllowed) as gone:
        service.payment_method_detach(method=old_default, reason="again", acting_user=agent)
    assert gone.value.message == service.ERR_DETACHED


def test_a_timeout_is_settled_by_reading_back_and_never_sent_twice(peer, monkeypatch):
    sub, _, _ = mirrored_subscription()
    agent = staff("manage_subscription")
    real = gateway.stripe_subscription_cancel_at_period_end
    sent = []

    def reaches_stripe_then_times_out(**kwargs):
        sent.append(kwargs["idempotency_key"])
        real(**kwargs)
        raise GatewayTimeout()

    monkeypatch.setattr(
        gateway, "stripe_subscription_cancel_at_period_end", reaches_stripe_then_times_out
    )
    first = service.subscription_cancel_at_period_end(
        subscription=sub, reason="Moving abroad", acting_user=agent
    )
    assert not first.succeeded
    assert first.action.status == "unknown"
    sub.refresh_from_db()
    assert not sub.cancel_at_period_end  # no answer: the mirror does not guess

    # A second click at once: refused, nothing sent.
    with pytest.raises(service.BillingActionNotAllowed) as in_flight:
        service.subscription_cancel_at_period_end(
            subscription=sub, reason="Moving abroad", acting_user=agent
        )
    assert "has not answered yet" in in_flight.value.message
    assert len(sent) == 1

    # Later: the next request reads the subscription back, sees the change made, settles the
    # open action, and the rules then refuse a second cancellation.
    BillingAction.objects.filter(pk=first.action.pk).update(
        last_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    with pytest.raises(service.BillingActionNotAllowed) as settled:
        service.subscription_cancel_at_period_end(
            subscription=sub, reason="Moving abroad", acting_user=agent
        )
    assert settled.value.message.startswith("This subscription already ends")
    assert len(sent) == 1
    first.action.refresh_from_db()
    assert first.action.status == "succeeded"
    sub.refresh_from_db()
    assert sub.cancel_at_period_end


def test_an_unanswered_change_that_did_not_happen_is_settled_as_failed(peer, monkeypatch):
    sub, _, _ = mirrored_subscription()
    agent = staff("manage_subscription")

    real = gateway.stripe_subscription_cancel
    attempts = []

    def lost_the_first_time(**kwargs):
        attempts.append(kwargs["idempotency_key"])
        if len(attempts) == 1:
            raise GatewayTimeout()  # the request never reached Stripe
        return real(**kwargs)

    monkeypatch.setattr(gateway, "stripe_subscription_cancel", lost_the_first_time)
    first = service.subscription_cancel_now(subscription=sub, reason="Fraud", acting_user=agent)
    assert first.action.status == "unknown"
    BillingAction.objects.filter(pk=first.action.pk).update(
        last_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    second = service.subscription_cancel_now(subscription=sub, reason="Fraud", acting_user=agent)
    assert second.succeeded
    first.action.refresh_from_db()
    assert (first.action.status, first.action.error) == (
        "failed",
        service.ERR_NO_EFFECT.format(target=f"Subscription {sub.stripe_id}"),
    )
    assert second.action.idempotency_key != first.action.idempotency_key
    sub.refresh_from_db()
    assert sub.status == "canceled"


def test_a_subscription_whose_customer_we_lack_is_refused_with_that_reason(peer, monkeypatch):
    sub, _, _ = mirrored_subscription()
    Subscription.objects.filter(pk=sub.pk).update(customer=None)
    sub.refresh_from_db()
    sent = []
    monkeypatch.setattr(gateway, "stripe_subscription_cancel", lambda **kw: sent.append(kw))
    agent = staff("manage_subscription")
    assert (
        service.subscription_action_refusal(user=agent, subscription=sub, kind="cancel_now")
        == service.ERR_NO_CUSTOMER
    )
    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.subscription_cancel_now(subscription=sub, reason="x", acting_user=agent)
    assert refused.value.message == service.ERR_NO_CUSTOMER
    assert sent == []
    assert not BillingAction.objects.exists()
