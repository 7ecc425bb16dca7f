"""In a real browser, with TWO_FACTOR_REQUIRED on: a new staff member signs in with the
password, lands on the enrolment page, adds the secret the page shows to "an authenticator"
(the test computes its codes with django_otp.oath), confirms, sees the backup codes once, and
signs in again with a code; an enrolled staff member signs in with a TOTP code; a locked-out
sign-in shows the lockout page. Screenshots: artifacts/two-factor-*.png."""

import time
from base64 import b32decode

import pytest
from django.test import Client
from django_otp.oath import TOTP, totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def fill_login(page, base, username, password="pw", code=""):
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    if code:
        page.fill("input[name=otp_token]", code)


def code_from_secret(secret: str, steps_ahead: int = 0) -> str:
    """What an authenticator app given `secret` (base32, as the page shows it) displays."""
    generator = TOTP(b32decode(secret), step=30, t0=0, digits=6)
    generator.time = time.time() + steps_ahead * 30
    return f"{generator.token():06d}"


def test_enrol_then_sign_in_with_a_code(live_server, page, screenshot_dir, settings):
    settings.TWO_FACTOR_REQUIRED = True
    base = live_server.url
    UserFactory(username="newbie")

    # The password alone leads to the enrolment page, in the login page's frame.
    fill_login(page, base, "newbie")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/two-factor/enrol/")
    qr = page.locator("[data-testid=two-factor-qr]")
    assert qr.is_visible()
    assert qr.evaluate("(img) => img.complete && img.naturalWidth > 0")  # the SVG loaded
    assert page.locator("#nav-sidebar").count() == 0
    secret = page.locator("[data-testid=two-factor-secret]").inner_text().replace(" ", "")
    page.screenshot(path=str(screenshot_dir / "two-factor-enrol.png"), full_page=True)

    page.fill("input[name=code]", code_from_secret(secret))
    page.click("[data-testid=two-factor-enrol-form] button[type=submit]")
    page.wait_for_url(f"{base}/admin/two-factor/backup-codes/")
    codes = page.locator("[data-testid=two-factor-codes] li").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path=str(screenshot_dir / "two-factor-backup-codes.png"), full_page=True)
    page.click("[data-testid=two-factor-done]")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator("#nav-sidebar").count() == 1

    # A new session: the code is asked for, and the app's next code signs in.
    page.context.clear_cookies()
    fill_login(page, base, "newbie")
    page.click("button[type=submit]")
    assert page.locator("[data-testid=login-errors]").is_visible()
    page.fill("input[name=password]", "pw")
    page.fill("input[name=otp_token]", code_from_secret(secret, steps_ahead=1))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    # The user menu's page: what is set up, in the admin's frame.
    page.goto(f"{base}/admin/two-factor/")
    assert page.locator("[data-testid=two-factor-authenticator]").inner_text() == "Set up"
    assert page.locator("#nav-sidebar").count() == 1
    page.screenshot(path=str(screenshot_dir / "two-factor-overview.png"), full_page=True)


def test_an_enrolled_user_signs_in_with_a_totp_code(live_server, page, screenshot_dir, settings):
    settings.TWO_FACTOR_REQUIRED = True
    base = live_server.url
    user = UserFactory(username="ana")
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)

    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    fill_login(page, base, "ana", code=code)
    page.screenshot(path=str(screenshot_dir / "two-factor-login.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator("#nav-sidebar").count() == 1


def test_the_lockout_page(live_server, page, screenshot_dir, settings):
    settings.AXES_FAILURE_LIMIT = 3
    base = live_server.url
    UserFactory(username="ana")
    for _ in range(3):
        fill_login(page, base, "ana", password="wrong")
        page.click("button[type=submit]")
    fill_login(page, base, "ana")
    with page.expect_response(f"{base}/admin/login/") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 429
    assert page.get_by_text("Sign-in locked").is_visible()
    page.screenshot(path=str(screenshot_dir / "two-factor-lockout.png"), full_page=True)


def test_a_superuser_unlocks_and_resets_from_the_admin(live_server, page, screenshot_dir, settings):
    from axes.models import AccessAttempt

    from backoffice.models import AdminAction

    settings.AXES_FAILURE_LIMIT = 3
    base = live_server.url
    ana = UserFactory(username="ana")
    TOTPDevice.objects.create(user=ana, name="Authenticator app", confirmed=True)
    # Ana's guesser is elsewhere (the browser's own address must stay open for the boss).
    guesser = Client()
    for _ in range(3):
        guesser.post("/admin/login/", {"username": "ana", "password": "x"}, REMOTE_ADDR="192.0.2.9")
    UserFactory(username="boss", is_superuser=True)
    fill_login(page, base, "boss")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    page.goto(f"{base}/admin/axes/accessattempt/")
    assert page.get_by_text("Locked", exact=True).first.is_visible()
    page.screenshot(path=str(screenshot_dir / "two-factor-lockouts-list.png"), full_page=True)

    page.goto(f"{base}/admin/auth/user/{ana.pk}/change/")
    page.screenshot(path=str(screenshot_dir / "two-factor-user-page.png"), full_page=True)
    page.get_by_role("link", name="Unlock sign-in").click()
    page.click("[data-testid=user-action-submit]")
    page.wait_for_url(f"{base}/admin/auth/user/{ana.pk}/change/")
    assert not AccessAttempt.objects.filter(username="ana").exists()

    page.get_by_role("link", name="Reset second factor").click()
    page.fill("textarea[name=reason]", "New phone")
    page.screenshot(path=str(screenshot_dir / "two-factor-reset-confirm.png"), full_page=True)
    page.click("[data-testid=user-action-submit]")
    page.wait_for_url(f"{base}/admin/auth/user/{ana.pk}/change/")
    assert not TOTPDevice.objects.filter(user=ana).exists()
    assert AdminAction.objects.filter(action="two_factor_reset", reason="New phone").exists()
