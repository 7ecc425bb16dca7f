"""Boundary checks for every Stripe object the sync and the webhooks accept (DESIGN decision
15): a lower-case ISO currency we know (payments.money.SUPPORTED_CURRENCIES, the list money
formatting uses), amounts >= 0 and, for refunds and disputes, within their payment's amount
and in its currency, and ids with the prefix Stripe gives that kind of object.

Where the checks run, and why there: in payments.sync's upserts, which the scheduled sync
and every webhook handler both end in (so nothing reaches a row around them), and which hold
what the checks need: a refund's or a dispute's payment (its amount and currency) is only
known once the upsert has looked it up, under its lock. The gateway mappers stay
translations of what Stripe sent; they cannot judge a refund without its payment. Each
`*_problem` returns None for a good object, or one message (a module constant, formatted)
for the first thing wrong with it. The upsert skips an object with a problem and reports it
in UpsertResult.invalid; the sync records it in SyncRun.outcomes and lands the rest of the
page; a webhook handler fails its event with the message and no retry (payments.webhooks).
Radar's early fraud warnings reach no upsert: their handler checks them here first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payments.gateway import (
    StripeCustomer,
    StripeDispute,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
    StripeSubscription,
    StripeTransfer,
)
from payments.money import SUPPORTED_CURRENCIES, format_money

# The prefixes Stripe gives each kind of object (its API reference's examples): py_ charges
# and pyr_ refunds are those of non-card methods (SEPA, ...); du_ is the current dispute
# prefix, dp_ the older one; card_, src_ and ba_ are the legacy payment-method objects a
# charge can still name.
ID_PREFIXES: dict[str, tuple[str, ...]] = {
    "payment_intent": ("pi_",),
    "charge": ("ch_", "py_"),
    "refund": ("re_", "pyr_"),
    "dispute": ("du_", "dp_"),
    "customer": ("cus_",),
    "payment_method": ("pm_", "card_", "src_", "ba_"),
    "early_fraud_warning": ("issfr_",),
    "transfer": ("tr_",),
    "transfer_reversal": ("trr_",),
    "account": ("acct_",),
    "subscription": ("sub_",),
    "invoice": ("in_",),
}

ERR_BAD_ID = "{kind} id {id!r} does not start with {prefixes}."
ERR_BAD_REF = "{field} {id!r} is not a {kind} id ({prefixes})."
ERR_BAD_CURRENCY = "{kind} {id}: unknown currency {currency!r}."
ERR_NEGATIVE_AMOUNT = "{kind} {id}: {field} {amount} is negative."
# Amounts in these two are formatted money ("$50.01"): staff read them on the webhook event
# and sync run pages. A negative or malformed amount (ERR_NEGATIVE_AMOUNT) is shown as sent.
ERR_REFUNDED_ABOVE_AMOUNT = "{kind} {id}: amount_refunded {refunded} is above its amount {amount}."
ERR_ABOVE_PAYMENT = "{kind} {id}: amount {amount} is above its payment's amount {payment_amount}."
ERR_OTHER_CURRENCY = "{kind} {id}: currency {currency!r} is not its payment's {payment_currency!r}."
ERR_NO_DESTINATION = "Transfer {id} has no destination account."
ERR_NO_CUSTOMER = "Subscription {id} has no customer."
ERR_REVERSED_ABOVE_AMOUNT = "Transfer {id}: {field} {reversed} is above its amount {amount}."
ERR_REVERSAL_CURRENCY = (
    "Transfer reversal {id}: currency {currency!r} is not its transfer's {transfer_currency!r}."
)


class InvalidStripeObject(ValueError):
    """Stripe (or someone signing as Stripe) sent an object we refuse: wrong id prefix,
    unknown currency, an impossible amount. Retrying cannot help: record it and stop."""

    def __init__(self, object_id: str, error: str) -> None:
        super().__init__(error)
        self.object_id = object_id
        self.error = error


def id_problem(kind: str, value: Any, *, field: str | None = None) -> str | None:
    """An object's own id (`field` None), or an id it refers to in `field` (optional: ""
    is fine). `kind` is a key of ID_PREFIXES."""
    prefixes = ID_PREFIXES[kind]
    if field is not None and not value:
        return None
    if (
        isinstance(value, str)
        and value.startswith(prefixes)
        and len(value) > max(len(p) for p in prefixes if value.startswith(p))
    ):
        return None
    label, shown = kind.replace("_", " "), " or ".join(prefixes)
    if field is None:
        return ERR_BAD_ID.format(kind=label.capitalize(), id=value, prefixes=shown)
    return ERR_BAD_REF.format(field=field, id=value, kind=label, prefixes=shown)


def _currency_problem(kind: str, object_id: str, currency: Any) -> str | None:
    if isinstance(currency, str) and currency in SUPPORTED_CURRENCIES:
        return None
    return ERR_BAD_CURRENCY.format(kind=kind, id=object_id, currency=currency)


def _amount_problem(kind: str, object_id: str, amount: Any, field: str = "amount") -> str | None:
    if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
        return None
    return ERR_NEGATIVE_AMOUNT.format(kind=kind, id=object_id, field=field, amount=amount)


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def payment_intent_problem(row: StripePaymentIntent) -> str | None:
    """The intent with what it embeds (its expanded payment method): one object, refused
    or accepted whole."""
    kind = "payment intent"
    return _first(
        payment_method_problem(row.payment_method) if row.payment_method else None,
        id_problem("payment_intent", row.id),
        id_problem("charge", row.latest_charge_id, field="latest_charge"),
        id_problem("customer", row.customer_id, field="customer"),
        id_problem("payment_method", row.payment_method_id, field="payment_method"),
        _currency_problem(kind, row.id, row.currency),
        _amount_problem(kind, row.id, row.amount),
        _amount_problem(kind, row.id, row.amount_refunded, "amount_refunded"),
        (
            ERR_REFUNDED_ABOVE_AMOUNT.format(
                kind=kind,
                id=row.id,
                refunded=format_money(row.amount_refunded, row.currency),
                amount=format_money(row.amount, row.currency),
            )
            if row.amount_refunded > row.amount
            else None
        ),
        _amount_problem(kind, row.id, row.stripe_fee or 0, "fee"),
    )


def _child_problem(
    kind: str,
    row: StripeRefund | StripeDispute,
    payment: tuple[int, str] | None,
) -> str | None:
    """A refund or a dispute against its payment (amount, currency), when we hold it."""
    problem = _first(
        id_problem("payment_intent", row.payment_intent_id, field="payment_intent"),
        id_problem("charge", row.charge_id, field="charge"),
        _currency_problem(kind, row.id, row.currency),
        _amount_problem(kind, row.id, row.amount),
    )
    if problem or payment is None:
        return problem
    payment_amount, payment_currency = payment
    if row.currency != payment_currency:
        return ERR_OTHER_CURRENCY.format(
            kind=kind, id=row.id, currency=row.currency, payment_currency=payment_currency
        )
    if row.amount > payment_amount:
        return ERR_ABOVE_PAYMENT.format(
            kind=kind,
            id=row.id,
            amount=format_money(row.amount, row.currency),
            payment_amount=format_money(payment_amount, payment_currency),
        )
    return None


def refund_problem(row: StripeRefund, *, payment: tuple[int, str] | None = None) -> str | None:
    """`payment`: (amount, currency) of the refunded payment, when known."""
    return id_problem("refund", row.id) or _child_problem("refund", row, payment)


def dispute_problem(row: StripeDispute, *, payment: tuple[int, str] | None = None) -> str | None:
    """`payment`: (amount, currency) of the disputed payment, when known. The status is not
    checked: an unknown one is stored and shown (payments/models/dispute.py)."""
    return _first(
        id_problem("dispute", row.id),
        _child_problem("dispute", row, payment),
        _amount_problem("dispute", row.id, row.fee, "fee"),
    )


def transfer_problem(row: StripeTransfer) -> str | None:
    """A Connect transfer with its reversals: one object, refused or accepted whole. Its
    reversals are in its currency and together never above its amount."""
    kind = "transfer"
    problem = _first(
        id_problem("transfer", row.id),
        None if row.destination else ERR_NO_DESTINATION.format(id=row.id),
        id_problem("account", row.destination, field="destination"),
        _currency_problem(kind, row.id, row.currency),
        _amount_problem(kind, row.id, row.amount),
        _amount_problem(kind, row.id, row.amount_reversed, "amount_reversed"),
    )
    if problem:
        return problem
    for reversal in row.reversals:
        problem = _first(
            id_problem("transfer_reversal", reversal.id),
            _amount_problem("transfer reversal", reversal.id, reversal.amount),
            (
                ERR_REVERSAL_CURRENCY.format(
                    id=reversal.id, currency=reversal.currency, transfer_currency=row.currency
                )
                if reversal.currency != row.currency
                else None
            ),
        )
        if problem:
            return problem
    for field, value in (
        ("amount_reversed", row.amount_reversed),
        ("reversals", sum(r.amount for r in row.reversals)),
    ):
        if value > row.amount:
            return ERR_REVERSED_ABOVE_AMOUNT.format(
                id=row.id,
                field=field,
                reversed=format_money(value, row.currency),
                amount=format_money(row.amount, row.currency),
            )
    return None


def customer_problem(row: StripeCustomer) -> str | None:
    return _first(
        id_problem("customer", row.id),
        id_problem("payment_method", row.default_payment_method_id, field="default_payment_method"),
        # The balance's currency, once Stripe has set one.
        _currency_problem("Customer", row.id, row.currency) if row.currency else None,
    )


def payment_method_problem(row: StripePaymentMethod) -> str | None:
    return _first(
        id_problem("payment_method", row.id),
        id_problem("customer", row.customer_id, field="customer"),
    )


def subscription_problem(row: StripeSubscription) -> str | None:
    """A subscription with its latest invoice's amounts. The status is not checked: an
    unknown one is stored and shown (payments/models/subscription.py). A subscription
    without items has no currency: that is not a problem."""
    kind = "subscription"
    return _first(
        id_problem("subscription", row.id),
        id_problem("customer", row.customer_id, field="customer"),
        None if row.customer_id else ERR_NO_CUSTOMER.format(id=row.id),
        id_problem("payment_method", row.default_payment_method_id, field="default_payment_method"),
        id_problem("invoice", row.latest_invoice_id, field="latest_invoice"),
        _currency_problem(kind, row.id, row.currency) if row.currency or row.amount else None,
        _amount_problem(kind, row.id, row.amount),
        _amount_problem(kind, row.id, row.latest_invoice_amount_due or 0, "amount_due"),
        _amount_problem(kind, row.id, row.latest_invoice_amount_paid or 0, "amount_paid"),
    )


def early_fraud_warning_problem(warning: Mapping[str, Any]) -> str | None:
    """Radar's early fraud warning as its webhook delivers it (a plain dict)."""
    return _first(
        id_problem("early_fraud_warning", warning.get("id")),
        id_problem("charge", _ref(warning.get("charge")), field="charge"),
        id_problem("payment_intent", _ref(warning.get("payment_intent")), field="payment_intent"),
    )


def _ref(value: Any) -> Any:
    """An expandable reference: the id string, or the expanded object's id."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value
