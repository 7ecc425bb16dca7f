"""When a staff member last proved their second factor, kept in their session.

The login (after a TOTP or backup code) and the step-up page (a fresh code before a money-moving
action) both record it here, and the money-action guard reads it: one key, one clock.
"""

from django.db import transaction
from django.utils import timezone
from django_otp import login as otp_login

VERIFIED_AT_SESSION_KEY = "backoffice_2fa_verified_at"


def mark_verified(request, device) -> None:
    """The user just entered a valid code of `device`: verify the session and note the time."""
    otp_login(request, device)
    request.session[VERIFIED_AT_SESSION_KEY] = timezone.now().timestamp()


def verified_within(request, minutes: int) -> bool:
    """True when the session's last verified code is at most `minutes` old."""
    stamp = request.session.get(VERIFIED_AT_SESSION_KEY)
    if not isinstance(stamp, int | float):
        return False
    return timezone.now().timestamp() - stamp <= minutes * 60


def match_code(user, code: str):
    """The confirmed device of `user` that accepts `code`, or None.

    Six digits are a TOTP code, anything else a backup code (django-otp 1.7 checks one chosen
    device, not every device). A device that is throttled after wrong codes accepts nothing
    until its delay has passed; verify_token() counts the failures.

    Each code works once, even given by parallel requests: django-otp reads (the backup code,
    the TOTP's last used step) and then writes (deletes it, saves last_t) with nothing in
    between, so two requests could both pass. The device row is locked (select_for_update)
    for the check and its write, in one transaction: the second request reads after the
    first has committed and finds the code used."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    code = (code or "").strip().replace(" ", "")
    if not code or user is None or not user.is_authenticated:
        return None
    model = TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    with transaction.atomic():
        devices = model.objects.devices_for_user(user, confirmed=True).order_by("pk")
        for device in devices.select_for_update():
            allowed, _ = device.verify_is_allowed()
            if allowed and device.verify_token(code):
                return device
    return None
