"""The one module that talks to Stripe (ruff TID251 bans `import stripe` elsewhere).

- A `StripeClient` is built per call from settings (never at import): key, API base (empty =
  Stripe itself), a pinned API version, a process-wide token bucket (STRIPE_MAX_REQUESTS_PER_
  SECOND) and our own retries with jittered exponential backoff that honour Stripe's
  `Stripe-Should-Retry` and `Retry-After` headers.
- Functions are named `stripe_<object>_<verb>`, take keyword-only arguments, return frozen
  dataclasses with amounts in integer minor units, and raise payments.exceptions errors only.
- Every mutating call requires an idempotency key derived by the caller from its own row;
  retries reuse that key, so a timeout after Stripe accepted a request can never turn into a
  second charge or refund.
- The `*_from_stripe` mappers turn a Stripe object or a plain dict (a webhook's
  `data.object`) into the same dataclasses, tolerating missing fields; the sync and the
  webhook handlers both go through them.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import random as _random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import requests
import stripe
from django.conf import settings

from payments.exceptions import (
    ERR_IDEMPOTENCY_KEY_REQUIRED,
    ERR_PAYLOAD_NOT_JSON,
    ERR_SIGNATURE_MALFORMED,
    ERR_SIGNATURE_MISMATCH,
    ERR_SIGNATURE_MISSING,
    ERR_SIGNATURE_NO_SECRETS,
    ERR_SIGNATURE_STALE,
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
    WebhookSignatureError,
)

# Stripe's list maximum; one call fetches one page of this many objects.
PAGE_SIZE = 100
# Expanded in the payment intent list call, so fees and card details arrive with the page
# (no retrieve per object). Stripe allows up to 4 levels.
PAYMENT_INTENT_EXPAND = ["data.latest_charge.balance_transaction", "data.payment_method"]

# Injection points for tests: no test really sleeps.
sleep: Callable[[float], None] = time.sleep
monotonic: Callable[[], float] = time.monotonic


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What a client needs, read from settings at call time."""

    api_key: str
    api_base: str
    api_version: str
    max_requests_per_second: float
    max_retries: int
    timeout_seconds: float
    # The peer is localstripe (tests, demo): it rejects `created` filters on most lists and
    # lists payment methods one type at a time. Production code paths stay Stripe's.
    localstripe_compat: bool

    @classmethod
    def from_settings(cls) -> GatewayConfig:
        return cls(
            api_key=settings.STRIPE_SECRET_KEY,
            api_base=(settings.STRIPE_API_BASE or "").rstrip("/"),
            api_version=settings.STRIPE_API_VERSION,
            max_requests_per_second=float(settings.STRIPE_MAX_REQUESTS_PER_SECOND or 20),
            max_retries=int(settings.STRIPE_MAX_RETRIES),
            timeout_seconds=float(settings.STRIPE_TIMEOUT_SECONDS),
            localstripe_compat=bool(settings.STRIPE_LOCALSTRIPE_COMPAT),
        )


# --- rate limiting ----------------------------------------------------------------------------


