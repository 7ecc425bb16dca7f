"""Stripe Connect for localstripe, in the shape Stripe's API reference documents.

Test and demo infrastructure only (DESIGN.md decision 14): localstripe has no Connect
objects, so scripts/localstripe_ext.py's `install()` adds these routes before the launcher
(scripts/localstripe_server.py) serves. What it adds:

- Connected accounts: `POST /v1/accounts` (`type` express / custom / standard, `country`,
  `email`, `business_type`, `business_profile[name]`, `capabilities[<name>][requested]`,
  `metadata`), `GET /v1/accounts/{id}`, `POST /v1/accounts/{id}` (email, business_profile,
  capabilities, metadata; event `account.updated`), `DELETE /v1/accounts/{id}`,
  `GET /v1/accounts` (`created` filters, `limit`, `starting_after`; newest first). Test mode
  onboards at once: a requested capability is `active`, and an express or custom account
  with an active capability has `charges_enabled` / `payouts_enabled`. An express or
  custom account must request at least one capability (Stripe's rule).
- Transfers: `POST /v1/transfers` (`amount`, `currency`, `destination`, `transfer_group`,
  `description`, `metadata`, `source_transaction`), `GET /v1/transfers/{id}`,
  `POST /v1/transfers/{id}` (description, metadata; event `transfer.updated`),
  `GET /v1/transfers` (`created` as an integer or with `gt`/`gte`/`lt`/`lte`,
  `destination`, `transfer_group`, `limit`, `starting_after`, `ending_before`; newest
  first). A transfer embeds its first ten reversals (`reversals`, a list object) like
  Stripe. Errors as Stripe answers them: an unknown (or deleted) destination is
  `resource_missing` on `destination`; a destination without an active `transfers`
  capability is `insufficient_capabilities_for_transfer`.
- Reversals: `POST /v1/transfers/{id}/reversals` (`amount`, default what is left;
  `description`, `metadata`), `GET /v1/transfers/{id}/reversals` (newest first),
  `GET /v1/transfers/{id}/reversals/{reversal}`. A reversal above what is left to reverse
  is refused (400, param `amount`). Each one updates the transfer's `amount_reversed` and
  `reversed` (true once all of it came back) and sends `transfer.reversed`.
- Events `transfer.created`, `transfer.updated`, `transfer.reversed`, `account.updated`
  go through localstripe's own Event machinery, so /v1/events lists them and registered
  webhooks receive them signed, like the others.
- `Idempotency-Key` on every POST here (localstripe_ext's `_idempotent`): the same key
  with the same request answers the first answer (`Idempotent-Replayed: true`); the same
  key with other parameters is Stripe's 400 `idempotency_error`; a request whose key is
  still being answered gets Stripe's 409.
- Test/demo switches under /_config (not Stripe API):
  `POST /_config/transfers/fault` (`mode` = `500`, `delay` or `balance_insufficient`,
  `seconds` for a delay, `count` = how many of the next transfer creates it hits, default
  1): with `500` / `delay` the transfer IS created (and its answer stored under the
  idempotency key), then the client gets a 500 or a late answer: the timeout-then-resume
  case; `balance_insufficient` refuses it as Stripe does when the platform's available
  balance cannot cover it (the peer keeps no platform balance otherwise).
  `DELETE /_config/transfers/fault` disarms it. `POST /_config/accounts/{id}`
  (`transfers` = active / inactive / pending / none, `charges_enabled`,
  `payouts_enabled`) moves an account's state as Stripe's onboarding and reviews would.

Everything lives in localstripe's store (and the fault switch in this module), so
`DELETE /_config/data` empties it and `--state` persists it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import (
    BalanceTransaction,
    Event,
    List,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

ACCOUNT_TYPES = ("express", "custom", "standard")
CAPABILITY_STATUSES = ("active", "inactive", "pending")
# Stripe's capabilities a transfer destination may hold (any one of them will do).
TRANSFER_CAPABILITIES = ("transfers", "crypto_transfers", "legacy_payments")
# Stripe lists at most this many reversals inside a transfer; the rest are paged.
EMBEDDED_REVERSALS = 10
CURRENCY_LENGTH = 3

ERR_NO_DESTINATION = "No such destination: '{id}'"
ERR_NO_ACCOUNT = "No such account: '{id}'"
ERR_NO_TRANSFER = "No such transfer: '{id}'"
ERR_NO_REVERSAL = "No such transfer reversal: '{id}'"
ERR_CAPABILITY = (
    "Your destination account needs to have at least one of the following capabilities "
    "enabled: transfers, crypto_transfers, legacy_payments"
)
ERR_NEEDS_CAPABILITY = (
    "You must request at least one capability when creating an account of type {type}."
)
ERR_AMOUNT = "Invalid positive integer"
ERR_BALANCE = (
    "You have insufficient available funds in your Stripe account. Try adding funds directly "
    "to your available balance by creating Charges using the 4000000000000077 test card."
)
# The transfer faults the tests can arm (see the module docstring).
FAULT_MODES = ("500", "delay", "balance_insufficient")
ERR_CURRENCY = "Invalid currency: {currency}"
ERR_REVERSAL_TOO_LARGE = (
    "You cannot reverse {amount} of transfer {id}: only {left} is left to reverse."
)
ERR_FULLY_REVERSED = "Transfer {id} has already been fully reversed."

# The armed fault for the next transfer creates: {"mode": "500"|"delay", "seconds": float,
# "count": int}, or None.
transfer_fault: dict | None = None


def _emit(kind: str, obj: StripeObject) -> None:
    schedule_webhook(Event(kind, obj))


def _unknown(kwargs: dict) -> None:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))


def _metadata(value) -> dict:
    if value is None or value == "":
        return {}
    if type(value) is not dict:
        raise UserError(400, "Invalid metadata: must be an object", {"param": "metadata"})
    return {str(k): str(v) for k, v in value.items()}


def _positive_amount(value, *, param: str = "amount") -> int:
    amount = try_convert_to_int(value)
    if type(amount) is not int or amount <= 0:
        raise UserError(400, ERR_AMOUNT, {"param": param})
    return amount


def _transfer_transaction(*, source: str, amount: int, currency: str, kind: str):
    """A balance transaction for a transfer (`transfer`) or a reversal (`transfer_refund`).
    localstripe's constructor only knows charges and refunds: built field by field."""
    txn = BalanceTransaction.__new__(BalanceTransaction)
    StripeObject.__init__(txn)
    txn.amount = amount
    txn.available_on = txn.created
    txn.currency = currency
    txn.description = None
    txn.exchange_rate = None
    txn.fee = 0
    txn.fee_details = []
    txn.reporting_category = "transfer" if kind == "transfer" else "transfer_reversal"
    txn.source = source
    txn.status = "available"
    txn.type = kind
    return txn.id


