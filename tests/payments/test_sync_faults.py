"""Faults at the HTTP boundary, against localstripe.

How faults are injected: tests.management.stripe_peer.FaultProxy is a real HTTP server on
127.0.0.1 between our gateway (STRIPE_API_BASE points at the proxy) and localstripe. It
forwards requests, or answers 429 / 500 instead, or forwards and then drops the connection
(Stripe acted, the answer is lost), or answers after our client timed out. It also plays
Stripe's idempotency layer, which localstripe lacks: a POST with a key it has seen gets the
first answer replayed. Backoff sleeps are recorded, not slept.
"""

import pytest

from payments import gateway
from payments.exceptions import GatewayServerError, GatewayTimeout
from payments.models import Payment, SyncObjectType, SyncRun, SyncState
from payments.sync_runs import stripe_sync
from tests.management.stripe_peer import Fault, FaultProxy, make_customer, setup_peer

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

N_PAYMENTS = 230  # three pages of payment intents


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


@pytest.fixture
def many_payments(peer):
    customer, card = make_customer(peer.client, email="many@example.com")
    ids = []
    for i in range(N_PAYMENTS):
        intent = peer.client.v1.payment_intents.create(
            params={
                "amount": 1000 + i,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": card.id,
                "confirm": True,
            }
        )
        ids.append(intent.id)
    return ids


@pytest.fixture
def proxy(peer, settings):
    with FaultProxy(peer.url) as running:
        settings.STRIPE_API_BASE = running.url
        yield running


def intent_pages(proxy):
    return proxy.requests_to("GET", "/v1/payment_intents")


def test_429_mid_sync_is_retried_after_retry_after_and_nothing_is_lost(peer, many_payments, proxy):
    # The second page of payment intents is rate limited twice, then served.
    proxy.add(
        Fault(
            "GET", "/v1/payment_intents", status=429, after=1, times=2, headers={"Retry-After": "3"}
        )
    )
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    ids = set(Payment.objects.values_list("stripe_payment_intent_id", flat=True))
    assert ids == set(many_payments)
    assert report.counts["payment_intent"]["created"] == N_PAYMENTS
    assert report.api_retries == 2
    # Retry-After is a floor for the backoff.
    assert len(peer.sleeps) == 2 and all(s >= 3 for s in peer.sleeps)
    answered = [s.answered for s in intent_pages(proxy)]
    assert answered == [200, 429, 429, 200, 200]
    # The retried request asks for the same page (same cursor) as the rate-limited one.
    assert intent_pages(proxy)[1].query == intent_pages(proxy)[3].query


def test_500_past_the_retries_fails_the_run_and_the_next_run_resumes_after_the_last_page(
    peer, many_payments, proxy, settings
):
    settings.STRIPE_MAX_RETRIES = 2
    # Page 1 is served; page 2 fails for good (3 tries).
    proxy.add(Fault("GET", "/v1/payment_intents", status=500, after=1, times=3))
    report = stripe_sync()
    assert report.status == "failed"
    assert report.error.startswith("GatewayServerError")
    run = SyncRun.objects.get(pk=report.run_id)
    assert (run.status, run.counts["payment_intent"]["created"]) == ("failed", 100)
    assert Payment.objects.count() == 100
    state = SyncState.objects.get(object_type=SyncObjectType.PAYMENT_INTENT)
    first_page_last_id = intent_pages(proxy)[0].query.get("starting_after")
    assert first_page_last_id is None  # the first page starts at the beginning
    assert state.cursor and state.watermark is None  # mid-pass: watermark not advanced

    calls_before = len(intent_pages(proxy))
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    resumed = intent_pages(proxy)[calls_before]
    assert resumed.query["starting_after"] == [state.cursor]  # resumed after page 1
    assert len(intent_pages(proxy)) - calls_before == 2  # pages 2 and 3 only
    ids = list(Payment.objects.values_list("stripe_payment_intent_id", flat=True))
    assert len(ids) == len(set(ids)) == N_PAYMENTS
    assert set(ids) == set(many_payments)
    state.refresh_from_db()
    assert state.cursor == "" and state.watermark is not None


def test_refund_timeout_after_stripe_accepted_is_retried_with_the_same_key(peer, proxy):
    customer, card = make_customer(peer.client, email="t@example.com")
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card.id,
            "confirm": True,
        }
    )
    # localstripe creates the refund; the answer is lost on the way back.
    proxy.add(Fault("POST", "/v1/refunds", action="drop_after_forward", times=1))
    refund = gateway.stripe_refund_create(
        payment_intent_id=intent.id,
        amount=1500,
        idempotency_key="refund-request:42",
        metadata={"refund_request": 42},
    )
    posts = proxy.requests_to("POST", "/v1/refunds")
    assert [p.idempotency_key for p in posts] == ["refund-request:42", "refund-request:42"]
    assert [p.answered for p in posts] == ["dropped", "replayed 200"]
    at_stripe = peer.client.v1.refunds.list(params={"limit": 100}).data
    assert [r.id for r in at_stripe] == [refund.id]  # exactly one refund, the one we got
    assert refund.amount == 1500 and refund.metadata == {"refund_request": "42"}


def test_read_timeout_on_every_try_raises_gateway_timeout_and_the_refund_is_findable(
    peer, proxy, settings
):
    settings.STRIPE_TIMEOUT_SECONDS = 0.3
    settings.STRIPE_MAX_RETRIES = 1
    proxy.late_seconds = 0.8
    customer, card = make_customer(peer.client, email="late@example.com")
    intent = peer.client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card.id,
            "confirm": True,
        }
    )
    proxy.add(Fault("POST", "/v1/refunds", action="late_after_forward", times=None))
    with pytest.raises(GatewayTimeout):
        gateway.stripe_refund_create(
            payment_intent_id=intent.id,
            amount=700,
            idempotency_key="refund-request:7",
            metadata={"refund_request": "7"},
        )
    keys = [p.idempotency_key for p in proxy.requests_to("POST", "/v1/refunds")]
    assert keys == ["refund-request:7", "refund-request:7"]
    # The outcome is unknown to the caller, but the refund can be found by its metadata.
    found = [
        r
        for r in gateway.stripe_refund_list(payment_intent_id=intent.id)
        if r.metadata.get("refund_request") == "7"
    ]
    assert len(found) == 1 and found[0].amount == 700


def test_persistent_500_on_a_mutation_raises_server_error_with_one_key(peer, proxy, settings):
    settings.STRIPE_MAX_RETRIES = 2
    proxy.add(Fault("POST", "/v1/refunds", status=500, times=None))
    with pytest.raises(GatewayServerError):
        gateway.stripe_refund_create(
            payment_intent_id="pi_whatever", amount=100, idempotency_key="refund-request:9"
        )
    keys = {p.idempotency_key for p in proxy.requests_to("POST", "/v1/refunds")}
    assert keys == {"refund-request:9"}
    assert len(proxy.requests_to("POST", "/v1/refunds")) == 3
