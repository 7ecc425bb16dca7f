"""Customer balance transactions against the project's localstripe launcher over real HTTP
(scripts/localstripe_customer_balance.py) through the gateway
(payments/gateway/customer_balance.py): Stripe's shape and sign, the customer's balance and
currency, list filters and pages, idempotency keys, the customer.updated event, and a money
adjustment applied exactly once when Stripe's answer is lost on the way back."""

import pytest
import requests

from payments import gateway
from payments.exceptions import GatewayError, IdempotencyConflict, InvalidRequest, ResourceMissing
from payments.models import Customer, CustomerAdjustment
from payments.services.customer_adjustments import (
    customer_adjustment_apply,
    customer_adjustment_approve,
    customer_adjustment_request,
    customer_adjustments_apply_approved,
)
from payments.sync import upsert_customers
from tests.management.stripe_peer import Fault, FaultProxy, setup_peer
from tests.payments.customer_adjustment_support import approver, requester

pytestmark = pytest.mark.stripe


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


@pytest.fixture
def stripe_customer(peer):
    return peer.client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})


def credit(customer_id, amount=-500, currency="usd", key="customer_adjustment:1", **kw):
    return gateway.stripe_customer_balance_transaction_create(
        customer_id=customer_id,
        amount=amount,
        currency=currency,
        description=kw.pop("description", "Goodwill"),
        metadata=kw.pop("metadata", {"customer_adjustment_id": "1"}),
        idempotency_key=key,
        **kw,
    )


def raw(peer, path, **params):
    response = requests.get(
        f"{peer.url}{path}", params=params, auth=("sk_test_localstripe", ""), timeout=5
    )
    return response.status_code, response.json()


def test_a_credit_is_a_negative_amount_and_lowers_the_balance(peer, stripe_customer):
    assert gateway.stripe_customer_retrieve(customer_id=stripe_customer.id).balance == 0
    # Stripe's currency is null until the first transaction sets it (not localstripe's "eur").
    assert gateway.stripe_customer_retrieve(customer_id=stripe_customer.id).currency == ""
    txn = credit(stripe_customer.id, -1250)
    assert txn.id.startswith("cbtxn_")
    assert (txn.customer_id, txn.amount, txn.currency, txn.ending_balance, txn.type) == (
        stripe_customer.id,
        -1250,
        "usd",
        -1250,
        "adjustment",
    )
    assert (txn.description, txn.metadata) == ("Goodwill", {"customer_adjustment_id": "1"})
    debit = credit(stripe_customer.id, 250, key="customer_adjustment:2")
    assert debit.ending_balance == -1000
    customer = gateway.stripe_customer_retrieve(customer_id=stripe_customer.id)
    assert (customer.balance, customer.currency) == (-1000, "usd")
    # The object as Stripe documents it, field for field.
    status, body = raw(peer, f"/v1/customers/{stripe_customer.id}/balance_transactions/{txn.id}")
    assert status == 200
    assert body["object"] == "customer_balance_transaction"
    assert {
        "id",
        "amount",
        "currency",
        "customer",
        "description",
        "ending_balance",
        "metadata",
        "type",
        "created",
        "livemode",
        "invoice",
        "credit_note",
        "checkout_session",
    } <= set(body)


def test_the_customer_currency_is_set_once_and_another_is_refused(peer, stripe_customer):
    credit(stripe_customer.id, -500, "eur")
    with pytest.raises(InvalidRequest) as refused:
        credit(stripe_customer.id, -500, "usd", key="customer_adjustment:2")
    assert refused.value.param == "currency"
    assert gateway.stripe_customer_retrieve(customer_id=stripe_customer.id).balance == -500


def test_refusals_unknown_customer_zero_amount_unknown_transaction(peer, stripe_customer):
    with pytest.raises(ResourceMissing):
        credit("cus_missing")
    zero = requests.post(
        f"{peer.url}/v1/customers/{stripe_customer.id}/balance_transactions",
        data={"amount": "0", "currency": "usd"},
        auth=("sk_test_localstripe", ""),
        timeout=5,
    )
    assert zero.status_code == 400 and zero.json()["error"]["param"] == "amount"
    with pytest.raises(ResourceMissing):
        gateway.stripe_customer_balance_transaction_retrieve(
            customer_id=stripe_customer.id, transaction_id="cbtxn_missing"
        )


def test_the_same_key_answers_the_first_transaction_and_other_parameters_conflict(
    peer, stripe_customer
):
    first = credit(stripe_customer.id, -500)
    again = credit(stripe_customer.id, -500)
    assert again.id == first.id
    assert gateway.stripe_customer_retrieve(customer_id=stripe_customer.id).balance == -500
    with pytest.raises(IdempotencyConflict):
        credit(stripe_customer.id, -900)


def test_list_is_newest_first_per_customer_with_pages_and_filters(peer, stripe_customer):
    other = peer.client.v1.customers.create(params={"email": "bob@example.com"})
    made = [credit(stripe_customer.id, -100 - i, key=f"k{i}") for i in range(5)]
    credit(other.id, -1, key="other")
    listed = gateway.stripe_customer_balance_transaction_list(customer_id=stripe_customer.id)
    assert [t.id for t in listed] == [t.id for t in reversed(made)]
    path = f"/v1/customers/{stripe_customer.id}/balance_transactions"
    status, page = raw(peer, path, limit=2)
    assert status == 200 and page["has_more"] is True and len(page["data"]) == 2
    status, rest = raw(peer, path, limit=10, starting_after=page["data"][-1]["id"])
    assert [t["id"] for t in page["data"] + rest["data"]] == [t.id for t in reversed(made)]
    status, before = raw(peer, path, ending_before=made[0].id)
    assert [t["id"] for t in before["data"]] == [t.id for t in reversed(made[1:])]
    created = made[0].created.timestamp()
    status, future = raw(peer, path, **{"created[gt]": int(created) + 3600})
    assert status == 200 and future["data"] == []


