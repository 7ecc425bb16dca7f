"""Subscriptions, prices and saved payment methods for localstripe, in the shape Stripe's API
reference documents.

Test and demo infrastructure only (DESIGN.md decision 14): scripts/localstripe_ext.py's
`install()` calls `install()` here before the launcher (scripts/localstripe_server.py)
serves. localstripe already serves products, plans, subscriptions (one item), invoices and
payment methods; this module fills what the back-office's subscription and payment-method
screens need:

- Prices: `POST /v1/prices` (`currency`, `unit_amount`, `recurring[interval]`,
  `recurring[interval_count]`, `product` or `product_data[name]`, `nickname`, `metadata`;
  recurring per-unit prices only), `GET /v1/prices/{id}`, `GET /v1/prices` (`product`,
  `active`, `limit`, `starting_after`). A price is kept as a localstripe plan whose id starts
  with `price_` (Stripe's plans are prices too), so subscriptions bill it.
- Subscriptions: `items[][price]` (Stripe's current parameter) beside the legacy `plan`;
  `default_payment_method`; a trial (`trial_period_days` or `trial_end`) makes the
  subscription `trialing` with `trial_start`/`trial_end` and its trial as the current period
  (localstripe left it `incomplete`); each item carries its `price`.
  `POST /v1/subscriptions/{id}` with `cancel_at_period_end` sets `cancel_at` (the period's
  end) and `canceled_at` (now) and `cancellation_details.reason` `cancellation_requested`,
  and clears them when set back to false (how Stripe undoes a scheduled cancellation);
  `cancellation_details[comment|feedback]` are kept; a canceled subscription refuses
  updates. `DELETE /v1/subscriptions/{id}` (`cancellation_details[...]`, `invoice_now`,
  `prorate`) cancels at once: `status` canceled, `canceled_at` and `ended_at` now.
  `GET /v1/subscriptions` takes `created` (an integer or `gt`/`gte`/`lt`/`lte`), `customer`,
  `status` (`all`, or one status; default: all but canceled and incomplete_expired),
  `price`, `limit`, `starting_after`, `ending_before`, newest first.
- Events through localstripe's own Event machinery (so /v1/events lists them and registered
  webhooks get them signed): `customer.subscription.updated` with `previous_attributes` on
  every update and on every status change an invoice causes (incomplete -> active,
  active -> past_due, past_due -> active), `customer.subscription.deleted` on a cancel,
  `invoice.paid` beside localstripe's `invoice.payment_succeeded`,
  `payment_method.detached`, and `customer.updated` when a detach clears the default.
- Customers: `invoice_settings[default_payment_method]` must name a payment method attached
  to the customer (Stripe's 400 otherwise). Payment methods: detaching one that is not
  attached is refused; detaching the customer's default clears `invoice_settings`;
  `POST /v1/payment_methods/{id}` merges `card[exp_month]`/`card[exp_year]` (Stripe's update
  of a saved card's expiry; localstripe replaced the whole card).
- `Idempotency-Key` on these POSTs and DELETEs (localstripe_ext's `_idempotent`): the same
  key with the same request answers the first answer.
- Test/demo helper under /_config (not Stripe API; Stripe's test clocks do this by moving
  time): `POST /_config/subscriptions/{id}/renew` ends the current period now. A subscription
  set to cancel at period end is canceled; any other starts its next period and is invoiced
  and charged to the customer's default payment method: paid -> `active` (a trial ends),
  declined -> `past_due` (localstripe's invoice machinery decides, as Stripe's would).

Everything lives in localstripe's store, so `DELETE /_config/data` empties it and `--state`
persists it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from aiohttp import web
from dateutil.relativedelta import relativedelta
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Event,
    Invoice,
    List,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionItem,
    random_id,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook
from localstripe_ext import _created_filter

PRICE_PREFIX = "price_"
FINAL_STATUSES = ("canceled", "incomplete_expired")
SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
)
INTERVALS = ("day", "week", "month", "year")
FEEDBACK = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
# What a subscription's events compare to report `previous_attributes`.
WATCHED = (
    "status",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "current_period_start",
    "current_period_end",
    "latest_invoice",
    "default_payment_method",
    "trial_end",
)

ERR_NO_SUCH_PRICE = "No such price: '{id}'"
ERR_ONLY_RECURRING = "The peer serves recurring per-unit prices only (set recurring[interval])."
ERR_CANCELED = "A canceled subscription can only update its cancellation_details and metadata."
ERR_ALREADY_CANCELED = "This subscription is already canceled: '{id}'"
ERR_PM_NOT_ATTACHED = (
    "The customer does not have a payment method with the ID {pm}. The payment method must "
    "be attached to the customer."
)
ERR_EXPIRY_PAST = "Your card's expiration date is in the past."
ERR_NOT_ATTACHED = (
    "The payment method you provided is not attached to a customer so detachment is impossible."
)


def _now() -> int:
    return int(time.time())


def _emit(kind: str, obj, previous: dict | None = None) -> None:
    event = Event(kind, obj)
    if previous:
        event.data["previous_attributes"] = previous
    schedule_webhook(event)


def _unknown(kwargs: dict) -> None:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))


# --- prices ------------------------------------------------------------------------------------


def _price_export(plan: Plan) -> dict:
    """A localstripe plan as Stripe shows the same object through the Prices API."""
    return {
        "id": plan.id,
        "object": "price",
        "active": plan.active,
        "billing_scheme": plan.billing_scheme,
        "created": plan.created,
        "currency": plan.currency,
        "livemode": False,
        "lookup_key": None,
        "metadata": dict(plan.metadata or {}),
        "nickname": plan.nickname,
        "product": plan.product,
        "recurring": {
            "interval": plan.interval,
            "interval_count": plan.interval_count,
            "trial_period_days": plan.trial_period_days,
            "usage_type": plan.usage_type,
        },
        "tax_behavior": "unspecified",
        "type": "recurring",
        "unit_amount": plan.amount,
        "unit_amount_decimal": str(plan.amount),
    }


def _price(price_id: str) -> Plan:
    plan = store.get("plan:" + str(price_id))
    if plan is None:
        raise UserError(404, ERR_NO_SUCH_PRICE.format(id=price_id), {"param": "price"})
    return plan


async def _price_create(request):
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    currency = data.pop("currency", None)
    unit_amount = try_convert_to_int(data.pop("unit_amount", None))
    recurring = data.pop("recurring", None)
    product = data.pop("product", None)
    product_data = data.pop("product_data", None)
    nickname = data.pop("nickname", None)
    metadata = data.pop("metadata", None)
    active = try_convert_to_bool(data.pop("active", True))
    _unknown(data)
    if type(recurring) is not dict or recurring.get("interval") not in INTERVALS:
        raise UserError(400, ERR_ONLY_RECURRING, {"param": "recurring"})
    if type(unit_amount) is not int or unit_amount < 0:
        raise UserError(400, "Invalid non-negative integer", {"param": "unit_amount"})
    if product is None:
        if type(product_data) is not dict or not product_data.get("name"):
            raise UserError(400, "Missing required param: product.", {"param": "product"})
        product = {"name": product_data["name"]}
    plan = Plan(
        id=PRICE_PREFIX + random_id(24),
        amount=unit_amount,
        currency=str(currency or "").lower(),
        interval=recurring["interval"],
        interval_count=try_convert_to_int(recurring.get("interval_count", 1)),
        product=product,
        nickname=nickname,
        metadata=metadata,
        active=active,
    )
    return server.json_response(_price_export(plan))


def _price_retrieve(request):
    return server.json_response(_price_export(_price(request.match_info["id"])))


def _price_list(request):
    data = server.unflatten_data(request.query)
    data.pop("expand", None)
    limit = try_convert_to_int(data.pop("limit", 10))
    starting_after = data.pop("starting_after", None)
    product = data.pop("product", None)
    active = try_convert_to_bool(data.pop("active", None))
    _unknown(data)
    prices = [
        plan
        for key, plan in store.items()
        if key.startswith("plan:" + PRICE_PREFIX)
        and (product is None or plan.product == product)
        and (active is None or plan.active == active)
    ][::-1]
    start = 0
    if starting_after:
        ids = [p.id for p in prices]
        start = ids.index(starting_after) + 1 if starting_after in ids else 0
    page = prices[start : start + limit]
    return server.json_response(
        {
            "object": "list",
            "url": "/v1/prices",
            "has_more": len(prices) > start + limit,
            "data": [_price_export(p) for p in page],
        }
    )


# --- subscriptions -----------------------------------------------------------------------------


def _add_interval(start: int, plan: Plan) -> int:
    count = max(1, int(plan.interval_count or 1))
    moment = datetime.fromtimestamp(start, tz=UTC)
    step = {
        "day": relativedelta(days=count),
        "week": relativedelta(weeks=count),
        "month": relativedelta(months=count),
        "year": relativedelta(years=count),
    }[plan.interval]
    return int((moment + step).timestamp())


def _period_start(self) -> int:
    if getattr(self, "_period_start", None):
        return self._period_start
    if self.status == "trialing" and self.trial_start:
        return self.trial_start
    return self.start_date


def _period_end(self) -> int:
    if not getattr(self, "_period_start", None) and self.status == "trialing" and self.trial_end:
        return self.trial_end
    return _add_interval(_period_start(self), self.plan)


def _cancellation_details(self) -> dict:
    return dict(
        getattr(self, "_cancellation_details", None)
        or {"comment": None, "feedback": None, "reason": None}
    )


def _snapshot(sub: Subscription) -> dict:
    return {name: getattr(sub, name, None) for name in WATCHED}


def _changed(before: dict, sub: Subscription) -> dict:
    """Stripe's previous_attributes: the old value of each watched field that changed."""
    after = _snapshot(sub)
    return {name: value for name, value in before.items() if after[name] != value}


