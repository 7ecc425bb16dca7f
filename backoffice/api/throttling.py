"""Write throttles: per token and per user, counted where every process and server sees the
same numbers. Over the rate: 429 with Retry-After (seconds to the next window).

Fixed windows. By default (settings.API_THROTTLE_CACHE empty) each window is a row of
backoffice.ApiThrottleWindow, counted with an atomic `UPDATE ... SET count = count + 1`: no
infrastructure beyond the database, and two processes cannot both take the last request of a
window, as they could with DRF's read-history-then-write throttle. With API_THROTTLE_CACHE
naming a cache (Redis or Memcached, shared), windows are counted there with cache.add +
cache.incr, atomic in those backends; a LocMemCache would count per process, so it is only
for a single process. Reads are not throttled (BI tools page through
lists; the database, not a counter, is what they load).

Rates: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_token_write" | "api_user_write"].
Named in settings.REST_FRAMEWORK, so this module imports no viewset."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.db.models import F
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from backoffice.models import ApiThrottleWindow, ApiToken

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'60/minute' -> (60, 60): requests allowed per window of that many seconds."""
    number, _, period = rate.partition("/")
    return int(number), _DURATIONS[period.strip()[0]]


class WriteThrottle(BaseThrottle):
    scope = ""

    def ident(self, request) -> str | None:
        """Who is counted, or None for a request this throttle does not count."""
        raise NotImplementedError

    def allow_request(self, request, view):
        self.wait_seconds = None
        if request.method in SAFE_METHODS:
            return True
        ident = self.ident(request)
        if ident is None:
            return True
        allowed, duration = parse_rate(api_settings.DEFAULT_THROTTLE_RATES[self.scope])
        now = time.time()
        window = int(now // duration)
        key = f"api-throttle:{self.scope}:{ident}:{window}"
        # The window outlives itself a little, so a late increment never meets a missing key.
        expires = (window + 1) * duration + 1
        if settings.API_THROTTLE_CACHE:
            count = _count_in_cache(caches[settings.API_THROTTLE_CACHE], key, duration + 1)
        else:
            count = count_in_database(key, datetime.fromtimestamp(expires, tz=UTC))
        if count <= allowed:
            return True
        self.wait_seconds = max(1, math.ceil((window + 1) * duration - now))
        return False

    def wait(self):
        return self.wait_seconds


def _count_in_cache(cache, key: str, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr: count this one as the first
        cache.add(key, 1, timeout=timeout)
        return 1


def count_in_database(key: str, expires_at: datetime) -> int:
    """One more request in `key`'s window; the window's count including it. The UPDATE takes
    the row's lock until the transaction ends, so concurrent requests count one after the
    other and each reads its own number; the first of a window inserts the row (a concurrent
    first loses the unique key and increments instead)."""
    windows = ApiThrottleWindow.objects.filter(key=key)
    with transaction.atomic():
        if not windows.update(count=F("count") + 1):
            try:
                with transaction.atomic():
                    ApiThrottleWindow.objects.create(key=key, count=1, expires_at=expires_at)
                return 1
            except IntegrityError:
                windows.update(count=F("count") + 1)
        return windows.values_list("count", flat=True).get()


def throttle_windows_cleanup(*, now=None) -> int:
    """Delete database throttle windows that have ended; returns how many."""
    deleted, _ = ApiThrottleWindow.objects.filter(
        expires_at__lt=now or datetime.now(tz=UTC)
    ).delete()
    return deleted


class TokenWriteThrottle(WriteThrottle):
    """Writes per API token."""

    scope = "api_token_write"

    def ident(self, request):
        return str(request.auth.pk) if isinstance(request.auth, ApiToken) else None


class UserWriteThrottle(WriteThrottle):
    """Writes per user, whatever the credentials (all of a user's tokens and the session)."""

    scope = "api_user_write"

    def ident(self, request):
        user = request.user
        return str(user.pk) if user and user.is_authenticated else None
