"""In a real browser: a staff member with an authenticator whose last code is not fresh opens
a refund's Approve page, is asked for a code first (the step-up page, in the admin's look),
enters a wrong one and then the right one, comes back to the confirmation page and approves.
Screenshots: artifacts/step-up-page.png, artifacts/step-up-wrong-code.png."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.second_factor import VERIFIED_AT_SESSION_KEY
from backoffice.step_up import ERR_WRONG_CODE, MSG_VERIFIED
from payments import gateway
from refunds.models import RefundRequest
from tests.factories import RefundRequestFactory, UserFactory
from tests.refunds.conftest import FakeStripe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VERIFY = "[data-testid=step-up] button[type=submit]"


def test_approving_a_refund_asks_for_a_fresh_code_first(
    live_server, page, screenshot_dir, settings, monkeypatch
):
    fake = FakeStripe()
    monkeypatch.setattr(gateway, "stripe_refund_create", fake.stripe_refund_create)
    monkeypatch.setattr(gateway, "stripe_refund_list", fake.stripe_refund_list)
    settings.TWO_FACTOR_REQUIRED = False
    approver = UserFactory(username="approver", is_superuser=True)
    device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)
    row = RefundRequestFactory(amount=4200, currency="usd")

    # Sign in with a code (an account with a device always needs one), then let that
    # verification grow older than STEP_UP_MINUTES, as after a morning's work.
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "approver")
    page.fill("input[name=password]", "pw")
    sign_in_code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    page.fill("input[name=otp_token]", f"{sign_in_code:06d}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=session_key)
    session[VERIFIED_AT_SESSION_KEY] -= (settings.STEP_UP_MINUTES + 1) * 60
    session.save()
    # The sign-in used this window's code; the step-up may use it again in this test.
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)

    confirm = f"/admin/refunds/refundrequest/{row.pk}/confirm-approve/"
    page.goto(f"{live_server.url}{confirm}")
    assert page.url.startswith(f"{live_server.url}/admin/step-up/?next=")
    assert page.get_by_text("Confirm it is you").first.is_visible()
    page.screenshot(path=str(screenshot_dir / "step-up-page.png"), full_page=True)

    right = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    page.fill("input[name=code]", f"{(right + 1) % 1_000_000:06d}")
    page.click(VERIFY)
    assert page.get_by_text(ERR_WRONG_CODE).first.is_visible()
    page.screenshot(path=str(screenshot_dir / "step-up-wrong-code.png"), full_page=True)

    # A wrong code slows the device down (django-otp): let it accept the next one at once.
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, last_t=-1)
    device.refresh_from_db()
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    page.fill("input[name=code]", code)
    page.click(VERIFY)
    page.wait_for_url(f"{live_server.url}{confirm}")
    assert page.get_by_text(MSG_VERIFIED).first.is_visible()

    page.fill("textarea[name=note]", "Customer never received the lesson")
    page.click("button[name=confirm]")
    page.wait_for_url(f"{live_server.url}/admin/refunds/refundrequest/")
    assert RefundRequest.objects.get(pk=row.pk).status != RefundRequest.Status.PENDING
