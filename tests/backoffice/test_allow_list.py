"""The admin's IP allow-list (issue 12, item 3): off when empty; inside a listed network the
admin answers, outside it a logged 403 in the admin's look; a forged X-Forwarded-For is
ignored unless we said we run that many proxies; API tokens work from anywhere."""

import logging

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from backoffice import allow_list
from backoffice.api.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def office_only(settings):
    settings.ADMIN_ALLOWED_CIDRS = ["10.20.0.0/16", "2001:db8::/32", "198.51.100.7"]
    settings.TRUSTED_PROXY_COUNT = 0
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"


def assert_refused(response):
    assert response.status_code == 403
    body = response.content.decode()
    assert allow_list.REFUSED_TITLE in body
    assert "unfold/css/styles.css" in body
    assert 'id="unfold-theme-colors"' in body
    assert 'id="nav-sidebar"' not in body


def test_empty_means_off(client, settings):
    settings.ADMIN_ALLOWED_CIDRS = []
    assert client.get("/admin/login/", REMOTE_ADDR="192.0.2.1").status_code == 200


@pytest.mark.parametrize("ip", ["10.20.3.4", "2001:db8::1", "198.51.100.7"])
def test_inside_a_network_the_admin_answers(office_only, admin_client, ip):
    assert Client().get("/admin/login/", REMOTE_ADDR=ip).status_code == 200
    assert admin_client.get("/admin/", REMOTE_ADDR=ip).status_code == 200


@pytest.mark.parametrize("ip", ["10.21.0.1", "192.0.2.1", "2001:db9::1", "198.51.100.8"])
def test_outside_the_networks_every_admin_page_is_refused_and_logged(
    office_only, admin_client, caplog, ip
):
    stranger = Client()
    with caplog.at_level(logging.WARNING, logger="backoffice.allow_list"):
        assert_refused(stranger.get("/admin/login/", REMOTE_ADDR=ip))
        # A signed-in superuser too, and a POST (a sign-in attempt) as much as a GET.
        assert_refused(admin_client.get("/admin/payments/payment/", REMOTE_ADDR=ip))
        assert_refused(stranger.post("/admin/login/", {"username": "x"}, REMOTE_ADDR=ip))
    assert any(ip in record.getMessage() for record in caplog.records)
    assert "/admin/payments/payment/" in caplog.text


def test_a_forged_forwarded_for_is_ignored_without_a_trusted_proxy(client, office_only):
    response = client.get(
        "/admin/login/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.20.3.4"
    )
    assert_refused(response)


def test_behind_our_proxy_the_address_it_saw_decides(client, office_only, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "172.16.0.2"  # our load balancer, outside the list itself
    # The client put 10.20.3.4 first; our proxy appended the address it really saw.
    forged = client.get(
        "/admin/login/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="10.20.3.4, 192.0.2.1"
    )
    assert_refused(forged)
    real = client.get("/admin/login/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="10.20.3.4")
    assert real.status_code == 200


def test_the_proxy_header_is_the_one_named_in_settings(client, office_only, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXY_HEADER = "X-Real-Client"
    assert_refused(
        client.get("/admin/login/", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR="10.20.3.4")
    )
    response = client.get("/admin/login/", REMOTE_ADDR="172.16.0.2", HTTP_X_REAL_CLIENT="10.20.3.4")
    assert response.status_code == 200


def test_the_api_refuses_sessions_from_outside_but_not_tokens(client, office_only):
    user = UserFactory(username="bi", is_superuser=True)
    client.force_login(user)
    assert_refused(client.get("/api/v1/schema/", REMOTE_ADDR="192.0.2.1"))
    assert client.get("/api/v1/schema/", REMOTE_ADDR="10.20.3.4").status_code == 200

    from django.utils import timezone

    issued = api_token_create(
        user=user,
        name="bi",
        expires_at=timezone.now() + timezone.timedelta(days=1),
        acting_user=user,
    )
    client.logout()
    response = client.get(
        "/api/v1/schema/", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=f"Bearer {issued.secret}"
    )
    assert response.status_code == 200


def test_other_paths_are_not_guarded(client, office_only):
    # Stripe's webhooks come from Stripe's addresses, not the office.
    response = client.post(
        "/stripe/webhook/", b"{}", content_type="application/json", REMOTE_ADDR="192.0.2.1"
    )
    assert response.status_code == 400  # no signature: refused by the webhook, not the list
    assert allow_list.REFUSED_TITLE not in response.content.decode()


def test_a_bad_network_stops_the_start(settings):
    settings.ADMIN_ALLOWED_CIDRS = ["10.0.0.0/8", "office"]
    with pytest.raises(ImproperlyConfigured, match="'office'"):
        allow_list.allowed_networks()
    errors = [e for e in run_checks() if e.id == "backoffice.E001"]
    assert errors and "'office'" in errors[0].msg


@pytest.mark.parametrize(
    "header",
    ["Basic YWRtaW46eA==", "Token abc", "Bearer", "Bearer not-our-format", "bo_abc", "Bearer bo_"],
)
def test_an_authorization_header_that_is_not_our_token_does_not_open_the_api(
    client, office_only, header
):
    """The token authentication ignores other schemes, so the session cookie would sign the
    request in: only a Bearer token of our format skips the list (it is then checked as a
    token, and a bad one is a 401 with no fall back to the session)."""
    client.force_login(UserFactory(username="bi", is_superuser=True))
    response = client.get("/api/v1/schema/", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=header)
    assert_refused(response)


def test_a_session_authenticated_api_request_from_outside_is_refused_by_drf_too(office_only, rf):
    """Defence in depth, should the middleware be skipped (another mount, a new prefix): the
    session authentication itself refuses a session from outside the networks."""
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework import exceptions
    from rest_framework.request import Request

    from backoffice.api.authentication import AllowListSessionAuthentication

    user = UserFactory(username="bi", is_superuser=True)

    def drf_request(ip):
        django_request = rf.get("/api/v1/schema/", REMOTE_ADDR=ip)
        django_request.session = SessionStore()
        django_request.user = user
        django_request._dont_enforce_csrf_checks = True
        return Request(django_request)

    auth = AllowListSessionAuthentication()
    assert auth.authenticate(drf_request("10.20.3.4")) == (user, None)
    with pytest.raises(exceptions.PermissionDenied, match="office and VPN"):
        auth.authenticate(drf_request("192.0.2.1"))


def test_the_api_uses_the_allow_list_session_authentication(settings):
    classes = settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    assert "rest_framework.authentication.SessionAuthentication" not in classes
    assert "backoffice.api.authentication.AllowListSessionAuthentication" in classes
