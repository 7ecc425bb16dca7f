"""Who is calling: a token (`Authorization: Bearer bo_...`) for programs, the admin session
for the browsable pages and Swagger (with DRF's CSRF check on writes).

Named in settings.REST_FRAMEWORK, so this module imports no viewset (circular import)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from backoffice.allow_list import REFUSED_HINT, REFUSED_WHAT, address_allowed
from backoffice.client_ip import client_ip
from backoffice.models import ApiToken

from .tokens import api_token_find

ERR_SESSION_OUTSIDE_ALLOW_LIST = f"{REFUSED_WHAT} {REFUSED_HINT}"
ERR_BAD_HEADER = "Send the token as 'Authorization: Bearer <token>'."
ERR_UNKNOWN_TOKEN = "Invalid token."
ERR_REVOKED_TOKEN = "This token was revoked."
ERR_EXPIRED_TOKEN = "This token expired."
ERR_INACTIVE_USER = "This token's user is inactive or no longer staff."

# last_used_at is written at most this often per token: a busy BI tool must not turn every
# read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`. No such header: not this scheme (the session may
    still authenticate). A header with a bad, revoked or expired token: 401, never a fall
    back to the session (a program must learn its token is dead)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(ERR_BAD_HEADER)
        try:
            secret = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(ERR_BAD_HEADER) from None
        token = api_token_find(secret)
        if token is None:
            raise exceptions.AuthenticationFailed(ERR_UNKNOWN_TOKEN)
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(ERR_REVOKED_TOKEN)
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed(ERR_EXPIRED_TOKEN)
        if not (token.user.is_active and token.user.is_staff):
            raise exceptions.AuthenticationFailed(ERR_INACTIVE_USER)
        self._touch(token, now)
        return token.user, token

    @staticmethod
    def _touch(token: ApiToken, now) -> None:
        """Record the use, at most once per LAST_USED_RESOLUTION; the condition in the UPDATE
        makes concurrent requests write once between them."""
        if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
            return
        ApiToken.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION),
            pk=token.pk,
        ).update(last_used_at=now)
        token.last_used_at = now

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'{self.keyword} realm="api"'


class AllowListSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (with its CSRF check), refusing a session from outside
    ADMIN_ALLOWED_CIDRS: the admin's allow-list middleware skips requests carrying one of our
    tokens, and this keeps the cookie from ever signing an API request in from outside,
    whatever the headers or the path (backoffice/allow_list.py)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not settings.ADMIN_ALLOWED_CIDRS:
            return result
        if not address_allowed(client_ip(request._request)):
            raise exceptions.PermissionDenied(ERR_SESSION_OUTSIDE_ALLOW_LIST)
        return result
