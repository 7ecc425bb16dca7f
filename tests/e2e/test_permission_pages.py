"""In a real browser: the auditor's 403 and a 404 are pages in the admin's look (sidebar,
header, styles loaded), the analyst's own request shows the reason and a disabled button, and
the Scheduled jobs page reads in words. Screenshots in artifacts/."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from tests.factories import RefundRequestFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def _user(username, *groups, **fields):
    user = UserFactory(username=username, **fields)
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


def _assert_admin_look(page):
    # Unfold's stylesheet applied (not Django's plain error page) and the sidebar present.
    assert page.locator("#nav-sidebar").count() == 1
    font = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Inter" in font


def test_error_pages_and_refusals_in_the_admins_look(live_server, page, screenshot_dir, settings):
    settings.DEBUG = False
    call_command("loaddata", "groups", verbosity=0)
    _user("auditor", "Read-only auditors")
    analyst = _user("analyst", "Finance staff")
    _user("root", is_superuser=True)
    own = RefundRequestFactory(requested_by=analyst)

    _login(page, live_server, "auditor")
    response = page.goto(f"{live_server.url}/admin/refunds/refundrequest/{own.pk}/confirm-approve/")
    assert response.status == 403
    assert page.locator("[data-testid=error-page] h2", has_text="You may not do this").is_visible()
    _assert_admin_look(page)
    page.screenshot(path=str(screenshot_dir / "permsui-403-auditor.png"))

    response = page.goto(f"{live_server.url}/admin/no-such-page/")
    assert response.status == 404
    assert page.locator("[data-testid=error-page] h2", has_text="Page not found").is_visible()
    _assert_admin_look(page)
    page.screenshot(path=str(screenshot_dir / "permsui-404.png"))

    page.context.clear_cookies()
    _login(page, live_server, "analyst")
    page.goto(f"{live_server.url}/admin/refunds/refundrequest/{own.pk}/confirm-approve/")
    button = page.locator("[data-testid=confirm-disabled]")
    assert button.is_disabled()
    assert page.locator("[data-testid=refusal]").inner_text().startswith("You requested this")
    page.screenshot(path=str(screenshot_dir / "permsui-own-request.png"), full_page=True)

    page.context.clear_cookies()
    _login(page, live_server, "root")
    page.goto(f"{live_server.url}/admin/django_q/schedule/")
    text = page.locator("#result_list").inner_text()
    assert "every 15 minutes" in text and "forever" in text
    page.screenshot(path=str(screenshot_dir / "permsui-scheduled-jobs.png"), full_page=True)

    response = page.goto(f"{live_server.url}/favicon.ico")
    assert response.status == 200 and response.headers["content-type"] == "image/x-icon"
