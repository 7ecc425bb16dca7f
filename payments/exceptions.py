"""Our errors in place of Stripe's. Only payments/gateway/ raises the gateway ones; every
caller catches these, never `stripe.*` exceptions.

Messages are module constants so that tests and admin messages can use the exact words.
"""

from __future__ import annotations

ERR_CARD_DECLINED = "The card was declined."
ERR_RATE_LIMITED = "Stripe is rate limiting us; try again shortly."
ERR_INVALID_REQUEST = "Stripe rejected the request."
ERR_NOT_FOUND = "Stripe has no such object."
ERR_AUTHENTICATION = "Stripe rejected our API key (check STRIPE_SECRET_KEY)."
ERR_CONNECTION = "Could not reach Stripe; the request was not sent."
ERR_TIMEOUT = (
    "No answer from Stripe; the request may have reached it. Retry with the same "
    "idempotency key, or look the object up, before trying anything new."
)
ERR_IDEMPOTENCY = "This idempotency key was already used with different parameters."
ERR_SERVER = "Stripe had an internal error."
ERR_GATEWAY = "Unexpected answer from Stripe."
ERR_IDEMPOTENCY_KEY_REQUIRED = "A mutating Stripe call needs an idempotency key."

ERR_SIGNATURE_MISSING = "Missing Stripe-Signature header."
ERR_SIGNATURE_MALFORMED = "Malformed Stripe-Signature header."
ERR_SIGNATURE_MISMATCH = "No signature matches any configured webhook secret."
ERR_SIGNATURE_STALE = "Stripe-Signature timestamp is outside the tolerance."
ERR_SIGNATURE_NO_SECRETS = "No webhook secrets are configured (STRIPE_WEBHOOK_SECRETS)."
ERR_PAYLOAD_NOT_JSON = "The webhook payload is not a JSON object."


class GatewayError(Exception):
    """Anything that went wrong talking to Stripe.

    `http_status`, `stripe_code` and `request_id` are kept for logs and run records.
    `retryable` says whether the same call may succeed later unchanged.
    """

    default_message = ERR_GATEWAY
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        http_status: int | None = None,
        stripe_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.http_status = http_status
        self.stripe_code = stripe_code
        self.request_id = request_id
        super().__init__(self.message)


class CardDeclined(GatewayError):
    """The card (or other method) was declined; not retryable with the same method.

    `code` is Stripe's error code (card_declined, expired_card, ...), `decline_code` the
    issuer's reason when Stripe gives one (insufficient_funds, ...).
    """

    default_message = ERR_CARD_DECLINED

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str = "",
        decline_code: str = "",
        payment_intent_id: str = "",
        charge_id: str = "",
        **kwargs,
    ) -> None:
        super().__init__(message, stripe_code=code or None, **kwargs)
        self.code = code or ""
        self.decline_code = decline_code or ""
        self.payment_intent_id = payment_intent_id or ""
        self.charge_id = charge_id or ""


class RateLimited(GatewayError):
    """429 after our retries ran out. `retry_after` is seconds, when Stripe said."""

    default_message = ERR_RATE_LIMITED
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InvalidRequest(GatewayError):
    """Stripe refused the parameters (4xx). `param` names the offending parameter."""

    default_message = ERR_INVALID_REQUEST

    def __init__(self, message: str | None = None, *, param: str | None = None, **kw):
        super().__init__(message, **kw)
        self.param = param


class ResourceMissing(InvalidRequest):
    """404: no such object (deleted, or never existed in this mode)."""

    default_message = ERR_NOT_FOUND


class IdempotencyConflict(InvalidRequest):
    """The idempotency key was reused with other parameters: a bug in the caller."""

    default_message = ERR_IDEMPOTENCY


class AuthenticationFailed(GatewayError):
    """401/403: the key is wrong, revoked, or lacks the permission."""

    default_message = ERR_AUTHENTICATION


class GatewayServerError(GatewayError):
    """5xx from Stripe after our retries ran out."""

    default_message = ERR_SERVER
    retryable = True


class GatewayConnectionError(GatewayError):
    """The request never reached Stripe (DNS, refused connection, connect timeout)."""

    default_message = ERR_CONNECTION
    retryable = True


class GatewayTimeout(GatewayConnectionError):
    """Sent, but no answer: Stripe MAY have acted on it. For a mutation the outcome is
    unknown: retry with the SAME idempotency key (Stripe replays the first answer) or find
    the object by its metadata; never retry with a new key."""

    default_message = ERR_TIMEOUT


class WebhookSignatureError(Exception):
    """A webhook whose Stripe-Signature is missing, malformed, stale or wrong: answer 400
    and trust nothing in it."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