class TokenBucket:
    """Client-side limiter: at most `rate` requests per second on average, bursts up to
    `capacity`. Thread-safe; one per process and rate (Stripe's limit is per account, so
    every thread of a process shares it)."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleeper: Callable[[float], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._clock = clock
        self._sleep = sleeper
        self._tokens = self.capacity
        self._updated: float | None = None
        self._lock = threading.Lock()

    def _now(self) -> float:
        return (self._clock or monotonic)()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available. Returns seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._now()
                if self._updated is None:
                    self._updated = now
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                # The epsilon absorbs float error: a wait of (1 - 0.9999999) / rate would add
                # nothing to a large clock value and loop for ever.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                delay = (1 - self._tokens) / self.rate
            (self._sleep or sleep)(delay)
            waited += delay


_buckets: dict[float, TokenBucket] = {}
_buckets_lock = threading.Lock()


def _bucket_for(rate: float) -> TokenBucket:
    with _buckets_lock:
        bucket = _buckets.get(rate)
        if bucket is None:
            bucket = _buckets[rate] = TokenBucket(rate)
        return bucket


# --- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered exponential backoff: attempt n waits base * 2**n, capped, times a random
    factor in [0.5, 1); a Retry-After from Stripe is a floor (capped at max_retry_after)."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None = None, rand: float) -> float:
        backoff = min(self.max_delay, self.base_delay * (2**attempt)) * (0.5 + rand / 2)
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff


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


# --- the HTTP client: shared connections, and "was it sent?" ----------------------------------


class _HttpClient(stripe.RequestsClient):
    """requests-based client that tells apart failures before the request left (safe to
    resend) from those after (Stripe may have acted): `error.maybe_sent`."""

    def _handle_request_error(self, e: Exception):  # type: ignore[override]
        maybe_sent = not _never_sent(e)
        try:
            super()._handle_request_error(e)
        except stripe.APIConnectionError as err:
            err.maybe_sent = maybe_sent  # type: ignore[attr-defined]
            raise


def _never_sent(e: Exception) -> bool:
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(e, requests.exceptions.ReadTimeout):
        return False
    if isinstance(e, requests.exceptions.ConnectionError):
        text = repr(e)
        return "NewConnectionError" in text or "NameResolutionError" in text
    return False


_http_clients: dict[float, _HttpClient] = {}
_http_lock = threading.Lock()


def _http_client_for(timeout: float) -> _HttpClient:
    # One per process and timeout: keeps connections alive across calls (the SDK keeps one
    # requests.Session per thread inside it).
    with _http_lock:
        client = _http_clients.get(timeout)
        if client is None:
            client = _http_clients[timeout] = _HttpClient(timeout=timeout)
        return client


# --- counting calls (for run records and benchmarks) ------------------------------------------


@dataclass
class CallCounter:
    calls: int = 0
    retries: int = 0
    waited_seconds: float = 0.0


_counter: contextvars.ContextVar[CallCounter | None] = contextvars.ContextVar(
    "stripe_call_counter", default=None
)


@contextmanager
def count_api_calls() -> Iterator[CallCounter]:
    """Counts HTTP requests (retries included) made to Stripe inside the block."""
    counter = CallCounter()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)


# --- the client -------------------------------------------------------------------------------


class StripeClient:
    """A Stripe SDK client plus our rate limit, retries and error translation.

    Build it per call with `StripeClient.from_settings()`; it is cheap (HTTP connections and
    the token bucket are shared per process)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        retry_policy: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.retry_policy = retry_policy or RetryPolicy(max_retries=config.max_retries)
        self.bucket = bucket or _bucket_for(config.max_requests_per_second)
        self._rand = rand or _random.random
        base = {"api": config.api_base} if config.api_base else None
        self.sdk = stripe.StripeClient(
            config.api_key,
            stripe_version=config.api_version,
            base_addresses=base,
            # Our loop retries (it honours Retry-After, the SDK's does not); never both.
            max_network_retries=0,
            http_client=_http_client_for(config.timeout_seconds),
        )

    @classmethod
    def from_settings(cls) -> StripeClient:
        return cls(GatewayConfig.from_settings())

    def call[R](
        self,
        fn: Callable[[stripe.StripeClient, dict], R],
        *,
        idempotency_key: str | None = None,
        mutating: bool = False,
    ) -> R:
        """Run `fn(sdk, options)` with rate limiting and retries; raise our errors.

        A mutation must pass `idempotency_key`; every retry resends the same key."""
        if mutating and not idempotency_key:
            raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
        options: dict[str, Any] = {}
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        attempt = 0
        counter = _counter.get()
        while True:
            waited = self.bucket.acquire()
            if counter is not None:
                counter.calls += 1
                counter.waited_seconds += waited
            try:
                return fn(self.sdk, options)
            except stripe.StripeError as error:
                if attempt >= self.retry_policy.max_retries or not should_retry(error):
                    raise translate_error(error) from error
                delay = self.retry_policy.delay(
                    attempt,
                    retry_after=_retry_after(getattr(error, "headers", None)),
                    rand=self._rand(),
                )
                attempt += 1
                if counter is not None:
                    counter.retries += 1
                    counter.waited_seconds += delay
                sleep(delay)


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