def _newest_first(prefix: str) -> list:
    # Within one second the later one first (the store keeps insertion order).
    items = [v for k, v in store.items() if k.startswith(prefix)][::-1]
    items.sort(key=lambda o: o.created, reverse=True)
    return items


def _page(url, items, *, limit, starting_after, ending_before) -> List:
    li = List(url, limit=limit, starting_after=starting_after)
    if ending_before is not None:
        ids = [o.id for o in items]
        end = ids.index(ending_before) if ending_before in ids else 0
        items = items[max(0, end - li._limit) : end]
    li._list = items
    return li


def _created_filter(created):
    from localstripe_ext import _created_filter as created_filter  # one parser for both

    return created_filter(created)


# --- accounts ----------------------------------------------------------------------------------


class Account(StripeObject):
    object = "account"
    _id_prefix = "acct_"

    def __init__(
        self,
        type=None,
        country=None,
        email=None,
        business_type=None,
        business_profile=None,
        capabilities=None,
        metadata=None,
        default_currency=None,
        **kwargs,
    ):
        _unknown(kwargs)
        account_type = type or "standard"
        if account_type not in ACCOUNT_TYPES:
            raise UserError(400, f"Invalid type: {account_type}", {"param": "type"})
        requested = _requested_capabilities(capabilities)
        if account_type in ("express", "custom") and not any(requested.values()):
            raise UserError(
                400, ERR_NEEDS_CAPABILITY.format(type=account_type), {"param": "capabilities"}
            )
        if business_profile is not None and not isinstance(business_profile, dict):
            raise UserError(400, "Invalid business_profile", {"param": "business_profile"})
        metadata = _metadata(metadata)
        super().__init__()
        self.business_profile = {"name": None, "url": None, "mcc": None}
        self.business_profile.update(business_profile or {})
        self.business_type = business_type
        self.country = (country or "US").upper()
        self.default_currency = (default_currency or "usd").lower()
        self.details_submitted = True
        self.email = email
        self.metadata = metadata
        self.type = account_type
        self.controller = {"type": "application", "is_controller": True}
        self.tos_acceptance = {"date": self.created}
        # Standard accounts come with their own capabilities (Stripe: card_payments and
        # transfers once onboarded); the others have what they requested.
        if account_type == "standard" and not requested:
            requested = {"card_payments": True, "transfers": True}
        self._capabilities = {
            name: "active" for name, wanted in requested.items() if wanted is True
        }
        self._charges_enabled = None
        self._payouts_enabled = None

    @property
    def capabilities(self) -> dict:
        return dict(self._capabilities)

    @property
    def charges_enabled(self) -> bool:
        if self._charges_enabled is not None:
            return self._charges_enabled
        return self._capabilities.get("card_payments") == "active" or self.type == "standard"

    @property
    def payouts_enabled(self) -> bool:
        if self._payouts_enabled is not None:
            return self._payouts_enabled
        return any(s == "active" for s in self._capabilities.values())

    @property
    def requirements(self) -> dict:
        return {
            "currently_due": [],
            "eventually_due": [],
            "past_due": [],
            "disabled_reason": None if self.payouts_enabled else "requirements.past_due",
        }

    def _can_receive_transfers(self) -> bool:
        return any(self._capabilities.get(c) == "active" for c in TRANSFER_CAPABILITIES)

    @classmethod
    def _api_retrieve(cls, id):
        obj = store.get("account:" + str(id))
        if obj is None:
            raise UserError(
                404, ERR_NO_ACCOUNT.format(id=id), {"code": "resource_missing", "param": "id"}
            )
        return obj

    @classmethod
    def _api_update(cls, id, **data):
        obj = cls._api_retrieve(id)
        email = data.pop("email", None)
        profile = data.pop("business_profile", None)
        capabilities = data.pop("capabilities", None)
        metadata = data.pop("metadata", None)
        _unknown(data)
        if profile is not None and not isinstance(profile, dict):
            raise UserError(400, "Invalid business_profile", {"param": "business_profile"})
        requested = _requested_capabilities(capabilities)
        metadata = _metadata(metadata)
        if email is not None:
            obj.email = email
        if profile:
            obj.business_profile = {**obj.business_profile, **profile}
        for name, wanted in requested.items():
            if wanted is True:
                obj._capabilities[name] = "active"
            else:
                obj._capabilities.pop(name, None)
        if metadata:
            obj.metadata = {**obj.metadata, **metadata}
            obj.metadata = {k: v for k, v in obj.metadata.items() if v != ""}
        _emit("account.updated", obj)
        return obj

    @classmethod
    def _api_delete(cls, id):
        cls._api_retrieve(id)
        del store["account:" + id]
        return {"id": id, "object": "account", "deleted": True}

    @classmethod
    def _api_list_all(
        cls, url, created=None, limit=None, starting_after=None, ending_before=None, **kwargs
    ):
        _unknown(kwargs)
        check = _created_filter(created)
        items = [a for a in _newest_first("account:") if check(a)]
        return _page(
            url, items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )


