"""The API's framework (backoffice/api/): tokens, authentication, permissions, the error
shape, Idempotency-Key, throttling. Through a test-only POST endpoint (tests/api/
urls_for_tests.py) where the project has none of its own to spare."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from backoffice.api import authentication, errors, idempotency, permissions
from backoffice.api.idempotency import idempotency_records_cleanup
from backoffice.api.pagination import KeysetCursorPagination
from backoffice.api.throttling import throttle_windows_cleanup
from backoffice.api.tokens import (
    ERR_EXPIRY_IN_PAST,
    ERR_NOT_STAFF,
    ApiTokenError,
    api_token_create,
    api_token_find,
)
from backoffice.models import AdminAction, ApiThrottleWindow, ApiToken, IdempotencyRecord
from payments.models import Payment
from tests.api.harness import ROLES, SchemaCheckedClient, assert_matrix, write_matrix
from tests.factories import PaymentFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls_for_tests")]

ECHO = "/test-api/echo/"
LIST = "/api/v1/transactions/"


@contextlib.contextmanager
def freeze_time(iso: str):
    """Django's clock and the throttles' clock stopped at `iso` (UTC)."""
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    clock = mock.Mock(time=mock.Mock(return_value=moment.timestamp()))
    with (
        mock.patch("django.utils.timezone.now", return_value=moment),
        mock.patch("backoffice.api.throttling.time", clock),
    ):
        yield


def post(client, body, key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(ECHO, body, format="json", **headers, **extra)


def error(response) -> dict:
    return response.json()["error"]


# --- Tokens --------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_only_as_its_hash(api_roles):
    boss = api_roles.users["superuser"]
    issued = api_token_create(
        user=boss, name="bi", expires_at=timezone.now() + timedelta(days=1), acting_user=boss
    )
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.secret.startswith("bo_") and len(issued.secret) >= 40
    assert stored.key_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret not in json.dumps(
        list(ApiToken.objects.values()), default=str
    )  # the secret itself is nowhere in the table
    assert stored.prefix == issued.secret[:11]
    assert api_token_find(issued.secret) == stored
    audit = AdminAction.objects.get(action="api_token_create", target_id=str(stored.pk))
    assert audit.actor == boss and audit.details["prefix"] == stored.prefix
    assert issued.secret not in json.dumps(audit.details)


def test_tokens_are_for_active_staff_and_expire_in_the_future(db):
    boss = UserFactory(is_superuser=True)
    customer_user = UserFactory(is_staff=False)
    later = timezone.now() + timedelta(days=1)
    with pytest.raises(ApiTokenError, match=ERR_NOT_STAFF):
        api_token_create(user=customer_user, name="x", expires_at=later, acting_user=boss)
    with pytest.raises(ApiTokenError, match=ERR_EXPIRY_IN_PAST):
        api_token_create(
            user=boss, name="x", expires_at=timezone.now() - timedelta(1), acting_user=boss
        )


def test_dead_credentials_answer_401_with_the_reason(api_roles):
    cases = {
        "revoked": authentication.ERR_REVOKED_TOKEN,
        "expired": authentication.ERR_EXPIRED_TOKEN,
    }
    for role, message in cases.items():
        response = api_roles[role].get(LIST)
        assert response.status_code == 401
        assert error(response) == {
            "code": "authentication_failed",
            "message": message,
            "fields": {},
        }
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    unknown = SchemaCheckedClient()
    unknown.credentials(HTTP_AUTHORIZATION="Bearer bo_not-a-token")
    assert error(unknown.get(LIST))["message"] == authentication.ERR_UNKNOWN_TOKEN
    malformed = SchemaCheckedClient()
    malformed.credentials(HTTP_AUTHORIZATION="Bearer two words")
    assert error(malformed.get(LIST))["message"] == authentication.ERR_BAD_HEADER
    anonymous = api_roles["anonymous"].get(LIST)
    assert anonymous.status_code == 401 and error(anonymous)["code"] == "not_authenticated"


def test_a_deactivated_or_demoted_users_token_stops_working(api_roles):
    user = api_roles.users["finance"]
    assert api_roles["finance"].get(LIST).status_code == 200
    user.is_staff = False
    user.save()
    response = api_roles["finance"].get(LIST)
    assert response.status_code == 401
    assert error(response)["message"] == authentication.ERR_INACTIVE_USER


def test_last_used_is_written_at_most_once_a_minute(api_roles):
    token = api_roles.tokens["auditor"]
    assert token.last_used_at is None
    with freeze_time("2026-12-01 10:00:00"):
        api_roles["auditor"].get(LIST)
    token.refresh_from_db()
    first = token.last_used_at
    assert first.isoformat() == "2026-12-01T10:00:00+00:00"
    with freeze_time("2026-12-01 10:00:59"):
        api_roles["auditor"].get(LIST)
    token.refresh_from_db()
    assert token.last_used_at == first
    with freeze_time("2026-12-01 10:01:01"):
        api_roles["auditor"].get(LIST)
    token.refresh_from_db()
    assert token.last_used_at.isoformat() == "2026-12-01T10:01:01+00:00"


def test_a_session_works_for_staff_and_is_csrf_checked_on_writes(api_roles):
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(api_roles.users["finance"])
    assert client.get(LIST).status_code == 200
    response = client.post(ECHO, {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in error(response)["message"]
    outsider = SchemaCheckedClient()
    outsider.force_login(UserFactory(is_staff=False))
    response = outsider.get(LIST)
    assert response.status_code == 403
    assert error(response)["message"] == permissions.ERR_NOT_STAFF


def test_a_session_without_its_second_factor_is_refused_but_a_token_is_not(api_roles, settings):
    """With django-otp (the admin's second factor) users have is_verified(); where the admin
    requires it, the API asks it of sessions too."""
    settings.TWO_FACTOR_REQUIRED = True
    user = api_roles.users["finance"]
    user.is_verified = lambda: False
    view = mock.Mock(read_permissions=["payments.view_payment"])
    session = Request(APIRequestFactory().get(LIST))
    session.user, session.auth = user, None
    check = permissions.StaffModelPermissions()
    assert check.has_permission(session, view) is False
    assert check.message == permissions.ERR_SESSION_NOT_VERIFIED
    token = Request(APIRequestFactory().get(LIST))
    token.user, token.auth = user, api_roles.tokens["finance"]
    assert permissions.StaffModelPermissions().has_permission(token, view) is True
    user.is_verified = lambda: True
    assert permissions.StaffModelPermissions().has_permission(session, view) is True
    settings.TWO_FACTOR_REQUIRED = False
    user.is_verified = lambda: False
    assert permissions.StaffModelPermissions().has_permission(session, view) is True


def test_the_browsable_api_renders_for_a_staff_session(api_roles):
    client = SchemaCheckedClient()
    client.force_login(api_roles.users["auditor"])
    PaymentFactory()
    response = client.get(LIST, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Transaction" in response.content


# --- Permissions ---------------------------------------------------------------------------


def test_writes_need_the_declared_permission_and_never_a_read_only_token(api_roles):
    # refunds.add_refundrequest: Finance staff (so senior too) and the superuser.
    assert_matrix(
        api_roles,
        write_matrix({"superuser", "finance", "senior"}, ok=201),
        lambda client: post(client, {}),
    )
    response = post(api_roles["read_only"], {})
    assert error(response) == {
        "code": "read_only_token",
        "message": permissions.ERR_READ_ONLY_TOKEN,
        "fields": {},
    }
    # The read-only token still reads as its superuser.
    assert api_roles["read_only"].get(ECHO).status_code == 200


def test_a_write_that_declares_no_permission_is_refused_even_to_a_superuser(api_roles):
    response = api_roles["superuser"].post("/test-api/undeclared/", {}, format="json")
    assert response.status_code == 403
    assert error(response)["message"] == permissions.ERR_NO_PERMISSION


# --- Errors --------------------------------------------------------------------------------


def test_every_error_has_the_one_shape(api_roles):
    client = api_roles["superuser"]
    invalid = post(client, {"fail": "invalid"})
    assert invalid.status_code == 400
    assert error(invalid) == {
        "code": "invalid",
        "message": "Both wrong.",
        "fields": {"amount": ["Too much."]},
    }
    conflict = post(client, {"fail": "conflict"})
    assert conflict.status_code == 409
    assert error(conflict) == {"code": "conflict", "message": "Already done.", "fields": {}}
    rule = post(client, {"fail": "rule"})
    assert rule.status_code == 403
    assert error(rule) == {"code": "rule_broken", "message": "The rule says no.", "fields": {}}
    missing = client.get(f"{LIST}999999/")
    assert missing.status_code == 404 and error(missing)["code"] == "not_found"
    nowhere = client.get("/api/v1/no-such-thing/")
    assert nowhere.status_code == 404 and error(nowhere)["message"] == errors.MSG_NOT_FOUND
    slashless = client.get("/api/v1/transactions")
    assert slashless.status_code == 404
    assert error(slashless)["message"] == errors.MSG_TRY_SLASH.format(path="/api/v1/transactions")
    not_allowed = client.delete(LIST)
    assert not_allowed.status_code == 405 and error(not_allowed)["code"] == "method_not_allowed"
    bad_json = client.post(ECHO, "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and error(bad_json)["code"] == "parse_error"


# --- Idempotency ---------------------------------------------------------------------------


def effects() -> int:
    return AdminAction.objects.filter(action="echo").count()


def test_a_repeat_with_the_same_key_and_body_gets_the_first_answer(api_roles):
    client = api_roles["finance"]
    first = post(client, {"amount": 10}, key="k-1")
    again = post(client, {"amount": 10}, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"effects": 1, "echo": {"amount": 10}}
    assert again[idempotency.REPLAYED_HEADER] == "true"
    assert idempotency.REPLAYED_HEADER not in first
    assert effects() == 1


def test_the_same_key_with_another_body_is_a_conflict(api_roles):
    client = api_roles["finance"]
    post(client, {"amount": 10}, key="k-2")
    response = post(client, {"amount": 11}, key="k-2")
    assert response.status_code == 409
    assert error(response) == {
        "code": "idempotency_key_reused",
        "message": idempotency.ERR_KEY_REUSED,
        "fields": {},
    }
    assert effects() == 1


def test_keys_are_per_user_and_requests_without_a_key_always_run(api_roles):
    post(api_roles["finance"], {}, key="shared")
    post(api_roles["senior"], {}, key="shared")
    post(api_roles["finance"], {})
    post(api_roles["finance"], {})
    assert effects() == 4


def test_a_refusal_replays_and_a_crash_frees_the_key(api_roles):
    client = api_roles["finance"]
    assert post(client, {"fail": "conflict"}, key="k-3").status_code == 409
    replay = post(client, {"fail": "conflict"}, key="k-3")
    assert replay.status_code == 409 and replay[idempotency.REPLAYED_HEADER] == "true"
    client.raise_request_exception = False
    assert post(client, {"fail": "bug"}, key="k-4").status_code == 500
    assert not IdempotencyRecord.objects.filter(key="k-4").exists()


def test_a_repeat_while_the_first_runs_is_told_to_wait_then_may_take_over(api_roles, settings):
    client = api_roles["finance"]
    user = api_roles.users["finance"]
    body = {"amount": 1}
    # A first use that is running (its record has no answer yet).
    request_hash = hashlib.sha256(b"POST\0" + ECHO.encode() + b"\0" + b'{"amount":1}').hexdigest()
    record = IdempotencyRecord.objects.create(
        user=user,
        key="k-5",
        method="POST",
        path=ECHO,
        request_hash=request_hash,
        locked_at=timezone.now(),
    )
    response = post(client, body, key="k-5")
    assert response.status_code == 409
    assert error(response)["code"] == "idempotency_in_progress"
    assert response["Retry-After"] == "1"
    assert effects() == 0
    # The first worker died: after the lease the repeat runs it, once.
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        locked_at=timezone.now() - timedelta(seconds=settings.API_IDEMPOTENCY_LEASE_SECONDS + 1)
    )
    assert post(client, body, key="k-5").status_code == 201
    assert post(client, body, key="k-5")[idempotency.REPLAYED_HEADER] == "true"
    assert effects() == 1


def test_a_multipart_repeat_is_recognised_by_its_fields_and_files(api_roles):
    client = api_roles["finance"]

    def upload(content: bytes):
        file = SimpleUploadedFile("evidence.pdf", content, content_type="application/pdf")
        return client.post(
            ECHO,
            {"note": "receipt", "file": file},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="upload-1",
        )

    assert upload(b"%PDF-1.4 one").status_code == 201
    assert upload(b"%PDF-1.4 one")[idempotency.REPLAYED_HEADER] == "true"
    assert upload(b"%PDF-1.4 two").status_code == 409
    assert effects() == 1


def test_a_bad_key_is_refused(api_roles):
    response = post(api_roles["finance"], {}, key="x" * 256)
    assert response.status_code == 400
    assert error(response)["message"] == idempotency.ERR_BAD_KEY
    assert effects() == 0


def test_records_older_than_the_ttl_are_cleaned_up(api_roles, settings):
    client = api_roles["finance"]
    with freeze_time("2026-12-01 10:00:00"):
        post(client, {}, key="old")
    with freeze_time("2026-12-02 09:00:00"):
        post(client, {}, key="young")
    with freeze_time("2026-12-02 10:30:00"):
        assert idempotency_records_cleanup() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["young"]


# --- Throttling ----------------------------------------------------------------------------


@pytest.fixture
def tight_rates(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token_write": "2/minute", "api_user_write": "3/minute"},
    }


def test_writes_over_the_token_rate_get_429_with_retry_after(api_roles, tight_rates):
    client = api_roles["finance"]
    with freeze_time("2026-12-01 10:00:10"):
        statuses = [post(client, {}).status_code for _ in range(3)]
        throttled = post(client, {})
    assert statuses == [201, 201, 429]
    assert throttled.status_code == 429
    assert error(throttled)["code"] == "throttled"
    assert throttled["Retry-After"] == "50"
    with freeze_time("2026-12-01 10:01:00"):
        assert post(client, {}).status_code == 201  # a new window
    assert effects() == 3


def test_the_user_rate_counts_all_of_a_users_tokens_and_reads_are_not_throttled(
    api_roles, tight_rates
):
    user = api_roles.users["finance"]
    later = timezone.now() + timedelta(days=1)
    second = SchemaCheckedClient()
    issued = api_token_create(user=user, name="second", expires_at=later, acting_user=user)
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    with freeze_time("2026-12-01 10:00:10"):
        statuses = [
            post(api_roles["finance"], {}).status_code,
            post(api_roles["finance"], {}).status_code,
            post(second, {}).status_code,  # the user's third: still allowed
            post(second, {}).status_code,  # the user's fourth: over 3/minute
        ]
        reads = {api_roles["finance"].get(LIST).status_code for _ in range(10)}
    assert statuses == [201, 201, 201, 429]
    assert reads == {200}


def test_windows_are_counted_in_the_database_by_default_and_cleaned_up(
    api_roles, tight_rates, settings
):
    """No cache to set up: every process and server counts in the same rows."""
    assert settings.API_THROTTLE_CACHE == ""
    with freeze_time("2026-12-01 10:00:10"):
        assert [post(api_roles["finance"], {}).status_code for _ in range(3)] == [201, 201, 429]
    counts = dict(ApiThrottleWindow.objects.values_list("key", "count"))
    assert sorted(counts.values()) == [3, 3]  # the token's window and the user's
    window = int(datetime(2026, 12, 1, 10, 0, 10, tzinfo=UTC).timestamp() // 60)
    assert all(key.endswith(f":{window}") for key in counts)
    assert throttle_windows_cleanup(now=datetime(2026, 12, 1, 10, 1, 0, tzinfo=UTC)) == 0
    assert throttle_windows_cleanup(now=datetime(2026, 12, 1, 10, 1, 2, tzinfo=UTC)) == 2


def test_a_named_shared_cache_counts_instead_of_the_database(api_roles, tight_rates, settings):
    settings.API_THROTTLE_CACHE = "default"
    caches["default"].clear()
    with freeze_time("2026-12-01 10:00:10"):
        assert [post(api_roles["finance"], {}).status_code for _ in range(3)] == [201, 201, 429]
    assert not ApiThrottleWindow.objects.exists()


def test_roles_cover_the_issue(api_roles):
    """The matrix's roles are the issue's list plus the monitoring token."""
    assert set(ROLES) == {
        "superuser",
        "finance",
        "senior",
        "auditor",
        "staff",
        "anonymous",
        "revoked",
        "expired",
        "read_only",
    }


# --- Pagination ----------------------------------------------------------------------------


def test_an_empty_queryset_is_an_empty_page_without_a_query(db):

    paginator = KeysetCursorPagination()
    request = Request(APIRequestFactory().get(LIST))
    with CaptureQueriesContext(connection) as queries:
        rows = paginator.paginate_queryset(Payment.objects.none(), request)
    assert rows == [] and queries.captured_queries == []
    assert paginator.get_paginated_response([]).data == {
        "next": None,
        "previous": None,
        "results": [],
    }


def test_an_unordered_list_is_a_configuration_error_not_a_wrong_page(db):

    request = Request(APIRequestFactory().get(LIST))
    with pytest.raises(ImproperlyConfigured):
        KeysetCursorPagination().paginate_queryset(Payment.objects.order_by("?"), request)
