"""Subscriptions, prices and a customer's saved payment methods: the types, the mappers and
the calls, in one module (payments.gateway re-exports them).

- `StripeSubscription`: what the back-office mirrors of a subscription (status as Stripe
  sends it, the price and its amount per interval, the current period, the scheduled or
  done cancellation, the latest invoice's status). Amounts in minor units of `currency`;
  times are aware UTC datetimes.
- `subscription_from_stripe` reads a StripeObject or a webhook's plain dict. It accepts both
  API shapes: the current period on the subscription (API versions up to 2025-03) or on its
  items (later ones), the price as `price` or as the legacy `plan`; `latest_invoice` as an
  id or expanded.
- The calls: list pages (newest first, with the latest invoice expanded in the list call:
  one call per 100 subscriptions), retrieve, cancel at period end / undo it, cancel now, and
  for saved payment methods: set a customer's default (`invoice_settings`) and detach. Every
  mutation takes an idempotency key derived by the caller from its own row. Creating prices
  and subscriptions is here too, for the demo and the tests (the back-office never sells).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.calls import _list_pages
from payments.gateway.client import StripeClient
from payments.gateway.mappers import (
    _get,
    _id,
    _int,
    _plain,
    _str,
    _ts,
    customer_from_stripe,
    payment_method_from_stripe,
)
from payments.gateway.types import Page, StripeCustomer, StripePaymentMethod

# Expanded in the list and retrieve calls, so the latest invoice's status arrives with the
# subscription (no call per subscription).
SUBSCRIPTION_LIST_EXPAND = ["data.latest_invoice"]
SUBSCRIPTION_EXPAND = ["latest_invoice"]

ERR_INTERVAL = "interval must be one of day, week, month, year"


# --- types -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    """A subscription as the back-office mirrors it. `amount` is what one interval costs:
    the sum over its items of unit amount x quantity, in minor units of `currency`.
    `plan_name` is the first price's nickname ("" when it has none); `items_count` > 1 says
    the subscription bills several prices. `status` is Stripe's, unknown ones included."""

    id: str
    customer_id: str
    status: str
    created: datetime
    livemode: bool = False
    currency: str = ""
    amount: int = 0
    interval: str = ""
    interval_count: int = 1
    quantity: int = 1
    items_count: int = 0
    price_id: str = ""
    product_id: str = ""
    plan_name: str = ""
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    # Stripe's cancellation_details: reason (cancellation_requested, payment_failed,
    # payment_disputed), the comment we sent, the customer's feedback.
    cancellation_reason: str = ""
    cancellation_comment: str = ""
    cancellation_feedback: str = ""
    default_payment_method_id: str = ""
    latest_invoice_id: str = ""
    # "" when the latest invoice was not expanded (or there is none).
    latest_invoice_status: str = ""
    latest_invoice_amount_due: int | None = None
    latest_invoice_amount_paid: int | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripePrice:
    """A recurring price: `unit_amount` minor units of `currency` per `interval_count`
    `interval`s."""

    id: str
    product_id: str
    currency: str
    unit_amount: int
    interval: str
    interval_count: int = 1
    nickname: str = ""
    active: bool = True


# --- mappers -----------------------------------------------------------------------------------


def _price_of(item: Any) -> Any:
    return _get(item, "price") or _get(item, "plan")


def _unit_amount(price: Any) -> int:
    # A price says unit_amount; a legacy plan says amount.
    value = _get(price, "unit_amount")
    return _int(value if value is not None else _get(price, "amount"))


def _interval(price: Any) -> tuple[str, int]:
    recurring = _get(price, "recurring")
    if recurring:
        return _str(_get(recurring, "interval")), _int(_get(recurring, "interval_count"), 1)
    return _str(_get(price, "interval")), _int(_get(price, "interval_count"), 1)


def price_from_stripe(obj: Any) -> StripePrice:
    interval, interval_count = _interval(obj)
    return StripePrice(
        id=_str(_get(obj, "id")),
        product_id=_id(_get(obj, "product")),
        currency=_str(_get(obj, "currency")).lower(),
        unit_amount=_unit_amount(obj),
        interval=interval,
        interval_count=interval_count,
        nickname=_str(_get(obj, "nickname")),
        active=bool(_get(obj, "active", True)),
    )


