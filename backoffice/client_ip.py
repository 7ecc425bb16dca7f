"""The client's address, one rule for the audit trail, the sign-in lockout and the admin's
allow-list (so an address one of them sees is the address all of them see).

REMOTE_ADDR, unless settings.TRUSTED_PROXY_COUNT (n > 0) says the app sits behind n proxies
we run, which append to settings.TRUSTED_PROXY_HEADER (X-Forwarded-For by default): then the
n-th address from the right of that header, the one our outermost proxy saw connect (what
Werkzeug's ProxyFix does). Entries further left were written by the client and can be
anything, so they are never believed; with no proxy configured the header is ignored whole.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def valid_ip(value: str | None) -> str | None:
    """`value` when it is an IPv4/IPv6 address (normalised), else None: a header is outside
    input, and a malformed one must not break what reads it."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def proxy_header_meta_key(header: str) -> str:
    """'X-Forwarded-For' -> 'HTTP_X_FORWARDED_FOR' (how Django's request.META names it)."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


def client_ip(request) -> str | None:
    """The client address of `request` (see the module docstring), or None if unreadable."""
    ip = request.META.get("REMOTE_ADDR")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        header = request.META.get(proxy_header_meta_key(settings.TRUSTED_PROXY_HEADER), "")
        forwarded = [part.strip() for part in header.split(",") if part.strip()]
        if len(forwarded) >= trusted:
            ip = forwarded[-trusted]
    return valid_ip(ip)
