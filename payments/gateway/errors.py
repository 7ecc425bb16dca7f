"""What a Stripe error means for us: whether to retry it (`should_retry`) and which of our
errors (payments.exceptions) it becomes (`translate_error`). No caller outside the gateway
ever sees a `stripe.*` exception."""

from __future__ import annotations

from typing import Any

import stripe

from payments.exceptions import (
    AuthenticationFailed,
    CardDeclined,
    GatewayConnectionError,
    GatewayError,
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
    InvalidRequest,
    RateLimited,
    ResourceMissing,
)
from payments.gateway.mappers import _id


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        for key, value in headers.items():
            if key.lower() == name:
                return value
    except AttributeError:
        return None
    return None


def _retry_after(headers: Any) -> float | None:
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def should_retry(error: stripe.StripeError) -> bool:
    """Stripe's own header decides first; else 409 (lock), 429, 5xx and connection errors
    (every mutation carries an idempotency key, so a resend is safe)."""
    header = _header(getattr(error, "headers", None), "stripe-should-retry")
    if header == "true":
        return True
    if header == "false":
        return False
    if isinstance(error, stripe.APIConnectionError):
        return bool(getattr(error, "should_retry", True)) or getattr(error, "maybe_sent", False)
    status = getattr(error, "http_status", None) or 0
    return status in (409, 429) or status >= 500


def translate_error(error: stripe.StripeError) -> GatewayError:
    """A stripe.* exception -> ours (payments.exceptions)."""
    common = {
        "http_status": getattr(error, "http_status", None),
        "request_id": getattr(error, "request_id", None),
    }
    message = getattr(error, "user_message", None) or getattr(error, "_message", None)
    code = getattr(error, "code", None)
    body = getattr(error, "json_body", None) or {}
    detail = body.get("error", {}) if isinstance(body, dict) else {}
    if isinstance(error, stripe.CardError):
        return CardDeclined(
            message,
            code=code or detail.get("code") or "card_declined",
            decline_code=detail.get("decline_code") or "",
            payment_intent_id=_id(detail.get("payment_intent") or {}) or "",
            charge_id=detail.get("charge") or "",
            **common,
        )
    if isinstance(error, stripe.RateLimitError):
        return RateLimited(retry_after=_retry_after(error.headers), stripe_code=code, **common)
    if isinstance(error, stripe.IdempotencyError):
        return IdempotencyConflict(message, stripe_code=code, **common)
    if isinstance(error, stripe.InvalidRequestError):
        cls = ResourceMissing if common["http_status"] == 404 else InvalidRequest
        return cls(message, param=getattr(error, "param", None), stripe_code=code, **common)
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        return AuthenticationFailed(stripe_code=code, **common)
    if isinstance(error, stripe.APIConnectionError):
        if getattr(error, "maybe_sent", True):
            return GatewayTimeout(**common)
        return GatewayConnectionError(**common)
    if common["http_status"] == 429:
        return RateLimited(retry_after=_retry_after(error.headers), stripe_code=code, **common)
    if (common["http_status"] or 0) >= 500:
        return GatewayServerError(stripe_code=code, **common)
    return GatewayError(message, stripe_code=code, **common)