def _set_details(sub: Subscription, details, *, reason: str | None = None) -> None:
    current = _cancellation_details(sub)
    if details is not None:
        if type(details) is not dict or set(details) - {"comment", "feedback"}:
            raise UserError(400, "Invalid cancellation_details", {"param": "cancellation_details"})
        if details.get("feedback") not in (None, "", *FEEDBACK):
            raise UserError(
                400, "Invalid cancellation_details[feedback]", {"param": "cancellation_details"}
            )
        for key in ("comment", "feedback"):
            if key in details:
                current[key] = details[key] or None
    if reason is not None:
        current["reason"] = reason or None
    sub._cancellation_details = current


def _install_subscriptions() -> None:
    original_init = Subscription.__init__

    def init(self, customer=None, items=None, default_payment_method=None, **kwargs):
        # Stripe's current parameter names the price; localstripe knows plans (the same
        # object here, see _price_create).
        for item in items if type(items) is list else []:
            if type(item) is dict and "price" in item:
                item["plan"] = item.pop("price")
        for ignored in ("off_session", "collection_method", "expand"):
            kwargs.pop(ignored, None)
        if default_payment_method is not None:
            method = store.get("payment_method:" + str(default_payment_method))
            if method is None or method.customer != customer:
                raise UserError(
                    400,
                    ERR_PM_NOT_ATTACHED.format(pm=default_payment_method),
                    {"param": "default_payment_method"},
                )
        trial_days = try_convert_to_int(kwargs.get("trial_period_days"))
        trial_end = try_convert_to_int(kwargs.get("trial_end"))
        original_init(self, customer=customer, items=items, **kwargs)
        self.default_payment_method = default_payment_method
        if trial_end or trial_days:
            # A trial: no invoice is due until it ends (localstripe left it "incomplete").
            self.status = "trialing"
            self.trial_start = self.created
            self.trial_end = trial_end or self.created + int(trial_days) * 86400
        self._initialized = True

    Subscription.__init__ = init
    Subscription.current_period_start = property(_period_start)
    Subscription.current_period_end = property(_period_end)
    Subscription.cancellation_details = property(_cancellation_details)
    # Exported with every item, as Stripe does beside the legacy `plan`.
    SubscriptionItem.price = property(lambda item: _price_export(item.plan))

    original_update = Subscription._update

    @classmethod
    def api_update(cls, id, cancellation_details=None, proration_behavior=None, **data):
        sub = cls._api_retrieve(id)
        if sub.status in FINAL_STATUSES and set(data) - {"metadata"}:
            raise UserError(400, ERR_CANCELED)
        default_pm = data.pop("default_payment_method", None)
        if default_pm is not None:
            method = store.get("payment_method:" + str(default_pm))
            if method is None or method.customer != sub.customer:
                raise UserError(
                    400,
                    ERR_PM_NOT_ATTACHED.format(pm=default_pm),
                    {"param": "default_payment_method"},
                )
        before = _snapshot(sub)
        if data:
            original_update(sub, **data)
        if default_pm is not None:
            sub.default_payment_method = default_pm or None
        if "cancel_at_period_end" in data:
            if sub.cancel_at_period_end:
                sub.cancel_at = sub.current_period_end
                sub.canceled_at = _now()
                _set_details(sub, None, reason="cancellation_requested")
            else:
                # Undoing a scheduled cancellation: Stripe forgets it entirely.
                sub.cancel_at = None
                sub.canceled_at = None
                sub._cancellation_details = None
        _set_details(sub, cancellation_details)
        _emit("customer.subscription.updated", sub, _changed(before, sub))
        return sub

    Subscription._api_update = api_update

    @classmethod
    def api_list_all(
        cls,
        url,
        customer=None,
        status=None,
        price=None,
        created=None,
        limit=None,
        starting_after=None,
        ending_before=None,
        **kwargs,
    ):
        _unknown(kwargs)
        if status is not None and status != "all" and status not in SUBSCRIPTION_STATUSES:
            raise UserError(400, f"Invalid status: {status}", {"param": "status"})
        filters = [_created_filter(created)]
        if status is None:
            filters.append(lambda s: s.status not in FINAL_STATUSES)
        elif status != "all":
            filters.append(lambda s: s.status == status)
        if customer is not None:
            filters.append(lambda s: s.customer == customer)
        if price is not None:
            filters.append(lambda s: any(i.plan.id == price for i in s.items._list))
        li = List(url, limit=limit, starting_after=starting_after)
        # Newest first; within one second, the later one first (the store keeps order).
        items = [v for k, v in store.items() if k.startswith("subscription:")][::-1]
        items.sort(key=lambda s: s.created, reverse=True)
        items = [s for s in items if all(f(s) for f in filters)]
        if ending_before is not None:
            ids = [s.id for s in items]
            end = ids.index(ending_before) if ending_before in ids else 0
            items = items[max(0, end - li._limit) : end]
        li._list = items
        return li

    Subscription._api_list_all = api_list_all


