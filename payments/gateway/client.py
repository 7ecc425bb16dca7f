"""The Stripe client: configuration, the rate limit, retries, and call counting.

- A `StripeClient` is built per call from settings (never at import): key, API base (empty =
  Stripe itself), a pinned API version, a process-wide token bucket (STRIPE_MAX_REQUESTS_PER_
  SECOND) and our own retries with jittered exponential backoff that honour Stripe's
  `Stripe-Should-Retry` and `Retry-After` headers (payments.gateway.errors decides).
- `StripeClient.call` refuses a mutation without an idempotency key and resends the SAME key
  on every retry, so a timeout after Stripe accepted a request can never turn into a second
  charge or refund. It raises payments.exceptions errors only.
- `count_api_calls()` counts the HTTP requests made inside a block (sync run records and
  benchmarks).
"""

from __future__ import annotations

import contextvars
import random as _random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import stripe
from django.conf import settings

from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.errors import _retry_after, should_retry, translate_error

# Injection points for tests (patch them here, on payments.gateway.client): no test really
# sleeps.
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
        # Uploads go to the SDK's separate "files" address (files.stripe.com); a peer
        # (localstripe) serves both at one address.
        base = {"api": config.api_base, "files": config.api_base} if config.api_base else None
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
