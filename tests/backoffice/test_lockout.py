"""Lockout (issue 12, item 2): 60 wrong passwords and then the right one no longer sign in,
counted per account and per address; the lockout page is in the admin's look (429); an
administrator's unlock is a POST, needs its permission and is audited; the session policy."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from backoffice import lockout
from backoffice.models import AdminAction
from tests.backoffice import two_factor_support as support
from tests.backoffice.two_factor_support import enrol, totp_code, verified_session
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def assert_locked(response):
    assert response.status_code == 429
    body = response.content.decode()
    assert lockout.LOCKED_TITLE in body
    assert "unfold/css/styles.css" in body  # the admin's look, with its colours
    assert 'id="unfold-theme-colors"' in body
    assert 'id="nav-sidebar"' not in body


def test_60_wrong_passwords_then_the_right_one_is_locked_per_account(client):
    """Each guess from a different address: only the account's count can stop them."""
    UserFactory(username="ana")
    for index in range(60):
        response = support.sign_in(client, "ana", password="wrong", ip=f"10.1.{index}.1")
        assert response.status_code in (200, 429)
    assert_locked(support.sign_in(client, "ana", ip="192.0.2.200"))
    assert "_auth_user_id" not in client.session


def test_60_wrong_passwords_then_the_right_one_is_locked_per_address(client):
    """Each guess at a different account from one address: the address's count stops them,
    also for a real account that never failed; other addresses still sign in."""
    UserFactory(username="ana")
    for index in range(60):
        support.sign_in(client, f"guess{index}", password="wrong", ip="203.0.113.9")
    assert_locked(support.sign_in(client, "ana", ip="203.0.113.9"))
    assert support.sign_in(client, "ana", ip="192.0.2.10").status_code == 302


def test_below_the_limit_the_right_password_still_signs_in(client, settings):
    settings.AXES_FAILURE_LIMIT = 10
    UserFactory(username="ana")
    for _ in range(9):
        assert support.sign_in(client, "ana", password="wrong").status_code == 200
    assert support.sign_in(client, "ana").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="ana")
    for _ in range(3):
        support.sign_in(client, "ana", password="wrong")
    assert_locked(support.sign_in(client, "ana"))
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert support.sign_in(client, "ana").status_code == 302


