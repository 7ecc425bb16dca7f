"""Stripe object or plain dict -> our dataclasses (payments.gateway.types).

The `*_from_stripe` mappers accept a StripeObject from an API call as well as a plain dict
(a webhook's `data.object`), tolerate missing fields (localstripe omits many; Stripe omits
unexpanded ones) and never call Stripe. The sync and the webhook handlers both go through
them, so a field is read one way only. The `_get/_id/_ts/...` helpers read one field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from payments.gateway.types import (
    StripeAccount,
    StripeCustomer,
    StripeDispute,
    StripeFile,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
    StripeTransfer,
    StripeTransferReversal,
)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        value = obj.get(key, default)
    else:
        try:
            value = obj[key]  # StripeObject: item access does not clash with methods
        except (KeyError, TypeError, AttributeError):
            value = getattr(obj, key, default)
    return default if value is None else value


def _id(value: Any) -> str:
    """An id from an expandable field: the string itself, or the expanded object's id."""
    if not value:
        return ""
    if isinstance(value, str):
        return value
    return str(_get(value, "id", "") or "")


def _plain(value: Any) -> Any:
    """StripeObject / nested lists -> plain JSON-able Python."""
    if value is None:
        return None
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), tz=UTC)


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def customer_from_stripe(obj: Any) -> StripeCustomer:
    invoice_settings = _get(obj, "invoice_settings")
    return StripeCustomer(
        id=_str(_get(obj, "id")),
        email=_str(_get(obj, "email")).strip().lower(),
        name=_str(_get(obj, "name")),
        livemode=bool(_get(obj, "livemode", False)),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        default_payment_method_id=_id(_get(invoice_settings, "default_payment_method")),
        deleted=bool(_get(obj, "deleted", False)),
        metadata=_plain(_get(obj, "metadata")) or {},
        balance=None if _get(obj, "balance") is None else _int(_get(obj, "balance")),
        currency=_str(_get(obj, "currency")).lower(),
    )


def payment_method_from_stripe(obj: Any) -> StripePaymentMethod:
    card = _get(obj, "card")
    exp_month = _get(card, "exp_month")
    exp_year = _get(card, "exp_year")
    return StripePaymentMethod(
        id=_str(_get(obj, "id")),
        customer_id=_id(_get(obj, "customer")),
        type=_str(_get(obj, "type")) or "card",
        card_brand=_str(_get(card, "brand")),
        card_last4=_str(_get(card, "last4")),
        card_exp_month=int(exp_month) if exp_month else None,
        card_exp_year=int(exp_year) if exp_year else None,
        livemode=bool(_get(obj, "livemode", False)),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        billing_details=_plain(_get(obj, "billing_details")) or {},
        card_fingerprint=_str(_get(card, "fingerprint"))[:64],
    )


def _fee_in(currency: str, balance_transaction: Any, key: str) -> int | None:
    """fee/net of a balance transaction in the payment's currency (minor units)."""
    if not balance_transaction or isinstance(balance_transaction, str):
        return None
    value = _get(balance_transaction, key)
    if value is None:
        return None
    bt_currency = _str(_get(balance_transaction, "currency")).lower()
    if not bt_currency or bt_currency == currency:
        return int(value)
    rate = _get(balance_transaction, "exchange_rate")
    if not rate:
        return None
    # Settled in another currency: exchange_rate converts charge -> settlement currency.
    converted = (Decimal(int(value)) / Decimal(str(rate))).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(converted)


def _amount_received(obj: Any, charge: Any) -> int:
    if _get(obj, "amount_received") is not None:
        return _int(_get(obj, "amount_received"))
    if _get(charge, "amount_captured") is not None:
        return _int(_get(charge, "amount_captured"))
    # Peers that omit both (localstripe): a captured, succeeded charge received its amount.
    if _get(charge, "captured") and _get(charge, "status") == "succeeded":
        return _int(_get(charge, "amount"))
    return 0