def _subscription_cancel(sub: Subscription, *, details=None, reason="cancellation_requested"):
    before = _snapshot(sub)
    now = _now()
    sub.status = "canceled"
    sub.canceled_at = sub.canceled_at if sub.cancel_at_period_end and sub.canceled_at else now
    sub.ended_at = now
    sub.cancel_at = None
    _set_details(sub, details, reason=reason)
    _emit("customer.subscription.deleted", sub, _changed(before, sub))


async def _subscription_delete(request):
    data = server.unflatten_data(request.query) or {}
    if request.can_read_body:
        data.update(await server.get_post_data(request) or {})
    data.pop("expand", None)
    details = data.pop("cancellation_details", None)
    data.pop("invoice_now", None)
    data.pop("prorate", None)
    _unknown(data)
    sub = Subscription._api_retrieve(request.match_info["id"])
    if sub.status in FINAL_STATUSES:
        raise UserError(400, ERR_ALREADY_CANCELED.format(id=sub.id))
    _subscription_cancel(sub, details=details)
    return server.json_response(sub._export())


async def _config_renew(request):
    """End the current period now (test clocks, in one step)."""
    sub = Subscription._api_retrieve(request.match_info["id"])
    if sub.status in FINAL_STATUSES:
        raise UserError(400, ERR_ALREADY_CANCELED.format(id=sub.id))
    if sub.cancel_at_period_end:
        _subscription_cancel(sub, reason="cancellation_requested")
        return server.json_response(sub._export())
    before = _snapshot(sub)
    sub._period_start = _now()
    if sub.status == "trialing":
        sub.status = "active"  # the trial is over; the invoice below decides what follows
    sub._create_invoice()
    _emit("customer.subscription.updated", sub, _changed(before, sub))
    return server.json_response(sub._export())


