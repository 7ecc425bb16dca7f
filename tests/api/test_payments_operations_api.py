"""The payments app's operational endpoints: fraud alerts and their review, disputes and their
responses, webhook health / events / replay, sync runs, payment retries, the audit log.

Each: the permission matrix of the harness roles, the service's rules and messages through
the API, Idempotency-Key where it writes. Stripe is faked at the gateway's boundary with the
fakes of the services' own tests."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from backoffice.models import AdminAction
from payments.models import (
    Customer,
    Dispute,
    DisputeResponse,
    FraudAlert,
    Payment,
    PaymentRetry,
    SyncRun,
    WebhookEvent,
)
from payments.services import fraud_alert as fraud_service
from payments.services import payment_retry as retry_service
from payments.services.dispute_response import ERROR_CLOSED, ERROR_NOTHING_TO_SAVE
from tests.api.harness import (
    FINANCE_VIEWERS,
    SENIORS,
    assert_matrix,
    read_matrix,
    write_matrix,
)
from tests.factories import DisputeFactory, PaymentFactory, PaymentMethodFactory
from tests.payments.test_dispute_response import PDF
from tests.payments.test_dispute_response import FakeStripe as FakeDisputeStripe
from tests.payments.test_payment_retry import FakeStripe as FakeRetryStripe

pytestmark = pytest.mark.django_db


def _alert(status=FraudAlert.Status.OPEN, **kwargs):
    return FraudAlert.objects.create(
        payment=kwargs.pop("payment", None) or PaymentFactory(amount=12_000),
        source=FraudAlert.Source.STAFF,
        status=status,
        created=timezone.now() - timedelta(hours=1),
        **kwargs,
    )


# --- fraud alerts --------------------------------------------------------------------------------


def test_fraud_alert_reads_matrix(api_roles):
    alert = _alert()
    expected = read_matrix(FINANCE_VIEWERS)
    assert_matrix(api_roles, expected, lambda c: c.get("/api/v1/fraud-alerts/"))
    assert_matrix(api_roles, expected, lambda c: c.get(f"/api/v1/fraud-alerts/{alert.pk}/"))


@pytest.mark.parametrize(
    ("step", "body"),
    [
        ("assign", {}),
        ("investigate", {}),
        ("resolve", {"outcome": "dismissed", "note": "Known customer"}),
    ],
)
def test_fraud_review_matrix(api_roles, step, body):
    # Reviewing needs payments.review_fraudalert: the senior approvers' group has it.
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(f"/api/v1/fraud-alerts/{_alert().pk}/{step}/", body, format="json"),
    )


def test_fraud_list_puts_unresolved_first(api_roles):
    resolved = _alert(status=FraudAlert.Status.CONFIRMED)
    older_open = _alert()
    FraudAlert.objects.filter(pk=older_open.pk).update(created=timezone.now() - timedelta(days=2))
    newer_open = _alert(status=FraudAlert.Status.INVESTIGATING)
    body = api_roles["auditor"].get("/api/v1/fraud-alerts/").json()
    assert [row["id"] for row in body["results"]] == [newer_open.pk, older_open.pk, resolved.pk]
    assert body["results"][0]["amount"]["display"] == "$120.00"
    only = api_roles["auditor"].get("/api/v1/fraud-alerts/?unresolved=false").json()
    assert [row["id"] for row in only["results"]] == [resolved.pk]


def test_fraud_resolve_applies_the_services_rules(api_roles):
    client = api_roles["senior"]
    alert = _alert()
    url = f"/api/v1/fraud-alerts/{alert.pk}/resolve/"
    no_note = client.post(url, {"outcome": "confirmed", "note": " "}, format="json")
    assert no_note.status_code == 400
    assert no_note.json()["error"]["message"] == fraud_service.ERR_NOTE_REQUIRED
    assert no_note.json()["error"]["fields"] == {"note": [fraud_service.ERR_NOTE_REQUIRED]}
    done = client.post(url, {"outcome": "confirmed", "note": "Stolen card"}, format="json")
    assert done.status_code == 200
    assert done.json()["changed"] is True
    assert done.json()["alert"]["status"] == "confirmed"
    assert done.json()["alert"]["reviewed_by"] == "api-senior"
    again = client.post(url, {"outcome": "confirmed", "note": "Stolen card"}, format="json")
    assert again.status_code == 200 and again.json()["changed"] is False
    other = client.post(url, {"outcome": "dismissed", "note": "Oops"}, format="json")
    assert other.status_code == 409
    assert other.json()["error"]["message"] == fraud_service.ERR_ALREADY_RESOLVED.format(
        pk=alert.pk, status="resolved: confirmed fraud", who="api-senior"
    )
    assert AdminAction.objects.filter(action="fraud_alert_confirmed").count() == 1


def test_fraud_step_replayed_with_its_key(api_roles):
    alert = _alert()
    client = api_roles["senior"]
    url = f"/api/v1/fraud-alerts/{alert.pk}/investigate/"
    first = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="inv-1")
    again = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="inv-1")
    assert first.json() == again.json() and first.json()["changed"] is True
    assert again["Idempotent-Replayed"] == "true"
    assert AdminAction.objects.filter(action=fraud_service.AUDIT_INVESTIGATE).count() == 1


# --- disputes ------------------------------------------------------------------------------------


def test_dispute_reads_matrix(api_roles):
    dispute = DisputeFactory()
    expected = read_matrix(FINANCE_VIEWERS)
    assert_matrix(api_roles, expected, lambda c: c.get("/api/v1/disputes/"))
    assert_matrix(api_roles, expected, lambda c: c.get(f"/api/v1/disputes/{dispute.pk}/"))


def test_dispute_accept_matrix(api_roles, monkeypatch):
    def call(client):
        dispute = DisputeFactory()
        FakeDisputeStripe(dispute).install(monkeypatch)
        return client.post(f"/api/v1/disputes/{dispute.pk}/accept/", {}, format="json")

    assert_matrix(api_roles, write_matrix(SENIORS), call)


def test_dispute_list_filters_by_deadline(api_roles):
    later = DisputeFactory(evidence_due_by=timezone.now() + timedelta(days=6))
    sooner = DisputeFactory(evidence_due_by=timezone.now() + timedelta(days=2))
    DisputeFactory(status=Dispute.Status.WON)
    body = api_roles["finance"].get("/api/v1/disputes/?needs_response=true&ordering=deadline")
    assert [row["id"] for row in body.json()["results"]] == [sooner.pk, later.pk]
    assert body.json()["results"][0]["amount"]["amount"] == sooner.amount


def test_dispute_evidence_save_then_submit(api_roles, monkeypatch):
    dispute = DisputeFactory()
    fake = FakeDisputeStripe(dispute).install(monkeypatch)
    client = api_roles["senior"]
    url = f"/api/v1/disputes/{dispute.pk}/"
    empty = client.post(url + "evidence/", {"evidence": {}}, format="json")
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == ERROR_NOTHING_TO_SAVE
    saved = client.post(
        url + "evidence/",
        {
            "evidence": {"product_description": "A 10-hour Python course, attended."},
            "files": [
                {
                    "field": "receipt",
                    "filename": "receipt.pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                }
            ],
        },
        format="json",
    )
    assert saved.status_code == 200, saved.json()
    assert saved.json()["succeeded"] is True
    assert fake.files[0]["filename"] == "receipt.pdf"
    assert fake.updates[-1]["submit"] is False
    submitted = client.post(url + "submit/", {}, format="json")
    assert submitted.status_code == 200
    assert submitted.json()["dispute"]["status"] == "under_review"
    assert [r["kind"] for r in submitted.json()["dispute"]["responses"]] == ["submit", "save"]
    closed = client.post(url + "accept/", {}, format="json")
    assert closed.status_code == 409
    assert closed.json()["error"]["message"] == (
        "Evidence for this dispute was already submitted (under review); the bank is reviewing it."
    )


def test_dispute_bad_evidence_is_refused_before_anything_is_sent(api_roles, monkeypatch):
    dispute = DisputeFactory()
    fake = FakeDisputeStripe(dispute).install(monkeypatch)
    client = api_roles["senior"]
    url = f"/api/v1/disputes/{dispute.pk}/evidence/"
    unknown = client.post(url, {"evidence": {"favourite_colour": "blue"}}, format="json")
    assert unknown.status_code == 400 and "evidence" in unknown.json()["error"]["fields"]
    not_base64 = client.post(
        url,
        {"files": [{"field": "receipt", "filename": "r.pdf", "content_base64": "%%%"}]},
        format="json",
    )
    assert not_base64.status_code == 400
    docx = client.post(
        url,
        {
            "files": [
                {
                    "field": "receipt",
                    "filename": "r.pdf",
                    "content_base64": base64.b64encode(b"PK\x03\x04 a docx").decode(),
                }
            ]
        },
        format="json",
    )
    assert docx.status_code == 400
    assert "receipt" in docx.json()["error"]["fields"]
    assert fake.updates == [] and fake.files == []
    assert not DisputeResponse.objects.exists()


def test_a_closed_dispute_takes_nothing(api_roles, monkeypatch):
    dispute = DisputeFactory(status=Dispute.Status.LOST)
    FakeDisputeStripe(dispute).install(monkeypatch)
    response = api_roles["senior"].post(f"/api/v1/disputes/{dispute.pk}/accept/", format="json")
    assert response.status_code == 409
    assert response.json()["error"]["message"] == ERROR_CLOSED.format(status="lost")


# --- webhooks and sync runs ----------------------------------------------------------------------


def _event(status=WebhookEvent.Status.PROCESSED, **kwargs):
    n = WebhookEvent.objects.count()
    return WebhookEvent.objects.create(
        stripe_id=f"evt_api{n}",
        type="payment_intent.succeeded",
        created=timezone.now(),
        payload={"id": f"evt_api{n}", "data": {"object": {"id": "pi_x"}}},
        status=status,
        object_id="pi_x",
        **kwargs,
    )


@pytest.mark.parametrize(
    "path", ["/api/v1/webhook-status/", "/api/v1/webhook-events/", "/api/v1/sync-runs/"]
)
def test_webhook_and_sync_reads_matrix(api_roles, path):
    _event()
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED)
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(path))


def test_webhook_status_counts(api_roles):
    _event(status=WebhookEvent.Status.FAILED)
    _event(status=WebhookEvent.Status.RETRYING)
    _event(processed_at=timezone.now(), processing_ms=40)
    body = api_roles["read_only"].get("/api/v1/webhook-status/").json()
    assert body["healthy"] is False
    assert (body["failed_24h"], body["failed_total"], body["retrying"]) == (1, 1, 1)
    assert body["avg_processing_ms"] == 40
    assert body["window_hours"] == 24


def test_webhook_event_detail_has_the_payload_and_the_list_does_not(api_roles):
    event = _event()
    client = api_roles["auditor"]
    listed = client.get("/api/v1/webhook-events/?status=processed").json()["results"][0]
    assert "payload" not in listed
    detail = client.get(f"/api/v1/webhook-events/{event.pk}/").json()
    assert detail["payload"]["id"] == event.stripe_id


def test_webhook_replay_matrix_and_busy_event(api_roles, monkeypatch):
    monkeypatch.setattr("payments.webhooks._enqueue_with", lambda event: None)
    # Replaying needs payments.replay_webhookevent: the senior approvers' group has it.
    assert_matrix(
        api_roles,
        write_matrix(SENIORS),
        lambda c: c.post(f"/api/v1/webhook-events/{_event().pk}/replay/", format="json"),
    )
    busy = _event(status=WebhookEvent.Status.PROCESSING, processing_started_at=timezone.now())
    response = api_roles["senior"].post(f"/api/v1/webhook-events/{busy.pk}/replay/")
    assert response.status_code == 409
    assert AdminAction.objects.filter(action="webhook_event_replay").count() == 2


def test_sync_runs_filter_by_status(api_roles):
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED)
    failed = SyncRun.objects.create(status=SyncRun.Status.FAILED, error="boom")
    body = api_roles["finance"].get("/api/v1/sync-runs/?status=failed").json()
    assert [row["id"] for row in body["results"]] == [failed.pk]
    assert body["results"][0]["error"] == "boom"


# --- payment retries -----------------------------------------------------------------------------


def _failed_payment():
    payment = PaymentFactory(failed=True, amount=7000)
    PaymentMethodFactory(
        customer=payment.customer, stripe_id=f"pm_new{payment.pk}", is_default=True
    )
    return payment


def _fake_retry(monkeypatch, payment, outcome="succeeded"):
    fake = FakeRetryStripe(payment, outcome=outcome)
    monkeypatch.setattr(retry_service.gateway, "stripe_payment_intent_confirm", fake.confirm)
    monkeypatch.setattr(retry_service.gateway, "stripe_payment_intent_retrieve", fake.retrieve)
    return fake


def test_payment_retry_matrix(api_roles, monkeypatch):
    def call(client):
        payment = _failed_payment()
        _fake_retry(monkeypatch, payment)
        return client.post(
            "/api/v1/payment-retries/",
            {"payment": payment.pk, "reason": "New card"},
            format="json",
        )

    # Retrying needs payments.retry_payment: the senior approvers' group has it.
    assert_matrix(api_roles, write_matrix(SENIORS, ok=201), call)
    reads = read_matrix(FINANCE_VIEWERS)
    assert_matrix(api_roles, reads, lambda c: c.get("/api/v1/payment-retries/"))


def test_payment_retry_succeeds_once_per_key(api_roles, monkeypatch):
    payment = _failed_payment()
    fake = _fake_retry(monkeypatch, payment)
    client = api_roles["senior"]
    body = {"payment": payment.pk, "reason": "Customer updated the card"}
    first = client.post("/api/v1/payment-retries/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    again = client.post("/api/v1/payment-retries/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["succeeded"] is True
    assert first.json()["payment_status"] == Payment.Status.SUCCEEDED
    assert first.json()["retry"]["amount"]["display"] == "$70.00"
    assert len(fake.confirms) == 1 and PaymentRetry.objects.count() == 1


def test_payment_retry_refusals_keep_the_services_words(api_roles, monkeypatch):
    client = api_roles["senior"]
    ok = PaymentFactory()
    _fake_retry(monkeypatch, ok)
    not_failed = client.post(
        "/api/v1/payment-retries/", {"payment": ok.pk, "reason": "x"}, format="json"
    )
    assert not_failed.status_code == 409
    assert not_failed.json()["error"]["message"] == retry_service.ERROR_NOT_FAILED.format(
        status="succeeded"
    )
    failed = _failed_payment()
    no_reason = client.post(
        "/api/v1/payment-retries/", {"payment": failed.pk, "reason": ""}, format="json"
    )
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["fields"] == {"reason": [retry_service.ERROR_REASON_REQUIRED]}
    Customer.objects.filter(pk=failed.customer_id).update(
        blocked_at=timezone.now(), block_reason="chargebacks"
    )
    blocked = client.post(
        "/api/v1/payment-retries/", {"payment": failed.pk, "reason": "x"}, format="json"
    )
    assert blocked.status_code == 409
    assert blocked.json()["error"]["message"] == retry_service.ERROR_CUSTOMER_BLOCKED.format(
        reason="chargebacks"
    )
    assert not PaymentRetry.objects.exists()


def test_a_declined_retry_is_an_answer(api_roles, monkeypatch):
    payment = _failed_payment()
    _fake_retry(monkeypatch, payment, outcome="declined")
    response = api_roles["senior"].post(
        "/api/v1/payment-retries/", {"payment": payment.pk, "reason": "Try again"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["succeeded"] is False
    assert response.json()["message"] == retry_service.MESSAGE_DECLINED.format(
        code="insufficient_funds"
    )


# --- audit log -----------------------------------------------------------------------------------


def test_audit_log_matrix_and_filters(api_roles):
    boss = api_roles.users["superuser"]
    payment = PaymentFactory()
    for action, amount in (("refund_request.approve", 2500), ("webhook_event_replay", None)):
        AdminAction.objects.create(
            actor=boss,
            action=action,
            target_type="payments.payment",
            target_id=str(payment.pk),
            amount=amount,
            currency="usd" if amount else "",
        )
    assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get("/api/v1/audit-log/"))
    client = api_roles["auditor"]
    rows = client.get("/api/v1/audit-log/?action_prefix=refund_request.").json()["results"]
    assert [row["action"] for row in rows] == ["refund_request.approve"]
    assert rows[0]["amount"] == {"amount": 2500, "currency": "usd", "display": "$25.00"}
    assert rows[0]["actor"] == "api-boss"
    rows = client.get("/api/v1/audit-log/?action=webhook_event_replay").json()["results"]
    assert rows[0]["amount"] is None
    # The token set-up wrote its own audit rows; filtering by actor finds them too.
    assert client.get("/api/v1/audit-log/?actor=nobody").json()["results"] == []


def test_the_audit_log_is_read_only(api_roles):
    # A plain client: these methods are no operation of the schema, so nothing to check
    # against it but the error shape.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=api_roles["superuser"]._credentials["HTTP_AUTHORIZATION"])
    row = AdminAction.objects.latest("id")
    for method in ("post", "put", "patch", "delete"):
        for url in ("/api/v1/audit-log/", f"/api/v1/audit-log/{row.pk}/"):
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code in (403, 405), (method, url)
            assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert AdminAction.objects.filter(pk=row.pk).exists()
