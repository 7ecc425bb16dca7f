"""Does a coupon code apply to an order, and how much does it take off? One answer for the
booking system's quote (POST /api/v1/coupons/quote/), the admin and the redemption recorder
(payments/coupon_redemptions.py flags a captured payment the rules would have refused).

`coupon_evaluate` is the rules, pure: it reads the coupon, its per-currency terms, the order
and the usage counts it is given, and answers a CouponDecision with one CouponRefusal per rule
that refuses (all of them, so the booking system can show every reason at once).
`coupon_quote` loads those for a code and asks it.

The rules (each one's limit is inclusive where it says "at least" / "at most"):
- unknown_code: no coupon has this code (codes match whatever their case);
- inactive: the coupon was deactivated;
- not_started: the order is before `valid_from`; expired: after `valid_until` (the instant
  itself still counts, as Stripe's `redeem_by`);
- currency: a fixed coupon is offered only in the currencies it has an amount for;
- minimum_amount: the order (before the discount) is at least the currency's minimum;
- product_kind / product: when the coupon names kinds or product ids, the order's is one;
- total_limit: fewer than `max_redemptions` redemptions so far;
- customer_limit: fewer than `max_redemptions_per_customer` for this customer;
  customer_required: that limit needs to know the customer.

The discount (minor units of the order's currency, never more than the order): a fixed
coupon's amount in that currency; a percentage coupon's basis points of the order, rounded
half up (payments.money.percent_of), then capped at the currency's `max_discount` if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from backoffice.formats import format_datetime
from backoffice.refusals import Refusal

from .models import Coupon, CouponCurrency, CouponRedemption, Customer
from .models.coupon import normalize_code
from .money import format_money, percent_of

RULE_UNKNOWN_CODE = "unknown_code"
RULE_INACTIVE = "inactive"
RULE_NOT_STARTED = "not_started"
RULE_EXPIRED = "expired"
RULE_CURRENCY = "currency"
RULE_MINIMUM = "minimum_amount"
RULE_PRODUCT_KIND = "product_kind"
RULE_PRODUCT = "product"
RULE_TOTAL_LIMIT = "total_limit"
RULE_CUSTOMER_LIMIT = "customer_limit"
RULE_CUSTOMER_REQUIRED = "customer_required"

# --- Messages (customers may read them through the booking system; tests assert the words) ---
ERR_UNKNOWN_CODE = "There is no coupon {code}."
ERR_INACTIVE = "Coupon {code} is no longer active."
ERR_NOT_STARTED = "Coupon {code} is valid from {start}."
ERR_EXPIRED = "Coupon {code} expired on {end}."
ERR_CURRENCY = "Coupon {code} is not offered in {currency}."
ERR_MINIMUM = "Coupon {code} needs an order of at least {minimum}; this one is {amount}."
ERR_PRODUCT_KIND = "Coupon {code} applies to {kinds} only."
ERR_PRODUCT = "Coupon {code} does not apply to this product."
ERR_TOTAL_LIMIT = "Coupon {code} has been used the most times allowed ({limit})."
ERR_CUSTOMER_LIMIT = "This customer has used coupon {code} the most times allowed ({limit})."
ERR_CUSTOMER_REQUIRED = "Coupon {code} is limited per customer: say who the customer is."

# --- Staff ------------------------------------------------------------------------------------
PERM_ADD = "payments.add_coupon"
PERM_CHANGE = "payments.change_coupon"
PERM_DEACTIVATE = "payments.deactivate_coupon"
ERR_NO_ADD_PERMISSION = "You do not have permission to create coupons."
ERR_NO_CHANGE_PERMISSION = "You do not have permission to change coupons."
ERR_NO_DEACTIVATE_PERMISSION = "You do not have permission to deactivate coupons."
ERR_ALREADY_INACTIVE = "Coupon {code} is already inactive."
ERR_EDIT_INACTIVE = "Coupon {code} is inactive: create a new coupon instead of editing it."


@dataclass(frozen=True)
class CouponRefusal(Refusal):
    """A rule's refusal: `rule` is one of the RULE_* names (stable, for programs)."""

    rule: str = ""