# --- dataclasses (minor units, aware datetimes) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeCustomer:
    id: str
    email: str
    name: str
    livemode: bool
    created: datetime
    default_payment_method_id: str = ""
    deleted: bool = False
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripePaymentMethod:
    id: str
    customer_id: str
    type: str
    card_brand: str
    card_last4: str
    card_exp_month: int | None
    card_exp_year: int | None
    livemode: bool
    created: datetime
    billing_details: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripePaymentIntent:
    """A PaymentIntent and its latest charge. Amounts in minor units of `currency`;
    `stripe_fee`/`balance_net` come from the charge's balance transaction, converted to
    `currency` when Stripe settled in another currency (None: not known yet)."""

    id: str
    amount: int
    currency: str
    status: str
    created: datetime
    livemode: bool = False
    customer_id: str = ""
    payment_method_id: str = ""
    payment_method_type: str = ""
    latest_charge_id: str = ""
    charge_status: str = ""
    charge_created: datetime | None = None
    charge_disputed: bool = False
    failure_code: str = ""
    decline_code: str = ""
    failure_message: str = ""
    stripe_fee: int | None = None
    balance_net: int | None = None
    amount_received: int = 0
    amount_refunded: int = 0
    canceled_at: datetime | None = None
    description: str = ""
    metadata: dict = field(default_factory=dict)
    billing_details: dict = field(default_factory=dict)
    # The expanded payment method, when the list/retrieve call expanded it.
    payment_method: StripePaymentMethod | None = None


@dataclass(frozen=True, slots=True)
class StripeRefund:
    id: str
    payment_intent_id: str
    charge_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str = ""
    failure_reason: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripeDispute:
    id: str
    charge_id: str
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str = ""
    evidence_due_by: datetime | None = None


# --- mappers: Stripe object or plain dict -> dataclass ----------------------------------------


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        value = obj.get(key, default)
    else:
        try:
            value = obj[key]  # StripeObject: item access does not clash with methods
        except (KeyError, TypeError, AttributeError):
            value = getattr(obj, key, default)
    return default if value is None else value


def _id(value: Any) -> str:
    """An id from an expandable field: the string itself, or the expanded object's id."""
    if not value:
        return ""
    if isinstance(value, str):
        return value
    return str(_get(value, "id", "") or "")


