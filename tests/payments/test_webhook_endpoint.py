"""POST /stripe/webhook/: signature checks, storing each event once, acknowledging fast."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import webhooks
from payments.models import WebhookEvent
from payments.webhooks import ERROR_BAD_SIGNATURE, ERROR_MALFORMED_EVENT, ERROR_NO_SECRETS
from tests.payments.webhook_support import (
    ROTATED_SECRET,
    WEBHOOK_PATH,
    body_of,
    make_event,
    post_event,
    sign,
)

# transaction=True: the endpoint enqueues in on_commit, which a wrapping test transaction
# would never fire.
pytestmark = pytest.mark.django_db(transaction=True)

UNHANDLED = "invoice.finalized"  # a real Stripe type we have no handler for


@pytest.fixture
def handled(monkeypatch):
    """Replace the customer.created handler with a recorder: every call is one effect."""
    calls = []
    monkeypatch.setitem(webhooks.HANDLERS, "customer.created", lambda event: calls.append(event))
    return calls


def test_signed_event_is_stored_acknowledged_and_processed(client, handled):
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    response = post_event(client, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    row = WebhookEvent.objects.get()
    assert row.stripe_id == event["id"]
    assert row.type == "customer.created"
    assert row.object_id == "cus_1"
    assert row.api_version == "2024-06-20"
    assert row.payload == event
    assert int(row.created.timestamp()) == event["created"]
    # Q_CLUSTER sync=True in tests: the task ran inline after commit.
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.attempts == 1
    assert row.processing_ms is not None
    assert [e.stripe_id for e in handled] == [event["id"]]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"Stripe-Signature": "garbage"},  # malformed
        {"Stripe-Signature": "t=123"},  # no v1
    ],
    ids=["missing", "malformed", "no-v1"],
)
def test_missing_or_malformed_signature_is_400_and_nothing_stored(client, handled, headers):
    body = body_of(make_event("customer.created", {"id": "cus_1"}))
    response = client.post(
        WEBHOOK_PATH, data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 400
    assert response.content.decode() == ERROR_BAD_SIGNATURE
    assert not WebhookEvent.objects.exists()
    assert handled == []


def test_wrong_secret_is_400_and_nothing_stored(client, handled):
    response = post_event(
        client, make_event("customer.created", {"id": "cus_1"}), secret="whsec_attacker"
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert handled == []


def test_tampered_body_is_400(client, handled):
    event = make_event("customer.created", {"id": "cus_1"})
    header = sign(body_of(event))
    event["data"]["object"]["id"] = "cus_evil"
    response = client.post(
        WEBHOOK_PATH,
        data=body_of(event),
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("age", [301, -301, 3600])
def test_stale_signature_outside_300s_is_400(client, handled, age):
    response = post_event(
        client,
        make_event("customer.created", {"id": "cus_1"}),
        timestamp=int(time.time()) - age,
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_signature_within_tolerance_is_accepted(client, handled):
    response = post_event(
        client, make_event("customer.created", {"id": "cus_1"}), timestamp=int(time.time()) - 250
    )
    assert response.status_code == 200


def test_rotated_second_secret_is_accepted(client, handled):
    response = post_event(
        client, make_event("customer.created", {"id": "c"}), secret=ROTATED_SECRET
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_no_configured_secret_refuses_everything(client, handled, settings):
    settings.STRIPE_WEBHOOK_SECRETS = []
    response = post_event(client, make_event("customer.created", {"id": "cus_1"}))
    assert response.status_code == 400
    assert response.content.decode() == ERROR_NO_SECRETS
    assert not WebhookEvent.objects.exists()


def test_signed_payload_that_is_not_an_event_is_400(client):
    body = b'{"hello": "world"}'
    response = client.post(
        WEBHOOK_PATH,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )
    assert response.status_code == 400
    assert response.content.decode() == ERROR_MALFORMED_EVENT
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_1", "type": "customer.created", "data": "nonsense", "created": "x"},
        {"id": "evt_2", "type": "customer.created", "data": {"object": [1]}, "created": 1e30},
        {"id": "evt_3", "type": "customer.created"},
    ],
    ids=["data-not-a-dict", "object-not-a-dict", "no-data"],
)
def test_odd_but_signed_events_are_stored_not_500(client, event):
    response = post_event(client, event)
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.object_id == ""
    assert row.payload == event


@pytest.mark.parametrize(
    "event",
    [{"id": "e" * 256, "type": "x.y"}, {"id": 5, "type": "x.y"}, {"id": "evt_1", "type": ""}],
    ids=["id-too-long", "id-not-a-string", "no-type"],
)
def test_signed_events_without_a_usable_id_or_type_are_400(client, event):
    response = post_event(client, event)
    assert response.status_code == 400
    assert response.content.decode() == ERROR_MALFORMED_EVENT
    assert not WebhookEvent.objects.exists()


def test_get_is_405(client):
    assert client.get(WEBHOOK_PATH).status_code == 405


def test_no_csrf_token_needed(handled):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_event(strict, make_event("customer.created", {"id": "c"})).status_code == 200


def test_duplicate_deliveries_store_one_row_and_run_one_effect(client, handled):
    event = make_event("customer.created", {"id": "cus_dup"})
    answers = [post_event(client, event).json()["duplicate"] for _ in range(10)]
    assert answers == [False] + [True] * 9
    assert WebhookEvent.objects.count() == 1
    assert len(handled) == 1


def test_unknown_type_is_stored_and_ignored_not_failed(client):
    response = post_event(client, make_event(UNHANDLED, {"id": "in_1", "object": "invoice"}))
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.IGNORED
    assert row.error == ""


def test_endpoint_does_a_constant_small_number_of_queries(client, settings):
    """Storing is one INSERT (in a savepoint); the enqueue adds the broker's row."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    from django_q.conf import Conf

    previous, Conf.SYNC = Conf.SYNC, False
    try:
        with CaptureQueriesContext(connection) as ctx:
            response = post_event(client, make_event(UNHANDLED, {"id": "in_2"}))
    finally:
        Conf.SYNC = previous
    assert response.status_code == 200
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("INSERT")]
    assert len(writes) == 2, writes  # the event, the queued task
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED
