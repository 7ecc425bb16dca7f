"""A customer's Stripe credit balance: its balance transactions (type, mapper, calls).

Stripe keeps a balance on each customer, in the customer's currency, that it applies to the
customer's next invoices. Its sign is what the customer OWES: a transaction with a NEGATIVE
amount is a credit to the customer, a positive one a debit. Stripe sets the customer's
currency from the first transaction when none is set, and refuses another currency after
that (InvalidRequest). Stripe sends no event for these transactions; the customer's
`customer.updated` carries the new `balance`.

API: POST/GET /v1/customers/{customer}/balance_transactions, GET .../{id}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.client import StripeClient
from payments.gateway.mappers import _get, _id, _int, _plain, _str, _ts

ERR_AMOUNT_ZERO = "amount must be a non-zero number of minor units"


@dataclass(frozen=True, slots=True)
class StripeCustomerBalanceTransaction:
    """One `customer_balance_transaction`. `amount` and `ending_balance` in minor units of
    `currency`, Stripe's sign (negative = credit to the customer)."""

    id: str
    customer_id: str
    amount: int
    currency: str
    ending_balance: int
    type: str
    created: datetime
    description: str = ""
    metadata: dict = field(default_factory=dict)
    livemode: bool = False


def customer_balance_transaction_from_stripe(obj: Any) -> StripeCustomerBalanceTransaction:
    return StripeCustomerBalanceTransaction(
        id=_str(_get(obj, "id")),
        customer_id=_id(_get(obj, "customer")),
        amount=_int(_get(obj, "amount")),
        currency=_str(_get(obj, "currency")).lower(),
        ending_balance=_int(_get(obj, "ending_balance")),
        type=_str(_get(obj, "type")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        description=_str(_get(obj, "description")),
        metadata=_plain(_get(obj, "metadata")) or {},
        livemode=bool(_get(obj, "livemode", False)),
    )


def stripe_customer_balance_transaction_create(
    *,
    customer_id: str,
    amount: int,
    currency: str,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripeCustomerBalanceTransaction:
    """Add `amount` minor units of `currency` to the customer's Stripe balance, Stripe's
    sign: NEGATIVE credits the customer, positive debits. Put our row's id in `metadata` so
    the transaction can be found (stripe_customer_balance_transaction_list) after an
    ambiguous failure. Raises InvalidRequest when Stripe refuses (no such customer, a
    currency other than the customer's), GatewayTimeout when it may have acted (look it up,
    or retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise ValueError(ERR_AMOUNT_ZERO)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"amount": amount, "currency": currency.lower()}
    if description:
        params["description"] = description[:350]
    if metadata:
        params["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    return customer_balance_transaction_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.customers.balance_transactions.create(
                customer_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_customer_balance_transaction_list(
    *, customer_id: str, client: StripeClient | None = None
) -> list[StripeCustomerBalanceTransaction]:
    """Every balance transaction of the customer, newest first: ceil(n/100) calls (the
    lookup after a timeout reads them all; a customer has few). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    found: list[StripeCustomerBalanceTransaction] = []
    cursor = ""
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["starting_after"] = cursor

        def run(sdk, options, params=params):
            return sdk.v1.customers.balance_transactions.list(
                customer_id, params=params, options=options
            )

        result = client.call(run)
        raw = list(_get(result, "data", []) or [])
        found.extend(customer_balance_transaction_from_stripe(obj) for obj in raw)
        if not raw or not _get(result, "has_more", False):
            return found
        cursor = _id(raw[-1])


def stripe_customer_balance_transaction_retrieve(
    *, customer_id: str, transaction_id: str, client: StripeClient | None = None
) -> StripeCustomerBalanceTransaction:
    """One balance transaction of the customer. Raises ResourceMissing (404) or another
    GatewayError."""
    client = client or StripeClient.from_settings()
    return customer_balance_transaction_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.customers.balance_transactions.retrieve(
                customer_id, transaction_id, options=options
            )
        )
    )