def _requested_capabilities(capabilities) -> dict[str, bool]:
    """`capabilities[transfers][requested]=true` -> {"transfers": True}."""
    if capabilities is None:
        return {}
    if type(capabilities) is not dict:
        raise UserError(400, "Invalid capabilities", {"param": "capabilities"})
    requested = {}
    for name, value in capabilities.items():
        raw = value.get("requested") if type(value) is dict else None
        wanted = try_convert_to_bool(raw)
        if type(wanted) is not bool:
            raise UserError(
                400,
                f"Invalid boolean: capabilities[{name}][requested]",
                {"param": f"capabilities[{name}][requested]"},
            )
        requested[name] = wanted
    return requested


# --- transfers ---------------------------------------------------------------------------------


class Transfer(StripeObject):
    object = "transfer"
    _id_prefix = "tr_"

    def __init__(
        self,
        amount=None,
        currency=None,
        destination=None,
        transfer_group=None,
        description=None,
        metadata=None,
        source_transaction=None,
        **kwargs,
    ):
        _unknown(kwargs)
        amount = _positive_amount(amount)
        if type(currency) is not str or len(currency) != CURRENCY_LENGTH:
            raise UserError(400, ERR_CURRENCY.format(currency=currency), {"param": "currency"})
        if type(destination) is not str or not destination:
            raise UserError(400, "Missing required param: destination.", {"param": "destination"})
        account = store.get("account:" + destination)
        if account is None:
            raise UserError(
                400,
                ERR_NO_DESTINATION.format(id=destination),
                {"code": "resource_missing", "param": "destination"},
            )
        if not account._can_receive_transfers():
            raise UserError(
                400,
                ERR_CAPABILITY,
                {"code": "insufficient_capabilities_for_transfer", "param": "destination"},
            )
        metadata = _metadata(metadata)
        super().__init__()
        self.amount = amount
        self.amount_reversed = 0
        self.currency = currency.lower()
        self.description = description or None
        self.destination = destination
        # Stripe creates a payment on the connected account for each transfer.
        self.destination_payment = "py_" + self.id.removeprefix("tr_")
        self.metadata = metadata
        self.reversed = False
        self.source_transaction = source_transaction
        self.source_type = "card"
        self.transfer_group = transfer_group or None
        self.balance_transaction = _transfer_transaction(
            source=self.id, amount=-amount, currency=self.currency, kind="transfer"
        )
        self._reversal_ids: list[str] = []
        _emit("transfer.created", self)

    @property
    def reversals(self) -> dict:
        items = self._reversals()
        return {
            "object": "list",
            "data": [r._export() for r in items[:EMBEDDED_REVERSALS]],
            "has_more": len(items) > EMBEDDED_REVERSALS,
            "total_count": len(items),
            "url": f"/v1/transfers/{self.id}/reversals",
        }

    def _reversals(self) -> list:
        # Newest first; within one second the later one first.
        found = [store.get("transfer_reversal:" + rid) for rid in self._reversal_ids[::-1]]
        return sorted([r for r in found if r], key=lambda r: r.created, reverse=True)

    @classmethod
    def _api_retrieve(cls, id):
        obj = store.get("transfer:" + str(id))
        if obj is None:
            raise UserError(
                404, ERR_NO_TRANSFER.format(id=id), {"code": "resource_missing", "param": "id"}
            )
        return obj

    @classmethod
    def _api_update(cls, id, **data):
        obj = cls._api_retrieve(id)
        description = data.pop("description", None)
        metadata = data.pop("metadata", None)
        _unknown(data)
        metadata = _metadata(metadata)
        if description is not None:
            obj.description = description or None
        if metadata:
            merged = {**obj.metadata, **metadata}
            obj.metadata = {k: v for k, v in merged.items() if v != ""}
        _emit("transfer.updated", obj)
        return obj

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_list_all(
        cls,
        url,
        created=None,
        destination=None,
        transfer_group=None,
        limit=None,
        starting_after=None,
        ending_before=None,
        **kwargs,
    ):
        _unknown(kwargs)
        checks = [_created_filter(created)]
        if destination is not None:
            checks.append(lambda t: t.destination == destination)
        if transfer_group is not None:
            checks.append(lambda t: t.transfer_group == transfer_group)
        items = [t for t in _newest_first("transfer:") if all(c(t) for c in checks)]
        return _page(
            url, items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )


class TransferReversal(StripeObject):
    object = "transfer_reversal"
    _id_prefix = "trr_"

    def __init__(self, transfer: Transfer, *, amount: int, description=None, metadata=None):
        super().__init__()
        self.amount = amount
        self.currency = transfer.currency
        self.description = description or None
        self.destination_payment_refund = "pyr_" + self.id.removeprefix("trr_")
        self.metadata = metadata or {}
        self.source_refund = None
        self.transfer = transfer.id
        self.balance_transaction = _transfer_transaction(
            source=self.id, amount=amount, currency=transfer.currency, kind="transfer_refund"
        )

    @classmethod
    def _create(cls, transfer_id, amount=None, description=None, metadata=None, **kwargs):
        _unknown(kwargs)
        transfer = Transfer._api_retrieve(transfer_id)
        left = transfer.amount - transfer.amount_reversed
        if left <= 0:
            raise UserError(400, ERR_FULLY_REVERSED.format(id=transfer.id), {"param": "amount"})
        amount = left if amount in (None, "") else _positive_amount(amount)
        if amount > left:
            raise UserError(
                400,
                ERR_REVERSAL_TOO_LARGE.format(amount=amount, id=transfer.id, left=left),
                {"param": "amount"},
            )
        reversal = cls(
            transfer, amount=amount, description=description, metadata=_metadata(metadata)
        )
        transfer._reversal_ids = [*transfer._reversal_ids, reversal.id]
        transfer.amount_reversed += amount
        transfer.reversed = transfer.amount_reversed >= transfer.amount
        _emit("transfer.reversed", transfer)
        return reversal

    @classmethod
    def _retrieve(cls, transfer_id, reversal_id):
        transfer = Transfer._api_retrieve(transfer_id)
        reversal = store.get("transfer_reversal:" + reversal_id)
        if reversal is None or reversal.transfer != transfer.id:
            raise UserError(
                404,
                ERR_NO_REVERSAL.format(id=reversal_id),
                {"code": "resource_missing", "param": "id"},
            )
        return reversal

    @classmethod
    def _list(cls, url, transfer_id, limit=None, starting_after=None, ending_before=None, **kw):
        _unknown(kw)
        transfer = Transfer._api_retrieve(transfer_id)
        return _page(
            url,
            transfer._reversals(),
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )


