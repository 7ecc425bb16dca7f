"""A customer's personal data (GDPR): what the export contains, what erasure pseudonymises, and
how the sync keeps an erased customer erased. The services that export and erase (permission,
row lock, audit) are in payments/services/customer_privacy.py.

Rules, once:
- Export: one JSON document: the customer, their payment methods (brand, last four, expiry:
  never a full number, which we never hold), payments (with billing details and IP), Stripe
  refunds, disputes, hour balance and its entries, plus the sections higher apps register
  (refund requests from refunds; adjustments once they exist). Money is {amount (minor units),
  currency, display}.
- Erasure pseudonymises, it does not delete: Customer.email blank, name ERASED_NAME, the link
  to a user account cleared, the same in the customer's history rows; each payment's billing
  details, IP, description and metadata problems and the personal keys of its metadata
  (backoffice.redaction's rule), in its history rows too; personal
  keys of dispute evidence and of the staff's dispute responses; the payloads of webhook
  events about the customer or their payments; plus the steps higher apps register (refunds:
  customer notes). Money rows (payments, refunds, disputes, balances, ledgers) and the audit
  trail stay as they are; the Stripe customer id keeps the link to Stripe.
- After erasure the mirror never writes personal data of that customer again: the sync and
  webhooks skip Customer.email/name (sync.upsert_customers) and blank the personal fields of
  their payments and disputes (`erased_payment_values`, `erased_evidence`), and events about
  them are stored masked once processed (`webhook_payload_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Model, Q

from backoffice.redaction import mask_email, mask_personal_data

from .models import (
    BalanceEntry,
    Customer,
    Dispute,
    DisputeResponse,
    Payment,
    PaymentMethod,
    Refund,
    StudentBalance,
    WebhookEvent,
)
from .money import format_money

EXPORT_FORMAT = "backoffice.customer-export/1"
# What an erased customer's name becomes (the pseudonym is the Stripe id beside it).
ERASED_NAME = Customer.ERASED_NAME

# A section of the export: (customer, payment pks) -> JSON-serialisable list or dict.
ExportSection = Callable[[Customer, list[int]], Any]
# An erasure step of a higher app: (customer, payment pks) -> rows changed. Runs inside the
# erasure's transaction, under the customer's row lock.
ErasureStep = Callable[[Customer, list[int]], int]

_export_sections: dict[str, ExportSection] = {}
_erasure_steps: dict[str, ErasureStep] = {}


def register_export_section(name: str, section: ExportSection) -> None:
    """A higher app adds its rows about a customer to the export (idempotent by name)."""
    _export_sections[name] = section


def register_erasure_step(name: str, step: ErasureStep) -> None:
    """A higher app pseudonymises its personal fields of a customer (idempotent by name)."""
    _erasure_steps[name] = step


# --- Export -----------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def money_json(amount: int | None, currency: str) -> dict | None:
    if amount is None:
        return None
    return {"amount": amount, "currency": currency, "display": format_money(amount, currency)}


def row_json(obj: Model, *, exclude: Iterable[str] = (), money: Iterable[str] = ()) -> dict:
    """Every concrete field of `obj` (foreign keys as their id), JSON-ready; `money` fields as
    {amount, currency, display} in the row's `currency`. Fields added to a model later are
    exported too, unless excluded."""
    excluded, money = set(exclude), set(money)
    data = {}
    for field in obj._meta.concrete_fields:
        if field.name in excluded:
            continue
        value = getattr(obj, field.attname)
        if field.name in money:
            value = money_json(value, obj.currency)
        data[field.attname] = json_value(value)
    return data


def customer_export_document(*, customer: Customer, now: datetime) -> dict:
    """The export (see the module's docstring); reads only."""
    payments = list(Payment.objects.filter(customer=customer).order_by("pk"))
    payment_pks = [p.pk for p in payments]
    payment_money = ["amount", "amount_refunded", "stripe_fee", "platform_fee", "net"]
    document = {
        "format": EXPORT_FORMAT,
        "generated_at": now.isoformat(),
        "customer": row_json(customer, exclude=["blocked_by", "user"]),
        "payment_methods": [
            row_json(pm, exclude=["card_fingerprint"])
            for pm in PaymentMethod.objects.filter(customer=customer).order_by("pk")
        ],
        "payments": [
            row_json(p, exclude=["stripe_amount_refunded", "card_fingerprint"], money=payment_money)
            for p in payments
        ],
        "refunds": [
            row_json(r, money=["amount"])
            for r in Refund.objects.filter(payment_id__in=payment_pks).order_by("pk")
        ],
        "disputes": [
            row_json(d, money=["amount", "fee"])
            for d in Dispute.objects.filter(payment_id__in=payment_pks).order_by("pk")
        ],
        "balance": _balance_json(customer),
    }
    for name, section in sorted(_export_sections.items()):
        document[name] = section(customer, payment_pks)
    return document


def _balance_json(customer: Customer) -> dict | None:
    balance = StudentBalance.objects.filter(customer=customer).first()
    if balance is None:
        return None
    return {
        **row_json(balance),
        "entries": [
            row_json(entry) for entry in BalanceEntry.objects.filter(balance=balance).order_by("pk")
        ],
    }


# --- Erasure ----------------------------------------------------------------------------------


def erased_payment_values(values: dict) -> dict:
    """A payment's values as the mirror may store them for an erased customer: no billing
    details, no IP, metadata with its personal keys masked, e-mails in the description
    shortened. Used by the erasure and by every later upsert of their payments."""
    values = dict(values)
    if "billing_details" in values:
        values["billing_details"] = {}
    if "ip_address" in values:
        values["ip_address"] = None
    if "metadata" in values:
        values["metadata"] = mask_personal_data(values["metadata"] or {})
    if "description" in values:
        values["description"] = mask_email(values["description"] or "")
    if "metadata_problems" in values:
        values["metadata_problems"] = mask_personal_data(values["metadata_problems"] or [])
    return values


def erased_evidence(evidence: dict) -> dict:
    """Dispute evidence of an erased customer: the personal keys (customer_name,
    customer_email_address, billing/shipping address, customer_purchase_ip ...) masked."""
    return mask_personal_data(evidence or {})


def customer_object_ids(*, customer: Customer, payment_pks: list[int]) -> set[str]:
    """Every Stripe id an event about this customer may name as its object: the customer,
    their payment methods, payment intents, charges, refunds and disputes."""
    ids = {customer.stripe_id}
    ids |= set(PaymentMethod.objects.filter(customer=customer).values_list("stripe_id", flat=True))
    for intent, charge in Payment.objects.filter(pk__in=payment_pks).values_list(
        "stripe_payment_intent_id", "stripe_charge_id"
    ):
        ids |= {intent, charge}
    ids |= set(
        Refund.objects.filter(payment_id__in=payment_pks).values_list("stripe_id", flat=True)
    )
    ids |= set(
        Dispute.objects.filter(payment_id__in=payment_pks).values_list("stripe_id", flat=True)
    )
    return {i for i in ids if i}


def customer_webhook_events(*, customer: Customer, payment_pks: list[int]):
    """Stored events about the customer: by the object they name, or naming the customer in
    data.object.customer (a charge or payment method event)."""
    object_ids = customer_object_ids(customer=customer, payment_pks=payment_pks)
    return WebhookEvent.objects.filter(
        Q(object_id__in=object_ids) | Q(payload__data__object__customer=customer.stripe_id)
    )


def erase_related_rows(*, customer: Customer) -> dict[str, int]:
    """Pseudonymise everything personal about `customer` outside the Customer row (see the
    module's docstring). Call under the customer's row lock, inside the erasure's
    transaction. Returns rows changed per kind."""
    payment_pks = list(Payment.objects.filter(customer=customer).values_list("pk", flat=True))
    changed = {"payments": 0, "disputes": 0, "dispute_responses": 0, "webhook_events": 0}
    personal = ["billing_details", "ip_address", "metadata", "description", "metadata_problems"]
    for payment in Payment.objects.filter(pk__in=payment_pks).only("pk", *personal):
        values = erased_payment_values({name: getattr(payment, name) for name in personal})
        Payment.objects.filter(pk=payment.pk).update(**values)
        changed["payments"] += 1
    # The payments' history rows keep every earlier IP, description and metadata problems
    # (billing details and metadata are not recorded): each row gets the erased values.
    recorded = ["ip_address", "description", "metadata_problems"]
    for row in Payment.history.filter(id__in=payment_pks).only("history_id", *recorded):
        values = erased_payment_values({name: getattr(row, name) for name in recorded})
        Payment.history.filter(history_id=row.history_id).update(**values)
    for dispute in Dispute.objects.filter(payment_id__in=payment_pks).only("pk", "evidence"):
        Dispute.objects.filter(pk=dispute.pk).update(evidence=erased_evidence(dispute.evidence))
        changed["disputes"] += 1
    for response in DisputeResponse.objects.filter(dispute__payment_id__in=payment_pks).only(
        "pk", "evidence"
    ):
        DisputeResponse.objects.filter(pk=response.pk).update(
            evidence=erased_evidence(response.evidence)
        )
        changed["dispute_responses"] += 1
    for event in customer_webhook_events(customer=customer, payment_pks=payment_pks).only(
        "pk", "payload"
    ):
        WebhookEvent.objects.filter(pk=event.pk).update(payload=mask_personal_data(event.payload))
        changed["webhook_events"] += 1
    for name, step in sorted(_erasure_steps.items()):
        changed[name] = step(customer, payment_pks)
    return changed


def webhook_payload_for(event: WebhookEvent) -> dict | None:
    """The payload to store instead of `event.payload` when the event is about an erased
    customer (masked), or None to keep it. One indexed query."""
    data = (event.payload or {}).get("data") or {}
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    customer_id = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    if obj.get("object") == "customer" and isinstance(obj.get("id"), str):
        customer_id = obj["id"]
    if customer_id is None:
        # A dispute or refund names its charge or payment intent, not the customer.
        parent = obj.get("payment_intent") or obj.get("charge")
        if not isinstance(parent, str) or not parent:
            return None
        erased = Payment.objects.filter(
            Q(stripe_payment_intent_id=parent) | Q(stripe_charge_id=parent),
            customer__erased_at__isnull=False,
        ).exists()
    else:
        erased = Customer.objects.filter(stripe_id=customer_id, erased_at__isnull=False).exists()
    return mask_personal_data(event.payload) if erased else None