@dataclass(frozen=True)
class Order:
    """What the rules judge: the order before any discount, in minor units of `currency`."""

    amount: int
    currency: str
    at: datetime
    product_kind: str = ""
    product_id: str = ""


@dataclass(frozen=True)
class Usage:
    """Redemptions so far: of the coupon, and of this customer (None: customer unknown)."""

    total: int = 0
    by_customer: int | None = None


@dataclass(frozen=True)
class CouponDecision:
    """The answer for one order. `discount` is 0 when any rule refuses."""

    code: str
    coupon: Coupon | None
    order: Order
    discount: int
    refusals: tuple[CouponRefusal, ...]

    @property
    def applies(self) -> bool:
        return not self.refusals

    @property
    def amount_after_discount(self) -> int:
        return self.order.amount - self.discount


def coupon_discount(
    *, coupon: Coupon, terms: CouponCurrency | None, amount: int, currency: str
) -> int:
    """What `coupon` takes off an order of `amount` minor units of `currency`, whatever the
    other rules say (0 where a fixed coupon has no amount in that currency)."""
    if amount <= 0:
        return 0
    if coupon.kind == Coupon.Kind.FIXED:
        if terms is None or terms.currency != currency or not terms.amount_off:
            return 0
        return min(terms.amount_off, amount)
    discount = percent_of(amount, coupon.percent_off_bps or 0)
    if terms is not None and terms.currency == currency and terms.max_discount is not None:
        discount = min(discount, terms.max_discount)
    return min(discount, amount)


def _kinds_text(kinds: list[str]) -> str:
    from .models import Payment

    labels = dict(Payment.ProductKind.choices)
    return ", ".join(str(labels.get(kind, kind)).lower() for kind in kinds)


def coupon_evaluate(
    *,
    coupon: Coupon,
    terms: Mapping[str, CouponCurrency],
    order: Order,
    usage: Usage,
    limits_on: bool = True,
) -> CouponDecision:
    """Every rule against `order` (see the module docstring). `terms` maps currency ->
    the coupon's CouponCurrency row. `limits_on=False` skips the two redemption limits (the
    recorder counts those itself, under the coupon's lock)."""
    code = coupon.code
    refusals: list[CouponRefusal] = []

    def refuse(rule: str, message: str) -> None:
        refusals.append(CouponRefusal(message, rule=rule))

    if not coupon.active:
        refuse(RULE_INACTIVE, ERR_INACTIVE.format(code=code))
    if coupon.valid_from is not None and order.at < coupon.valid_from:
        refuse(RULE_NOT_STARTED, ERR_NOT_STARTED.format(code=code, start=_when(coupon.valid_from)))
    if coupon.valid_until is not None and order.at > coupon.valid_until:
        refuse(RULE_EXPIRED, ERR_EXPIRED.format(code=code, end=_when(coupon.valid_until)))
    row = terms.get(order.currency)
    if coupon.kind == Coupon.Kind.FIXED and (row is None or not row.amount_off):
        refuse(RULE_CURRENCY, ERR_CURRENCY.format(code=code, currency=order.currency.upper()))
    if row is not None and order.amount < row.minimum_amount:
        refuse(
            RULE_MINIMUM,
            ERR_MINIMUM.format(
                code=code,
                minimum=format_money(row.minimum_amount, order.currency),
                amount=format_money(order.amount, order.currency),
            ),
        )
    if coupon.product_kinds and order.product_kind not in coupon.product_kinds:
        refuse(
            RULE_PRODUCT_KIND,
            ERR_PRODUCT_KIND.format(code=code, kinds=_kinds_text(coupon.product_kinds)),
        )
    if coupon.product_ids and order.product_id not in coupon.product_ids:
        refuse(RULE_PRODUCT, ERR_PRODUCT.format(code=code))
    if limits_on:
        refusals.extend(limit_refusals(coupon=coupon, usage=usage))
    discount = 0
    if not refusals:
        discount = coupon_discount(
            coupon=coupon, terms=row, amount=order.amount, currency=order.currency
        )
    return CouponDecision(
        code=code, coupon=coupon, order=order, discount=discount, refusals=tuple(refusals)
    )