def _plain(value: Any) -> Any:
    """StripeObject / nested lists -> plain JSON-able Python."""
    if value is None:
        return None
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), tz=UTC)


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def customer_from_stripe(obj: Any) -> StripeCustomer:
    invoice_settings = _get(obj, "invoice_settings")
    return StripeCustomer(
        id=_str(_get(obj, "id")),
        email=_str(_get(obj, "email")).strip().lower(),
        name=_str(_get(obj, "name")),
        livemode=bool(_get(obj, "livemode", False)),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        default_payment_method_id=_id(_get(invoice_settings, "default_payment_method")),
        deleted=bool(_get(obj, "deleted", False)),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


def payment_method_from_stripe(obj: Any) -> StripePaymentMethod:
    card = _get(obj, "card")
    exp_month = _get(card, "exp_month")
    exp_year = _get(card, "exp_year")
    return StripePaymentMethod(
        id=_str(_get(obj, "id")),
        customer_id=_id(_get(obj, "customer")),
        type=_str(_get(obj, "type")) or "card",
        card_brand=_str(_get(card, "brand")),
        card_last4=_str(_get(card, "last4")),
        card_exp_month=int(exp_month) if exp_month else None,
        card_exp_year=int(exp_year) if exp_year else None,
        livemode=bool(_get(obj, "livemode", False)),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        billing_details=_plain(_get(obj, "billing_details")) or {},
    )


def _fee_in(currency: str, balance_transaction: Any, key: str) -> int | None:
    """fee/net of a balance transaction in the payment's currency (minor units)."""
    if not balance_transaction or isinstance(balance_transaction, str):
        return None
    value = _get(balance_transaction, key)
    if value is None:
        return None
    bt_currency = _str(_get(balance_transaction, "currency")).lower()
    if not bt_currency or bt_currency == currency:
        return int(value)
    rate = _get(balance_transaction, "exchange_rate")
    if not rate:
        return None
    # Settled in another currency: exchange_rate converts charge -> settlement currency.
    converted = (Decimal(int(value)) / Decimal(str(rate))).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(converted)


def _amount_received(obj: Any, charge: Any) -> int:
    if _get(obj, "amount_received") is not None:
        return _int(_get(obj, "amount_received"))
    if _get(charge, "amount_captured") is not None:
        return _int(_get(charge, "amount_captured"))
    # Peers that omit both (localstripe): a captured, succeeded charge received its amount.
    if _get(charge, "captured") and _get(charge, "status") == "succeeded":
        return _int(_get(charge, "amount"))
    return 0


def payment_intent_from_stripe(obj: Any) -> StripePaymentIntent:
    currency = _str(_get(obj, "currency")).lower()
    charge = _get(obj, "latest_charge")
    if isinstance(charge, str) or charge is None:
        charge_id, charge = _id(charge), None
    else:
        charge_id = _id(charge)
    error = _get(obj, "last_payment_error")
    outcome = _get(charge, "outcome")
    details = _get(charge, "payment_method_details")
    pm = _get(obj, "payment_method")
    pm_obj = None if isinstance(pm, str) or not pm else payment_method_from_stripe(pm)
    pm_type = _str(_get(details, "type")) or (pm_obj.type if pm_obj else "")
    if not pm_type:
        pm_type = _str((_get(obj, "payment_method_types") or [""])[0])
    bt = _get(charge, "balance_transaction")
    failure_code = _str(_get(error, "code")) or _str(_get(charge, "failure_code"))
    decline_code = _str(_get(error, "decline_code")) or _str(_get(outcome, "reason"))
    if not failure_code:
        decline_code = ""
    return StripePaymentIntent(
        id=_str(_get(obj, "id")),
        amount=_int(_get(obj, "amount")),
        currency=currency,
        status=_str(_get(obj, "status")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        livemode=bool(_get(obj, "livemode", False)),
        customer_id=_id(_get(obj, "customer")),
        payment_method_id=_id(pm) or _id(_get(charge, "payment_method")),
        payment_method_type=pm_type,
        latest_charge_id=charge_id,
        charge_status=_str(_get(charge, "status")),
        charge_created=_ts(_get(charge, "created")),
        charge_disputed=bool(_get(charge, "disputed", False)),
        failure_code=failure_code,
        decline_code=decline_code,
        failure_message=_str(_get(error, "message")) or _str(_get(charge, "failure_message")),
        stripe_fee=_fee_in(currency, bt, "fee"),
        balance_net=_fee_in(currency, bt, "net"),
        amount_received=_amount_received(obj, charge),
        amount_refunded=_int(_get(charge, "amount_refunded")),
        canceled_at=_ts(_get(obj, "canceled_at")),
        description=_str(_get(obj, "description")),
        metadata=_plain(_get(obj, "metadata")) or {},
        billing_details=_plain(_get(charge, "billing_details"))
        or (pm_obj.billing_details if pm_obj else {}),
        payment_method=pm_obj,
    )


def refund_from_stripe(obj: Any) -> StripeRefund:
    return StripeRefund(
        id=_str(_get(obj, "id")),
        payment_intent_id=_id(_get(obj, "payment_intent")),
        charge_id=_id(_get(obj, "charge")),
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        status=_str(_get(obj, "status")) or "pending",
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        reason=_str(_get(obj, "reason")),
        failure_reason=_str(_get(obj, "failure_reason")),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


def dispute_from_stripe(obj: Any) -> StripeDispute:
    charge = _get(obj, "charge")
    evidence = _get(obj, "evidence_details")
    return StripeDispute(
        id=_str(_get(obj, "id")),
        charge_id=_id(charge),
        payment_intent_id=_id(_get(obj, "payment_intent")) or _id(_get(charge, "payment_intent")),
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        status=_str(_get(obj, "status")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        reason=_str(_get(obj, "reason")),
        evidence_due_by=_ts(_get(evidence, "due_by")),
    )


# --- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page[T]:
    """One list call's worth: mapped items, whether more exist, and the cursor to resume
    after this page (the last raw object's id, also when the mapped list is filtered)."""

    items: list[T]
    has_more: bool
    last_id: str


def _list_pages[T](
    fetch: Callable[[stripe.StripeClient, dict, dict], Any],
    mapper: Callable[[Any], T],
    *,
    params: dict,
    created_gt: datetime | None,
    starting_after: str | None,
    client: StripeClient,
    server_filters_created: bool,
) -> Iterator[Page[T]]:
    cursor = starting_after
    gt = int(created_gt.timestamp()) if created_gt else None
    while True:
        call_params = {**params, "limit": PAGE_SIZE}
        if gt is not None and server_filters_created:
            # `gt`, not `gte`: localstripe answers 500 to gte; the overlap is the caller's.
            call_params["created"] = {"gt": gt}
        if cursor:
            call_params["starting_after"] = cursor

        def run(sdk, options, call_params=call_params):
            return fetch(sdk, call_params, options)

        result = client.call(run)
        raw = list(_get(result, "data", []) or [])
        items = [
            mapper(obj)
            for obj in raw
            if gt is None or server_filters_created or _int(_get(obj, "created")) > gt
        ]
        has_more = bool(_get(result, "has_more", False)) and bool(raw)
        cursor = _id(raw[-1]) if raw else cursor
        yield Page(items=items, has_more=has_more, last_id=cursor or "")
        if not has_more:
            return


def stripe_customer_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeCustomer]]:
    """Pages (100 each, newest first) of customers created after `created_gt`, resuming
    after the object id `starting_after`. One API call per page. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.customers.list(params=params, options=options),
        customer_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_payment_method_list_for_customer(
    *, customer_id: str, client: StripeClient | None = None
) -> list[StripePaymentMethod]:
    """Every payment method attached to `customer_id` (Stripe lists them per customer and
    without a `created` filter). ceil(n/100) calls. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {}
    if client.config.localstripe_compat:
        params["type"] = "card"  # localstripe lists one type at a time, cards only

    def fetch(sdk, call_params, options):
        return sdk.v1.customers.payment_methods.list(
            customer_id, params=call_params, options=options
        )

    methods: list[StripePaymentMethod] = []
    for page in _list_pages(
        fetch if not client.config.localstripe_compat else _pm_list_localstripe(customer_id),
        payment_method_from_stripe,
        params=params,
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        methods.extend(page.items)
    return methods


def _pm_list_localstripe(customer_id: str):
    # localstripe serves GET /v1/payment_methods?customer=...&type=card, not the customer path.
    def fetch(sdk, call_params, options):
        return sdk.v1.payment_methods.list(
            params={**call_params, "customer": customer_id}, options=options
        )

    return fetch


def stripe_payment_intent_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripePaymentIntent]]:
    """Pages (100 each) of payment intents created after `created_gt`, each with its latest
    charge, the charge's balance transaction (fee, net) and the payment method expanded in
    the list call itself: one API call per page, no retrieve per object. Raises
    GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.payment_intents.list(params=params, options=options),
        payment_intent_from_stripe,
        params={"expand": PAYMENT_INTENT_EXPAND},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_refund_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeRefund]]:
    """Pages (100 each) of refunds created after `created_gt`. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.refunds.list(params=params, options=options),
        refund_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_dispute_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeDispute]]:
    """Pages (100 each) of disputes created after `created_gt`. localstripe has no
    disputes: in compat mode this yields one empty page without a call. Raises
    GatewayError."""
    client = client or StripeClient.from_settings()
    if client.config.localstripe_compat:
        return iter([Page(items=[], has_more=False, last_id="")])
    return _list_pages(
        lambda sdk, params, options: sdk.v1.disputes.list(params=params, options=options),
        dispute_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=True,
    )


