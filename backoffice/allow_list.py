"""The admin's optional IP allow-list (settings.ADMIN_ALLOWED_CIDRS; empty: off).

When set, the admin (every page under /admin/, the login included) and the API's session pages
(requests under /api/v1/ without an `Authorization: Bearer bo_...` header of our token format:
the browsable API, Swagger, Redoc, the session-authenticated JSON) answer only to clients
inside one of the networks. API tokens keep working from anywhere: programs (BI tools, the
booking system) run elsewhere, and a token is refused or allowed by its own rules.

Any other Authorization header (Basic, "Token x", a Bearer value not of our format) does not
skip the list: the token authentication ignores it, so DRF's session authentication would
sign the request in from the cookie. A Bearer token of our format is checked as a token (a bad
one is a 401, never a fall back to the session). And the session authentication the API uses
(backoffice.api.authentication.AllowListSessionAuthentication) asks the list again, so a
session never reaches the API from outside even by a path this middleware does not see.

The client address is backoffice.client_ip's: REMOTE_ADDR, or our proxies' header only when
TRUSTED_PROXY_COUNT says we run them, so a client cannot talk its way in with a forged
X-Forwarded-For. A refusal is logged (address, method, path) and answered with the 403 page in
the admin's look, without the sidebar.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .client_ip import client_ip
from .errors import render_error

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin/"
API_PREFIX = "/api/"

ERR_BAD_CIDR = "ADMIN_ALLOWED_CIDRS is not valid: {value!r} is not a network such as 10.0.0.0/8."
REFUSED_TITLE = "Not from this network"
REFUSED_WHAT = "The back-office only answers to the office and VPN networks."
REFUSED_HINT = "Connect through the company VPN and try again."
# `Authorization: Bearer bo_<urlsafe>`: the shape backoffice/api/tokens.py issues (TOKEN_PREFIX).
API_TOKEN_HEADER = re.compile(r"\ABearer bo_[A-Za-z0-9_-]{1,200}\Z", re.IGNORECASE)
LOG_REFUSED = "admin allow-list refused %s %s from %s (not in ADMIN_ALLOWED_CIDRS)"


@lru_cache(maxsize=8)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of `cidrs` ("10.0.0.0/8", a bare address is a /32 or /128). A bad entry
    raises ImproperlyConfigured naming it (the system check reports it at start)."""
    networks = []
    for value in cidrs:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(ERR_BAD_CIDR.format(value=value)) from None
    return tuple(networks)


def allowed_networks():
    return parse_networks(tuple(settings.ADMIN_ALLOWED_CIDRS))


def address_allowed(ip: str | None) -> bool:
    """True when the allow-list is off, or `ip` is inside one of its networks. An unreadable
    address is outside every network."""
    networks = allowed_networks()
    if not networks:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


def carries_api_token(request) -> bool:
    """True when the request's Authorization header is a Bearer token of our format (which
    the token authentication checks, with no fall back to the session)."""
    return bool(API_TOKEN_HEADER.match(request.META.get("HTTP_AUTHORIZATION", "").strip()))


def is_guarded(request) -> bool:
    """The admin, or the API reached by anything but one of our tokens."""
    path = request.path_info
    if path.startswith(ADMIN_PREFIX):
        return True
    return path.startswith(API_PREFIX) and not carries_api_token(request)


class AdminAllowListMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.ADMIN_ALLOWED_CIDRS and is_guarded(request):
            ip = client_ip(request)
            if not address_allowed(ip):
                logger.warning(LOG_REFUSED, request.method, request.path, ip or "(unknown)")
                return render_error(
                    request,
                    403,
                    title=REFUSED_TITLE,
                    what=REFUSED_WHAT,
                    hint=REFUSED_HINT,
                    staff_frame=False,
                    back=("", ""),  # every page here answers the same
                )
        return self.get_response(request)


def check_allowed_cidrs(app_configs=None, **kwargs):
    """System check: a bad ADMIN_ALLOWED_CIDRS stops the start with its value named."""
    from django.core.checks import Error

    try:
        allowed_networks()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="backoffice.E001")]
    return []
