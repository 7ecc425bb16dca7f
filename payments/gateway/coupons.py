"""Stripe coupons and promotion codes: their dataclasses, mappers and calls.

Stripe's coupons cannot be changed after creation (only name, metadata and currency
options), so payments/services/coupons.py makes a new coupon and promotion code for each
version of our terms. Amounts are integers in minor units; a percentage is Stripe's
`percent_off` (a Decimal with at most two places). `currency_options` is sent back by Stripe
only when expanded: every call here expands it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.calls import _list_pages, _strings
from payments.gateway.client import StripeClient
from payments.gateway.mappers import _get, _id, _int, _plain, _str, _ts
from payments.gateway.types import Page

ERR_ONE_KIND = "Pass either percent_off or amounts_off, not both or neither."

COUPON_EXPAND = ["currency_options", "applies_to"]
PROMOTION_CODE_EXPAND = ["coupon.currency_options"]
PROMOTION_CODE_LIST_EXPAND = ["data.coupon.currency_options"]


@dataclass(frozen=True, slots=True)
class StripeCoupon:
    """A Stripe coupon. `amounts_off` maps currency -> minor units (its own currency and
    its currency_options); empty for a percentage coupon."""

    id: str
    name: str
    percent_off: Decimal | None
    amounts_off: dict[str, int]
    currency: str
    max_redemptions: int | None
    redeem_by: datetime | None
    times_redeemed: int
    valid: bool
    created: datetime | None
    livemode: bool = False
    metadata: dict = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class StripePromotionCode:
    """A promotion code and its coupon. `minimums` maps currency -> minor units (the
    restriction's own currency and its currency_options)."""

    id: str
    code: str
    coupon: StripeCoupon
    active: bool
    times_redeemed: int
    max_redemptions: int | None
    expires_at: datetime | None
    customer_id: str
    minimums: dict[str, int]
    created: datetime | None
    livemode: bool = False
    metadata: dict = field(default_factory=dict)


# --- mappers -----------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def coupon_from_stripe(obj: Any) -> StripeCoupon:
    """A Stripe coupon (object or webhook dict) -> StripeCoupon."""
    currency = _str(_get(obj, "currency")).lower()
    amounts: dict[str, int] = {}
    amount_off = _optional_int(_get(obj, "amount_off"))
    if amount_off is not None and currency:
        amounts[currency] = amount_off
    options = _plain(_get(obj, "currency_options", {})) or {}
    for code, option in options.items():
        value = _optional_int((option or {}).get("amount_off"))
        if value is not None:
            amounts[str(code).lower()] = value
    return StripeCoupon(
        id=_id(obj),
        name=_str(_get(obj, "name")),
        percent_off=_decimal(_get(obj, "percent_off")),
        amounts_off=amounts,
        currency=currency,
        max_redemptions=_optional_int(_get(obj, "max_redemptions")),
        redeem_by=_ts(_get(obj, "redeem_by")),
        times_redeemed=_int(_get(obj, "times_redeemed")),
        valid=bool(_get(obj, "valid", True)),
        created=_ts(_get(obj, "created")),
        livemode=bool(_get(obj, "livemode", False)),
        metadata=_plain(_get(obj, "metadata", {})) or {},
        deleted=bool(_get(obj, "deleted", False)),
    )


def promotion_code_from_stripe(obj: Any) -> StripePromotionCode:
    """A Stripe promotion code (object or webhook dict) with its embedded coupon. Newer API
    versions name the coupon under `promotion`; an unexpanded coupon (an id) maps to a
    coupon with only that id."""
    raw_coupon = _get(obj, "coupon") or _get(_get(obj, "promotion"), "coupon")
    if isinstance(raw_coupon, str):
        coupon = coupon_from_stripe({"id": raw_coupon})
    else:
        coupon = coupon_from_stripe(raw_coupon or {})
    restrictions = _get(obj, "restrictions") or {}
    minimums: dict[str, int] = {}
    minimum = _optional_int(_get(restrictions, "minimum_amount"))
    minimum_currency = _str(_get(restrictions, "minimum_amount_currency")).lower()
    if minimum is not None and minimum_currency:
        minimums[minimum_currency] = minimum
    options = _plain(_get(restrictions, "currency_options", {})) or {}
    for code, option in options.items():
        value = _optional_int((option or {}).get("minimum_amount"))
        if value is not None:
            minimums[str(code).lower()] = value
    return StripePromotionCode(
        id=_id(obj),
        code=_str(_get(obj, "code")),
        coupon=coupon,
        active=bool(_get(obj, "active", False)),
        times_redeemed=_int(_get(obj, "times_redeemed")),
        max_redemptions=_optional_int(_get(obj, "max_redemptions")),
        expires_at=_ts(_get(obj, "expires_at")),
        customer_id=_id(_get(obj, "customer")),
        minimums=minimums,
        created=_ts(_get(obj, "created")),
        livemode=bool(_get(obj, "livemode", False)),
        metadata=_plain(_get(obj, "metadata", {})) or {},
    )


# --- calls -------------------------------------------------------------------------------------


def _split(values: dict[str, int]) -> tuple[str, int, dict[str, int]]:
    """Stripe takes one currency as the object's own and the rest as currency_options: the
    first in alphabetical order, so the same terms always make the same request (a resend
    with the same idempotency key must be byte-for-byte the same)."""
    ordered = sorted(values)
    first = ordered[0]
    return first, values[first], {code: values[code] for code in ordered[1:]}


def stripe_coupon_create(
    *,
    coupon_id: str,
    name: str,
    percent_off: Decimal | None = None,
    amounts_off: dict[str, int] | None = None,
    max_redemptions: int | None = None,
    redeem_by: datetime | None = None,
    metadata: dict | None = None,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeCoupon:
    """Create a one-time (`duration=once`) coupon with our id `coupon_id`: `percent_off`
    (e.g. Decimal("12.50")), or `amounts_off` {currency: minor units}. Raises InvalidRequest
    with stripe_code `resource_already_exists` when a coupon with this id exists (made by an
    earlier attempt whose answer was lost: retrieve it), GatewayTimeout when Stripe may have
    acted (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if (percent_off is None) == (not amounts_off):
        raise ValueError(ERR_ONE_KIND)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "id": coupon_id,
        "name": name,
        "duration": "once",
        "expand": COUPON_EXPAND,
    }
    if percent_off is not None:
        params["percent_off"] = str(percent_off)
    else:
        currency, amount, others = _split(amounts_off or {})
        params["amount_off"] = amount
        params["currency"] = currency
        if others:
            params["currency_options"] = {
                code: {"amount_off": value} for code, value in others.items()
            }
    if max_redemptions is not None:
        params["max_redemptions"] = int(max_redemptions)
    if redeem_by is not None:
        params["redeem_by"] = int(redeem_by.timestamp())
    if metadata:
        params["metadata"] = _strings(metadata)
    return coupon_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.coupons.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_coupon_retrieve(*, coupon_id: str, client: StripeClient | None = None) -> StripeCoupon:
    """The coupon as Stripe has it now. Raises ResourceMissing (deleted or never made) or
    another GatewayError."""
    client = client or StripeClient.from_settings()
    return coupon_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.coupons.retrieve(
                coupon_id, params={"expand": COUPON_EXPAND}, options=options
            )
        )
    )


def stripe_promotion_code_create(
    *,
    coupon_id: str,
    code: str,
    minimums: dict[str, int] | None = None,
    active: bool = True,
    metadata: dict | None = None,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePromotionCode:
    """Create the customer-facing `code` for coupon `coupon_id`, with a minimum order per
    currency (`minimums` {currency: minor units}). Raises InvalidRequest (an active code with
    this spelling exists: param `code`), GatewayTimeout (Stripe may have made it: look it up
    with stripe_promotion_code_list(coupon_id=...), or retry with the SAME key), or another
    GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "coupon": coupon_id,
        "code": code,
        "active": active,
        "expand": PROMOTION_CODE_EXPAND,
    }
    wanted = {code_: amount for code_, amount in (minimums or {}).items() if amount > 0}
    if wanted:
        currency, amount, others = _split(wanted)
        restrictions: dict[str, Any] = {
            "minimum_amount": amount,
            "minimum_amount_currency": currency,
        }
        if others:
            restrictions["currency_options"] = {
                code_: {"minimum_amount": value} for code_, value in others.items()
            }
        params["restrictions"] = restrictions
    if metadata:
        params["metadata"] = _strings(metadata)
    return promotion_code_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.promotion_codes.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_promotion_code_update(
    *,
    promotion_code_id: str,
    active: bool,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePromotionCode:
    """Switch a promotion code on or off (the only change Stripe allows besides metadata).
    Raises InvalidRequest (e.g. reactivating a code whose spelling is active elsewhere),
    ResourceMissing, or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params = {"active": active, "expand": PROMOTION_CODE_EXPAND}
    return promotion_code_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.promotion_codes.update(
                promotion_code_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_promotion_code_retrieve(
    *, promotion_code_id: str, client: StripeClient | None = None
) -> StripePromotionCode:
    """The promotion code (with its coupon) as Stripe has it now. Raises ResourceMissing or
    another GatewayError."""
    client = client or StripeClient.from_settings()
    return promotion_code_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.promotion_codes.retrieve(
                promotion_code_id, params={"expand": PROMOTION_CODE_EXPAND}, options=options
            )
        )
    )


def stripe_promotion_code_list(
    *,
    coupon_id: str | None = None,
    code: str | None = None,
    active: bool | None = None,
    client: StripeClient | None = None,
) -> list[StripePromotionCode]:
    """Every promotion code matching the filters (`code` matches whatever its case), newest
    first: how a push finds the code an earlier attempt made, and how a coupon's webhook
    re-reads its codes. ceil(n/100) calls. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"expand": PROMOTION_CODE_LIST_EXPAND}
    if coupon_id is not None:
        params["coupon"] = coupon_id
    if code is not None:
        params["code"] = code
    if active is not None:
        params["active"] = active
    codes: list[StripePromotionCode] = []
    for page in _list_pages(
        lambda sdk, call_params, options: sdk.v1.promotion_codes.list(
            params=call_params, options=options
        ),
        promotion_code_from_stripe,
        params=params,
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        codes.extend(page.items)
    return codes


def stripe_promotion_code_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripePromotionCode]]:
    """Pages (100 each, newest first) of EVERY promotion code, whatever `created_gt` says:
    a code changes after its creation (deactivated, redeemed) and there are few of them, so
    the sync reads them all each run rather than only the new ones. `starting_after`
    resumes a pass. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.promotion_codes.list(params=params, options=options),
        promotion_code_from_stripe,
        params={"expand": PROMOTION_CODE_LIST_EXPAND},
        created_gt=None,
        starting_after=starting_after,
        client=client,
        server_filters_created=True,
    )
