"""Webhook signature verification: `webhook_event_construct` checks a Stripe-Signature
header against the configured secrets; `webhook_signature_header` builds one (tests, demo)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from payments.exceptions import (
    ERR_PAYLOAD_NOT_JSON,
    ERR_SIGNATURE_MALFORMED,
    ERR_SIGNATURE_MISMATCH,
    ERR_SIGNATURE_MISSING,
    ERR_SIGNATURE_NO_SECRETS,
    ERR_SIGNATURE_STALE,
    WebhookSignatureError,
)


def webhook_event_construct(
    *,
    payload: bytes,
    sig_header: str,
    secrets: list[str],
    tolerance: int,
    now: int | None = None,
) -> dict:
    """Verify a webhook's Stripe-Signature and return the event as a plain dict.

    The header is `t=<unix>,v1=<hex>[,v1=...]`; the signed text is `t.payload`, HMAC-SHA256
    with each secret in `secrets` (several during a rotation). Raises WebhookSignatureError
    when the header is missing or malformed, no v1 signature matches, or `t` is more than
    `tolerance` seconds from now."""
    if not secrets:
        raise WebhookSignatureError(ERR_SIGNATURE_NO_SECRETS)
    if not sig_header:
        raise WebhookSignatureError(ERR_SIGNATURE_MISSING)
    timestamp: int | None = None
    signatures: list[str] = []
    for part in sig_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError(ERR_SIGNATURE_MALFORMED) from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError(ERR_SIGNATURE_MALFORMED)
    signed = str(timestamp).encode() + b"." + payload
    expected = [
        hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for secret in secrets
        if secret
    ]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise WebhookSignatureError(ERR_SIGNATURE_MISMATCH)
    current = int(time.time()) if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(ERR_SIGNATURE_STALE)
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookSignatureError(ERR_PAYLOAD_NOT_JSON) from None
    if not isinstance(event, dict):
        raise WebhookSignatureError(ERR_PAYLOAD_NOT_JSON)
    return event


def webhook_signature_header(*, payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid Stripe-Signature for `payload` (tests, demo tools and the benchmark)."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"
