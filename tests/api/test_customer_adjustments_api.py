"""/api/v1/customer-adjustments/: who may list, request, approve and reject (the permission
matrix over the harness's roles), a money adjustment requested then approved and applied once
(an Idempotency-Key replay answers the first answer), hours applied at once, and refusals with
the service's words and a status saying what kind they are. Stripe is the recording fake of
tests/payments/customer_adjustment_support.py."""

import pytest

from payments import customer_adjustment_rules as rules
from payments.models import BalanceEntry, CustomerAdjustment
from payments.services import customer_adjustments as services
from tests.api.harness import FINANCE_VIEWERS, assert_matrix, read_matrix, write_matrix
from tests.factories import CustomerFactory
from tests.payments.customer_adjustment_support import FakeCustomerBalance, requester

pytestmark = pytest.mark.django_db

URL = "/api/v1/customer-adjustments/"
# Finance staff request, approve and reject (fixtures/groups.json); seniors too.
FINANCE = frozenset({"superuser", "finance", "senior"})


@pytest.fixture
def stripe_balance(monkeypatch):
    return FakeCustomerBalance().install(monkeypatch)


@pytest.fixture
def asker(db):
    """Requests adjustments, so any harness role may decide them (four-eyes)."""
    return requester(username="adjustment-asker")


def _money(user, amount=2500, currency="usd", customer=None):
    return services.customer_adjustment_request(
        customer=customer or CustomerFactory(),
        direction="credit",
        unit="money",
        amount=amount,
        currency=currency,
        reason="Tutor no-show",
        acting_user=user,
    )


def test_matrices(api_roles, asker, stripe_balance, django_capture_on_commit_callbacks):
    adjustment = _money(asker)
    for path in (URL, f"{URL}{adjustment.pk}/"):
        assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c, p=path: c.get(p))

    def request(client):
        body = {
            "customer": CustomerFactory().pk,
            "unit": "hours",
            "direction": "credit",
            "minutes": 60,
            "reason": "Make-up lesson",
        }
        return client.post(URL, body, format="json")

    assert_matrix(api_roles, write_matrix(FINANCE, ok=201), request)
    with django_capture_on_commit_callbacks(execute=True):
        assert_matrix(
            api_roles,
            write_matrix(FINANCE),
            lambda c: c.post(f"{URL}{_money(asker).pk}/approve/", {}, format="json"),
        )
    assert_matrix(
        api_roles,
        write_matrix(FINANCE),
        lambda c: c.post(f"{URL}{_money(asker).pk}/reject/", {"reason": "No"}, format="json"),
    )
    # Three approvals by the three allowed roles: three transactions, one each.
    assert len(stripe_balance.create_calls) == 3


