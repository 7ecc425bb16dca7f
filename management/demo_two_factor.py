"""The demo logins' second factor, for a demo run with TWO_FACTOR_REQUIRED=1: each gets an
authenticator key and backup codes once (kept across runs, so a phone set up yesterday still
works), printed by `demo_staff`; `demo_totp <login>` prints the current code for whoever has no
phone at hand. Demo only: the keys are printed in clear."""

from __future__ import annotations

from base64 import b32encode
from dataclasses import dataclass

from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.two_factor import AUTHENTICATOR_NAME, backup_codes_regenerate


@dataclass(frozen=True)
class DemoSecondFactor:
    key: str  # base32, as authenticator apps take it
    code: str  # the current 6-digit code
    backup_codes: list[str]


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def demo_second_factor(user) -> DemoSecondFactor:
    """The user's confirmed authenticator and backup codes, made on the first call."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=True)
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    if not codes:
        codes = backup_codes_regenerate(user=user, acting_user=None)
    return DemoSecondFactor(
        key=b32encode(device.bin_key).decode(), code=current_code(device), backup_codes=codes
    )
