"""Helpers for tests of the staff sign-in: enrolled users, their current codes, verified
sessions without going through the form."""

from __future__ import annotations

import time

from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.second_factor import VERIFIED_AT_SESSION_KEY
from backoffice.two_factor import backup_codes_regenerate

LOGIN_URL = "/admin/login/"


def enrol(user) -> tuple[TOTPDevice, list[str]]:
    """A confirmed authenticator and fresh backup codes for `user`."""
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    codes = backup_codes_regenerate(user=user, acting_user=user)
    return device, codes


def totp_code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The device's code now (or `steps_ahead` periods later: a device accepts the next code
    too, and never the same period twice, so a second sign-in in one test uses the next)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def sign_in(client, username: str, code: str = "", *, ip: str = "127.0.0.1", password="pw"):
    return client.post(
        LOGIN_URL,
        {"username": username, "password": password, "otp_token": code},
        REMOTE_ADDR=ip,
    )


def verified_session(client, user, device, *, minutes_ago: float | None = 0) -> None:
    """Sign `user` in as if they had given `device`'s code `minutes_ago` minutes ago
    (django-otp's session key and the step-up time stamp; None: no time stamp at all)."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    if minutes_ago is not None:
        session[VERIFIED_AT_SESSION_KEY] = time.time() - minutes_ago * 60
    session.save()


def admin_index():
    return reverse("admin:index")