def test_a_money_credit_requested_then_approved_once(
    api_roles, stripe_balance, django_capture_on_commit_callbacks
):
    customer = CustomerFactory()
    body = {
        "customer": customer.pk,
        "unit": "money",
        "direction": "credit",
        "amount": 1250,
        "currency": "EUR",
        "reason": "Tutor no-show",
    }
    created = api_roles["finance"].post(URL, body, format="json")
    assert created.status_code == 201, created.json()
    row = created.json()
    assert row["amount"] == {"amount": 1250, "currency": "eur", "display": "€12.50"}
    assert (row["status"], row["minutes"], row["requested_by"], row["needs_senior"]) == (
        "pending",
        None,
        "api-finance",
        False,
    )
    assert stripe_balance.create_calls == []  # nothing moves yet
    own = api_roles["finance"].post(f"{URL}{row['id']}/approve/", {}, format="json")
    assert own.status_code == 403
    assert own.json()["error"]["message"] == rules.ERR_OWN_REQUEST
    url = f"{URL}{row['id']}/approve/"
    senior = api_roles["senior"]
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            senior.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="cadj-1")
            for _ in range(2)
        ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1]["Idempotent-Replayed"] == "true"
    # The answer is the approval; the Stripe call runs after it (here at once).
    assert answers[0].json()["status"] == "approved"
    [call] = stripe_balance.create_calls
    assert (call["amount"], call["key"]) == (-1250, f"customer_adjustment:{row['id']}")
    shown = senior.get(f"{URL}{row['id']}/").json()
    assert shown["status"] == "applied"
    assert shown["stripe_balance_transaction_id"] == stripe_balance.transactions[0].id
    again = senior.post(url, {"note": "ok"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == rules.ERR_NOT_PENDING.format(status="applied")
    listed = senior.get(f"{URL}?status=applied&customer={customer.pk}").json()
    assert [r["id"] for r in listed["results"]] == [row["id"]]
    assert senior.get(f"{URL}?status=pending").json()["results"] == []


def test_hours_are_applied_at_approval(api_roles, asker):
    customer = CustomerFactory()
    adjustment = services.customer_adjustment_request(
        customer=customer,
        direction="credit",
        unit="hours",
        minutes=90,
        reason="Make-up lesson",
        acting_user=asker,
    )
    answer = api_roles["finance"].post(f"{URL}{adjustment.pk}/approve/", {}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["amount"], body["minutes"]) == ("applied", None, 90)
    entry = BalanceEntry.objects.get(reference=f"customer_adjustment:{adjustment.pk}")
    assert entry.minutes == 90
    debit = services.customer_adjustment_request(
        customer=customer,
        direction="debit",
        unit="hours",
        minutes=120,
        reason="Too much",
        acting_user=asker,
    )
    refused = api_roles["finance"].post(f"{URL}{debit.pk}/approve/", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith("The hours could not be applied: ")


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        ({"amount": 0}, 400, "amount", services.ERR_AMOUNT_NOT_POSITIVE),
        (
            {"currency": "xxx"},
            400,
            "currency",
            services.ERR_UNKNOWN_CURRENCY.format(currency="xxx"),
        ),
        ({"reason": " "}, 400, "reason", services.ERR_REASON_REQUIRED),
        (
            {"unit": "hours", "minutes": 0},
            400,
            "minutes",
            services.ERR_MINUTES_RANGE.format(maximum=services.MAX_MINUTES),
        ),
    ],
)
def test_bad_requests_say_which_field(api_roles, body, status, field, message):
    data = {
        "customer": CustomerFactory().pk,
        "unit": "money",
        "direction": "credit",
        "amount": 500,
        "currency": "usd",
        "reason": "Goodwill",
        **body,
    }
    answer = api_roles["finance"].post(URL, data, format="json")
    assert answer.status_code == status
    assert answer.json()["error"]["fields"][field] == [message]
    assert not CustomerAdjustment.objects.exists()


def test_an_unknown_customer_and_a_float_amount_are_400(api_roles):
    body = {"customer": 999999, "unit": "money", "direction": "credit", "amount": 500}
    answer = api_roles["finance"].post(URL, {**body, "currency": "usd"}, format="json")
    assert answer.status_code == 400 and "customer" in answer.json()["error"]["fields"]
    body["customer"] = CustomerFactory().pk
    answer = api_roles["finance"].post(URL, {**body, "amount": 12.5}, format="json")
    assert answer.status_code == 400 and "amount" in answer.json()["error"]["fields"]


def test_above_the_senior_limit_only_a_senior_approves(
    api_roles, asker, stripe_balance, django_capture_on_commit_callbacks
):
    large = _money(asker, 10001)
    listed = api_roles["finance"].get(f"{URL}{large.pk}/").json()
    assert listed["needs_senior"] is True
    refused = api_roles["finance"].post(f"{URL}{large.pk}/approve/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == rules.ERR_SENIOR.format(limit="$100.00")
    with django_capture_on_commit_callbacks(execute=True):
        ok = api_roles["senior"].post(f"{URL}{large.pk}/approve/", {}, format="json")
    assert ok.status_code == 200
    assert [c["amount"] for c in stripe_balance.create_calls] == [-10001]


def test_rejecting_needs_a_reason(api_roles, asker):
    adjustment = _money(asker)
    answer = api_roles["finance"].post(f"{URL}{adjustment.pk}/reject/", {}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["reason"] == [services.ERR_REJECTION_NOTE_REQUIRED]
    answer = api_roles["finance"].post(
        f"{URL}{adjustment.pk}/reject/", {"reason": "Duplicate"}, format="json"
    )
    assert (answer.status_code, answer.json()["status"]) == (200, "rejected")