def limit_refusals(*, coupon: Coupon, usage: Usage) -> list[CouponRefusal]:
    """The two redemption limits against the counts so far (this order not among them)."""
    refusals = []
    code = coupon.code
    if coupon.max_redemptions is not None and usage.total >= coupon.max_redemptions:
        refusals.append(
            CouponRefusal(
                ERR_TOTAL_LIMIT.format(code=code, limit=coupon.max_redemptions),
                rule=RULE_TOTAL_LIMIT,
            )
        )
    limit = coupon.max_redemptions_per_customer
    if limit is not None:
        if usage.by_customer is None:
            refusals.append(
                CouponRefusal(ERR_CUSTOMER_REQUIRED.format(code=code), rule=RULE_CUSTOMER_REQUIRED)
            )
        elif usage.by_customer >= limit:
            refusals.append(
                CouponRefusal(
                    ERR_CUSTOMER_LIMIT.format(code=code, limit=limit), rule=RULE_CUSTOMER_LIMIT
                )
            )
    return refusals


def _when(moment: datetime) -> str:
    return format_datetime(moment)


def coupon_usage(*, coupon: Coupon, customer: Customer | None) -> Usage:
    """Redemptions of `coupon` so far, in one query: all, and `customer`'s (None: unknown)."""
    rows = CouponRedemption.objects.filter(coupon=coupon)
    if customer is None:
        return Usage(total=rows.count(), by_customer=None)
    counts = rows.aggregate(total=Count("id"), mine=Count("id", filter=Q(customer=customer)))
    return Usage(total=counts["total"], by_customer=counts["mine"])


def coupon_quote(
    *,
    code: str,
    amount: int,
    currency: str,
    product_kind: str = "",
    product_id: str = "",
    customer: Customer | None = None,
    customer_known: bool = False,
    at: datetime | None = None,
) -> CouponDecision:
    """The decision for an order of `amount` minor units of `currency` (before discount).
    `customer`: the buyer's row if we have one; `customer_known`: the caller named a buyer
    (a new one, with no row yet, has used nothing). Reads only: nothing is reserved, so two
    quotes may both answer yes to the last redemption (the recorder flags the second)."""
    code = normalize_code(code)
    order = Order(
        amount=amount,
        currency=currency.lower(),
        at=at or timezone.now(),
        product_kind=product_kind,
        product_id=product_id,
    )
    coupon = Coupon.objects.filter(code=code).first()
    if coupon is None:
        refusal = CouponRefusal(ERR_UNKNOWN_CODE.format(code=code), rule=RULE_UNKNOWN_CODE)
        return CouponDecision(code=code, coupon=None, order=order, discount=0, refusals=(refusal,))
    terms = {row.currency: row for row in CouponCurrency.objects.filter(coupon=coupon)}
    usage = coupon_usage(coupon=coupon, customer=customer)
    if customer is None and customer_known:
        usage = Usage(total=usage.total, by_customer=0)
    return coupon_evaluate(coupon=coupon, terms=terms, order=order, usage=usage)


# --- Staff ------------------------------------------------------------------------------------


def create_refusal(*, user) -> Refusal | None:
    if user is None or not user.has_perm(PERM_ADD):
        return Refusal(ERR_NO_ADD_PERMISSION, permission=True)
    return None


def edit_refusal(*, user, coupon: Coupon) -> Refusal | None:
    """Why `user` may not change `coupon`'s terms, or None."""
    if user is None or not user.has_perm(PERM_CHANGE):
        return Refusal(ERR_NO_CHANGE_PERMISSION, permission=True)
    if not coupon.active:
        return Refusal(ERR_EDIT_INACTIVE.format(code=coupon.code))
    return None


def deactivate_refusal(*, user, coupon: Coupon) -> Refusal | None:
    """Why `user` may not deactivate `coupon`, or None."""
    if user is None or not user.has_perm(PERM_DEACTIVATE):
        return Refusal(ERR_NO_DEACTIVATE_PERMISSION, permission=True)
    if not coupon.active:
        return Refusal(ERR_ALREADY_INACTIVE.format(code=coupon.code))
    return None
