"""The evidence packet of a dispute, assembled from our own data: pre-filled Stripe evidence
text and the files staff can attach (the receipt PDF, an account history PDF).

It lives in reports because it reads every app below it: the payment, customer and balance
ledger (payments), refund requests and their notes (refunds), receipts (reports). Reads
only: nothing here writes, except `packet_files`, which issues the payment's receipt if it
has none yet (receipts are issued once; see reports.receipts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Sum
from django.utils import timezone

from payments.dispute_evidence import EvidenceFile
from payments.models import BalanceEntry, Dispute, Payment, Refund, StudentBalance
from payments.money import format_money
from refunds.models import RefundRequest

from .models import DocumentKind, Receipt
from .pdf import dispute_history_pdf, receipt_pdf
from .receipts import receipt_issue

# How many of the customer's other payments the packet lists (most recent first).
HISTORY_LIMIT = 20
# What staff may attach from the packet, by the Stripe file field it goes to.
PACKET_FILE_FIELDS = {"receipt": "receipt", "history": "uncategorized_file"}


@dataclass(frozen=True)
class HistoryLine:
    when: datetime
    reference: str
    description: str
    amount: str
    status: str


@dataclass(frozen=True)
class HoursUsage:
    """An hour package against the balance ledger, in minutes."""

    purchased: int
    used_since_purchase: int  # lessons taken (usage entries) since the package was bought
    consumed_from_package: int  # min(purchased, used since): first bought, first used
    balance_now: int | None
    lessons: list[tuple[datetime, int, str]]  # (when, minutes, note) of the usage entries


@dataclass
class EvidencePacket:
    dispute: Dispute
    payment: Payment
    text: dict[str, str]  # Stripe text evidence fields, pre-filled
    purchase: str
    hours: HoursUsage | None
    history: list[HistoryLine] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)  # prior refunds, one line each
    messages: list[str] = field(default_factory=list)  # refund requests and their notes
    receipt_number: str = ""  # the receipt already issued, if any


def _date(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d") if value else "—"


def _billing_address(details: dict) -> str:
    address = (details or {}).get("address") or {}
    parts = [
        address.get("line1"),
        address.get("line2"),
        " ".join(p for p in (address.get("postal_code"), address.get("city")) if p),
        address.get("state"),
        address.get("country"),
    ]
    return ", ".join(p for p in parts if p)


def _purchase(payment: Payment) -> str:
    kind = payment.get_product_kind_display() if payment.product_kind else "Purchase"
    what = payment.product_name or payment.description or payment.stripe_payment_intent_id
    line = f"{kind}: {what}"
    if payment.product_id:
        line += f" (product {payment.product_id})"
    if payment.booking_id:
        line += f", booking {payment.booking_id}"
    if payment.instructor_id:
        line += f", taught by {payment.instructor}"
    paid = _date(payment.succeeded_at or payment.created)
    return f"{line}; paid {format_money(payment.amount, payment.currency)} on {paid}."


def _hours(payment: Payment) -> HoursUsage | None:
    if payment.product_kind != Payment.ProductKind.HOUR_PACKAGE or payment.customer_id is None:
        return None
    purchased = payment.package_minutes or 0
    since = payment.succeeded_at or payment.created
    balance = StudentBalance.objects.filter(customer_id=payment.customer_id).first()
    usage = BalanceEntry.objects.filter(
        balance__customer_id=payment.customer_id,
        kind=BalanceEntry.Kind.USAGE,
        created_at__gte=since,
    ).order_by("created_at", "id")
    lessons = [(entry.created_at, -entry.minutes, entry.note) for entry in usage[:50]]
    used = -(usage.aggregate(total=Sum("minutes"))["total"] or 0)
    return HoursUsage(
        purchased=purchased,
        used_since_purchase=used,
        consumed_from_package=min(purchased, used),
        balance_now=balance.minutes if balance else None,
        lessons=lessons,
    )


def _hours_text(hours: HoursUsage) -> str:
    text = (
        f"Hour package of {hours.purchased / 60:g} h. Since the purchase the customer took "
        f"{len(hours.lessons)} lesson(s), {hours.used_since_purchase / 60:g} h in all, so "
        f"{hours.consumed_from_package / 60:g} h of this package were used."
    )
    if hours.balance_now is not None:
        text += f" Hours left on the account now: {hours.balance_now / 60:g} h."
    lines = [
        f"{_date(when)}: lesson, {minutes} min {note}".rstrip()
        for when, minutes, note in hours.lessons
    ]
    return "\n".join([text, *lines])


def evidence_packet(dispute: Dispute) -> EvidencePacket:
    """Everything we know that answers `dispute`, as text for Stripe's fields and lines for
    the page. A handful of queries, whatever the customer's history."""
    payment = Payment.objects.select_related("customer", "instructor").get(pk=dispute.payment_id)
    customer = payment.customer
    hours = _hours(payment)
    purchase = _purchase(payment)

    history: list[HistoryLine] = []
    if customer is not None:
        others = (
            Payment.objects.filter(customer=customer)
            .exclude(pk=payment.pk)
            .order_by("-created", "-id")[:HISTORY_LIMIT]
        )
        history = [
            HistoryLine(
                when=other.created,
                reference=other.stripe_payment_intent_id,
                description=other.product_name or other.get_product_kind_display(),
                amount=format_money(other.amount, other.currency),
                status=other.get_status_display(),
            )
            for other in others
        ]
    refunds = [
        f"{_date(refund.created)}: {format_money(refund.amount, refund.currency)} "
        f"refunded ({refund.get_status_display().lower()}"
        f"{', ' + refund.reason.replace('_', ' ') if refund.reason else ''}), {refund.stripe_id}"
        for refund in Refund.objects.filter(payment=payment).order_by("created", "id")
    ]
    messages = []
    for request in RefundRequest.objects.filter(payment=payment).order_by("created_at", "id"):
        why = request.get_reason_display().lower()
        if request.internal_reason:
            why += ", " + request.get_internal_reason_display().lower()
        line = (
            f"{_date(request.created_at)}: refund of "
            f"{format_money(request.amount, request.currency)} requested ({why}), "
            f"{request.get_status_display().lower()}."
        )
        notes = [
            ("Customer wrote", request.customer_note),
            ("Staff note", request.admin_notes),
            ("Rejected because", request.rejection_reason),
        ]
        line += "".join(
            f" {label}: {text.strip().rstrip('.')}." for label, text in notes if text.strip()
        )
        messages.append(line)

    text: dict[str, str] = {}
    if customer is not None:
        if customer.name:
            text["customer_name"] = customer.name
        if customer.email:
            text["customer_email_address"] = customer.email
    billing = _billing_address(payment.billing_details)
    if billing:
        text["billing_address"] = billing
    if payment.ip_address:
        text["customer_purchase_ip"] = payment.ip_address
    text["service_date"] = _date(payment.succeeded_at or payment.created)
    text["product_description"] = purchase
    if hours is not None:
        text["access_activity_log"] = _hours_text(hours)
    rejected = [line for line in messages if "Rejected because" in line]
    if rejected:
        text["refund_refusal_explanation"] = "\n".join(rejected)
    summary = []
    if history:
        summary.append(
            f"The customer made {len(history)} other payment(s) with us, "
            f"the first on {_date(history[-1].when)}."
        )
    if refunds:
        summary.append("Refunds already made on this payment:\n" + "\n".join(refunds))
    if messages:
        summary.append("Refund requests and messages:\n" + "\n".join(messages))
    if summary:
        text["uncategorized_text"] = "\n\n".join(summary)

    receipt = Receipt.objects.filter(payment=payment, kind=DocumentKind.RECEIPT).first()
    return EvidencePacket(
        dispute=dispute,
        payment=payment,
        text=text,
        purchase=purchase,
        hours=hours,
        history=history,
        refunds=refunds,
        messages=messages,
        receipt_number=receipt.number if receipt else "",
    )


def packet_files(packet: EvidencePacket, *, which: set[str], acting_user) -> list[EvidenceFile]:
    """The packet's files staff chose (`which` holds keys of PACKET_FILE_FIELDS), as evidence
    files for the Stripe field each belongs to. Issues the receipt if the payment has none."""
    files = []
    if "receipt" in which and packet.payment.status in Payment.CAPTURED_STATUSES:
        document = receipt_issue(payment=packet.payment, acting_user=acting_user)
        files.append(
            EvidenceFile(
                field=PACKET_FILE_FIELDS["receipt"],
                filename=f"{document.number}.pdf",
                content=receipt_pdf(document),
            )
        )
    if "history" in which:
        files.append(
            EvidenceFile(
                field=PACKET_FILE_FIELDS["history"],
                filename=f"history-{packet.dispute.stripe_id}.pdf",
                content=dispute_history_pdf(packet),
            )
        )
    return files
