"""In a real browser: a staff member makes an API token (the secret shown once), finds it in
the list, revokes it through the confirmation page; and the browsable API renders a list for
their session. Screenshots in artifacts/."""

import re

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.management import call_command

from backoffice.models import ApiToken
from tests.factories import PaymentFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_make_use_and_revoke_a_token(live_server, page, screenshot_dir):
    call_command("loaddata", "groups", verbosity=0)
    analyst = UserFactory(username="analyst")
    analyst.groups.set(Group.objects.filter(name="Finance staff"))
    PaymentFactory.create_batch(3)
    _login(page, live_server, "analyst")

    page.goto(f"{live_server.url}/admin/backoffice/apitoken/add/")
    page.fill("input[name=name]", "Metabase")
    page.check("input[name=read_only]")
    page.screenshot(path=str(screenshot_dir / "api-token-add.png"), full_page=True)
    page.click("button[name=_save]")
    secret = page.locator("#api-token-secret").inner_text().strip()
    assert re.fullmatch(r"bo_[A-Za-z0-9_-]{43}", secret)
    page.screenshot(path=str(screenshot_dir / "api-token-secret.png"), full_page=True)

    api = f"{live_server.url}/api/v1/transactions/"
    headers = {"Authorization": f"Bearer {secret}"}
    assert requests.get(api, headers=headers, timeout=10).status_code == 200

    page.goto(f"{live_server.url}/admin/backoffice/apitoken/")
    assert page.get_by_text("Metabase").first.is_visible()
    assert secret not in page.content()
    page.screenshot(path=str(screenshot_dir / "api-token-list.png"), full_page=True)

    token = ApiToken.objects.get()
    page.goto(f"{live_server.url}/admin/backoffice/apitoken/{token.pk}/revoke/")
    page.screenshot(path=str(screenshot_dir / "api-token-revoke.png"), full_page=True)
    page.click("[data-testid=revoke-submit]")
    page.wait_for_url(f"{live_server.url}/admin/backoffice/apitoken/{token.pk}/change/")
    assert requests.get(api, headers=headers, timeout=10).status_code == 401

    page.goto(api)
    assert page.get_by_text("Transaction").first.is_visible()
    page.screenshot(path=str(screenshot_dir / "api-browsable-transactions.png"), full_page=True)
