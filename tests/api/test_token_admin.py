"""API tokens in the admin: made by a staff member for themselves (a superuser may make one
for another staff login), the secret shown once and never stored, revoked through a POST
confirmation, both audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from backoffice.api.tokens import api_token_create, token_hash
from backoffice.models import AdminAction, ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    """The admin's forms post form data (the API tests' client posts JSON)."""
    return Client()


ADD = reverse("admin:backoffice_apitoken_add")
CHANGELIST = reverse("admin:backoffice_apitoken_changelist")


def revoke_url(token) -> str:
    return reverse("admin:backoffice_apitoken_revoke_confirm", args=[token.pk])


def secret_on(response) -> str:
    match = re.search(r'id="api-token-secret"[^>]*>(bo_[^<]+)<', response.content.decode())
    assert match, "the page shows the secret"
    return match.group(1)


def api_status(secret: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/api/v1/schema/").status_code


def add_form(**overrides) -> dict:
    expires = timezone.now() + timedelta(days=30)
    return {
        "name": "metabase",
        "expires_at_0": expires.strftime("%Y-%m-%d"),
        "expires_at_1": expires.strftime("%H:%M:%S"),
        **overrides,
    }


def test_a_staff_member_makes_their_own_token_and_sees_the_secret_once(client):
    analyst = UserFactory(username="analyst")
    other = UserFactory(username="other")
    client.force_login(analyst)
    # A user field smuggled into the POST is ignored: the token is always the analyst's.
    response = client.post(ADD, add_form(user=other.pk, read_only="on"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = secret_on(response)
    token = ApiToken.objects.get()
    assert token.user == analyst and token.created_by == analyst and token.read_only
    assert token.key_hash == token_hash(secret) and secret not in str(token.__dict__)
    assert api_status(secret) == 200
    # Never again: the token's own page shows only its prefix.
    page = client.get(reverse("admin:backoffice_apitoken_change", args=[token.pk]))
    assert token.prefix in page.content.decode() and secret not in page.content.decode()
    audit = AdminAction.objects.get(action="api_token_create")
    assert audit.actor == analyst and audit.details["user"] == "analyst"


def test_a_superuser_makes_a_token_for_a_service_login(client):
    boss = UserFactory(username="boss", is_superuser=True)
    service = UserFactory(username="metabase-bot")
    client.force_login(boss)
    response = client.post(ADD, add_form(user=service.pk))
    assert response.status_code == 200, response.context["adminform"].form.errors
    token = ApiToken.objects.get()
    assert token.user == service and token.created_by == boss
    assert api_status(secret_on(response)) == 200


def test_an_expiry_in_the_past_is_refused(client):
    client.force_login(UserFactory())
    response = client.post(ADD, add_form(expires_at_0="2020-01-01"))
    assert response.status_code == 200
    assert "The expiry must be in the future." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_staff_see_only_their_own_tokens(client):
    analyst, other = UserFactory(), UserFactory()
    later = timezone.now() + timedelta(days=1)
    mine = api_token_create(user=analyst, name="mine", expires_at=later, acting_user=analyst)
    theirs = api_token_create(user=other, name="theirs", expires_at=later, acting_user=other)
    client.force_login(analyst)
    page = client.get(CHANGELIST).content.decode()
    assert mine.token.prefix in page and theirs.token.prefix not in page
    response = client.get(reverse("admin:backoffice_apitoken_change", args=[theirs.token.pk]))
    assert response.status_code in (302, 403, 404)
    assert client.post(revoke_url(theirs.token)).status_code in (403, 404)
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None


def test_revoke_is_a_confirmed_post_and_the_token_then_answers_401(client):
    analyst = UserFactory()
    issued = api_token_create(
        user=analyst,
        name="probe",
        expires_at=timezone.now() + timedelta(days=1),
        acting_user=analyst,
    )
    client.force_login(analyst)
    confirm = client.get(revoke_url(issued.token))
    assert confirm.status_code == 200 and b'method="post"' in confirm.content
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None  # a GET changes nothing
    assert api_status(issued.secret) == 200
    response = client.post(revoke_url(issued.token))
    assert response.status_code == 302
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None and issued.token.revoked_by == analyst
    assert api_status(issued.secret) == 401
    assert AdminAction.objects.filter(action="api_token_revoke", actor=analyst).count() == 1
    # Twice is an error message, not a second audit row.
    client.post(revoke_url(issued.token))
    assert AdminAction.objects.filter(action="api_token_revoke").count() == 1


def test_a_superuser_revokes_anyones_token(client):
    boss = UserFactory(is_superuser=True)
    analyst = UserFactory()
    issued = api_token_create(
        user=analyst, name="x", expires_at=timezone.now() + timedelta(days=1), acting_user=analyst
    )
    client.force_login(boss)
    assert client.post(revoke_url(issued.token)).status_code == 302
    assert api_status(issued.secret) == 401


def test_tokens_are_never_edited_or_deleted(client):
    boss = UserFactory(is_superuser=True)
    issued = api_token_create(
        user=boss, name="x", expires_at=timezone.now() + timedelta(days=1), acting_user=boss
    )
    client.force_login(boss)
    change = reverse("admin:backoffice_apitoken_change", args=[issued.token.pk])
    client.post(change, {"name": "renamed", "read_only": "on"})
    delete = reverse("admin:backoffice_apitoken_delete", args=[issued.token.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    issued.token.refresh_from_db()
    assert issued.token.name == "x" and not issued.token.read_only


# --- step-up before a token is made -------------------------------------------------------------


@pytest.mark.parametrize("required", [True, False])
def test_a_stale_session_steps_up_before_it_makes_a_token(client, settings, required):
    """A token is a credential of its own (never stepped up itself): making one is where the
    fresh code is asked, else a stale or stolen session would mint a way round the step-up."""
    from tests.backoffice.two_factor_support import enrol as enrol_device
    from tests.backoffice.two_factor_support import totp_code, verified_session

    settings.TWO_FACTOR_REQUIRED = required
    analyst = UserFactory(username="analyst")
    device, _ = enrol_device(analyst)
    verified_session(client, analyst, device, minutes_ago=settings.STEP_UP_MINUTES + 1)

    for response in (client.get(ADD), client.post(ADD, add_form())):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("step_up") + "?next=")
    assert not ApiToken.objects.exists()

    client.post(reverse("step_up"), {"next": ADD, "code": totp_code(device)})
    response = client.post(ADD, add_form())
    assert response.status_code == 200
    assert ApiToken.objects.get().user == analyst


def test_save_model_asks_for_the_step_up_again(rf, settings):
    """The add view's check is the door; the save asks again (a form posted some other way)."""
    from django.contrib.admin.sites import site
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.exceptions import PermissionDenied

    from tests.backoffice.two_factor_support import enrol as enrol_device

    settings.TWO_FACTOR_REQUIRED = True
    analyst = UserFactory(username="analyst")
    enrol_device(analyst)
    request = rf.post(ADD)
    request.user = analyst
    request.session = SessionStore()
    model_admin = site._registry[ApiToken]
    token = ApiToken(name="x", expires_at=timezone.now() + timedelta(days=1), read_only=True)
    with pytest.raises(PermissionDenied):
        model_admin.save_model(request, token, form=None, change=False)
    assert not ApiToken.objects.exists()