def test_each_transaction_sends_customer_updated_with_the_new_balance(peer, stripe_customer):
    credit(stripe_customer.id, -700)
    events = peer.client.v1.events.list(params={"type": "customer.updated", "limit": 100}).data
    mine = [e for e in events if e.data.object.id == stripe_customer.id]
    assert mine and mine[0].data.object.balance == -700
    assert mine[0].data.previous_attributes["balance"] == 0


def test_the_mirror_reads_the_balance_through_the_customer_upsert(peer, stripe_customer, db):
    credit(stripe_customer.id, -700)
    upsert_customers([gateway.stripe_customer_retrieve(customer_id=stripe_customer.id)])
    mirrored = Customer.objects.get(stripe_id=stripe_customer.id)
    assert (mirrored.stripe_balance, mirrored.stripe_balance_currency) == (-700, "usd")


# --- a money adjustment through the peer ---------------------------------------------------------


@pytest.fixture
def mirrored(stripe_customer, db):
    upsert_customers([gateway.stripe_customer_retrieve(customer_id=stripe_customer.id)])
    return Customer.objects.get(stripe_id=stripe_customer.id)


def test_an_approved_credit_lands_in_stripe_once_with_the_mirror_updated(
    peer, mirrored, django_capture_on_commit_callbacks
):
    adjustment = customer_adjustment_request(
        customer=mirrored,
        direction="credit",
        unit="money",
        amount=1500,
        currency="usd",
        reason="Lesson cancelled by the tutor",
        acting_user=requester(),
    )
    # Approval queues the apply task after commit (django-q runs it inline in the tests).
    with django_capture_on_commit_callbacks(execute=True):
        customer_adjustment_approve(adjustment=adjustment, acting_user=approver(), note="ok")
    adjustment.refresh_from_db()
    assert adjustment.status == CustomerAdjustment.Status.APPLIED
    [txn] = gateway.stripe_customer_balance_transaction_list(customer_id=mirrored.stripe_id)
    assert (txn.id, txn.amount, txn.ending_balance) == (
        adjustment.stripe_balance_transaction_id,
        -1500,
        -1500,
    )
    assert txn.metadata == {"customer_adjustment_id": str(adjustment.pk)}
    assert adjustment.stripe_ending_balance == -1500
    mirrored.refresh_from_db()
    assert (mirrored.stripe_balance, mirrored.stripe_balance_currency) == (-1500, "usd")
    # Applying again does nothing.
    assert customer_adjustment_apply(adjustment_id=adjustment.pk).status == "applied"
    assert (
        len(gateway.stripe_customer_balance_transaction_list(customer_id=mirrored.stripe_id)) == 1
    )


def test_an_answer_lost_after_stripe_acted_is_looked_up_not_resent(
    peer, mirrored, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_MAX_RETRIES = 0  # the lost answer reaches the service
    with FaultProxy(peer.url) as proxy:
        settings.STRIPE_API_BASE = proxy.url
        path = f"/v1/customers/{mirrored.stripe_id}/balance_transactions"
        proxy.add(Fault("POST", path, action="drop_after_forward"))
        adjustment = customer_adjustment_request(
            customer=mirrored,
            direction="debit",
            unit="money",
            amount=400,
            currency="usd",
            reason="Charged twice for a lesson by mistake, taken back",
            acting_user=requester(),
        )
        with django_capture_on_commit_callbacks(execute=True):
            customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
        adjustment.refresh_from_db()
        # Stripe acted but we do not know: the claim is released, the key kept.
        assert adjustment.status == CustomerAdjustment.Status.APPLYING
        assert adjustment.applying_started_at is None and adjustment.attempts == 1
        counts = customer_adjustments_apply_approved()
        assert counts["applied"] == 1 and counts["unknown_outcome"] == 0
        # The resume read the list and found the transaction: one POST in all.
        assert len(proxy.requests_to("POST", path)) == 1
        assert len(proxy.requests_to("GET", path)) == 1
    adjustment.refresh_from_db()
    [txn] = gateway.stripe_customer_balance_transaction_list(customer_id=mirrored.stripe_id)
    assert (adjustment.status, adjustment.stripe_balance_transaction_id, txn.amount) == (
        "applied",
        txn.id,
        400,
    )


def test_stripe_refusing_ends_the_adjustment_failed(
    peer, mirrored, django_capture_on_commit_callbacks
):
    # Another currency than the customer's: Stripe says no (our request check is bypassed
    # here by the customer's currency changing after the request).
    adjustment = customer_adjustment_request(
        customer=mirrored,
        direction="credit",
        unit="money",
        amount=400,
        currency="eur",
        reason="Goodwill",
        acting_user=requester(),
    )
    credit(mirrored.stripe_id, -100, "usd", key="elsewhere")
    with django_capture_on_commit_callbacks(execute=True):
        customer_adjustment_approve(adjustment=adjustment, acting_user=approver())
    adjustment.refresh_from_db()
    assert adjustment.status == CustomerAdjustment.Status.FAILED
    assert adjustment.failure_message
    with pytest.raises(GatewayError):
        credit(mirrored.stripe_id, -100, "eur", key="elsewhere-2")