def test_wrong_codes_after_the_right_password_lock_the_account_too(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.TWO_FACTOR_REQUIRED = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # axes' count, not django-otp's pause, is tested
    device, _ = enrol(UserFactory(username="ana"))
    for code in ("000000", "111111", "222222"):
        support.sign_in(client, "ana", code)
    assert_locked(support.sign_in(client, "ana", totp_code(device)))


def test_the_right_password_without_a_code_counts_as_a_failure(client, settings):
    """Otherwise "code required" would tell whether a password is right, with no lockout
    however many passwords are tried that way."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.TWO_FACTOR_REQUIRED = True
    device, _ = enrol(UserFactory(username="ana"))
    response = support.sign_in(client, "ana", "")
    assert response.status_code == 200
    assert AccessAttempt.objects.get(username="ana").failures_since_start == 1
    for _ in range(2):
        support.sign_in(client, "ana", "")
    assert_locked(support.sign_in(client, "ana", totp_code(device)))


def test_the_attempt_rows_never_keep_the_password_or_code(client):
    UserFactory(username="ana")
    support.sign_in(client, "ana", "123456", password="s3cret-guess")
    attempt = AccessAttempt.objects.get(username="ana")
    assert "s3cret-guess" not in attempt.post_data
    assert "123456" not in attempt.post_data
    assert "ana" not in attempt.post_data  # a mistyped username may be a password
    assert attempt.username == "ana"  # in its own column, for the lockout list


# --- Unlock -----------------------------------------------------------------------------------


def lock(client, username="ana", ip="198.51.100.7", times=10):
    for _ in range(times):
        support.sign_in(client, username, password="wrong", ip=ip)


def unlock_url(user):
    return reverse("admin:auth_user_unlock_sign_in", args=[user.pk])


def test_a_superuser_unlocks_an_account_from_its_page_and_it_is_audited(client, settings):
    ana = UserFactory(username="ana")
    lock(client)
    assert_locked(support.sign_in(client, "ana", ip="192.0.2.1"))
    boss = UserFactory(username="boss", is_superuser=True)
    admin = client.__class__()
    admin.force_login(boss)

    page = admin.get(unlock_url(ana))
    assert page.status_code == 200
    # The 10 guesses, and the refused right password (a try while locked counts too).
    assert "11 failed sign-in(s)" in page.content.decode()
    assert AccessAttempt.objects.exists()  # a GET changes nothing

    response = admin.post(unlock_url(ana), REMOTE_ADDR="192.0.2.50")
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="ana").exists()
    row = AdminAction.objects.get(action=lockout.ACTION_UNLOCK)
    assert (row.actor, row.target_type, row.target_id) == (boss, "auth.user", str(ana.pk))
    assert row.details == {"username": "ana", "ip_address": "", "rows": 2}
    assert row.ip_address == "192.0.2.50"
    assert support.sign_in(client, "ana", ip="192.0.2.1").status_code == 302


def test_unlocking_needs_the_permission(client):
    ana = UserFactory(username="ana")
    lock(client)
    staff = UserFactory(username="manager")
    staff.user_permissions.set(Permission.objects.filter(codename__in=["change_user", "view_user"]))
    admin = client.__class__()
    admin.force_login(staff)
    assert admin.get(unlock_url(ana)).status_code == 403
    assert admin.post(unlock_url(ana)).status_code == 403
    assert AccessAttempt.objects.filter(username="ana").exists()
    with pytest.raises(lockout.UnlockNotAllowed):
        lockout.sign_in_unlock(acting_user=staff, username="ana")
    assert not AdminAction.objects.filter(action=lockout.ACTION_UNLOCK).exists()

    # With axes' delete permission (no role has it by default) the unlock is allowed.
    staff.user_permissions.add(Permission.objects.get(codename="delete_accessattempt"))
    assert admin.post(unlock_url(ana)).status_code == 302
    assert not AccessAttempt.objects.filter(username="ana").exists()


def test_the_lockout_list_unlocks_accounts_and_addresses_in_bulk(client, settings):
    settings.TWO_FACTOR_REQUIRED = True
    UserFactory(username="ana")
    lock(client, "ana", "198.51.100.7")
    for index in range(10):
        support.sign_in(client, f"guess{index}", password="wrong", ip="203.0.113.9")
    assert_locked(support.sign_in(client, "ana", ip="192.0.2.1"))
    boss = UserFactory(username="boss", is_superuser=True)
    device, _ = enrol(boss)
    admin = client.__class__()
    verified_session(admin, boss, device)

    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "Locked" in body and "unfold/css/styles.css" in body

    chosen = AccessAttempt.objects.filter(username__in=["ana", "guess0"])
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "unlock", "_selected_action": [a.pk for a in chosen]},
    )
    assert response.status_code == 302
    # ana's account and her addresses, and guess0's address (which clears every guess from
    # 203.0.113.9): one audit row per account and address pair.
    assert not AccessAttempt.objects.exists()
    rows = AdminAction.objects.filter(action=lockout.ACTION_UNLOCK)
    assert sorted((r.details["username"], r.details["ip_address"]) for r in rows) == [
        ("ana", "192.0.2.1"),
        ("ana", "198.51.100.7"),
        ("guess0", "203.0.113.9"),
    ]
    assert {r.actor for r in rows} == {boss}
    assert support.sign_in(client, "ana", ip="203.0.113.9").status_code == 302


def test_the_lockout_list_has_no_unaudited_delete(client, settings):
    UserFactory(username="ana")
    lock(client, times=2)
    boss = UserFactory(username="boss", is_superuser=True)
    admin = client.__class__()
    admin.force_login(boss)
    attempt = AccessAttempt.objects.get()
    assert admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/").status_code == 403
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk]},
    )
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()
    assert response.status_code in (200, 302)


# --- Session policy ------------------------------------------------------------------------------


def test_a_session_lasts_a_working_day(client, settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    UserFactory(username="ana")
    support.sign_in(client, "ana")
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == 8 * 60 * 60


def test_production_ends_sessions_when_the_browser_closes():
    from tests.backoffice.test_production_settings import example_environment, run_python

    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE, settings.SESSION_COOKIE_AGE, "
        "settings.TWO_FACTOR_REQUIRED)"
    )
    out = run_python(
        code, {**example_environment(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.production"}
    )
    assert out.stdout.split()[-3:] == ["True", "28800", "True"], out.stderr