# --- invoices: invoice.paid, and the subscription's status changes they cause -----------------


def _install_invoices() -> None:
    def watching(method, event_type=None):
        def wrapped(self, *args, **kwargs):
            sub = store.get("subscription:" + str(self.subscription)) if self.subscription else None
            before = _snapshot(sub) if sub is not None else None
            result = method(self, *args, **kwargs)
            if event_type:
                _emit(event_type, self)
            # During the subscription's creation its `created` event reports the outcome.
            if sub is not None and getattr(sub, "_initialized", False):
                previous = _changed(before, sub)
                if "status" in previous:
                    _emit("customer.subscription.updated", sub, previous)
            return result

        return wrapped

    Invoice._on_payment_success = watching(Invoice._on_payment_success, "invoice.paid")
    Invoice._api_pay_invoice = _pay_invoice
    Invoice._on_payment_failure_now = watching(Invoice._on_payment_failure_now)
    Invoice._on_payment_failure_later = watching(Invoice._on_payment_failure_later)


_original_pay_invoice = Invoice._api_pay_invoice.__func__


@classmethod
def _pay_invoice(cls, id):
    """localstripe's pay, plus what Stripe sends when the charge is declined (localstripe
    sends nothing): payment_intent.payment_failed and invoice.payment_failed."""
    invoice = _original_pay_invoice(cls, id)
    intent = store.get("payment_intent:" + str(invoice.payment_intent))
    charge = getattr(intent, "latest_charge", None)
    if charge is not None and charge.status == "failed":
        _emit("payment_intent.payment_failed", intent)
        _emit("invoice.payment_failed", invoice)
    return invoice


