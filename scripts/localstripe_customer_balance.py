"""Customer balance transactions for localstripe, in the shape Stripe's API reference documents.

Test and demo infrastructure only (DESIGN.md decision 14): localstripe's customers keep a
legacy `account_balance` and nothing else, so scripts/localstripe_ext.py's `install()` adds
these before the launcher (scripts/localstripe_server.py) serves. What it adds:

- Customers gain `balance` (minor units, Stripe's sign: negative is credit the customer holds
  for their next invoices, positive is owed) and a `currency` that is null until the first
  balance transaction sets it (Stripe's rule; localstripe said "eur" for every customer).
  `POST /v1/customers/{id}` with `balance` sets it, as Stripe's update does.
- `POST /v1/customers/{id}/balance_transactions` (`amount`, a non-zero integer: negative
  credits the customer; `currency`, which must be the customer's once it has one, else it
  becomes the customer's; `description`; `metadata`): a `customer_balance_transaction`
  (`cbtxn_...`: amount, currency, customer, description, ending_balance, metadata, type
  `adjustment`, created, livemode, and the null invoice / credit_note / checkout_session).
- `GET /v1/customers/{id}/balance_transactions` (newest first; `limit`, `starting_after`,
  `ending_before`, `created` as an integer or with `gt`/`gte`/`lt`/`lte`, `invoice`),
  `GET .../balance_transactions/{txn}`, `POST .../balance_transactions/{txn}`
  (`description`, `metadata`).
- Each new transaction sends `customer.updated` with the new balance and
  `previous_attributes.balance` through localstripe's Event machinery (Stripe sends no event
  for the transaction itself).
- `Idempotency-Key` on the POSTs (localstripe_ext's `_idempotent`).
- Errors as Stripe answers them: an unknown customer is 404 `resource_missing`; an unknown
  transaction 404; another currency than the customer's 400 on `currency`.

Everything lives in localstripe's store, so `DELETE /_config/data` empties it and `--state`
persists it.
"""

from __future__ import annotations

from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import Customer, Event, StripeObject, store, try_convert_to_int
from localstripe.webhooks import schedule_webhook
from localstripe_connect import _created_filter, _metadata, _page, _unknown

CURRENCY_LENGTH = 3
ERR_NO_CUSTOMER = "No such customer: '{id}'"
ERR_NO_TRANSACTION = "No such customer balance transaction: '{id}'"
ERR_AMOUNT = "Invalid integer: {value}"
ERR_AMOUNT_ZERO = "The amount must be a non-zero integer."
ERR_CURRENCY = "Invalid currency: {currency}"
ERR_OTHER_CURRENCY = (
    "The currency {currency} does not match the customer's currency {customer_currency}; a "
    "customer's balance transactions are all in its currency."
)


def _customer(customer_id: str) -> Customer:
    obj = store.get("customer:" + str(customer_id))
    if obj is None:
        raise UserError(
            404, ERR_NO_CUSTOMER.format(id=customer_id), {"code": "resource_missing", "param": "id"}
        )
    return obj