def subscription_from_stripe(obj: Any) -> StripeSubscription:
    items = list(_get(_get(obj, "items"), "data") or [])
    first = items[0] if items else None
    price = _price_of(first) if first is not None else _get(obj, "plan")
    interval, interval_count = _interval(price)
    amount = sum(_unit_amount(_price_of(item)) * _int(_get(item, "quantity"), 1) for item in items)
    details = _get(obj, "cancellation_details")
    invoice = _get(obj, "latest_invoice")
    expanded = invoice if invoice and not isinstance(invoice, str) else None
    return StripeSubscription(
        id=_str(_get(obj, "id")),
        customer_id=_id(_get(obj, "customer")),
        status=_str(_get(obj, "status")),
        created=_ts(_get(obj, "created")) or datetime.now(UTC),
        livemode=bool(_get(obj, "livemode", False)),
        currency=(_str(_get(obj, "currency")) or _str(_get(price, "currency"))).lower(),
        amount=amount,
        interval=interval,
        interval_count=interval_count,
        quantity=_int(_get(first, "quantity"), 1) if first is not None else 1,
        items_count=len(items),
        price_id=_id(price),
        product_id=_id(_get(price, "product")),
        plan_name=_str(_get(price, "nickname")),
        # Up to API version 2025-03 the period is the subscription's; later, each item's.
        current_period_start=_ts(
            _get(obj, "current_period_start") or _get(first, "current_period_start")
        ),
        current_period_end=_ts(
            _get(obj, "current_period_end") or _get(first, "current_period_end")
        ),
        cancel_at_period_end=bool(_get(obj, "cancel_at_period_end", False)),
        cancel_at=_ts(_get(obj, "cancel_at")),
        canceled_at=_ts(_get(obj, "canceled_at")),
        ended_at=_ts(_get(obj, "ended_at")),
        trial_start=_ts(_get(obj, "trial_start")),
        trial_end=_ts(_get(obj, "trial_end")),
        cancellation_reason=_str(_get(details, "reason")),
        cancellation_comment=_str(_get(details, "comment")),
        cancellation_feedback=_str(_get(details, "feedback")),
        default_payment_method_id=_id(_get(obj, "default_payment_method")),
        latest_invoice_id=_id(invoice),
        latest_invoice_status=_str(_get(expanded, "status")) if expanded is not None else "",
        latest_invoice_amount_due=(
            _int(_get(expanded, "amount_due")) if expanded is not None else None
        ),
        latest_invoice_amount_paid=(
            _int(_get(expanded, "amount_paid")) if expanded is not None else None
        ),
        metadata=_plain(_get(obj, "metadata")) or {},
    )


# --- reading -----------------------------------------------------------------------------------


def stripe_subscription_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeSubscription]]:
    """Pages (100 each, newest first) of subscriptions in every status (`status=all`:
    Stripe's default leaves the canceled out) created after `created_gt`, each with its
    latest invoice: one API call per page. The project's localstripe launcher serves
    Stripe's `created` filters here, so the compatibility mode changes nothing. Raises
    GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.subscriptions.list(params=params, options=options),
        subscription_from_stripe,
        params={"status": "all", "expand": SUBSCRIPTION_LIST_EXPAND},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=True,
    )


def stripe_subscription_retrieve(
    *, subscription_id: str, client: StripeClient | None = None
) -> StripeSubscription:
    """The subscription as Stripe has it now, with its latest invoice. Raises
    ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return subscription_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.subscriptions.retrieve(
                subscription_id, params={"expand": SUBSCRIPTION_EXPAND}, options=options
            )
        )
    )


# Events that say a subscription changed after it was created: its own, and its invoices'.
SUBSCRIPTION_CHANGE_EVENTS = (
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
)


def invoice_subscription_id(invoice: Any) -> str:
    """The subscription an invoice bills: `subscription` up to API version 2025-03,
    `parent.subscription_details.subscription` after ("" for a one-off invoice)."""
    return _id(_get(invoice, "subscription")) or _id(
        _get(_get(_get(invoice, "parent"), "subscription_details"), "subscription")
    )


def _changed_subscription_id(event: Any) -> str:
    obj = _get(_get(event, "data"), "object")
    if _str(_get(event, "type")).startswith("invoice."):
        return invoice_subscription_id(obj)
    return _id(obj)


