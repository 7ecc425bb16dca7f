"""Receipts and credit notes with gap-free numbers (REC-YYYY-NNNNNN, CN-YYYY-NNNNNN).

A number is taken from DocumentSequence under SELECT ... FOR UPDATE in the same transaction
that inserts the document: concurrent issuers queue on the counter row, a rollback gives the
number back, and the unique `reference` makes issuing idempotent.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Concat
from django.utils import timezone

from backoffice.audit import audit_record
from backoffice.models import CustomerEmail
from backoffice.outbox import Attachment, queue_customer_email
from payments.models import Payment
from payments.money import format_money

from .models import DOCUMENT_PREFIX, DocumentKind, DocumentSequence, Receipt
from .pdf import receipt_pdf

logger = logging.getLogger(__name__)

ERR_NOT_CAPTURED = "Payment {payment} has not been captured; it gets no receipt."
ERR_REFUND_AMOUNT = "A credit note needs a positive refund amount, got {amount}."
MISSING_BATCH = 500

RECEIPT_EMAIL_SUBJECT = "Your receipt {number}"
RECEIPT_EMAIL_BODY = (
    "Hello{name},\n\n"
    "thank you for your payment of {amount} for {what}.\n"
    "Your receipt {number} is attached.\n"
)


def format_number(kind: str, year: int, sequence: int) -> str:
    return f"{DOCUMENT_PREFIX[kind]}-{year}-{sequence:06d}"


def _locked_counter(*, kind: str, year: int) -> DocumentSequence:
    """The counter row of (kind, year), locked until the surrounding transaction ends."""
    # Insert-if-missing without a race: two first issuers of a year cannot both create it.
    DocumentSequence.objects.bulk_create(
        [DocumentSequence(kind=kind, year=year, last_number=0)], ignore_conflicts=True
    )
    return DocumentSequence.objects.select_for_update().get(kind=kind, year=year)


def _audit(*, document: Receipt, acting_user, action: str) -> None:
    audit_record(
        acting_user=acting_user,
        action=action,
        target=document,
        target_repr=document.number,
        amount=document.amount,
        currency=document.currency,
        details={"payment_id": document.payment_id, "reference": document.reference},
    )


def _issue(
    *, kind: str, payment: Payment, amount: int, reference: str, acting_user, **extra
) -> Receipt:
    issued_at = timezone.now()
    year = timezone.localtime(issued_at).year
    with transaction.atomic():
        counter = _locked_counter(kind=kind, year=year)
        # Checked under the counter lock: a concurrent issuer of the same reference committed
        # before we got the lock, and READ COMMITTED shows us its row now.
        existing = Receipt.objects.filter(reference=reference).first()
        if existing is not None:
            return existing
        counter.last_number += 1
        counter.save(update_fields=["last_number"])
        sequence = counter.last_number
        document = Receipt.objects.create(
            kind=kind,
            number=format_number(kind, year, sequence),
            year=year,
            sequence=sequence,
            payment=payment,
            amount=amount,
            currency=payment.currency,
            reference=reference,
            issued_at=issued_at,
            **extra,
        )
        _audit(document=document, acting_user=acting_user, action=f"{kind}_issue")
        if kind == DocumentKind.RECEIPT:
            _queue_receipt_email(document)
    return document


def _queue_receipt_email(document: Receipt) -> None:
    """The receipt and its PDF to the customer, queued in the transaction that issues it.
    Only receipts issued one by one (the payment's signal) are e-mailed:
    receipts_issue_missing backfills old payments' paperwork, and e-mailing a batch of
    past payments' receipts would surprise their customers."""
    payment = document.payment
    customer = payment.customer
    if customer is None or not customer.email:
        return
    amount = format_money(document.amount, document.currency)
    queue_customer_email(
        to=customer.email,
        subject=RECEIPT_EMAIL_SUBJECT.format(number=document.number),
        body=RECEIPT_EMAIL_BODY.format(
            name=f" {customer.name}" if customer.name else "",
            amount=amount,
            what=payment.description or payment.get_product_kind_display(),
            number=document.number,
        ),
        kind=CustomerEmail.Kind.RECEIPT,
        cause=document,
        cause_repr=f"{document.number} ({amount})",
        attachments=(Attachment(f"{document.number}.pdf", receipt_pdf(document)),),
    )


def receipt_issue(*, payment: Payment, acting_user=None) -> Receipt:
    """The receipt of a captured payment (issued once; later calls return the same one).
    Raises ValueError for a payment that was never captured."""
    if payment.status not in Payment.CAPTURED_STATUSES:
        raise ValueError(ERR_NOT_CAPTURED.format(payment=payment))
    return _issue(
        kind=DocumentKind.RECEIPT,
        payment=payment,
        amount=payment.amount,
        reference=f"payment:{payment.pk}",
        acting_user=acting_user,
    )


def credit_note_issue(
    *,
    payment: Payment,
    refund_amount: int,
    stripe_refund_id: str,
    refund_request=None,
    acting_user=None,
) -> Receipt:
    """The credit note of one processed refund (minor units), once per Stripe refund id."""
    if refund_amount <= 0:
        raise ValueError(ERR_REFUND_AMOUNT.format(amount=refund_amount))
    reference = (
        f"refund:{stripe_refund_id}"
        if stripe_refund_id
        else f"refund_request:{getattr(refund_request, 'pk', None)}"
    )
    return _issue(
        kind=DocumentKind.CREDIT_NOTE,
        payment=payment,
        amount=refund_amount,
        reference=reference,
        acting_user=acting_user,
        stripe_refund_id=stripe_refund_id or "",
        refund_request_id=getattr(refund_request, "pk", None),
    )


def receipts_issue_missing(*, acting_user=None, limit: int | None = None) -> dict:
    """Receipts for every captured payment that has none, oldest first, in batches: one
    counter lock and one bulk insert per batch. Idempotent; numbers stay gap-free."""
    missing = (
        Payment.objects.filter(status__in=Payment.CAPTURED_STATUSES)
        .filter(~Exists(Receipt.objects.filter(payment=OuterRef("pk"), kind="receipt")))
        .order_by("succeeded_at", "id")
        .values_list("pk", "amount", "currency")
    )
    issued = 0
    while limit is None or issued < limit:
        size = MISSING_BATCH if limit is None else min(MISSING_BATCH, limit - issued)
        with transaction.atomic():
            now = timezone.now()
            year = timezone.localtime(now).year
            # Lock the counter first, then read the batch: a concurrent run waits here and
            # then sees our receipts, so it never numbers the same payment twice.
            counter = _locked_counter(kind=DocumentKind.RECEIPT, year=year)
            batch = list(missing[:size])
            if not batch:
                break
            first = counter.last_number + 1
            counter.last_number += len(batch)
            counter.save(update_fields=["last_number"])
            Receipt.objects.bulk_create(
                [
                    Receipt(
                        kind=DocumentKind.RECEIPT,
                        number=format_number(DocumentKind.RECEIPT, year, first + i),
                        year=year,
                        sequence=first + i,
                        payment_id=pk,
                        amount=amount,
                        currency=currency,
                        reference=f"payment:{pk}",
                        issued_at=now,
                    )
                    for i, (pk, amount, currency) in enumerate(batch)
                ]
            )
            audit_record(
                acting_user=acting_user,
                action="receipts_issue_missing",
                target=Receipt,
                target_id=format_number(DocumentKind.RECEIPT, year, first),
                target_repr=f"{len(batch)} receipts",
                details={"first": first, "last": first + len(batch) - 1, "year": year},
            )
        issued += len(batch)
    return {"receipts_issued": issued}


def credit_notes_issue_missing(*, acting_user=None) -> dict:
    """Credit notes for succeeded Stripe refunds (payments.Refund) that have none: refunds
    made outside the refund queue (the Stripe dashboard) or whose signal was missed.
    One document each (a refund is rare next to a payment), oldest first, idempotent."""
    from payments.models import Refund

    refunds = (
        Refund.objects.filter(status=Refund.Status.SUCCEEDED)
        .filter(
            ~Exists(
                Receipt.objects.filter(reference=Concat(Value("refund:"), OuterRef("stripe_id")))
            )
        )
        .select_related("payment")
        .order_by("created", "id")
    )
    issued = 0
    for refund in refunds.iterator(chunk_size=500):
        credit_note_issue(
            payment=refund.payment,
            refund_amount=refund.amount,
            stripe_refund_id=refund.stripe_id,
            acting_user=acting_user,
        )
        issued += 1
    return {"credit_notes_issued": issued}


def on_payment_succeeded(sender, *, payment, **kwargs) -> None:
    """payments.signals.payment_succeeded -> a receipt. Never breaks the sender: a failure is
    logged and the `issue_missing_receipts` job issues it later."""
    try:
        receipt_issue(payment=payment)
    except Exception:
        logger.exception("Receipt for payment %s not issued; the repair job will retry", payment)


def on_refund_processed(
    sender, *, payment, refund_amount, stripe_refund_id, refund_request=None, **kwargs
) -> None:
    """payments.signals.refund_processed -> a credit note."""
    try:
        credit_note_issue(
            payment=payment,
            refund_amount=refund_amount,
            stripe_refund_id=stripe_refund_id,
            refund_request=refund_request,
        )
    except Exception:
        logger.exception("Credit note for refund %s not issued", stripe_refund_id)


def receipt_for_payment(*, payment: Payment) -> Receipt | None:
    return Receipt.objects.filter(payment=payment, kind=DocumentKind.RECEIPT).first()


def issued_on(document: Receipt) -> datetime:
    return timezone.localtime(document.issued_at)
