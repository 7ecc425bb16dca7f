"""A refund made from the back-office reaches the instructor's earnings through the one path
every refund takes (payments.sync.upsert_refunds), once, whoever lands it first."""

import pytest
from django.db.models import Sum

from payments import earnings, sync
from payments.models import EarningEntry, Payment
from refunds.models import RefundRequest
from refunds.services import refund_request_approve
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db


def test_a_processed_refund_request_reverses_the_earning_once(
    approver, fake_stripe, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(amount=5000)  # net 38.25
    earnings.record_payment_earnings([payment.pk])  # what the sync wrote when it succeeded
    row = RefundRequestFactory(payment=payment, amount=2000)
    with django_capture_on_commit_callbacks(execute=True):
        refund_request_approve(refund_request=row, acting_user=approver)
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    # The webhook and the next sync land the same refund again.
    sync.upsert_refunds(fake_stripe.refunds)
    sync.upsert_refunds(fake_stripe.refunds)
    entries = list(
        EarningEntry.objects.filter(payment=payment)
        .order_by("pk")
        .values_list("kind", "reference", "amount")
    )
    # 20.00 back to the customer; the platform returns 2/5 of its 10.00 fee.
    assert entries == [
        ("earning", f"payment:{payment.stripe_payment_intent_id}:earning", 3825),
        ("refund", f"refund:{row.stripe_refund_id}", -1600),
    ]
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.earning_entries.aggregate(total=Sum("amount"))["total"] == payment.net == 2225
