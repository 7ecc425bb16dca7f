"""The demo's two-factor switch: with TWO_FACTOR_REQUIRED=1 `demo_staff` gives every demo login
an authenticator key and backup codes (once: a second run keeps them) and prints them;
`demo_totp` prints a code the login form accepts. Off (the default), nobody is enrolled."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from management.management.commands.demo_staff import DEMO_USERS

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_with_the_switch_on_every_demo_login_is_enrolled_and_printed(settings):
    settings.TWO_FACTOR_REQUIRED = True
    first = run("demo_staff")
    second = run("demo_staff")
    keys = re.findall(r"authenticator key: ([A-Z2-7]+)", first)
    assert len(keys) == len(DEMO_USERS)
    assert re.findall(r"authenticator key: ([A-Z2-7]+)", second) == keys  # kept across runs
    codes = re.findall(r"backup codes: (.+)", first)
    assert codes == re.findall(r"backup codes: (.+)", second)
    assert all(len(line.split()) == settings.TWO_FACTOR_BACKUP_CODES for line in codes)
    assert TOTPDevice.objects.filter(confirmed=True).count() == len(DEMO_USERS)

    code = run("demo_totp", "senior").strip()
    assert re.fullmatch(r"\d{6}", code)
    client = Client()
    response = client.post(
        "/admin/login/",
        {"username": "senior", "password": "demo-senior-2026", "otp_token": code},
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_with_the_switch_off_nobody_is_enrolled(settings):
    settings.TWO_FACTOR_REQUIRED = False
    assert "authenticator key" not in run("demo_staff")
    assert not TOTPDevice.objects.exists()
    with pytest.raises(CommandError, match="no authenticator"):
        run("demo_totp", "demo")
    with pytest.raises(CommandError, match="not a demo login"):
        run("demo_totp", "root")