class CustomerBalanceTransaction(StripeObject):
    object = "customer_balance_transaction"
    _id_prefix = "cbtxn_"

    def __init__(self, customer: Customer, *, amount: int, currency: str, description, metadata):
        super().__init__()
        self.amount = amount
        self.checkout_session = None
        self.credit_note = None
        self.currency = currency
        self.customer = customer.id
        self.description = description or None
        self.ending_balance = customer.balance + amount
        self.invoice = None
        self.metadata = metadata
        self.type = "adjustment"

    @classmethod
    def _create(
        cls, customer_id, amount=None, currency=None, description=None, metadata=None, **kw
    ):
        _unknown(kw)
        customer = _customer(customer_id)
        value = try_convert_to_int(amount)
        if type(value) is not int:
            raise UserError(400, ERR_AMOUNT.format(value=amount), {"param": "amount"})
        if value == 0:
            raise UserError(400, ERR_AMOUNT_ZERO, {"param": "amount"})
        if type(currency) is not str or len(currency) != CURRENCY_LENGTH:
            raise UserError(400, ERR_CURRENCY.format(currency=currency), {"param": "currency"})
        currency = currency.lower()
        customer_currency = customer.__dict__.get("_balance_currency")
        if customer_currency and customer_currency != currency:
            raise UserError(
                400,
                ERR_OTHER_CURRENCY.format(currency=currency, customer_currency=customer_currency),
                {"param": "currency"},
            )
        metadata = _metadata(metadata)
        previous = customer.balance
        txn = cls(
            customer, amount=value, currency=currency, description=description, metadata=metadata
        )
        customer._balance_currency = currency
        customer.balance = txn.ending_balance
        event = Event("customer.updated", customer)
        event.data["previous_attributes"] = {"balance": previous}
        if not customer_currency:
            event.data["previous_attributes"]["currency"] = None
        schedule_webhook(event)
        return txn

    @classmethod
    def _retrieve(cls, customer_id, txn_id):
        customer = _customer(customer_id)
        txn = store.get("customer_balance_transaction:" + str(txn_id))
        if txn is None or txn.customer != customer.id:
            raise UserError(
                404,
                ERR_NO_TRANSACTION.format(id=txn_id),
                {"code": "resource_missing", "param": "id"},
            )
        return txn

    @classmethod
    def _update(cls, customer_id, txn_id, description=None, metadata=None, **kw):
        _unknown(kw)
        txn = cls._retrieve(customer_id, txn_id)
        metadata = _metadata(metadata)
        if description is not None:
            txn.description = description or None
        if metadata:
            merged = {**txn.metadata, **metadata}
            txn.metadata = {k: v for k, v in merged.items() if v != ""}
        return txn

    @classmethod
    def _list(
        cls,
        url,
        customer_id,
        created=None,
        invoice=None,
        limit=None,
        starting_after=None,
        ending_before=None,
        **kw,
    ):
        _unknown(kw)
        customer = _customer(customer_id)
        checks = [_created_filter(created), lambda t: t.customer == customer.id]
        if invoice is not None:
            checks.append(lambda t: t.invoice == invoice)
        # Newest first; within one second the later one first (the store keeps insertion order).
        items = [v for k, v in store.items() if k.startswith("customer_balance_transaction:")][::-1]
        items.sort(key=lambda t: t.created, reverse=True)
        items = [t for t in items if all(check(t) for check in checks)]
        return _page(
            url, items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )


# --- the customer's balance and currency ---------------------------------------------------------


def _balance_get(self) -> int:
    # localstripe stores the legacy `account_balance` with the opposite sign (credit positive).
    return -int(getattr(self, "account_balance", 0) or 0)


def _balance_set(self, value) -> None:
    amount = try_convert_to_int(value)
    if type(amount) is not int:
        raise UserError(400, ERR_AMOUNT.format(value=value), {"param": "balance"})
    self.account_balance = -amount


_original_currency = Customer.currency


def _currency_get(self):
    """Stripe: null until set (by the first balance transaction, here); localstripe's own
    answer (a default source's currency) otherwise, never its arbitrary 'eur'."""
    chosen = self.__dict__.get("_balance_currency")
    if chosen:
        return chosen
    source = self._get_default_payment_method_or_source()
    if source is not None and type(source).__name__ == "Source":
        return _original_currency.fget(self)
    return None


# --- routes ------------------------------------------------------------------------------------


def _json(obj):
    return server.json_response(obj)


async def _data(request) -> dict:
    data = await server.get_post_data(request) or {}
    return dict(data)


async def _create(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    txn = CustomerBalanceTransaction._create(request.match_info["id"], **data)
    return _json(txn._export(expand=expand))


def _retrieve(request):
    txn = CustomerBalanceTransaction._retrieve(request.match_info["id"], request.match_info["txn"])
    return _json(txn._export())


async def _update(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    txn = CustomerBalanceTransaction._update(
        request.match_info["id"], request.match_info["txn"], **data
    )
    return _json(txn._export(expand=expand))


def _list(request):
    data = server.unflatten_data(request.query)
    data.pop("expand", None)
    url = f"/v1/customers/{request.match_info['id']}/balance_transactions"
    return _json(CustomerBalanceTransaction._list(url, request.match_info["id"], **data)._export())


def install(idempotent) -> None:
    """Add customer balances to localstripe (before it starts serving). `idempotent` wraps a
    POST handler with Stripe's Idempotency-Key rules (localstripe_ext._idempotent)."""
    Customer.balance = property(_balance_get, _balance_set)
    Customer.currency = property(_currency_get)
    router = server.app.router
    # localstripe's own customer routes ({id}, sources, subscriptions, tax_ids) never match
    # these paths: order is free.
    base = "/v1/customers/{id}/balance_transactions"
    router.add_post(base, idempotent(_create))
    router.add_get(base, _list)
    router.add_get(base + "/{txn}", _retrieve)
    router.add_post(base + "/{txn}", idempotent(_update))
