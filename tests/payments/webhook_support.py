"""Helpers for the webhook tests: Stripe-shaped events signed with the real scheme
(`Stripe-Signature: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")`)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time

PRIMARY_SECRET = "whsec_test_primary"  # backoffice.settings.test
ROTATED_SECRET = "whsec_test_rotated"
WEBHOOK_PATH = "/stripe/webhook/"

_counter = itertools.count(1)


def sign(body: bytes, secret: str = PRIMARY_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def make_event(
    event_type: str,
    data_object: dict,
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict:
    return {
        "id": event_id or f"evt_test{next(_counter):08d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "type": event_type,
        "data": {"object": data_object},
    }


def body_of(event: dict) -> bytes:
    return json.dumps(event).encode()


def post_event(client, event: dict, *, secret: str = PRIMARY_SECRET, timestamp=None):
    """POST through Django's test client (the endpoint as Stripe calls it)."""
    body = body_of(event)
    return client.post(
        WEBHOOK_PATH,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body, secret, timestamp)},
    )


def post_http(base_url: str, event: dict, *, secret: str = PRIMARY_SECRET):
    """POST over real HTTP (e.g. to pytest-django's live_server), as Stripe delivers."""
    import requests

    body = body_of(event)
    return requests.post(
        f"{base_url}{WEBHOOK_PATH}",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, secret)},
        timeout=30,
    )
