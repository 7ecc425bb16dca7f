"""403, 404 and 500 are pages in the admin's look (Unfold's base template) with DEBUG off, as
the demo runs, never Django's plain or debug pages; /favicon.ico answers with an icon."""

from pathlib import Path

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client

from backoffice import errors
from tests.factories import RefundRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

UNFOLD_STYLES = "unfold/css/styles.css"
SIDEBAR = 'id="nav-sidebar"'
DEBUG_PAGE_MARKS = ("Django tried these URL patterns", "Traceback", "technical_500", "DEBUG = True")


@pytest.fixture(autouse=True)
def _debug_off(settings):
    settings.DEBUG = False


def _role_client(group: str) -> Client:
    call_command("loaddata", "groups", verbosity=0)
    from django.contrib.auth.models import Group

    user = UserFactory(username=f"user-{group[:8]}")
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def assert_styled_error(response, status: int, *, sidebar: bool) -> str:
    assert response.status_code == status
    body = response.content.decode()
    assert f'data-status="{status}"' in body
    assert UNFOLD_STYLES in body  # Unfold's skeleton, not Django's plain page
    assert errors.PAGES[status][0] in body
    assert (SIDEBAR in body) is sidebar
    for mark in DEBUG_PAGE_MARKS:
        assert mark not in body
    return body


def test_404_inside_the_admin_has_the_admin_frame(admin_client):
    response = admin_client.get("/admin/no-such-app/")
    assert_styled_error(response, 404, sidebar=True)


def test_404_for_a_stranger_has_the_login_frame_and_no_sidebar(client):
    body = assert_styled_error(client.get("/no-such-page/"), 404, sidebar=False)
    assert "/admin/payments/payment/" not in body  # nothing of the admin shown to a stranger
    # The site's colours all the same (without them the page's button was white on white).
    assert 'id="unfold-theme-colors"' in body


def test_permission_denied_in_the_admin_renders_the_styled_403():
    auditor = _role_client("Read-only auditors")
    refund_request = RefundRequestFactory()
    response = auditor.get(f"/admin/refunds/refundrequest/{refund_request.pk}/confirm-approve/")
    assert_styled_error(response, 403, sidebar=True)
    response = auditor.post(
        f"/admin/refunds/refundrequest/{refund_request.pk}/approve/", {"note": "x"}
    )
    assert_styled_error(response, 403, sidebar=True)


@pytest.fixture
def failing_client(settings, superuser):
    settings.ROOT_URLCONF = "tests.backoffice.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    return client


def test_500_has_the_admin_frame(failing_client):
    assert_styled_error(failing_client.get("/boom/"), 500, sidebar=True)


def test_500_page_survives_a_broken_admin_context(failing_client, monkeypatch):
    # When what broke is what the full page reads (the database, say), the frame without the
    # sidebar still answers in the admin's look.
    def broken(request):
        raise RuntimeError("database gone")

    monkeypatch.setattr(admin.site, "each_context", broken)
    assert_styled_error(failing_client.get("/boom/"), 500, sidebar=False)


def test_500_falls_back_to_plain_text_when_no_template_renders(failing_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("templates gone")

    monkeypatch.setattr(errors, "render_to_string", broken)
    response = failing_client.get("/boom/")
    assert response.status_code == 500
    assert response.content.decode() == errors.PLAIN_500


def test_favicon_is_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert "max-age=86400" in response["Cache-Control"]


def test_the_demo_runs_without_debug_pages():
    script = (Path(__file__).resolve().parents[2] / "scripts" / "demo.sh").read_text()
    assert 'export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"' in script
    # DEBUG off: runserver serves the static files only when told to.
    assert "runserver --noreload --insecure" in script
