"""Coupons as Stripe documents them, and promotion codes, for localstripe.

Test and demo infrastructure only (DESIGN.md decision 14): scripts/localstripe_ext.py's
`install()` calls `install()` here before the launcher (scripts/localstripe_server.py)
serves. localstripe has coupons, but only `id` (required), `amount_off`/`currency`,
`percent_off`, `duration`, `metadata`; no update, no events, no idempotency, and no promotion
codes. What this adds, in the shape of Stripe's API reference (API version 2024-06-20, the
one our gateway pins):

- Coupons: `POST /v1/coupons` with `id` (optional: Stripe makes one up), `name`,
  `percent_off` (0 < p <= 100, two decimals at most) or `amount_off` + `currency`,
  `currency_options[<cur>][amount_off]` (amount_off coupons only), `duration` (default
  `once`), `duration_in_months`, `max_redemptions`, `redeem_by` (a future Unix time),
  `applies_to[products][]`, `metadata`. `POST /v1/coupons/{id}` changes only `name`,
  `metadata` and `currency_options` (Stripe's coupons are immutable otherwise: anything else
  is refused as Stripe refuses it). `DELETE /v1/coupons/{id}`; `GET /v1/coupons` newest
  first with `created` filters, `limit`, `starting_after`, `ending_before`. A coupon shows
  `valid: false` once deleted, past `redeem_by` or at `max_redemptions`. `currency_options`
  (with the coupon's own currency in it, as Stripe expands it) and `applies_to` are always
  present here; Stripe sends them only when asked (`expand[]`), which our gateway always does.
  Events `coupon.created`, `coupon.updated`, `coupon.deleted`.
- Promotion codes: `POST /v1/promotion_codes` (`coupon`, or the newer
  `promotion[type]=coupon&promotion[coupon]=...`; `code` (letters, digits and dashes; made up
  when left out), `active`, `customer`, `expires_at` (not after the coupon's `redeem_by`),
  `max_redemptions` (not above the coupon's), `restrictions[first_time_transaction]`,
  `restrictions[minimum_amount]` + `restrictions[minimum_amount_currency]`,
  `restrictions[currency_options][<cur>][minimum_amount]`, `metadata`);
  `POST /v1/promotion_codes/{id}` (`active`, `metadata`, `restrictions[currency_options]`);
  `GET /v1/promotion_codes/{id}`; `GET /v1/promotion_codes` newest first, filters `active`,
  `code` (case-insensitive), `coupon`, `customer`, `created`, `limit`, `starting_after`,
  `ending_before`. A code is unique, whatever its case, among the active codes (Stripe's
  rule): creating or reactivating a second active one is refused (400, param `code`). The
  promotion code embeds its coupon as an object (`coupon`), and also names it in
  `promotion` as newer API versions do. Events `promotion_code.created`,
  `promotion_code.updated`.
- `Idempotency-Key` on every POST here, with localstripe_ext's rules (same key and request:
  the first answer; another request: Stripe's idempotency_error).

Redemptions: Stripe counts `times_redeemed` only where it applies the discount itself
(Checkout, invoices, subscriptions). A PaymentIntent carries no coupon, so payments made with
our codes (named in their metadata) leave these counters at 0, at Stripe as here.
"""

from __future__ import annotations

import re
import time

