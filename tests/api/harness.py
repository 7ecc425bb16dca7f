"""The API's permission-matrix harness: one client per role, each with real credentials.

Roles (fixtures/groups.json, as `manage.py demo_staff` sets them up):
  superuser   a superuser's token
  finance     "Finance staff" (request, approve, export; views the money lists)
  senior      "Finance staff" + "Senior approvers" (large refunds, retries, replays, reviews)
  auditor     "Read-only auditors" (views, never writes)
  staff       a staff member in no group (the admin shows them nothing)
  anonymous   no credentials
  revoked     a superuser's token, revoked
  expired     a superuser's token, past its expiry
  read_only   a superuser's read-only token (monitoring): reads as a superuser, never writes

Use:
    def test_transactions_list_matrix(api_roles):
        assert_matrix(api_roles, read_matrix(VIEWERS), lambda client: client.get(url))

For a write whose effect changes what the next role would get, let `call` make fresh
objects each time: `call(client)` runs once per role, in ROLES order, in one test.

Every response goes through tests/api/schema_check.py: a response the schema does not
document fails the test that got it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from backoffice.api.tokens import api_token_create, api_token_revoke
from tests.api.schema_check import check_response
from tests.factories import UserFactory

ROLES = (
    "superuser",
    "finance",
    "senior",
    "auditor",
    "staff",
    "anonymous",
    "revoked",
    "expired",
    "read_only",
)
# Who holds the Django permissions the admin's groups give (fixtures/groups.json).
FINANCE_VIEWERS = frozenset({"superuser", "finance", "senior", "auditor", "read_only"})
SENIORS = frozenset({"superuser", "senior"})
# Roles whose credentials never authenticate: always 401.
DEAD = frozenset({"anonymous", "revoked", "expired"})

_GROUPS = {
    "finance": ["Finance staff"],
    "senior": ["Finance staff", "Senior approvers"],
    "auditor": ["Read-only auditors"],
    "staff": [],
}


class SchemaCheckedClient(APIClient):
    """An APIClient whose every response under /api/v1/ is checked against the schema."""

    def request(self, **request):
        response = super().request(**request)
        check_response(request["REQUEST_METHOD"], request["PATH_INFO"], response)
        return response


@dataclass
class ApiRoles:
    clients: dict[str, SchemaCheckedClient]
    users: dict[str, object]
    tokens: dict[str, object]

    def __getitem__(self, role: str) -> SchemaCheckedClient:
        return self.clients[role]


def make_api_roles() -> ApiRoles:
    call_command("loaddata", "groups", verbosity=0)
    boss = UserFactory(username="api-boss", is_superuser=True)
    users = {"superuser": boss}
    for role, groups in _GROUPS.items():
        user = UserFactory(username=f"api-{role}")
        user.groups.set(Group.objects.filter(name__in=groups))
        users[role] = user
    later = timezone.now() + timedelta(days=30)
    secrets, tokens = {}, {}
    for role, user in users.items():
        issued = api_token_create(user=user, name=role, expires_at=later, acting_user=boss)
        secrets[role], tokens[role] = issued.secret, issued.token
    issued = api_token_create(
        user=boss, name="monitoring", expires_at=later, read_only=True, acting_user=boss
    )
    secrets["read_only"], tokens["read_only"] = issued.secret, issued.token
    issued = api_token_create(user=boss, name="revoked", expires_at=later, acting_user=boss)
    api_token_revoke(token=issued.token, acting_user=boss)
    secrets["revoked"], tokens["revoked"] = issued.secret, issued.token
    issued = api_token_create(user=boss, name="expired", expires_at=later, acting_user=boss)
    type(issued.token).objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    secrets["expired"], tokens["expired"] = issued.secret, issued.token
    clients = {}
    for role in ROLES:
        client = SchemaCheckedClient()
        if role in secrets:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secrets[role]}")
        clients[role] = client
    return ApiRoles(clients=clients, users=users, tokens=tokens)


def read_matrix(allowed: Iterable[str], *, ok: int = 200) -> dict[str, int]:
    """Expected statuses of a read: `ok` for `allowed`, 401 for dead credentials, 403 else."""
    allowed = frozenset(allowed)
    return {role: ok if role in allowed else 401 if role in DEAD else 403 for role in ROLES}


def write_matrix(allowed: Iterable[str], *, ok: int = 200) -> dict[str, int]:
    """Expected statuses of a write: as a read, and the read-only token is always refused."""
    allowed = frozenset(allowed) - {"read_only"}
    return read_matrix(allowed, ok=ok)


def run_matrix(roles: ApiRoles, call: Callable[[SchemaCheckedClient], object]) -> dict[str, int]:
    return {role: call(roles[role]).status_code for role in ROLES}


def assert_matrix(
    roles: ApiRoles, expected: dict[str, int], call: Callable[[SchemaCheckedClient], object]
) -> None:
    """`call(client)` answers each role with the status `expected` says (one diff for all)."""
    assert run_matrix(roles, call) == expected