async def _invoice_pay(request):
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    return server.json_response(
        Invoice._api_pay_invoice(request.match_info["id"])._export(expand=expand)
    )


# --- customers and payment methods -------------------------------------------------------------


def _install_customers() -> None:
    original_update = Customer._api_update.__func__

    @classmethod
    def api_update(cls, id, **data):
        settings = data.get("invoice_settings")
        if type(settings) is dict and settings.get("default_payment_method"):
            pm = settings["default_payment_method"]
            method = store.get("payment_method:" + str(pm))
            if method is None or method.customer != id:
                raise UserError(
                    400,
                    ERR_PM_NOT_ATTACHED.format(pm=pm),
                    {"param": "invoice_settings[default_payment_method]"},
                )
        return original_update(cls, id, **data)

    Customer._api_update = api_update

    original_pm_update = PaymentMethod._update

    def pm_update(self, card=None, **data):
        if card is not None:
            if type(card) is not dict or set(card) - {"exp_month", "exp_year"}:
                raise UserError(400, "Invalid card", {"param": "card"})
            month = try_convert_to_int(card.get("exp_month", self.card["exp_month"]))
            year = try_convert_to_int(card.get("exp_year", self.card["exp_year"]))
            if type(month) is not int or not 1 <= month <= 12:
                raise UserError(400, "Invalid exp_month", {"code": "invalid_expiry_month"})
            if type(year) is not int or not 2019 <= year < 2100:
                raise UserError(400, "Invalid exp_year", {"code": "invalid_expiry_year"})
            today = datetime.now(UTC)
            if (year, month) < (today.year, today.month):
                raise UserError(400, ERR_EXPIRY_PAST, {"code": "invalid_expiry_year"})
            self.card = {**self.card, "exp_month": month, "exp_year": year}
        if data:
            original_pm_update(self, **data)

    PaymentMethod._update = pm_update


