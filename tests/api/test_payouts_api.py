"""Payouts, payout runs, instructors' balances, the earnings ledger and transfers in the API.

Each endpoint: its permission matrix with the harness's roles, what the service does through
it (the service's own rules and messages: tests/api/test_payout_rules_service_and_api.py has
the shared table), Idempotency-Key, filters. Stripe Connect is the recording fake of the
payout services' tests (tests/payouts/conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.models import AdminAction
from payments.exceptions import GatewayTimeout
from payments.models import EarningEntry, Payout, PayoutRun, Transfer, TransferReversal
from payments.services import payouts as payout_services
from payments.services.payouts import payout_approve, payout_manual_create, payout_process
from tests.api.harness import FINANCE_VIEWERS, SENIORS, assert_matrix, read_matrix, write_matrix
from tests.factories import InstructorFactory
from tests.payouts.conftest import connect, earn, staff  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

URL = "/api/v1/payouts/"
# Who holds payments.add_payout / approve_payout (Finance staff) and the senior permissions.
FINANCE = frozenset({"superuser", "finance", "senior"})


@pytest.fixture
def requester(db):
    """Asks for manual payouts and adjustments, so any harness role may approve them
    (four-eyes)."""
    return staff(
        "payout-requester", "add_payout", "approve_payout", "view_payout", "add_earningadjustment"
    )


def _instructor(amount=20_000, *, connected=False, **kwargs):
    instructor = InstructorFactory(
        stripe_account_id=f"acct_{InstructorFactory._meta.model.objects.count()}x"
        if connected
        else "",
        bank_account="" if connected else "DE89370400440532013000",
        **kwargs,
    )
    if amount:
        earn(instructor, amount)
    return instructor


def _pending(requester, amount=5000, *, connected=False) -> Payout:
    instructor = _instructor(max(amount, 20_000), connected=connected)
    return payout_manual_create(
        instructor=instructor, amount=amount, currency="usd", note="Early", acting_user=requester
    )


def _approved_bank(requester) -> Payout:
    payout = _pending(requester)
    return payout_approve(payout=payout, acting_user=staff_approver())


def staff_approver():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="payout-approver").first()
    return user or staff("payout-approver", "approve_payout", "view_payout")


def _paid_connect(requester) -> Payout:
    payout = _pending(requester, connected=True)
    payout_approve(payout=payout, acting_user=staff_approver())
    return payout_process(payout_id=payout.pk)


# --- reads -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("connect")
def test_reads_matrix(api_roles, requester):
    payout = _paid_connect(requester)
    payout_services.payout_run_create()
    instructor = payout.instructor
    entry = EarningEntry.objects.filter(instructor=instructor).first()
    transfer = Transfer.objects.get()
    paths = [
        URL,
        f"{URL}{payout.pk}/",
        "/api/v1/payout-runs/",
        f"/api/v1/payout-runs/{PayoutRun.objects.get().pk}/",
        "/api/v1/instructors/",
        f"/api/v1/instructors/{instructor.pk}/",
        "/api/v1/earning-entries/",
        f"/api/v1/earning-entries/{entry.pk}/",
        "/api/v1/transfers/",
        f"/api/v1/transfers/{transfer.pk}/",
    ]
    for path in paths:
        assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c, p=path: c.get(p))


def test_a_payout_in_the_api_shape(api_roles, requester):
    payout = _pending(requester, 2500)
    body = api_roles["auditor"].get(f"{URL}{payout.pk}/").json()
    assert body["amount"] == {"amount": 2500, "currency": "usd", "display": "$25.00"}
    assert body["amount_reversed"]["amount"] == 0
    assert (body["status"], body["method"], body["source"]) == (
        "pending",
        "bank_transfer",
        "manual",
    )
    assert body["requested_by"] == "payout-requester"
    assert body["instructor"]["id"] == payout.instructor_id
    assert body["created_at"].endswith("Z")


def test_payout_filters(api_roles, requester):
    first = _pending(requester, 1000)
    second = _pending(requester, 3000, connected=True)
    payout_services.payout_cancel(payout=second, reason="Mistake", acting_user=requester)
    client = api_roles["auditor"]

    def ids(query):
        response = client.get(URL + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [second.pk, first.pk]
    assert ids("?status=pending") == [first.pk]
    assert ids("?status=pending&status=canceled") == [second.pk, first.pk]
    assert ids("?method=stripe_connect") == [second.pk]
    assert ids(f"?instructor={first.instructor_id}") == [first.pk]
    assert ids("?currency=USD&amount_min=20") == [second.pk]
    assert ids("?currency=eur") == []
    assert ids("?source=run") == []
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids(f"?created_before={later.replace('+', '%2B')}") == [second.pk, first.pk]
    assert ids(f"?created_after={later.replace('+', '%2B')}") == []
    assert client.get(URL + "?status=nope").status_code == 400


# --- manual payouts ----------------------------------------------------------------------------


def test_manual_payout_matrix(api_roles):
    def call(client):
        instructor = _instructor()
        body = {"instructor": instructor.pk, "amount": 1000, "currency": "usd", "note": "Early"}
        return client.post(URL, body, format="json")

    assert_matrix(api_roles, write_matrix(FINANCE, ok=201), call)
    assert Payout.objects.filter(source=Payout.Source.MANUAL).count() == 3


def test_a_manual_payout_through_the_api(api_roles):
    instructor = _instructor(20_000)
    earn(instructor, 5000, days_ago=1)  # on hold: not payable
    client = api_roles["finance"]
    body = {"instructor": instructor.pk, "amount": 20_001, "currency": "USD", "note": "Early"}
    refused = client.post(URL, body, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == payout_services.ERR_ABOVE_AVAILABLE.format(
        available="$200.00", currency="USD"
    )
    created = client.post(URL, {**body, "amount": 20_000}, format="json")
    assert created.status_code == 201
    payout = Payout.objects.get(pk=created.json()["id"])
    assert (payout.amount, payout.currency, payout.requested_by) == (
        20_000,
        "usd",
        api_roles.users["finance"],
    )
    assert EarningEntry.objects.get(reference=f"payout:{payout.pk}").amount == -20_000
    for bad, field in (
        ({**body, "amount": 12.5}, "amount"),
        ({**body, "amount": "1000"}, "amount"),
        ({**body, "currency": "dollars"}, "currency"),
        ({**body, "instructor": 999_999}, "instructor"),
    ):
        answer = client.post(URL, bad, format="json")
        assert answer.status_code == 400, bad
        assert field in answer.json()["error"]["fields"]


def test_a_manual_payout_replayed_with_the_same_key_is_made_once(api_roles):
    instructor = _instructor(20_000)
    client = api_roles["finance"]
    body = {"instructor": instructor.pk, "amount": 1000, "currency": "usd", "note": "Early"}
    answers = [
        client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="payout-ada-1") for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [a.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Payout.objects.filter(instructor=instructor).count() == 1
    other = client.post(
        URL, {**body, "amount": 2000}, format="json", HTTP_IDEMPOTENCY_KEY="payout-ada-1"
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Payout.objects.filter(instructor=instructor).count() == 1


# --- decisions ---------------------------------------------------------------------------------


def test_approve_and_cancel_matrices(api_roles, requester):
    assert_matrix(
        api_roles,
        write_matrix(FINANCE),
        lambda c: c.post(f"{URL}{_pending(requester).pk}/approve/", {"note": "ok"}, format="json"),
    )
    assert_matrix(
        api_roles,
        write_matrix(FINANCE),
        lambda c: c.post(f"{URL}{_pending(requester).pk}/cancel/", {"reason": "x"}, format="json"),
    )
    assert Payout.objects.filter(status=Payout.Status.APPROVED).count() == 3
    assert Payout.objects.filter(status=Payout.Status.CANCELED).count() == 3


def test_mark_paid_matrix(api_roles, requester):
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(
            f"{URL}{_approved_bank(requester).pk}/mark-paid/",
            {"bank_reference": "BANK-1"},
            format="json",
        ),
    )
    paid = Payout.objects.filter(status=Payout.Status.PAID)
    assert sorted(paid.values_list("bank_reference", flat=True)) == ["BANK-1", "BANK-1"]


@pytest.mark.usefixtures("connect")
def test_reverse_matrix(api_roles, requester):
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(
            f"{URL}{_paid_connect(requester).pk}/reverse/",
            {"amount": 1000, "reason": "Fraud"},
            format="json",
        ),
    )
    assert TransferReversal.objects.count() == 2


def test_approve_replayed_with_the_same_key_approves_once(
    api_roles, requester, django_capture_on_commit_callbacks
):
    payout = _pending(requester, connected=True)
    client = api_roles["finance"]
    url = f"{URL}{payout.pk}/approve/"
    with django_capture_on_commit_callbacks() as queued:
        first = client.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="approve-1")
        again = client.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="approve-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["status"] == "approved"
    assert first.json()["approved_by"] == "api-finance"
    # One approval, one processing task queued for the Connect transfer.
    assert AdminAction.objects.filter(action=payout_services.AUDIT_APPROVE).count() == 1
    assert len(queued) == 1
    second = client.post(url, {"note": "ok"}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conflict"


@pytest.mark.usefixtures("connect")
def test_a_reversal_through_the_api_lands_its_entry_once(api_roles, requester):
    payout = _paid_connect(requester)
    client = api_roles["senior"]
    url = f"{URL}{payout.pk}/reverse/"
    answer = client.post(url, {"amount": 1500, "reason": "Fraud"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["amount_reversed"]["amount"] == 1500
    [entry] = EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED)
    assert entry.amount == 1500
    too_much = client.post(url, {"amount": 5000, "reason": "More"}, format="json")
    assert too_much.status_code == 409
    assert too_much.json()["error"]["message"] == payout_services.ERR_REVERSAL_ABOVE_LEFT.format(
        left="$35.00"
    )
    no_reason = client.post(url, {"amount": 100}, format="json")
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["fields"] == {
        "reason": [payout_services.ERR_REVERSAL_REASON_REQUIRED]
    }


@pytest.mark.usefixtures("connect")
def test_a_reversal_stripe_does_not_answer_is_503_and_runs_again_with_the_same_key(
    api_roles, requester, monkeypatch
):
    from payments import gateway

    payout = _paid_connect(requester)
    real = gateway.stripe_transfer_reversal_create

    def timeout(**kwargs):
        raise GatewayTimeout()

    monkeypatch.setattr(gateway, "stripe_transfer_reversal_create", timeout)
    client = api_roles["senior"]
    url = f"{URL}{payout.pk}/reverse/"
    body = {"amount": 1000, "reason": "Fraud"}
    lost = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="reverse-1")
    assert lost.status_code == 503
    assert lost.json()["error"] == {
        "code": "outcome_unknown",
        "message": payout_services.ERR_REVERSAL_UNKNOWN,
        "fields": {},
    }
    # The attempt is on record although Stripe's answer was lost (it may have reversed).
    (attempt,) = AdminAction.objects.filter(action=payout_services.AUDIT_REVERSE)
    assert (attempt.result, attempt.details["outcome"], attempt.amount) == (
        AdminAction.Result.FAILURE,
        "unknown",
        payout.amount,
    )
    monkeypatch.setattr(gateway, "stripe_transfer_reversal_create", real)
    # A 5xx answer is not kept: the same key runs the reversal now.
    retried = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="reverse-1")
    assert retried.status_code == 200
    assert retried.json()["amount_reversed"]["amount"] == 1000


# --- payout runs -------------------------------------------------------------------------------


def test_payout_run_matrix_dry_run(api_roles):
    _instructor(20_000)
    assert_matrix(
        api_roles,
        write_matrix(FINANCE),
        lambda c: c.post("/api/v1/payout-runs/", {"dry_run": True}, format="json"),
    )
    assert not Payout.objects.exists()
    assert not PayoutRun.objects.exists()


def test_a_payout_run_through_the_api(api_roles, requester):
    ada = _instructor(20_000)
    bea = _instructor(30_000)
    earn(bea, 7000, "eur")
    _instructor(500)  # below the minimum
    open_one = _pending(requester, 1000)  # an open payout: skipped by the run
    client = api_roles["finance"]
    dry = client.post("/api/v1/payout-runs/", {"dry_run": True, "currency": "usd"}, format="json")
    assert dry.status_code == 200
    assert dry.json() == {
        "run": None,
        "dry_run": True,
        "currencies": ["usd"],
        "payouts_created": 2,
        "totals": [
            {
                "currency": "usd",
                "count": 2,
                "amount": {"amount": 50_000, "currency": "usd", "display": "$500.00"},
            }
        ],
        "skipped_open_payout": [{"currency": "usd", "instructors": 1}],
    }
    made = client.post("/api/v1/payout-runs/", {}, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert made.status_code == 201
    body = made.json()
    assert body["currencies"] == ["eur", "gbp", "jpy", "usd"]
    assert [(t["currency"], t["count"]) for t in body["totals"]] == [("eur", 1), ("usd", 2)]
    run = PayoutRun.objects.get(pk=body["run"])
    assert (run.trigger, run.created_by) == ("api", api_roles.users["finance"])
    listed = client.get(f"{URL}?run={run.pk}").json()["results"]
    assert sorted((r["instructor"]["id"], r["amount"]["amount"]) for r in listed) == sorted(
        [(ada.pk, 20_000), (bea.pk, 30_000), (bea.pk, 7000)]
    )
    assert open_one.pk not in {r["id"] for r in listed}
    replay = client.post("/api/v1/payout-runs/", {}, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert replay.json() == body
    assert PayoutRun.objects.count() == 1
    runs = client.get("/api/v1/payout-runs/").json()["results"]
    assert runs[0]["id"] == run.pk
    assert runs[0]["totals"][0]["amount"]["display"] == "€70.00"
    bad = client.post("/api/v1/payout-runs/", {"currency": "chf"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {
        "currency": [payout_services.ERR_CURRENCY_NOT_CONFIGURED.format(currency="CHF")]
    }


# --- instructors, the ledger, transfers --------------------------------------------------------


def test_instructor_balances(api_roles):
    ada = _instructor(20_000, name="Ada")
    earn(ada, 5000, days_ago=1)  # on hold
    earn(ada, -3000, "eur", kind=EarningEntry.Kind.DISPUTE_LOST)  # a clawback
    _instructor(0, name="Bea")
    client = api_roles["auditor"]
    listed = client.get("/api/v1/instructors/").json()["results"]
    assert [row["name"] for row in listed] == ["Ada", "Bea"]
    assert listed[1]["balances"] == []
    expected = [
        {
            "currency": "eur",
            "balance": {"amount": -3000, "currency": "eur", "display": "-€30.00"},
            "available": {"amount": -3000, "currency": "eur", "display": "-€30.00"},
            "on_hold": {"amount": 0, "currency": "eur", "display": "€0.00"},
        },
        {
            "currency": "usd",
            "balance": {"amount": 25_000, "currency": "usd", "display": "$250.00"},
            "available": {"amount": 20_000, "currency": "usd", "display": "$200.00"},
            "on_hold": {"amount": 5000, "currency": "usd", "display": "$50.00"},
        },
    ]
    assert listed[0]["balances"] == expected
    detail = client.get(f"/api/v1/instructors/{ada.pk}/").json()
    assert detail["balances"] == expected
    assert detail["has_bank_account"] is True
    assert "bank_account" not in detail  # only in the bank file
    assert [r["name"] for r in client.get("/api/v1/instructors/?q=ad").json()["results"]] == ["Ada"]
    cy = _instructor(0, name="Cy", connected=True)
    connected = client.get("/api/v1/instructors/?connected=true").json()["results"]
    assert [(r["id"], r["has_connected_account"]) for r in connected] == [(cy.pk, True)]
    by_bank = client.get("/api/v1/instructors/?connected=false").json()["results"]
    assert [r["name"] for r in by_bank] == ["Ada", "Bea"]


def test_earning_entry_filters(api_roles):
    ada, bea = _instructor(0), _instructor(0)
    old = earn(ada, 1000, days_ago=40)
    new = earn(ada, -200, kind=EarningEntry.Kind.REFUND, days_ago=2)
    eur = earn(ada, 700, "eur", days_ago=3)
    other = earn(bea, 900, days_ago=1)
    client = api_roles["auditor"]

    def ids(query):
        response = client.get("/api/v1/earning-entries/" + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [other.pk, new.pk, eur.pk, old.pk]
    assert ids(f"?instructor={ada.pk}&currency=usd") == [new.pk, old.pk]
    assert ids("?kind=refund") == [new.pk]
    cut = (timezone.now() - timedelta(days=10)).isoformat().replace("+", "%2B")
    assert ids(f"?occurred_before={cut}") == [old.pk]
    assert ids(f"?occurred_after={cut}&instructor={ada.pk}") == [new.pk, eur.pk]
    row = client.get(f"/api/v1/earning-entries/{new.pk}/").json()
    assert row["amount"] == {"amount": -200, "currency": "usd", "display": "-$2.00"}
    assert row["kind"] == "refund"


@pytest.mark.usefixtures("connect")
def test_a_transfer_with_its_reversals(api_roles, requester):
    payout = _paid_connect(requester)
    api_roles["senior"].post(
        f"{URL}{payout.pk}/reverse/", {"amount": 500, "reason": "Fraud"}, format="json"
    )
    [row] = api_roles["auditor"].get("/api/v1/transfers/").json()["results"]
    assert row["payout"] == payout.pk
    assert row["instructor"]["id"] == payout.instructor_id
    assert row["amount"]["amount"] == 5000
    assert row["amount_reversed"]["amount"] == 500
    assert [r["amount"]["amount"] for r in row["reversals"]] == [500]
    found = api_roles["auditor"].get(f"/api/v1/transfers/?q={row['stripe_id'].upper()}")
    assert [r["id"] for r in found.json()["results"]] == [row["id"]]
    assert api_roles["auditor"].get("/api/v1/transfers/?reversed=true").json()["results"] == []


# --- earnings adjustments ----------------------------------------------------------------------

ADJUSTMENTS = "/api/v1/earning-adjustments/"
# Finance staff request; approving and rejecting is the senior approvers' (fixtures/groups.json).
REQUESTERS = FINANCE


def _adjustment(requester, amount=2500, **kwargs):
    from payments.services.earning_adjustments import earning_adjustment_request

    return earning_adjustment_request(
        instructor=_instructor(0),
        amount=amount,
        currency="usd",
        reason="Bonus",
        acting_user=requester,
        **kwargs,
    )


def test_adjustment_matrices(api_roles, requester):
    adjustment = _adjustment(requester)
    for path in (ADJUSTMENTS, f"{ADJUSTMENTS}{adjustment.pk}/"):
        assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c, p=path: c.get(p))

    def request(client):
        body = {"instructor": _instructor(0).pk, "amount": -700, "currency": "usd", "reason": "x"}
        return client.post(ADJUSTMENTS, body, format="json")

    assert_matrix(api_roles, write_matrix(REQUESTERS, ok=201), request)
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(f"{ADJUSTMENTS}{_adjustment(requester).pk}/approve/", {}, format="json"),
    )
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(
            f"{ADJUSTMENTS}{_adjustment(requester).pk}/reject/", {"reason": "No"}, format="json"
        ),
    )
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.ADJUSTMENT).count() == 2


def test_an_adjustment_requested_then_approved_once(api_roles):
    instructor = _instructor(0)
    body = {"instructor": instructor.pk, "amount": -1250, "currency": "USD", "reason": "Overpaid"}
    created = api_roles["finance"].post(ADJUSTMENTS, body, format="json")
    assert created.status_code == 201
    row = created.json()
    assert row["amount"] == {"amount": -1250, "currency": "usd", "display": "-$12.50"}
    assert (row["status"], row["requested_by"], row["needs_senior"]) == (
        "pending",
        "api-finance",
        False,
    )
    assert not EarningEntry.objects.filter(instructor=instructor).exists()  # nothing moves yet
    url = f"{ADJUSTMENTS}{row['id']}/approve/"
    senior = api_roles["senior"]
    answers = [
        senior.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="adj-1")
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1]["Idempotent-Replayed"] == "true"
    assert answers[0].json()["status"] == "applied"
    [entry] = EarningEntry.objects.filter(instructor=instructor)
    assert (entry.reference, entry.amount) == (f"adjustment:{row['id']}", -1250)
    again = senior.post(url, {"note": "ok"}, format="json")
    assert again.status_code == 409
    balances = senior.get(f"/api/v1/instructors/{instructor.pk}/").json()["balances"]
    assert balances[0]["available"]["amount"] == -1250
    listed = senior.get(f"{ADJUSTMENTS}?status=applied&instructor={instructor.pk}").json()
    assert [r["id"] for r in listed["results"]] == [row["id"]]
    assert senior.get(f"{ADJUSTMENTS}?status=pending").json()["results"] == []