# --- routes ------------------------------------------------------------------------------------


def _json(obj) -> web.Response:
    return server.json_response(obj)


async def _data(request) -> dict:
    data = await server.get_post_data(request) or {}
    return dict(data)


async def _account_create(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    return _json(Account(**data)._export(expand=expand))


async def _account_update(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    return _json(Account._api_update(request.match_info["id"], **data)._export(expand=expand))


async def _account_delete(request):
    return _json(Account._api_delete(request.match_info["id"]))


async def _transfer_create(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    return _json(Transfer(**data)._export(expand=expand))


async def _transfer_update(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    return _json(Transfer._api_update(request.match_info["id"], **data)._export(expand=expand))


async def _reversal_create(request):
    data = await _data(request)
    expand = data.pop("expand", None)
    reversal = TransferReversal._create(request.match_info["id"], **data)
    return _json(reversal._export(expand=expand))


def _reversal_retrieve(request):
    reversal = TransferReversal._retrieve(request.match_info["id"], request.match_info["rid"])
    return _json(reversal._export())


def _reversal_list(request):
    data = server.unflatten_data(request.query)
    data.pop("expand", None)
    url = f"/v1/transfers/{request.match_info['id']}/reversals"
    return _json(TransferReversal._list(url, request.match_info["id"], **data)._export())


def _spend(fault: dict) -> None:
    global transfer_fault
    fault["count"] -= 1
    if fault["count"] <= 0:
        transfer_fault = None


def _with_fault(handler):
    """The armed transfer fault: let the create happen (and its answer be stored under the
    idempotency key), then answer 500 or late, as a network or Stripe fault after Stripe
    acted would look to the client."""

    async def wrapped(request):
        global transfer_fault
        fault = transfer_fault
        if fault is not None and fault["mode"] == "balance_insufficient":
            # Stripe refuses before acting: nothing is created, nothing stored under the key.
            _spend(fault)
            return server.json_response(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "balance_insufficient",
                        "message": ERR_BALANCE,
                    }
                },
                status=400,
            )
        response = await handler(request)
        if fault is None or response.status >= 400:
            return response
        _spend(fault)
        if fault["mode"] == "500":
            return server.json_response(
                {"error": {"type": "api_error", "message": "An unknown error occurred."}},
                status=500,
            )
        await asyncio.sleep(fault["seconds"])
        return response

    return wrapped


async def _config_fault(request):
    global transfer_fault
    if request.method == "DELETE":
        transfer_fault = None
        return web.Response()
    data = await _data(request)
    mode = str(data.get("mode", ""))
    if mode not in FAULT_MODES:
        raise UserError(400, "mode must be one of " + ", ".join(FAULT_MODES))
    seconds = float(data.get("seconds", 0) or 0)
    count = try_convert_to_int(data.get("count", 1))
    if type(count) is not int or count <= 0:
        raise UserError(400, "count must be a positive integer")
    transfer_fault = {"mode": mode, "seconds": seconds, "count": count}
    return _json(transfer_fault)


async def _config_account(request):
    data = await _data(request)
    account = Account._api_retrieve(request.match_info["id"])
    transfers = data.get("transfers")
    if transfers is not None:
        if transfers == "none":
            account._capabilities.pop("transfers", None)
        elif transfers in CAPABILITY_STATUSES:
            account._capabilities["transfers"] = transfers
        else:
            raise UserError(400, "transfers must be active, inactive, pending or none")
    for name in ("charges_enabled", "payouts_enabled"):
        if name in data:
            value = try_convert_to_bool(data[name])
            if type(value) is not bool:
                raise UserError(400, f"{name} must be true or false")
            setattr(account, "_" + name, value)
    _emit("account.updated", account)
    return _json(account._export())


def install(idempotent) -> None:
    """Add Connect to localstripe's app (before it starts serving). `idempotent` wraps a
    POST handler with Stripe's Idempotency-Key rules (localstripe_ext._idempotent)."""
    router = server.app.router
    # localstripe's own routes never match these paths: order is free.
    router.add_post("/v1/accounts", idempotent(_account_create))
    router.add_get("/v1/accounts", server.api_list_all(Account, "/v1/accounts"))
    router.add_get("/v1/accounts/{id}", server.api_retrieve(Account, "/v1/accounts/{id}"))
    router.add_post("/v1/accounts/{id}", idempotent(_account_update))
    router.add_delete("/v1/accounts/{id}", _account_delete)
    router.add_post("/v1/transfers", _with_fault(idempotent(_transfer_create)))
    router.add_get("/v1/transfers", server.api_list_all(Transfer, "/v1/transfers"))
    router.add_get("/v1/transfers/{id}", server.api_retrieve(Transfer, "/v1/transfers/{id}"))
    router.add_post("/v1/transfers/{id}", idempotent(_transfer_update))
    router.add_post("/v1/transfers/{id}/reversals", idempotent(_reversal_create))
    router.add_get("/v1/transfers/{id}/reversals", _reversal_list)
    router.add_get("/v1/transfers/{id}/reversals/{rid}", _reversal_retrieve)
    router.add_post("/_config/transfers/fault", _config_fault)
    router.add_delete("/_config/transfers/fault", _config_fault)
    router.add_post("/_config/accounts/{id}", _config_account)
