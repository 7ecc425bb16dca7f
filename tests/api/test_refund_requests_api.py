"""/api/v1/refund-requests/: who may read and decide, the queue's priority order, filters,
Idempotency-Key on the decisions, and the money shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.models import AdminAction
from refunds import services
from refunds.models import RefundRequest
from tests.api.harness import (
    FINANCE_VIEWERS,
    SENIORS,
    assert_matrix,
    read_matrix,
    write_matrix,
)
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/refund-requests/"
# "Finance staff" may request and approve refunds (fixtures/groups.json).
DECIDERS = frozenset({"superuser", "finance", "senior"})


def _pending(**kwargs):
    return RefundRequestFactory(**kwargs)


# --- permission matrices -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "queue/"])
def test_lists_matrix(api_roles, path):
    _pending()
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(URL + path))


def test_detail_matrix(api_roles):
    row = _pending()
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(f"{URL}{row.pk}/"))


def test_create_matrix(api_roles):
    payment = PaymentFactory(amount=100_000)
    assert_matrix(
        api_roles,
        write_matrix(DECIDERS, ok=201),
        lambda c: c.post(URL, {"payment": payment.pk, "amount": 100}, format="json"),
    )
    assert RefundRequest.objects.filter(payment=payment).count() == len(DECIDERS)


@pytest.mark.parametrize(("decision", "body"), [("approve", {}), ("reject", {"reason": "no"})])
def test_decision_matrix(api_roles, decision, body):
    # A fresh pending request for each role: a decided one would answer 409 to the next.
    def call(client):
        row = _pending(requested_by=api_roles.users["staff"])
        return client.post(f"{URL}{row.pk}/{decision}/", body, format="json")

    assert_matrix(api_roles, write_matrix(DECIDERS), call)


def test_a_senior_limit_request_needs_a_senior(api_roles):
    def call(client):
        row = _pending(
            payment=PaymentFactory(amount=100_000),
            amount=60_000,
            requested_by=api_roles.users["staff"],
        )
        return client.post(f"{URL}{row.pk}/approve/", {}, format="json")

    expected = write_matrix(SENIORS)
    expected["finance"] = 403  # may approve, but not above the senior limit
    assert_matrix(api_roles, expected, call)


# --- reads -------------------------------------------------------------------------------------


def test_detail_shape(api_roles):
    row = _pending(amount=2500, admin_notes="Course canceled")
    body = api_roles["auditor"].get(f"{URL}{row.pk}/").json()
    assert body["amount"] == {"amount": 2500, "currency": "usd", "display": "$25.00"}
    assert body["status"] == "pending"
    assert body["priority"] == "normal"
    assert body["payment"] == row.payment_id
    assert body["stripe_payment_intent_id"] == row.payment.stripe_payment_intent_id
    assert body["created_at"].endswith("Z")


def test_the_queue_is_in_priority_order(api_roles, settings):
    settings.REFUND_LARGE_AMOUNT = {"usd": "50"}
    now = timezone.now()

    def aged(days, amount=1000):
        row = _pending(payment=PaymentFactory(amount=20_000), amount=amount)
        RefundRequest.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=days))
        return row.pk

    normal = aged(0.1)
    large = aged(0.2, amount=6000)
    high = aged(2)
    urgent_newer, urgent_older = aged(4), aged(5)
    RefundRequestFactory(status=RefundRequest.Status.REJECTED)  # not in the queue
    pages, url = [], f"{URL}queue/?page_size=2"
    while url:
        body = api_roles["finance"].get(url).json()
        pages.append([(row["id"], row["priority"]) for row in body["results"]])
        url = body["next"]
    assert pages == [
        [(urgent_older, "urgent"), (urgent_newer, "urgent")],
        [(high, "high"), (large, "large")],
        [(normal, "normal")],
    ]


def test_list_filters_and_search(api_roles):
    mine = _pending(requested_by=api_roles.users["finance"], amount=1500)
    _pending(amount=7000, payment=PaymentFactory(amount=9000))
    RefundRequestFactory(status=RefundRequest.Status.REJECTED)
    client = api_roles["auditor"]

    def ids(query):
        response = client.get(URL + query)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("?status=pending&amount_max=20") == [mine.pk]
    assert ids("?requested_by=api-finance") == [mine.pk]
    assert ids(f"?q={mine.payment.stripe_payment_intent_id.upper()}") == [mine.pk]
    assert ids(f"?q=%23{mine.pk}") == [mine.pk]
    assert len(ids("?status=pending")) == 2
    bad = client.get(URL + "?status=nonsense")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]


def test_a_missing_request_is_404(api_roles):
    response = api_roles["finance"].post(f"{URL}999999/approve/", {}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- writes ------------------------------------------------------------------------------------


def test_create_takes_minor_units_only(api_roles):
    payment = PaymentFactory()
    client = api_roles["finance"]
    for amount in (25.0, "2500", "25.00"):
        response = client.post(URL, {"payment": payment.pk, "amount": amount}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["fields"]["amount"]
    response = client.post(URL, {"payment": 999999, "amount": 100}, format="json")
    assert response.status_code == 400
    assert "payment" in response.json()["error"]["fields"]
    assert not RefundRequest.objects.exists()


def test_create_records_the_request_and_its_audit_with_the_client(api_roles):
    payment = PaymentFactory()
    response = api_roles["finance"].post(
        URL,
        {"payment": payment.pk, "amount": 1250, "customer_note": "Missed the class"},
        format="json",
        HTTP_USER_AGENT="booking-system/2.1",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["amount"]["display"] == "$12.50"
    assert body["requested_by"] == "api-finance"
    audit = AdminAction.objects.get(action=services.AUDIT_CREATE)
    assert audit.actor == api_roles.users["finance"]
    assert audit.user_agent == "booking-system/2.1"


def test_approve_replayed_with_the_same_key_approves_once(api_roles):
    row = _pending()
    client = api_roles["finance"]
    url = f"{URL}{row.pk}/approve/"
    first = client.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="k-approve-1")
    again = client.post(url, {"note": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="k-approve-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert AdminAction.objects.filter(action=services.AUDIT_APPROVE).count() == 1
    # The same key with another body is a conflict, and changes nothing.
    other = client.post(url, {"note": "else"}, format="json", HTTP_IDEMPOTENCY_KEY="k-approve-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # Without the key, a second approval is the service's conflict: not pending any more.
    second = client.post(url, {"note": "ok"}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["message"] == services.ERR_NOT_PENDING.format(status="approved")


def test_create_replayed_with_the_same_key_creates_one_request(api_roles):
    payment = PaymentFactory()
    client = api_roles["finance"]
    body = {"payment": payment.pk, "amount": 1000}
    answers = [
        client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="booking-77") for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert RefundRequest.objects.filter(payment=payment).count() == 1


def test_writes_are_throttled_per_token(api_roles, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_token_write": "2/minute", "api_user_write": "100/minute"},
    }
    client = api_roles["finance"]
    answers = [
        client.post(f"{URL}{_pending().pk}/reject/", {"reason": "dup"}, format="json")
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "throttled"
    assert RefundRequest.objects.filter(status=RefundRequest.Status.REJECTED).count() == 2
