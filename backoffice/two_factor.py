"""A staff member's second factor: enrolment, backup codes, reset (writes, each audited).

- Enrolment: `totp_pending_device` makes (or reuses) one unconfirmed TOTP device; the page
  shows its QR code and secret; `totp_enrol_confirm` checks a first code from the app, then
  confirms it, removes any older authenticator of the user (a new phone replaces the old one),
  and records `two_factor_enrolled`.
- Backup codes: one static device per user holding TWO_FACTOR_BACKUP_CODES single-use codes.
  `backup_codes_regenerate` replaces them all and returns the new codes, which the caller
  shows once (django-otp keeps them to check them, nobody shows them again).
- Reset by a superuser (`second_factor_reset`): every device of the user goes; their next
  sign-in (and any session they have now, whose device no longer exists) leads to enrolment.

Audit rows name the user whose factor changed as the target and never carry a code or key.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import ClientInfo, audit_record

AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_CODES_NAME = "Backup codes"

ACTION_ENROLLED = "two_factor_enrolled"
ACTION_BACKUP_CODES = "two_factor_backup_codes_generated"
ACTION_RESET = "two_factor_reset"

ERR_RESET_NOT_ALLOWED = "Only a superuser may reset another staff member's second factor."
ERR_RESET_OWN = (
    "You may not reset your own second factor: another superuser does it (a reset lets the "
    "next sign-in enrol a new authenticator without any code)."
)
ERR_SETUP_STALE = "This set-up page is out of date: open it again."


class TwoFactorError(Exception):
    """A second-factor change was refused; the message says why (shown as it is)."""


def totp_pending_device(user) -> TOTPDevice:
    """The user's unconfirmed authenticator (made on first call, with a fresh random key), to
    show on the enrolment page until a code from the app confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by(
        "-pk"
    ).first() or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def totp_enrol_confirm(*, user, device: TOTPDevice, code: str, client: ClientInfo | None = None):
    """Confirm `device` if `code` is its current code. Returns True when it was (the device is
    then the user's only authenticator), False for a wrong code (nothing changes)."""
    if device.user_id != user.pk or device.confirmed:
        raise TwoFactorError(ERR_SETUP_STALE)
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == device.digits and device.verify_token(code)):
        return False
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit_record(
            acting_user=user,
            action=ACTION_ENROLLED,
            target=user,
            target_repr=user.get_username(),
            details={"device": AUTHENTICATOR_NAME},
            client=client,
        )
    return True


def backup_codes_regenerate(*, user, acting_user, client: ClientInfo | None = None) -> list[str]:
    """Replace the user's backup codes with TWO_FACTOR_BACKUP_CODES new ones; return them (in
    clear, to show once). Codes given out before stop working."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=BACKUP_CODES_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(settings.TWO_FACTOR_BACKUP_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        audit_record(
            acting_user=acting_user,
            action=ACTION_BACKUP_CODES,
            target=user,
            target_repr=user.get_username(),
            details={"codes": len(codes)},
            client=client,
        )
    return codes


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_reset(*, user, acting_user, reason: str = "", client: ClientInfo | None = None):
    """Remove every second-factor device of `user` (a lost phone): they enrol again at their
    next sign-in. Superusers only, and never their own (ERR_RESET_OWN); audited with the
    number of devices removed."""
    if not (acting_user.is_active and acting_user.is_superuser):
        raise TwoFactorError(ERR_RESET_NOT_ALLOWED)
    if user.pk == acting_user.pk:
        raise TwoFactorError(ERR_RESET_OWN)
    with transaction.atomic():
        removed = 0
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()
            removed += 1
        audit_record(
            acting_user=acting_user,
            action=ACTION_RESET,
            target=user,
            target_repr=user.get_username(),
            reason=reason,
            details={"devices_removed": removed},
            client=client,
        )
    return removed
