"""The permission matrix of every detail endpoint not covered beside its writes, and of the
dispute evidence writes: finance, seniors and auditors read (their groups' view_
permissions), a staff member in no group does not, dead credentials get 401."""

from __future__ import annotations

import pytest
from django.utils import timezone

from backoffice.audit import audit_record
from payments.models import PaymentRetry, SyncRun, WebhookEvent
from reports.models import DailyRollup
from reports.receipts import receipt_issue
from reports.rollups import generate_analytics
from tests.api.harness import FINANCE_VIEWERS, SENIORS, assert_matrix, read_matrix, write_matrix
from tests.factories import DisputeFactory, PaymentFactory, UserFactory
from tests.payments.test_dispute_response import FakeStripe as FakeDisputeStripe

pytestmark = pytest.mark.django_db


def _retry():
    payment = PaymentFactory(failed=True)
    return PaymentRetry.objects.create(
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        stripe_payment_method_id="pm_x",
        status=PaymentRetry.Status.DECLINED,
    )


def _rollup():
    PaymentFactory(created=timezone.now())
    today = timezone.localdate()
    generate_analytics(start=today, end=today)
    return DailyRollup.objects.get()


DETAILS = {
    "webhook-events": lambda: WebhookEvent.objects.create(
        stripe_id="evt_detail", type="charge.succeeded", created=timezone.now(), payload={}
    ),
    "sync-runs": lambda: SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED),
    "payment-retries": _retry,
    "audit-log": lambda: audit_record(
        acting_user=UserFactory(), action="test.detail", target=PaymentFactory()
    ),
    "rollups": _rollup,
    "receipts": lambda: receipt_issue(payment=PaymentFactory()),
}


@pytest.mark.parametrize("prefix", sorted(DETAILS))
def test_detail_matrix(api_roles, prefix):
    row = DETAILS[prefix]()
    assert_matrix(
        api_roles, read_matrix(FINANCE_VIEWERS), lambda c: c.get(f"/api/v1/{prefix}/{row.pk}/")
    )


@pytest.mark.parametrize("step", ["evidence", "submit"])
def test_dispute_evidence_matrix(api_roles, monkeypatch, step):
    def call(client):
        dispute = DisputeFactory()
        FakeDisputeStripe(dispute).install(monkeypatch)
        body = {"evidence": {"uncategorized_text": "Attended every lesson."}}
        return client.post(f"/api/v1/disputes/{dispute.pk}/{step}/", body, format="json")

    assert_matrix(api_roles, write_matrix(SENIORS), call)