def payment_intent_from_stripe(obj: Any) -> StripePaymentIntent:
    currency = _str(_get(obj, "currency")).lower()
    charge = _get(obj, "latest_charge")
    if isinstance(charge, str) or charge is None:
        charge_id, charge = _id(charge), None
    else:
        charge_id = _id(charge)
    error = _get(obj, "last_payment_error")
    outcome = _get(charge, "outcome")
    details = _get(charge, "payment_method_details")
    pm = _get(obj, "payment_method")
    pm_obj = None if isinstance(pm, str) or not pm else payment_method_from_stripe(pm)
    pm_type = _str(_get(details, "type")) or (pm_obj.type if pm_obj else "")
    if not pm_type:
        pm_type = _str((_get(obj, "payment_method_types") or [""])[0])
    bt = _get(charge, "balance_transaction")
    failure_code = _str(_get(error, "code")) or _str(_get(charge, "failure_code"))
    decline_code = _str(_get(error, "decline_code")) or _str(_get(outcome, "reason"))
    if not failure_code:
        decline_code = ""
    return StripePaymentIntent(
        id=_str(_get(obj, "id")),
        amount=_int(_get(obj, "amount")),
        currency=currency,
        status=_str(_get(obj, "status")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        livemode=bool(_get(obj, "livemode", False)),
        customer_id=_id(_get(obj, "customer")),
        payment_method_id=_id(pm) or _id(_get(charge, "payment_method")),
        payment_method_type=pm_type,
        latest_charge_id=charge_id,
        charge_status=_str(_get(charge, "status")),
        charge_created=_ts(_get(charge, "created")),
        charge_disputed=bool(_get(charge, "disputed", False)),
        failure_code=failure_code,
        decline_code=decline_code,
        failure_message=_str(_get(error, "message")) or _str(_get(charge, "failure_message")),
        stripe_fee=_fee_in(currency, bt, "fee"),
        balance_net=_fee_in(currency, bt, "net"),
        amount_received=_amount_received(obj, charge),
        amount_refunded=_int(_get(charge, "amount_refunded")),
        canceled_at=_ts(_get(obj, "canceled_at")),
        description=_str(_get(obj, "description")),
        metadata=_plain(_get(obj, "metadata")) or {},
        billing_details=_plain(_get(charge, "billing_details"))
        or (pm_obj.billing_details if pm_obj else {}),
        payment_method=pm_obj,
        card_fingerprint=(
            _str(_get(_get(details, "card"), "fingerprint"))
            or (pm_obj.card_fingerprint if pm_obj else "")
        )[:64],
    )


def refund_from_stripe(obj: Any) -> StripeRefund:
    return StripeRefund(
        id=_str(_get(obj, "id")),
        payment_intent_id=_id(_get(obj, "payment_intent")),
        charge_id=_id(_get(obj, "charge")),
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        status=_str(_get(obj, "status")) or "pending",
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        reason=_str(_get(obj, "reason")),
        failure_reason=_str(_get(obj, "failure_reason")),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


def dispute_from_stripe(obj: Any) -> StripeDispute:
    charge = _get(obj, "charge")
    evidence = _get(obj, "evidence_details")
    return StripeDispute(
        id=_str(_get(obj, "id")),
        charge_id=_id(charge),
        payment_intent_id=_id(_get(obj, "payment_intent")) or _id(_get(charge, "payment_intent")),
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        status=_str(_get(obj, "status")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        reason=_str(_get(obj, "reason")),
        evidence_due_by=_ts(_get(evidence, "due_by")),
        fee=_dispute_fee(obj),
        evidence=_dispute_evidence(_get(obj, "evidence")),
        evidence_submission_count=_int(_get(evidence, "submission_count")),
        has_evidence=bool(_get(evidence, "has_evidence", False)),
    )


def _dispute_evidence(evidence: Any) -> dict[str, str]:
    """Stripe's evidence object -> {field: value} for the fields that hold one. File fields
    arrive as file ids (or expanded files: their id); nested objects (`enhanced_evidence`,
    `appeal`) are not text evidence and are left out."""
    plain = _plain(evidence) or {}
    if not isinstance(plain, dict):
        return {}
    result: dict[str, str] = {}
    for key, value in plain.items():
        if isinstance(value, dict) and _get(value, "object") == "file":
            value = _id(value)
        if isinstance(value, str) and value:
            result[key] = value
    return result


def file_from_stripe(obj: Any) -> StripeFile:
    return StripeFile(
        id=_str(_get(obj, "id")),
        size=_int(_get(obj, "size")),
        type=_str(_get(obj, "type")),
        filename=_str(_get(obj, "filename")),
    )


def _dispute_fee(obj: Any) -> int:
    """Sum of the fees of a dispute's balance transactions (the withdrawal charges the
    dispute fee; a won dispute's reinstatement may return it as a negative fee)."""
    currency = _str(_get(obj, "currency")).lower()
    total = 0
    for transaction in _get(obj, "balance_transactions") or []:
        fee = _fee_in(currency, transaction, "fee")
        total += fee or 0
    return max(0, total)


def account_from_stripe(obj: Any) -> StripeAccount:
    capabilities = _get(obj, "capabilities")
    return StripeAccount(
        id=_str(_get(obj, "id")),
        email=_str(_get(obj, "email")).strip().lower(),
        charges_enabled=bool(_get(obj, "charges_enabled", False)),
        payouts_enabled=bool(_get(obj, "payouts_enabled", False)),
        transfers_capability=_str(_get(capabilities, "transfers")),
        type=_str(_get(obj, "type")),
        country=_str(_get(obj, "country")),
        created=_ts(_get(obj, "created")),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


def transfer_reversal_from_stripe(obj: Any, *, transfer_id: str = "") -> StripeTransferReversal:
    return StripeTransferReversal(
        id=_str(_get(obj, "id")),
        transfer_id=_id(_get(obj, "transfer")) or transfer_id,
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


def transfer_from_stripe(
    obj: Any, *, reversals: list[StripeTransferReversal] | None = None
) -> StripeTransfer:
    """`reversals`: the full list when the caller paged it; else the ones Stripe embeds."""
    transfer_id = _str(_get(obj, "id"))
    if reversals is None:
        embedded = _get(_get(obj, "reversals"), "data") or []
        reversals = [transfer_reversal_from_stripe(r, transfer_id=transfer_id) for r in embedded]
    return StripeTransfer(
        id=transfer_id,
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        destination=_id(_get(obj, "destination")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        amount_reversed=_int(_get(obj, "amount_reversed")),
        reversed=bool(_get(obj, "reversed", False)),
        transfer_group=_str(_get(obj, "transfer_group")),
        description=_str(_get(obj, "description")),
        metadata=_plain(_get(obj, "metadata")) or {},
        livemode=bool(_get(obj, "livemode", False)),
        reversals=reversals,
    )


def transfer_reversals_incomplete(obj: Any) -> bool:
    """Did Stripe embed only the first page of the transfer's reversals?"""
    return bool(_get(_get(obj, "reversals"), "has_more", False))