def stripe_refund_list(
    *, payment_intent_id: str, client: StripeClient | None = None
) -> list[StripeRefund]:
    """Every refund of one payment intent, newest first (amounts in minor units). Used to
    find a refund by its metadata after an ambiguous timeout. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    refunds: list[StripeRefund] = []
    for page in _list_pages(
        lambda sdk, params, options: sdk.v1.refunds.list(params=params, options=options),
        refund_from_stripe,
        params={"payment_intent": payment_intent_id},
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        refunds.extend(page.items)
    return refunds


# --- retrieving (webhook handlers re-read the object) -----------------------------------------


def stripe_payment_intent_retrieve(
    *, payment_intent_id: str, client: StripeClient | None = None
) -> StripePaymentIntent:
    """The current payment intent with latest charge, balance transaction and payment
    method expanded. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    expand = [path.removeprefix("data.") for path in PAYMENT_INTENT_EXPAND]
    return payment_intent_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.retrieve(
                payment_intent_id, params={"expand": expand}, options=options
            )
        )
    )


def stripe_customer_retrieve(
    *, customer_id: str, client: StripeClient | None = None
) -> StripeCustomer:
    """The current customer (`deleted=True` for a deleted one). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return customer_from_stripe(
        client.call(lambda sdk, options: sdk.v1.customers.retrieve(customer_id, options=options))
    )


def stripe_refund_retrieve(*, refund_id: str, client: StripeClient | None = None) -> StripeRefund:
    """The current refund. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return refund_from_stripe(
        client.call(lambda sdk, options: sdk.v1.refunds.retrieve(refund_id, options=options))
    )


