"""Write throttles: per token and per user, counted in a cache shared by every process when
the cache is (settings.API_THROTTLE_CACHE; Redis or Memcached in production, LocMemCache in a
single process). Over the rate: 429 with Retry-After (seconds to the next window).

Fixed windows counted with cache.add + cache.incr, which are atomic in Redis, Memcached and
LocMemCache: two processes cannot both take the last request of a window, as they could
with DRF's read-history-then-write throttle. Reads are not throttled (BI tools page through
lists; the database, not a counter, is what they load).

Rates: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_token_write" | "api_user_write"].
Named in settings.REST_FRAMEWORK, so this module imports no viewset."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from backoffice.models import ApiToken

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
        cache = caches[settings.API_THROTTLE_CACHE]
        # The key outlives its window a little, so a late incr never meets a missing key.
        cache.add(key, 0, timeout=duration + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr: count this one as the first
            cache.add(key, 1, timeout=duration + 1)
            count = 1
        if count <= allowed:
            return True
        self.wait_seconds = max(1, math.ceil((window + 1) * duration - now))
        return False

    def wait(self):
        return self.wait_seconds


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
