"""Webhook signature verification, with the Stripe SDK's own verifier.

`webhook_event_construct` checks a Stripe-Signature header against the configured webhook
secrets ONE AT A TIME with `stripe.WebhookSignature.verify_header` (during a rotation the
settings hold the old and the new secret, and Stripe signs with either), then applies our
timestamp tolerance, then parses the payload. No HMAC is computed here.
`webhook_signature_header` builds a header the way Stripe does (tests, demo, benchmark).
"""

from __future__ import annotations

import json
import time

import stripe

from payments.exceptions import (
    ERR_PAYLOAD_NOT_JSON,
    ERR_SIGNATURE_MALFORMED,
    ERR_SIGNATURE_MISMATCH,
    ERR_SIGNATURE_MISSING,
    ERR_SIGNATURE_NO_SECRETS,
    ERR_SIGNATURE_STALE,
    WebhookSignatureError,
)

# The only signature scheme Stripe uses for webhook endpoints ("v1" = HMAC-SHA256).
SIGNATURE_SCHEME = stripe.WebhookSignature.EXPECTED_SCHEME


def webhook_event_construct(
    *,
    payload: bytes,
    sig_header: str,
    secrets: list[str],
    tolerance: int,
    now: int | None = None,
) -> dict:
    """Verify a webhook's Stripe-Signature and return the event as a plain dict.

    The header is `t=<unix>,v1=<hex>[,v1=...]`; it verifies when the SDK's verifier accepts
    it with any one of `secrets` (blank secrets verify nothing). Raises
    WebhookSignatureError (payments.exceptions) when no secret is configured, the header is
    missing or malformed, no secret verifies it, `t` is more than `tolerance` seconds away
    from `now` (unix seconds; default: the clock) in either direction, or the payload is not
    a JSON object."""
    if not secrets:
        raise WebhookSignatureError(ERR_SIGNATURE_NO_SECRETS)
    if not sig_header:
        raise WebhookSignatureError(ERR_SIGNATURE_MISSING)
    timestamp = _signed_timestamp(sig_header)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        # Stripe signs UTF-8 JSON; the SDK's verifier cannot even read anything else.
        raise WebhookSignatureError(ERR_PAYLOAD_NOT_JSON) from None
    if not any(_verifies(text, sig_header, secret) for secret in secrets):
        raise WebhookSignatureError(ERR_SIGNATURE_MISMATCH)
    # Checked after the signature (an unsigned timestamp proves nothing), and here rather
    # than by the SDK: ours also refuses timestamps from the future and takes `now`.
    current = int(time.time()) if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(ERR_SIGNATURE_STALE)
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookSignatureError(ERR_PAYLOAD_NOT_JSON) from None
    if not isinstance(event, dict):
        raise WebhookSignatureError(ERR_PAYLOAD_NOT_JSON)
    return event


def _verifies(payload: str, sig_header: str, secret: str) -> bool:
    """Whether the SDK's verifier accepts the header for `payload` with this one secret
    (any of its v1 signatures). Tolerance is ours (see above), so the SDK gets none."""
    if not secret or not secret.strip():
        return False  # the SDK refuses a blank secret too; it can never verify
    try:
        stripe.WebhookSignature.verify_header(payload, sig_header, secret, tolerance=None)
    except stripe.SignatureVerificationError:
        return False
    return True


def _signed_timestamp(sig_header: str) -> int:
    """The header's `t`, read as the SDK reads it (the first `t=`), so the tolerance applies
    to the timestamp that was verified. Raises WebhookSignatureError when there is no
    integer `t` or no v1 signature."""
    pairs = [part.split("=", 2) for part in sig_header.split(",")]
    try:
        timestamp = int(next(pair[1] for pair in pairs if pair[0] == "t"))
    except (StopIteration, IndexError, ValueError):
        raise WebhookSignatureError(ERR_SIGNATURE_MALFORMED) from None
    if not any(pair[0] == SIGNATURE_SCHEME for pair in pairs):
        raise WebhookSignatureError(ERR_SIGNATURE_MALFORMED)
    return timestamp


def webhook_signature_header(*, payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid Stripe-Signature for `payload`, built by the SDK as Stripe builds it
    (`t=<timestamp>,v1=<hex>`; default timestamp: now). For tests, demo tools and the
    benchmark."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp=timestamp
    )