def stripe_payment_method_retrieve(
    *, payment_method_id: str, client: StripeClient | None = None
) -> StripePaymentMethod:
    """The current payment method (customer_id "" once detached). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return payment_method_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_methods.retrieve(payment_method_id, options=options)
        )
    )


def stripe_dispute_retrieve(
    *, dispute_id: str, client: StripeClient | None = None
) -> StripeDispute:
    """The current dispute. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return dispute_from_stripe(
        client.call(lambda sdk, options: sdk.v1.disputes.retrieve(dispute_id, options=options))
    )


# --- mutations (idempotency key required) -----------------------------------------------------


def stripe_payment_intent_confirm(
    *,
    payment_intent_id: str,
    payment_method_id: str,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePaymentIntent:
    """Confirm `payment_intent_id` again with `payment_method_id` (retry a failed payment).

    Raises CardDeclined (with code/decline_code) when the card is declined, GatewayTimeout
    when the outcome is unknown (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "payment_method": payment_method_id,
        "expand": ["latest_charge.balance_transaction", "payment_method"],
    }
    if client.config.localstripe_compat:
        # localstripe confirms only without parameters (500 "Not implemented" otherwise) and
        # only an intent that was never charged: set the method by an update first.
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.update(
                payment_intent_id, params={"payment_method": payment_method_id}, options=options
            ),
            idempotency_key=f"{idempotency_key}:payment-method",
            mutating=True,
        )
        params = {}
    return payment_intent_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.confirm(
                payment_intent_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_refund_create(
    *,
    payment_intent_id: str,
    amount: int,
    idempotency_key: str,
    reason: str | None = None,
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripeRefund:
    """Refund `amount` minor units of `payment_intent_id`.

    Put your row's id in `metadata` (e.g. {"refund_request": "42"}) so that the refund can
    be found with stripe_refund_list after an ambiguous failure. Raises GatewayTimeout when
    the request may have reached Stripe (retry with the SAME key), InvalidRequest when
    Stripe refuses (e.g. more than the refundable amount), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if amount <= 0:
        raise ValueError("amount must be a positive number of minor units")
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"payment_intent": payment_intent_id, "amount": int(amount)}
    if reason:
        params["reason"] = reason
    if metadata:
        params["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    return refund_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.refunds.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


# --- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripeTestPurchase:
    customer_id: str
    payment_method_id: str
    payment_intent: StripePaymentIntent


TEST_CARD_SUCCEEDS = "4242424242424242"
TEST_CARD_DECLINES = "4000000000000341"  # attaches, then declines on payment
ERR_TEST_MODE_ONLY = "Test purchases are only ever created with a test-mode key."


def stripe_test_purchase_create(
    *,
    amount: int,
    currency: str,
    email: str,
    name: str,
    key: str,
    card_number: str = TEST_CARD_SUCCEEDS,
    client: StripeClient | None = None,
) -> StripeTestPurchase:
    """A student's card purchase made in TEST mode (the demo and tests; the back-office never
    takes payments itself): a customer, a card attached to them, a confirmed payment intent of
    `amount` minor units. `key` prefixes the idempotency keys. Raises CardDeclined for a
    declining card, GatewayError otherwise; RuntimeError with a live key."""
    if settings.STRIPE_LIVEMODE or not str(settings.STRIPE_SECRET_KEY).startswith("sk_test"):
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    client = client or StripeClient.from_settings()
    customer = client.call(
        lambda sdk, options: sdk.v1.customers.create(
            params={"email": email, "name": name}, options=options
        ),
        idempotency_key=f"{key}:customer",
        mutating=True,
    )
    card = {"number": card_number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}
    method = client.call(
        lambda sdk, options: sdk.v1.payment_methods.create(
            params={"type": "card", "card": card}, options=options
        ),
        idempotency_key=f"{key}:pm",
        mutating=True,
    )
    client.call(
        lambda sdk, options: sdk.v1.payment_methods.attach(
            method.id, params={"customer": customer.id}, options=options
        ),
        idempotency_key=f"{key}:attach",
        mutating=True,
    )
    intent = client.call(
        lambda sdk, options: sdk.v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": currency,
                "customer": customer.id,
                "payment_method": method.id,
                "payment_method_types": ["card"],
                "confirm": True,
            },
            options=options,
        ),
        idempotency_key=f"{key}:pi",
        mutating=True,
    )
    return StripeTestPurchase(
        customer_id=customer.id,
        payment_method_id=method.id,
        payment_intent=payment_intent_from_stripe(intent),
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