from aiohttp import web
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import (
    Coupon,
    DeletedObject,
    Event,
    List,
    StripeObject,
    random_id,
    store,
    try_convert_to_bool,
    try_convert_to_float,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

DURATIONS = ("once", "repeating", "forever")
CODE_RE = re.compile(r"^[A-Za-z0-9-]{1,500}$")
CODE_LENGTH = 8  # of a code Stripe makes up
COUPON_ID_LENGTH = 8

ERR_UNKNOWN = "Received unknown parameter: {names}"
ERR_NO_SUCH_COUPON = "No such coupon: '{id}'"
ERR_NO_SUCH_CODE = "No such promotion code: '{id}'"
ERR_COUPON_EXISTS = "Coupon already exists."
ERR_ONE_OF = "You must pass exactly one of `percent_off` or `amount_off`."
ERR_PERCENT = (
    "Invalid percent_off: must be greater than 0 and at most 100, with 2 decimals at most."
)
ERR_AMOUNT_OFF = "Invalid amount_off: must be a positive integer."
ERR_CURRENCY_NEEDED = "You must pass currency when passing amount_off."
ERR_CURRENCY_OPTIONS = "currency_options can only be set on a coupon with amount_off."
ERR_REDEEM_BY = "redeem_by must be in the future."
ERR_MAX_REDEMPTIONS = "Invalid max_redemptions: must be a positive integer."
ERR_IMMUTABLE = (
    "Coupons cannot be changed after creation except for name, metadata and currency_options: "
    "received {names}."
)
ERR_CODE_TAKEN = "An active promotion code with `code: {code}` already exists."
ERR_BAD_CODE = "Invalid code: letters, digits and dashes only."
ERR_COUPON_INVALID = "Coupon {id} is no longer valid: it cannot get a new promotion code."
ERR_EXPIRES_AFTER = "expires_at cannot be after the coupon's redeem_by."
ERR_MAX_ABOVE_COUPON = "max_redemptions cannot be greater than the coupon's max_redemptions."
ERR_MINIMUM_CURRENCY = "minimum_amount_currency is required with minimum_amount."
ERR_CODE_UPDATE = "Only active, metadata and restrictions[currency_options] can be updated."


def _emit(kind: str, obj: StripeObject) -> None:
    schedule_webhook(Event(kind, obj))


def _unknown(kwargs: dict) -> None:
    if kwargs:
        raise UserError(400, ERR_UNKNOWN.format(names=", ".join(sorted(kwargs))))


def _metadata(value) -> dict:
    if value is None or value == "":
        return {}
    if type(value) is not dict:
        raise UserError(400, "Invalid metadata: must be an object", {"param": "metadata"})
    return {str(k): str(v) for k, v in value.items()}


def _merge_metadata(current: dict, update) -> dict:
    # Stripe: an empty value unsets a key.
    merged = {**(current or {}), **_metadata(update)}
    return {k: v for k, v in merged.items() if v != ""}


def _currency(value, param: str) -> str:
    if type(value) is not str or not re.match(r"^[a-zA-Z]{3}$", value):
        raise UserError(400, f"Invalid currency: {value}", {"param": param})
    return value.lower()


def _positive_int(value, param: str, message: str) -> int:
    number = try_convert_to_int(value)
    if type(number) is not int or number <= 0:
        raise UserError(400, message, {"param": param})
    return number


def _bool(value, param: str) -> bool:
    converted = try_convert_to_bool(value)
    if type(converted) is not bool:
        raise UserError(400, f"Invalid boolean: {value}", {"param": param})
    return converted


def _timestamp(value, param: str) -> int:
    number = try_convert_to_int(value)
    if type(number) is not int or number <= 0:
        raise UserError(400, f"Invalid timestamp: {value}", {"param": param})
    return number


def _newest_first(prefix: str) -> list:
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
    from localstripe_ext import _created_filter as created_filter  # one parser for all

    return created_filter(created)


# --- coupons -----------------------------------------------------------------------------------


def _amount_options(raw, *, param: str = "currency_options") -> dict:
    """`currency_options[eur][amount_off]=450` -> {"eur": {"amount_off": 450}}."""
    if raw is None:
        return {}
    if type(raw) is not dict:
        raise UserError(400, "Invalid currency_options", {"param": param})
    options = {}
    for currency, value in raw.items():
        code = _currency(currency, f"{param}[{currency}]")
        amount = value.get("amount_off") if type(value) is dict else None
        options[code] = {
            "amount_off": _positive_int(amount, f"{param}[{currency}][amount_off]", ERR_AMOUNT_OFF)
        }
    return options


def _coupon_init(
    self,
    id=None,
    name=None,
    duration=None,
    duration_in_months=None,
    amount_off=None,
    percent_off=None,
    currency=None,
    currency_options=None,
    max_redemptions=None,
    redeem_by=None,
    applies_to=None,
    metadata=None,
    **kwargs,
):
    """Coupon.__init__ with Stripe's create parameters (localstripe's knows a few)."""
    _unknown(kwargs)
    if (amount_off is None) == (percent_off is None):
        raise UserError(400, ERR_ONE_OF)
    percent = None
    if percent_off is not None:
        percent = try_convert_to_float(percent_off)
        if type(percent) is not float or not 0 < percent <= 100 or round(percent, 2) != percent:
            raise UserError(400, ERR_PERCENT, {"param": "percent_off"})
        if currency_options is not None:
            raise UserError(400, ERR_CURRENCY_OPTIONS, {"param": "currency_options"})
    amount = None
    if amount_off is not None:
        amount = _positive_int(amount_off, "amount_off", ERR_AMOUNT_OFF)
        if currency is None:
            raise UserError(400, ERR_CURRENCY_NEEDED, {"param": "currency"})
        currency = _currency(currency, "currency")
    options = _amount_options(currency_options)
    duration = duration or "once"
    if duration not in DURATIONS:
        raise UserError(400, f"Invalid duration: {duration}", {"param": "duration"})
    months = None
    if duration == "repeating":
        months = _positive_int(duration_in_months, "duration_in_months", "Invalid integer")
    limit = None
    if max_redemptions is not None:
        limit = _positive_int(max_redemptions, "max_redemptions", ERR_MAX_REDEMPTIONS)
    deadline = None
    if redeem_by is not None:
        deadline = _timestamp(redeem_by, "redeem_by")
        if deadline <= int(time.time()):
            raise UserError(400, ERR_REDEEM_BY, {"param": "redeem_by"})
    products = None
    if applies_to is not None:
        raw = applies_to.get("products") if type(applies_to) is dict else None
        if type(raw) is not list or not all(type(p) is str for p in raw):
            raise UserError(400, "Invalid applies_to[products]", {"param": "applies_to"})
        products = {"products": list(raw)}
    if id is not None and (type(id) is not str or not id):
        raise UserError(400, "Invalid id", {"param": "id"})
    if id is not None and store.get("coupon:" + id) is not None:
        raise UserError(400, ERR_COUPON_EXISTS, {"code": "resource_already_exists", "param": "id"})
    metadata = _metadata(metadata)
    # All exceptions must be raised before this point (StripeObject stores the object).
    StripeObject.__init__(self, id or random_id(COUPON_ID_LENGTH))
    self.name = name
    self.amount_off = amount
    self.percent_off = percent
    self.currency = currency
    self._currency_options = options
    self.duration = duration
    self.duration_in_months = months
    self.max_redemptions = limit
    self.redeem_by = deadline
    self.applies_to = products
    self.metadata = metadata
    self.times_redeemed = 0
    self._deleted = False
    _emit("coupon.created", self)


def _coupon_currency_options(self):
    # Stripe's expanded currency_options lists the coupon's own currency too.
    if self.amount_off is None:
        return {}
    own = {self.currency: {"amount_off": self.amount_off}} if self.currency else {}
    return {**own, **getattr(self, "_currency_options", {})}


def _coupon_valid(self) -> bool:
    if getattr(self, "_deleted", False):
        return False
    if self.redeem_by is not None and self.redeem_by <= int(time.time()):
        return False
    return not (self.max_redemptions is not None and self.times_redeemed >= self.max_redemptions)


def _coupon_retrieve(cls, id):
    obj = store.get("coupon:" + str(id))
    if obj is None:
        raise UserError(
            404, ERR_NO_SUCH_COUPON.format(id=id), {"code": "resource_missing", "param": "id"}
        )
    return obj


def _coupon_update(cls, id, name=None, metadata=None, currency_options=None, **kwargs):
    if kwargs:
        raise UserError(400, ERR_IMMUTABLE.format(names=", ".join(sorted(kwargs))))
    obj = cls._api_retrieve(id)
    if currency_options is not None and obj.amount_off is None:
        raise UserError(400, ERR_CURRENCY_OPTIONS, {"param": "currency_options"})
    options = _amount_options(currency_options)
    new_metadata = _merge_metadata(obj.metadata, metadata)
    if name is not None:
        obj.name = name
    obj.metadata = new_metadata
    if options:
        obj._currency_options = {**getattr(obj, "_currency_options", {}), **options}
    _emit("coupon.updated", obj)
    return obj


def _coupon_delete(cls, id):
    obj = cls._api_retrieve(id)
    obj._deleted = True
    del store["coupon:" + id]
    _emit("coupon.deleted", obj)
    return DeletedObject(id, "coupon")


def _coupon_list(cls, url, created=None, limit=None, starting_after=None, ending_before=None, **kw):
    _unknown(kw)
    check = _created_filter(created)
    items = [c for c in _newest_first("coupon:") if check(c)]
    return _page(
        url, items, limit=limit, starting_after=starting_after, ending_before=ending_before
    )


def _install_coupon() -> None:
    Coupon.__init__ = _coupon_init
    Coupon.currency_options = property(_coupon_currency_options)
    Coupon.valid = property(_coupon_valid)
    Coupon._api_retrieve = classmethod(_coupon_retrieve)
    Coupon._api_update = classmethod(_coupon_update)
    Coupon._api_delete = classmethod(_coupon_delete)
    Coupon._api_list_all = classmethod(_coupon_list)


# --- promotion codes ---------------------------------------------------------------------------


def _restrictions(raw) -> dict:
    result = {
        "currency_options": {},
        "first_time_transaction": False,
        "minimum_amount": None,
        "minimum_amount_currency": None,
    }
    if raw is None:
        return result
    if type(raw) is not dict:
        raise UserError(400, "Invalid restrictions", {"param": "restrictions"})
    raw = dict(raw)
    if "first_time_transaction" in raw:
        result["first_time_transaction"] = _bool(
            raw.pop("first_time_transaction"), "restrictions[first_time_transaction]"
        )
    minimum = raw.pop("minimum_amount", None)
    minimum_currency = raw.pop("minimum_amount_currency", None)
    if minimum is not None:
        amount = try_convert_to_int(minimum)
        if type(amount) is not int or amount < 0:
            raise UserError(
                400, "Invalid minimum_amount", {"param": "restrictions[minimum_amount]"}
            )
        if minimum_currency is None:
            raise UserError(
                400, ERR_MINIMUM_CURRENCY, {"param": "restrictions[minimum_amount_currency]"}
            )
        result["minimum_amount"] = amount
        result["minimum_amount_currency"] = _currency(
            minimum_currency, "restrictions[minimum_amount_currency]"
        )
    result["currency_options"] = _minimum_options(raw.pop("currency_options", None))
    _unknown({f"restrictions[{k}]": v for k, v in raw.items()})
    return result


def _minimum_options(raw) -> dict:
    if raw is None:
        return {}
    param = "restrictions[currency_options]"
    if type(raw) is not dict:
        raise UserError(400, "Invalid currency_options", {"param": param})
    options = {}
    for currency, value in raw.items():
        code = _currency(currency, f"{param}[{currency}]")
        amount = try_convert_to_int(value.get("minimum_amount") if type(value) is dict else None)
        if type(amount) is not int or amount < 0:
            raise UserError(
                400, "Invalid minimum_amount", {"param": f"{param}[{currency}][minimum_amount]"}
            )
        options[code] = {"minimum_amount": amount}
    return options


def _active_code_taken(code: str, *, other_than: str | None = None) -> bool:
    return any(
        v.active and v.code.upper() == code.upper() and v.id != other_than
        for k, v in store.items()
        if k.startswith("promotion_code:")
    )


class PromotionCode(StripeObject):
    object = "promotion_code"
    _id_prefix = "promo_"

    def __init__(
        self,
        coupon=None,
        promotion=None,
        code=None,
        active=None,
        customer=None,
        expires_at=None,
        max_redemptions=None,
        restrictions=None,
        metadata=None,
        **kwargs,
    ):
        _unknown(kwargs)
        if coupon is None and type(promotion) is dict and promotion.get("type") == "coupon":
            coupon = promotion.get("coupon")
        if type(coupon) is not str or not coupon:
            raise UserError(400, "Missing required param: coupon.", {"param": "coupon"})
        target = Coupon._api_retrieve(coupon)
        if not target.valid:
            raise UserError(400, ERR_COUPON_INVALID.format(id=coupon), {"param": "coupon"})
        if code is None:
            code = random_id(CODE_LENGTH).upper()
        if type(code) is not str or not CODE_RE.match(code):
            raise UserError(400, ERR_BAD_CODE, {"param": "code"})
        is_active = True if active is None else _bool(active, "active")
        if is_active and _active_code_taken(code):
            raise UserError(400, ERR_CODE_TAKEN.format(code=code), {"param": "code"})
        if customer is not None and store.get("customer:" + str(customer)) is None:
            raise UserError(
                400,
                f"No such customer: '{customer}'",
                {"code": "resource_missing", "param": "customer"},
            )
        deadline = None
        if expires_at is not None:
            deadline = _timestamp(expires_at, "expires_at")
            if target.redeem_by is not None and deadline > target.redeem_by:
                raise UserError(400, ERR_EXPIRES_AFTER, {"param": "expires_at"})
        limit = None
        if max_redemptions is not None:
            limit = _positive_int(max_redemptions, "max_redemptions", ERR_MAX_REDEMPTIONS)
            if target.max_redemptions is not None and limit > target.max_redemptions:
                raise UserError(400, ERR_MAX_ABOVE_COUPON, {"param": "max_redemptions"})
        checked_restrictions = _restrictions(restrictions)
        metadata = _metadata(metadata)
        super().__init__()
        self._coupon_id = target.id
        self._coupon_snapshot = target  # kept for the answer after the coupon is deleted
        self.code = code
        self.active = is_active
        self.customer = customer
        self.expires_at = deadline
        self.max_redemptions = limit
        self.restrictions = checked_restrictions
        self.metadata = metadata
        self.times_redeemed = 0
        _emit("promotion_code.created", self)

    @property
    def coupon(self):
        return store.get("coupon:" + self._coupon_id) or self._coupon_snapshot

    @property
    def promotion(self) -> dict:
        return {"type": "coupon", "coupon": self._coupon_id}

    @classmethod
    def _api_retrieve(cls, id):
        obj = store.get("promotion_code:" + str(id))
        if obj is None:
            raise UserError(
                404, ERR_NO_SUCH_CODE.format(id=id), {"code": "resource_missing", "param": "id"}
            )
        return obj

    @classmethod
    def _api_update(cls, id, active=None, metadata=None, restrictions=None, **kwargs):
        if kwargs:
            raise UserError(400, ERR_CODE_UPDATE + " Received: " + ", ".join(sorted(kwargs)))
        obj = cls._api_retrieve(id)
        options = None
        if restrictions is not None:
            if type(restrictions) is not dict or set(restrictions) - {"currency_options"}:
                raise UserError(400, ERR_CODE_UPDATE, {"param": "restrictions"})
            options = _minimum_options(restrictions.get("currency_options"))
        new_active = None if active is None else _bool(active, "active")
        if new_active and not obj.active and _active_code_taken(obj.code, other_than=obj.id):
            raise UserError(400, ERR_CODE_TAKEN.format(code=obj.code), {"param": "active"})
        new_metadata = _merge_metadata(obj.metadata, metadata)
        if new_active is not None:
            obj.active = new_active
        obj.metadata = new_metadata
        if options:
            obj.restrictions = {
                **obj.restrictions,
                "currency_options": {**obj.restrictions["currency_options"], **options},
            }
        _emit("promotion_code.updated", obj)
        return obj

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_list_all(
        cls,
        url,
        active=None,
        code=None,
        coupon=None,
        customer=None,
        created=None,
        limit=None,
        starting_after=None,
        ending_before=None,
        **kwargs,
    ):
        _unknown(kwargs)
        checks = [_created_filter(created)]
        if active is not None:
            wanted = _bool(active, "active")
            checks.append(lambda p: p.active == wanted)
        if code is not None:
            checks.append(lambda p: p.code.upper() == str(code).upper())
        if coupon is not None:
            checks.append(lambda p: p._coupon_id == coupon)
        if customer is not None:
            checks.append(lambda p: p.customer == customer)
        items = [p for p in _newest_first("promotion_code:") if all(c(p) for c in checks)]
        return _page(
            url, items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )


# --- routes ----------------------------------------------------------------------------------


def _coupon_idempotency(idempotent):
    """localstripe's own coupon routes, with Stripe's Idempotency-Key rules on their POSTs
    (a middleware: those routes were registered before any extension could run first)."""

    @web.middleware
    async def middleware(request, handler):
        if request.method == "POST" and (
            request.path == "/v1/coupons" or request.path.startswith("/v1/coupons/")
        ):
            return await idempotent(handler)(request)
        return await handler(request)

    return middleware


async def _code_create(request):
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    return server.json_response(PromotionCode(**data)._export(expand=expand))


async def _code_update(request):
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    obj = PromotionCode._api_update(request.match_info["id"], **data)
    return server.json_response(obj._export(expand=expand))


def install(idempotent) -> None:
    """Extend localstripe's coupons and add promotion codes. `idempotent` wraps a POST
    handler with Stripe's Idempotency-Key rules (localstripe_ext._idempotent)."""
    _install_coupon()
    server.app.middlewares.append(_coupon_idempotency(idempotent))
    router = server.app.router
    router.add_post("/v1/promotion_codes", idempotent(_code_create))
    router.add_get("/v1/promotion_codes", server.api_list_all(PromotionCode, "/v1/promotion_codes"))
    router.add_get(
        "/v1/promotion_codes/{id}", server.api_retrieve(PromotionCode, "/v1/promotion_codes/{id}")
    )
    router.add_post("/v1/promotion_codes/{id}", idempotent(_code_update))