def stripe_subscription_ids_changed(
    *, created_gt: datetime | None, client: StripeClient | None = None
) -> list[str]:
    """The ids of the subscriptions that SUBSCRIPTION_CHANGE_EVENTS name after `created_gt`,
    newest first, each once: how the sync finds subscriptions created before its window that
    changed since (a cancel, a failed renewal). Stripe keeps events 30 days. One list call
    per event type and 100 events. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    ids: dict[str, None] = {}
    for event_type in SUBSCRIPTION_CHANGE_EVENTS:
        for page in _list_pages(
            lambda sdk, params, options: sdk.v1.events.list(params=params, options=options),
            _changed_subscription_id,
            params={"type": event_type},
            created_gt=created_gt,
            starting_after=None,
            client=client,
            server_filters_created=True,
        ):
            ids.update(dict.fromkeys(i for i in page.items if i))
    return list(ids)


# --- changing a subscription -------------------------------------------------------------------


def _details(comment: str) -> dict:
    # Stripe keeps the comment up to 5000 characters.
    return {"comment": comment[:5000]} if comment else {}


def stripe_subscription_cancel_at_period_end(
    *,
    subscription_id: str,
    cancel: bool,
    idempotency_key: str,
    comment: str = "",
    client: StripeClient | None = None,
) -> StripeSubscription:
    """`cancel=True`: the subscription ends when its current period does (no more renewals;
    Stripe sets cancel_at and canceled_at). `cancel=False`: undo that, it renews again.
    `comment` goes to cancellation_details. Raises InvalidRequest (e.g. the subscription is
    canceled already), GatewayTimeout (Stripe may have acted: retry with the SAME key, or
    retrieve it), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"cancel_at_period_end": cancel, "expand": SUBSCRIPTION_EXPAND}
    if cancel and comment:
        params["cancellation_details"] = _details(comment)
    return subscription_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.subscriptions.update(
                subscription_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_subscription_cancel(
    *,
    subscription_id: str,
    idempotency_key: str,
    comment: str = "",
    client: StripeClient | None = None,
) -> StripeSubscription:
    """Cancel now: no further invoices, status `canceled` at once (Stripe cannot undo it).
    `comment` goes to cancellation_details. Raises InvalidRequest (canceled already),
    GatewayTimeout (retry with the SAME key, or retrieve), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {}
    if comment:
        params["cancellation_details"] = _details(comment)
    return subscription_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.subscriptions.cancel(
                subscription_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


# --- a customer's saved payment methods --------------------------------------------------------


def stripe_customer_default_payment_method_set(
    *,
    customer_id: str,
    payment_method_id: str,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeCustomer:
    """Make `payment_method_id` (attached to the customer) the customer's default for
    invoices and subscriptions (`invoice_settings.default_payment_method`). Raises
    InvalidRequest (not attached to this customer), GatewayTimeout (retry with the SAME key,
    or retrieve the customer), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params = {"invoice_settings": {"default_payment_method": payment_method_id}}
    return customer_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.customers.update(
                customer_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_payment_method_detach(
    *, payment_method_id: str, idempotency_key: str, client: StripeClient | None = None
) -> StripePaymentMethod:
    """Detach a saved payment method from its customer (it can no longer be charged; Stripe
    clears it as the customer's default). Returns it detached (customer_id ""). Raises
    InvalidRequest (not attached), GatewayTimeout (retry with the SAME key, or retrieve
    it), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    return payment_method_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_methods.detach(payment_method_id, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_payment_method_card_expiry_update(
    *,
    payment_method_id: str,
    exp_month: int,
    exp_year: int,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePaymentMethod:
    """A saved card's new expiry (the customer's bank reissued it). Raises InvalidRequest
    (a date in the past, not a card), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params = {"card": {"exp_month": int(exp_month), "exp_year": int(exp_year)}}
    return payment_method_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_methods.update(
                payment_method_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


# --- selling (the demo and the tests) ----------------------------------------------------------


def stripe_price_create(
    *,
    product_name: str,
    unit_amount: int,
    currency: str,
    interval: str,
    idempotency_key: str,
    interval_count: int = 1,
    nickname: str = "",
    client: StripeClient | None = None,
) -> StripePrice:
    """A recurring price (and its product) of `unit_amount` minor units of `currency` per
    `interval_count` `interval`s. Raises InvalidRequest or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if interval not in ("day", "week", "month", "year"):
        raise ValueError(ERR_INTERVAL)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "unit_amount": int(unit_amount),
        "currency": currency.lower(),
        "recurring": {"interval": interval, "interval_count": int(interval_count)},
        "product_data": {"name": product_name},
    }
    if nickname:
        params["nickname"] = nickname
    return price_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.prices.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_subscription_create(
    *,
    customer_id: str,
    price_id: str,
    idempotency_key: str,
    quantity: int = 1,
    trial_period_days: int | None = None,
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripeSubscription:
    """Subscribe a customer to a price, charged to the customer's default payment method
    (a declined first payment leaves it `incomplete`). Raises InvalidRequest or another
    GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "customer": customer_id,
        "items": [{"price": price_id, "quantity": int(quantity)}],
        "expand": SUBSCRIPTION_EXPAND,
    }
    if trial_period_days:
        params["trial_period_days"] = int(trial_period_days)
    if metadata:
        params["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    return subscription_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.subscriptions.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )
