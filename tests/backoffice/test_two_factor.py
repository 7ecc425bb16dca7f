"""Two-factor sign-in (issue 12, item 1 without the step-up): the login form asks for a code,
a wrong code is refused, a backup code works once, a staff member without a device reaches
only the enrolment page, backup codes are shown once and can be made anew, and a superuser's
reset is audited."""

import re

import pytest
from django.urls import reverse
from django.utils.html import escape
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice import sign_in, two_factor, two_factor_views
from backoffice.models import AdminAction
from backoffice.second_factor import VERIFIED_AT_SESSION_KEY
from tests.backoffice import two_factor_support as support
from tests.backoffice.two_factor_support import LOGIN_URL, enrol, totp_code, verified_session
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ENROL_URL = "/admin/two-factor/enrol/"
CODES_URL = "/admin/two-factor/backup-codes/"


@pytest.fixture
def required(settings):
    settings.TWO_FACTOR_REQUIRED = True


def assert_signed_out(client):
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


# --- Signing in with a code -------------------------------------------------------------------


def test_an_enrolled_user_needs_a_code_and_the_right_one_opens_the_admin(client, required):
    user = UserFactory(username="ana")
    device, _ = enrol(user)

    response = support.sign_in(client, "ana")
    assert response.status_code == 200
    assert sign_in.ERR_CODE_REQUIRED in response.content.decode()
    assert_signed_out(client)

    response = support.sign_in(client, "ana", totp_code(device))
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # The session knows the device and when it was verified (the step-up guard reads it).
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert isinstance(client.session[VERIFIED_AT_SESSION_KEY], float)


def test_a_wrong_code_is_refused_and_counted_as_a_failed_sign_in(client, required):
    from axes.models import AccessAttempt

    user = UserFactory(username="ana")
    device, _ = enrol(user)
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"

    response = support.sign_in(client, "ana", wrong)
    assert response.status_code == 200
    assert sign_in.ERR_CODE_INVALID in response.content.decode()
    assert_signed_out(client)
    assert AccessAttempt.objects.get(username="ana").failures_since_start == 1


def test_a_backup_code_signs_in_once(client, required):
    user = UserFactory(username="ana")
    _, codes = enrol(user)
    assert len(codes) == 10

    # Typed in capitals with a space: still the code.
    response = support.sign_in(client, "ana", f" {codes[0].upper()} ")
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 9

    client.post(reverse("admin:logout"))
    response = support.sign_in(client, "ana", codes[0])
    assert sign_in.ERR_CODE_INVALID in response.content.decode()
    assert_signed_out(client)
    # django-otp pauses a device for a second after a wrong code; no need to wait here.
    StaticDevice.objects.get(user=user).throttle_reset()
    assert support.sign_in(client, "ana", codes[1]).status_code == 302


def test_a_code_of_another_user_does_not_sign_in(client, required):
    enrol(UserFactory(username="ana"))
    other_device, other_codes = enrol(UserFactory(username="bob"))
    for code in (totp_code(other_device), other_codes[0]):
        response = support.sign_in(client, "ana", code)
        assert sign_in.ERR_CODE_INVALID in response.content.decode()
    assert_signed_out(client)


def test_the_login_page_has_the_code_field_in_unfolds_look(client):
    body = client.get(LOGIN_URL).content.decode()
    assert 'name="otp_token"' in body
    assert 'autocomplete="one-time-code"' in body
    assert "unfold/css/styles.css" in body


def test_with_the_switch_off_an_unenrolled_user_signs_in_with_the_password(client, settings):
    settings.TWO_FACTOR_REQUIRED = False
    UserFactory(username="ana")
    assert support.sign_in(client, "ana").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_with_the_switch_off_an_enrolled_user_still_gives_a_code(client, settings):
    settings.TWO_FACTOR_REQUIRED = False
    device, _ = enrol(UserFactory(username="ana"))
    assert sign_in.ERR_CODE_REQUIRED in support.sign_in(client, "ana").content.decode()
    assert support.sign_in(client, "ana", totp_code(device)).status_code == 302


def test_a_session_without_a_verified_code_does_not_reach_the_admin(client, required):
    user = UserFactory(username="ana")
    enrol(user)
    client.force_login(user)  # the password only, as a session from before the switch
    response = client.get("/admin/payments/payment/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)
    # Its error pages have the login page's frame, not the admin's sidebar.
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert 'id="nav-sidebar"' not in response.content.decode()


# --- Enrolment ----------------------------------------------------------------------------------


def test_enrolment_from_the_first_sign_in_to_the_admin(client, required):
    user = UserFactory(username="new")

    # The password alone: signed in, but only the enrolment page is open.
    response = support.sign_in(client, "new")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:two_factor_enrol")
    response = client.get("/admin/")
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"] == ENROL_URL
    assert client.get("/admin/payments/payment/").status_code == 302

    page = client.get(ENROL_URL)
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    body = page.content.decode()
    assert 'src="/admin/two-factor/enrol/qr-code/"' in body
    qr = client.get("/admin/two-factor/enrol/qr-code/")
    assert qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content and "no-store" in qr["Cache-Control"]
    assert 'data-testid="two-factor-secret"' in body
    assert 'id="nav-sidebar"' not in body  # the login page's frame: nothing of the admin
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    secret = "".join(body.split('data-testid="two-factor-secret">')[1].split("<")[0].split())
    from base64 import b32encode

    assert secret == b32encode(device.bin_key).decode()

    # A wrong first code changes nothing.
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    response = client.post(ENROL_URL, {"code": wrong})
    assert escape(two_factor_views.ERR_WRONG_FIRST_CODE) in response.content.decode()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    device.refresh_from_db()
    device.throttle_reset()  # the pause django-otp makes after a wrong code

    response = client.post(ENROL_URL, {"code": totp_code(device)})
    assert response.status_code == 302
    assert response["Location"] == CODES_URL
    device.refresh_from_db()
    assert device.confirmed

    # The backup codes are shown once, then never again.
    page = client.get(CODES_URL)
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(codes) == 10
    assert all(code in page.content.decode() for code in codes)
    assert "no-store" in page["Cache-Control"]
    again = client.get(CODES_URL).content.decode()
    assert not any(code in again for code in codes)
    assert "10</strong> left" in again

    # The session is verified now: the admin opens.
    assert client.get("/admin/").status_code == 200
    row = AdminAction.objects.get(action=two_factor.ACTION_ENROLLED)
    assert (row.actor, row.target_id) == (user, str(user.pk))

    # Next sign-in: the code is required.
    client.post(reverse("admin:logout"))
    assert sign_in.ERR_CODE_REQUIRED in support.sign_in(client, "new").content.decode()
    assert support.sign_in(client, "new", totp_code(device, steps_ahead=1)).status_code == 302


def test_a_password_only_session_cannot_replace_an_existing_authenticator(client, required):
    """Otherwise a stolen password alone would be enough to take the second factor over."""
    user = UserFactory(username="ana")
    enrol(user)
    client.force_login(user)
    for url in (ENROL_URL, CODES_URL, "/admin/two-factor/", "/admin/two-factor/enrol/qr-code/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN_URL)
    assert client.post(ENROL_URL, {"code": "123456"}).status_code == 302
    assert client.post(CODES_URL).status_code == 302
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_a_new_phone_replaces_the_old_authenticator(client, required):
    user = UserFactory(username="ana")
    old, _ = enrol(user)
    verified_session(client, user, old)
    client.get(ENROL_URL)
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post(ENROL_URL, {"code": totp_code(new)}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=user)) == [new]


def test_new_backup_codes_replace_the_old_ones(client, required):
    user = UserFactory(username="ana")
    device, old_codes = enrol(user)
    verified_session(client, user, device)
    overview = client.get("/admin/two-factor/").content.decode()
    assert 'data-testid="two-factor-codes-left">10<' in overview

    response = client.post(CODES_URL)
    assert response.status_code == 302
    new_codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    shown = client.get(CODES_URL).content.decode()
    assert all(code in shown for code in new_codes)
    assert AdminAction.objects.filter(action=two_factor.ACTION_BACKUP_CODES).count() == 2

    client.post(reverse("admin:logout"))
    assert sign_in.ERR_CODE_INVALID in support.sign_in(client, "ana", old_codes[0]).content.decode()
    StaticDevice.objects.get(user=user).throttle_reset()  # the pause after a wrong code
    assert support.sign_in(client, "ana", new_codes[0]).status_code == 302


def backup_codes_of(user) -> set[str]:
    return set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))


def test_a_stale_session_steps_up_before_new_backup_codes_or_a_new_phone(client, required):
    """A session verified long ago (left open, or stolen) must give a fresh code before it
    may make itself new backup codes or a new authenticator: otherwise it would get round
    the step-up for good."""
    user = UserFactory(username="ana")
    device, old_codes = enrol(user)
    verified_session(client, user, device, minutes_ago=60)

    response = client.post(CODES_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("step_up") + "?next=")
    assert backup_codes_of(user) == set(old_codes)
    assert client.get(ENROL_URL)["Location"].startswith(reverse("step_up"))
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()
    # A POST of a pending device's code is refused too (the pending device made earlier).
    pending = TOTPDevice.objects.create(user=user, name="Pending", confirmed=False)
    response = client.post(ENROL_URL, {"code": totp_code(pending)})
    assert response["Location"].startswith(reverse("step_up"))
    assert list(TOTPDevice.objects.filter(user=user, confirmed=True)) == [device]

    # A fresh code on the step-up page, and the same POST goes through.
    step_up = client.post(reverse("step_up"), {"next": CODES_URL, "code": totp_code(device)})
    assert step_up["Location"] == CODES_URL
    assert client.post(CODES_URL)["Location"] == CODES_URL
    assert not backup_codes_of(user) & set(old_codes)


def test_the_first_enrolment_needs_no_step_up(client, required):
    user = UserFactory(username="new")
    client.force_login(user)
    assert client.get(ENROL_URL).status_code == 200
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post(ENROL_URL, {"code": totp_code(pending)})["Location"] == CODES_URL


# --- Reset by a superuser -----------------------------------------------------------------------


def reset_url(user):
    return reverse("admin:auth_user_reset_second_factor", args=[user.pk])


def test_a_superuser_resets_a_second_factor_and_it_is_audited(client, required):
    boss = UserFactory(username="boss", is_superuser=True)
    boss_device, _ = enrol(boss)
    ana = UserFactory(username="ana")
    enrol(ana)
    verified_session(client, boss, boss_device)

    page = client.get(reset_url(ana))
    assert page.status_code == 200
    assert 'data-testid="user-action-confirm"' in page.content.decode()
    assert TOTPDevice.objects.filter(user=ana).exists()  # a GET changes nothing

    response = client.post(reset_url(ana), {"reason": "Lost phone, ticket 42"})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=ana).exists()
    assert not StaticToken.objects.filter(device__user=ana).exists()
    row = AdminAction.objects.get(action=two_factor.ACTION_RESET)
    assert (row.actor, row.target_type, row.target_id) == (boss, "auth.user", str(ana.pk))
    assert row.reason == "Lost phone, ticket 42"
    assert row.details == {"devices_removed": 2}
    assert row.ip_address == "127.0.0.1"

    # Ana's next sign-in leads to enrolment.
    other = client.__class__()
    response = support.sign_in(other, "ana")
    assert response["Location"] == reverse("admin:two_factor_enrol")


def test_only_a_superuser_may_reset(client, required, settings):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="manager")
    # Even with every permission on users, a non-superuser may not.
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="auth"))
    device, _ = enrol(staff)
    ana = UserFactory(username="ana")
    enrol(ana)
    verified_session(client, staff, device)
    assert client.get(reset_url(ana)).status_code == 403
    assert client.post(reset_url(ana)).status_code == 403
    assert TOTPDevice.objects.filter(user=ana).exists()
    with pytest.raises(two_factor.TwoFactorError, match=two_factor.ERR_RESET_NOT_ALLOWED):
        two_factor.second_factor_reset(user=ana, acting_user=staff)
    assert not AdminAction.objects.filter(action=two_factor.ACTION_RESET).exists()


def test_a_superuser_may_not_reset_their_own_second_factor(client, required):
    """Resetting one's own factor would let a stale or stolen superuser session enrol a new
    authenticator with no code at all: another superuser does it."""
    boss = UserFactory(username="boss", is_superuser=True)
    device, _ = enrol(boss)
    verified_session(client, boss, device)
    assert client.get(reset_url(boss)).status_code == 403
    assert client.post(reset_url(boss), {"reason": "mine"}).status_code == 403
    assert TOTPDevice.objects.filter(user=boss).exists()
    with pytest.raises(two_factor.TwoFactorError, match=re.escape(two_factor.ERR_RESET_OWN)):
        two_factor.second_factor_reset(user=boss, acting_user=boss)
    assert not AdminAction.objects.filter(action=two_factor.ACTION_RESET).exists()


def test_device_admins_are_for_superusers_only_and_read_only(client, required):
    boss = UserFactory(username="boss", is_superuser=True)
    device, _ = enrol(boss)
    verified_session(client, boss, device)
    listing = client.get("/admin/otp_totp/totpdevice/")
    assert listing.status_code == 200
    assert "unfold/css/styles.css" in listing.content.decode()
    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert page.status_code == 200
    assert device.key not in page.content.decode()  # the secret is never shown
    assert client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/").status_code == 403
    assert client.get("/admin/otp_static/staticdevice/").status_code == 200

    from django.contrib.auth.models import Permission

    staff = UserFactory(username="manager")
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="otp_totp"))
    staff_device, _ = enrol(staff)
    verified_session(client, staff, staff_device)
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 403


def test_the_user_list_shows_who_has_a_second_factor(client, required):
    boss = UserFactory(username="boss", is_superuser=True)
    device, _ = enrol(boss)
    UserFactory(username="ana")
    verified_session(client, boss, device)
    body = client.get("/admin/auth/user/").content.decode()
    assert "Second factor" in body
    assert "Not set up" in body and "Set up" in body
