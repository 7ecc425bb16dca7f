"""Refunds' part of a customer's GDPR export and erasure (payments/customer_privacy.py names
what each app adds; refunds.apps registers these two). A refund request's customer note is
the customer's own words: exported, and blanked on erasure (with its history rows). Amounts,
statuses and staff notes stay: they are the record of money returned."""

from __future__ import annotations

from payments.customer_privacy import row_json
from payments.models import Customer

from .models import RefundRequest

ERASED_NOTE = ""


def refund_requests_export(customer: Customer, payment_pks: list[int]) -> list[dict]:
    requests = RefundRequest.objects.filter(payment_id__in=payment_pks).order_by("pk")
    return [row_json(r, exclude=["idempotency_key"], money=["amount"]) for r in requests]


def refund_requests_erase(customer: Customer, payment_pks: list[int]) -> int:
    """Blank the notes of the customer's requests (by their payments), in every history row
    too: a note blanked since is still in the rows recorded before. Returns the requests
    whose current note was blanked."""
    RefundRequest.history.filter(payment_id__in=payment_pks).exclude(
        customer_note=ERASED_NOTE
    ).update(customer_note=ERASED_NOTE)
    return (
        RefundRequest.objects.filter(payment_id__in=payment_pks)
        .exclude(customer_note=ERASED_NOTE)
        .update(customer_note=ERASED_NOTE)
    )
