"""API tokens: made, looked up and revoked here (the model is backoffice.ApiToken).

A token is `bo_` + 43 characters of secrets.token_urlsafe(32) (256 random bits). Only its
SHA-256 is stored: a secret of that entropy needs no slow hash, and a fast one lets every
request find its token with one indexed lookup. The full token is returned once, by
`api_token_create`, and never again."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.models import ApiToken

TOKEN_PREFIX = "bo_"
# What the admin shows of a token: the marker and 8 characters of the secret.
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8

ERR_EXPIRY_IN_PAST = "The expiry must be in the future."
ERR_ALREADY_REVOKED = "This token was revoked already."
ERR_NOT_STAFF = "API tokens are for active staff members only."


class ApiTokenError(Exception):
    """A token cannot be made or revoked as asked; the message says why."""


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its secret, which exists only here: show it once, never store it."""

    token: ApiToken
    secret: str


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(
    *,
    user,
    name: str,
    expires_at: datetime,
    read_only: bool = False,
    acting_user,
    client: ClientInfo | None = None,
) -> IssuedToken:
    """Make a token for `user` (an active staff member) and audit it. Raises ApiTokenError."""
    if not (user.is_active and user.is_staff):
        raise ApiTokenError(ERR_NOT_STAFF)
    if expires_at <= timezone.now():
        raise ApiTokenError(ERR_EXPIRY_IN_PAST)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            key_hash=token_hash(secret),
            read_only=read_only,
            expires_at=expires_at,
            created_by=acting_user,
        )
        audit_record(
            acting_user=acting_user,
            action="api_token_create",
            target=token,
            client=client,
            details={
                "user": user.get_username(),
                "prefix": token.prefix,
                "read_only": read_only,
                "expires_at": expires_at.isoformat(),
            },
        )
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken, acting_user, client: ClientInfo | None = None) -> ApiToken:
    """Revoke `token` for good (it answers 401 from now on) and audit it. Raises ApiTokenError
    when it was revoked already."""
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise ApiTokenError(ERR_ALREADY_REVOKED)
        locked.revoked_at = timezone.now()
        locked.revoked_by = acting_user if getattr(acting_user, "pk", None) else None
        locked.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            acting_user=acting_user,
            action="api_token_revoke",
            target=locked,
            client=client,
            details={"user": locked.user.get_username(), "prefix": locked.prefix},
        )
    return locked


def api_token_find(secret: str) -> ApiToken | None:
    """The token whose secret this is (revoked and expired ones too), or None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return ApiToken.objects.select_related("user").filter(key_hash=token_hash(secret)).first()