async def _payment_method_detach(request):
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    _unknown(data)
    method = PaymentMethod._api_retrieve(request.match_info["id"])
    if not method.customer:
        raise UserError(400, ERR_NOT_ATTACHED)
    customer = store.get("customer:" + method.customer)
    method.customer = None
    if customer is not None and customer.invoice_settings.get("default_payment_method") == (
        method.id
    ):
        customer.invoice_settings = {**customer.invoice_settings, "default_payment_method": None}
        _emit("customer.updated", customer)
    _emit("payment_method.detached", method, {"customer": customer.id if customer else None})
    return server.json_response(method._export())


# --- routes ------------------------------------------------------------------------------------

# localstripe's own routes for these are replaced (they read no parameters or miss events):
# the middleware below answers them instead of localstripe's handler (the path matched
# localstripe's route, so request.match_info["id"] is set).
_SUB_ID = re.compile(r"^/v1/subscriptions/(?P<id>[^/]+)$")
_PM_DETACH = re.compile(r"^/v1/payment_methods/(?P<id>[^/]+)/detach$")
_INVOICE_PAY = re.compile(r"^/v1/invoices/(?P<id>[^/]+)/pay$")
# Stripe's Idempotency-Key rules on the localstripe routes this module extends.
_IDEMPOTENT = (
    re.compile(r"^/v1/subscriptions(/[^/]+)?$"),
    re.compile(r"^/v1/customers/[^/]+$"),
    re.compile(r"^/v1/payment_methods/[^/]+(/detach)?$"),
    re.compile(r"^/v1/(products|plans|invoices)$"),
)


def _override(idempotent):
    routes = [
        ("DELETE", _SUB_ID, idempotent(_subscription_delete)),
        ("POST", _PM_DETACH, idempotent(_payment_method_detach)),
        ("POST", _INVOICE_PAY, idempotent(_invoice_pay)),
    ]

    @web.middleware
    async def middleware(request, handler):
        for method, pattern, replacement in routes:
            if request.method == method and pattern.match(request.path):
                return await replacement(request)
        if request.method in ("POST", "DELETE") and any(p.match(request.path) for p in _IDEMPOTENT):
            return await idempotent(handler)(request)
        return await handler(request)

    return middleware


def install(idempotent) -> None:
    """Add prices, subscription lifecycles and payment-method updates to localstripe's app
    (before it starts serving). `idempotent` wraps a handler with Stripe's Idempotency-Key
    rules (localstripe_ext._idempotent)."""
    _install_subscriptions()
    _install_invoices()
    _install_customers()
    router = server.app.router
    # localstripe has no /v1/prices and no /_config/subscriptions: order is free.
    router.add_post("/v1/prices", idempotent(_price_create))
    router.add_get("/v1/prices", _price_list)
    router.add_get("/v1/prices/{id}", _price_retrieve)
    router.add_post("/_config/subscriptions/{id}/renew", _config_renew)
    server.app.middlewares.append(_override(idempotent))
