"""Sign-in lockout (django-axes): the page a locked-out client sees, and the audited unlock.

Axes counts failed sign-ins per account and per client address (settings: AXES_*,
LOGIN_FAILURE_LIMIT, LOGIN_LOCKOUT_MINUTES) and, past the limit, refuses even the right
password until the cool-off has passed since the last failure. `sign_in_unlock` ends a
lockout early: it deletes axes' attempt rows for the account and/or the address and records
who did it. It needs axes' delete permission on access attempts (superusers have it; no role
in fixtures/groups.json does): unlocking lets password guessing start again.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse

from .audit import ClientInfo, audit_record
from .errors import render_error

UNLOCK_PERMISSION = "axes.delete_accessattempt"
ACTION_UNLOCK = "sign_in_unlocked"

LOCKED_TITLE = "Sign-in locked"
LOCKED_WHAT = (
    "Too many failed sign-ins for this account or from this address. Sign-in is paused, even "
    "with the right password."
)
LOCKED_HINT = (
    "Try again in {minutes} minutes, or ask an administrator to unlock it sooner. "
    "If you did not make these attempts, tell them: someone may be guessing your password."
)
ERR_UNLOCK_NOT_ALLOWED = "You may not unlock sign-ins."
ERR_UNLOCK_NOTHING = "Name an account or an address to unlock."


class UnlockNotAllowed(Exception):
    """The acting user may not unlock sign-ins (see UNLOCK_PERMISSION)."""


def lockout_minutes() -> int:
    from axes.helpers import get_cool_off

    cool_off = get_cool_off()
    return max(1, int(cool_off.total_seconds() // 60)) if cool_off else 0


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the lockout page in the login page's frame, status 429."""
    return render_error(
        request,
        429,
        title=LOCKED_TITLE,
        what=LOCKED_WHAT,
        hint=LOCKED_HINT.format(minutes=lockout_minutes()),
        staff_frame=False,
        back=(reverse("admin:login"), "Back to sign-in"),
    )


def can_unlock(user) -> bool:
    return bool(user and user.is_active and user.has_perm(UNLOCK_PERMISSION))


def sign_in_unlock(
    *,
    acting_user,
    username: str | None = None,
    ip_address: str | None = None,
    client: ClientInfo | None = None,
) -> int:
    """Delete the failed-attempt rows of `username` and of `ip_address` (either or both), so
    neither is locked out any more. Returns the number of rows removed; audited (also when
    there was nothing to remove: the unlock was asked for)."""
    from axes.models import AccessAttempt
    from axes.utils import reset

    if not can_unlock(acting_user):
        raise UnlockNotAllowed(ERR_UNLOCK_NOT_ALLOWED)
    if not (username or ip_address):
        raise ValueError(ERR_UNLOCK_NOTHING)
    with transaction.atomic():
        removed = 0
        if username:
            removed += reset(username=username)
        if ip_address:
            removed += reset(ip=ip_address)
        user = get_user_model().objects.filter(username=username).first() if username else None
        described = " / ".join(filter(None, [username, ip_address]))
        audit_record(
            acting_user=acting_user,
            action=ACTION_UNLOCK,
            target=user if user is not None else AccessAttempt,
            target_id=None if user is not None else described[:64],
            target_repr=described,
            details={"username": username or "", "ip_address": ip_address or "", "rows": removed},
            client=client,
        )
    return removed
