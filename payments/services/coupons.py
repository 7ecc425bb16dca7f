"""Writes for coupons: create, change the terms, deactivate, and push each to Stripe.

Who may do what is decided in payments/coupon_rules.py (create_refusal, edit_refusal,
deactivate_refusal), which the pages ask too; this module asks again under the coupon's row
lock and writes one AdminAction per staff action in the same transaction.

Stripe (through payments.gateway, after the change is committed, never inside it):
- each version of the terms Stripe can express (name, percent or amounts per currency,
  minimum order per currency, total limit, end of validity: STRIPE_TERMS) is one Stripe
  coupon, whose id we choose (`cpn-<pk>-v<version>`), and one promotion code spelling our
  code. Stripe's coupons cannot be changed, so changing those terms bumps `terms_version`:
  the push deactivates the previous promotion code first (Stripe allows one active code per
  spelling), then creates the new coupon and code. Our other rules (per-customer limit,
  product targeting, start of validity, the cap on a percentage) are ours only: changing
  them changes nothing at Stripe;
- deactivating sets the promotion code `active=false`;
- every call carries an idempotency key derived from the row (`coupon:<pk>:v<n>`,
  `promotion_code:<pk>:v<n>`, `...:deactivate`; after Stripe refused a push outright, a
  4xx that made nothing, `:r<refusals>` is added so the next attempt is a new request and
  not a replay of the refusal), and a push first looks for what an earlier attempt made (the
  coupon by its id, the code by its coupon), so a lost answer never makes a second object;
  before that it switches off every active code of ours with the coupon's spelling that is
  not the current version's (or any, for an inactive coupon): a code whose create timed out
  is live at Stripe although we never recorded its id. Ids are recorded only while the row
  still has the version and `active` the push read: staff may edit or deactivate during a
  push, which then goes round again.
  One push at a time per coupon (a lease on the row, taken under its lock); a failed push
  leaves the coupon `failed` with Stripe's words, and "Send to Stripe again" resumes it.
The codes a push gets back land in the mirror (payments.coupon_mirror.upsert_promotion_codes)
exactly as the sync and the webhooks land them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.refusals import Refusal
from payments import coupon_rules, gateway
from payments.coupon_mirror import upsert_promotion_codes
from payments.exceptions import GatewayError, InvalidRequest
from payments.models import Coupon, CouponCurrency, Payment
from payments.models.coupon import BASIS_POINTS_MAX, NAME_MAX_LENGTH, code_validator, normalize_code
from payments.money import SUPPORTED_CURRENCIES

logger = logging.getLogger(__name__)

# One push at a time per coupon; a pusher silent this long died and may be taken over.
PUSH_LEASE = timedelta(minutes=2)

AUDIT_CREATE = "coupon_create"
AUDIT_CHANGE = "coupon_change"
AUDIT_DEACTIVATE = "coupon_deactivate"
AUDIT_PUSH = "coupon_push"

# --- Messages (staff see them as they are; tests assert the exact words) ------------------------
ERR_CODE = "Code: " + str(code_validator.message)
ERR_CODE_TAKEN = "There is already a coupon {code}."
ERR_NAME = f"Give the coupon a name of at most {NAME_MAX_LENGTH} characters."
ERR_KIND = "Choose percentage or fixed amount."
ERR_PERCENT = "A percentage coupon takes 0.01 % to 100 % off."
ERR_PERCENT_ON_FIXED = "A fixed-amount coupon has no percentage."
ERR_FIXED_NEEDS_CURRENCY = "A fixed-amount coupon needs an amount in at least one currency."
ERR_FIXED_NEEDS_AMOUNT = "{currency}: a fixed-amount coupon needs the amount it takes off."
ERR_CAP_ON_FIXED = "{currency}: a maximum discount is for percentage coupons only."
ERR_AMOUNT_ON_PERCENT = "{currency}: a percentage coupon takes no fixed amount off."
ERR_CURRENCY_UNKNOWN = "Unknown currency {currency!r}."
ERR_CURRENCY_TWICE = "{currency} is listed twice."
ERR_NOT_POSITIVE = "{currency}: amounts must be above zero (leave a field empty for none)."
ERR_MINIMUM_NEGATIVE = "{currency}: the minimum order cannot be negative."
ERR_LIMIT = "Limits are whole numbers from 1 (leave empty for no limit)."
ERR_WINDOW = "The coupon must end after it starts."
ERR_ENDED = "The end of validity must be in the future."
ERR_KINDS = "Unknown product kind {kind!r}."
ERR_PRODUCT_ID = "Product id {value!r}: letters, digits and _ . : - / # only, at most 64."
ERR_REASON_REQUIRED = "Say why the coupon is deactivated."
ERR_NOTHING_CHANGED = "Nothing changed."

MSG_CREATED = "Coupon {code} created."
MSG_CHANGED_NEW_VERSION = (
    "Coupon {code} changed: Stripe gets a new coupon and promotion code (version {version}); "
    "the previous code is deactivated there."
)
MSG_CHANGED_LOCAL = "Coupon {code} changed (rules Stripe does not hold: nothing to send)."
MSG_DEACTIVATED = "Coupon {code} deactivated."
MSG_PUSHED = "Coupon {code} is in Stripe."
MSG_PUSH_FAILED = "Coupon {code} could not be sent to Stripe: {error}"
MSG_PUSH_BUSY = "Coupon {code} is being sent to Stripe right now."
MSG_PUSH_NOTHING = "Coupon {code} is already in Stripe."

_PRODUCT_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-/#")


class CouponError(Exception):
    """A create, change or deactivation refused; the message is safe to show to staff.
    `problems` maps a form field ("" for the whole form) to its message."""

    def __init__(self, message: str, *, problems: dict[str, str] | None = None, refusal=None):
        super().__init__(message)
        self.message = message
        self.problems = problems or {"": message}
        self.refusal: Refusal | None = refusal


class CouponPermissionError(CouponError):
    """The user lacks the permission (pages answer 403)."""


@dataclass(frozen=True)
class CurrencyTerms:
    """One currency's terms, minor units (None: not set)."""

    currency: str
    amount_off: int | None = None
    max_discount: int | None = None
    minimum_amount: int = 0


@dataclass(frozen=True)
class CouponTerms:
    """Everything staff set on a coupon (the code aside, which never changes)."""

    name: str
    kind: str
    percent_off_bps: int | None = None
    currencies: tuple[CurrencyTerms, ...] = ()
    max_redemptions: int | None = None
    max_redemptions_per_customer: int | None = None
    product_kinds: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @classmethod
    def of(cls, coupon: Coupon, rows=None) -> CouponTerms:
        rows = list(coupon.currencies.all()) if rows is None else rows
        return cls(
            name=coupon.name,
            kind=coupon.kind,
            percent_off_bps=coupon.percent_off_bps,
            currencies=tuple(
                CurrencyTerms(r.currency, r.amount_off, r.max_discount, r.minimum_amount)
                for r in sorted(rows, key=lambda r: r.currency)
            ),
            max_redemptions=coupon.max_redemptions,
            max_redemptions_per_customer=coupon.max_redemptions_per_customer,
            product_kinds=tuple(coupon.product_kinds or ()),
            product_ids=tuple(coupon.product_ids or ()),
            valid_from=coupon.valid_from,
            valid_until=coupon.valid_until,
        )

    def stripe_terms(self) -> dict:
        """What Stripe holds of these terms (STRIPE_TERMS): a change here is a new version."""
        return {
            "name": self.name,
            "kind": self.kind,
            "percent_off_bps": self.percent_off_bps,
            "amounts_off": {c.currency: c.amount_off for c in self.currencies if c.amount_off},
            "minimums": {c.currency: c.minimum_amount for c in self.currencies if c.minimum_amount},
            "max_redemptions": self.max_redemptions,
            "valid_until": self.valid_until,
        }


@dataclass
class CouponPushResult:
    coupon: Coupon
    pushed: bool
    message: str
    errors: list[str] = field(default_factory=list)


# --- validation -------------------------------------------------------------------------------


def coupon_terms_problems(terms: CouponTerms, *, now: datetime | None = None) -> dict[str, str]:
    """What is wrong with `terms`: {form field: message} ("currencies" for the per-currency
    rows); {} when they are good. The admin form and the services both ask it."""
    now = now or timezone.now()
    problems: dict[str, str] = {}
    if not terms.name.strip() or len(terms.name) > NAME_MAX_LENGTH:
        problems["name"] = ERR_NAME
    if terms.kind not in Coupon.Kind.values:
        problems["kind"] = ERR_KIND
    if terms.kind == Coupon.Kind.PERCENTAGE:
        if terms.percent_off_bps is None or not 1 <= terms.percent_off_bps <= BASIS_POINTS_MAX:
            problems["percent_off_bps"] = ERR_PERCENT
    elif terms.kind == Coupon.Kind.FIXED and terms.percent_off_bps is not None:
        problems["percent_off_bps"] = ERR_PERCENT_ON_FIXED
    seen: set[str] = set()
    for row in terms.currencies:
        currency = row.currency.upper()
        if row.currency not in SUPPORTED_CURRENCIES:
            problems["currencies"] = ERR_CURRENCY_UNKNOWN.format(currency=row.currency)
        elif row.currency in seen:
            problems["currencies"] = ERR_CURRENCY_TWICE.format(currency=currency)
        elif any(v is not None and v <= 0 for v in (row.amount_off, row.max_discount)):
            problems["currencies"] = ERR_NOT_POSITIVE.format(currency=currency)
        elif row.minimum_amount < 0:
            problems["currencies"] = ERR_MINIMUM_NEGATIVE.format(currency=currency)
        elif terms.kind == Coupon.Kind.FIXED and row.amount_off is None:
            problems["currencies"] = ERR_FIXED_NEEDS_AMOUNT.format(currency=currency)
        elif terms.kind == Coupon.Kind.FIXED and row.max_discount is not None:
            problems["currencies"] = ERR_CAP_ON_FIXED.format(currency=currency)
        elif terms.kind == Coupon.Kind.PERCENTAGE and row.amount_off is not None:
            problems["currencies"] = ERR_AMOUNT_ON_PERCENT.format(currency=currency)
        seen.add(row.currency)
    if terms.kind == Coupon.Kind.FIXED and not terms.currencies and "currencies" not in problems:
        problems["currencies"] = ERR_FIXED_NEEDS_CURRENCY
    if terms.max_redemptions is not None and terms.max_redemptions < 1:
        problems["max_redemptions"] = ERR_LIMIT
    if terms.max_redemptions_per_customer is not None and terms.max_redemptions_per_customer < 1:
        problems["max_redemptions_per_customer"] = ERR_LIMIT
    for kind in terms.product_kinds:
        if kind not in Payment.ProductKind.values:
            problems["product_kinds"] = ERR_KINDS.format(kind=kind)
    for value in terms.product_ids:
        if not value or len(value) > 64 or set(value) - _PRODUCT_ID_CHARS:
            problems["product_ids"] = ERR_PRODUCT_ID.format(value=value[:80])
    if terms.valid_until is not None:
        if terms.valid_from is not None and terms.valid_until <= terms.valid_from:
            problems["valid_until"] = ERR_WINDOW
        elif terms.valid_until <= now:
            problems["valid_until"] = ERR_ENDED
    return problems


def _raise_problems(problems: dict[str, str]) -> None:
    if problems:
        raise CouponError(next(iter(problems.values())), problems=problems)


def _raise_refusal(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    cls = CouponPermissionError if refusal.permission else CouponError
    raise cls(refusal.message, refusal=refusal)


def _write_terms(coupon: Coupon, terms: CouponTerms) -> None:
    coupon.name = terms.name.strip()
    coupon.kind = terms.kind
    coupon.percent_off_bps = terms.percent_off_bps
    coupon.max_redemptions = terms.max_redemptions
    coupon.max_redemptions_per_customer = terms.max_redemptions_per_customer
    coupon.product_kinds = list(terms.product_kinds)
    coupon.product_ids = list(terms.product_ids)
    coupon.valid_from = terms.valid_from
    coupon.valid_until = terms.valid_until


def _write_currencies(coupon: Coupon, terms: CouponTerms) -> None:
    wanted = {row.currency: row for row in terms.currencies}
    CouponCurrency.objects.filter(coupon=coupon).exclude(currency__in=wanted).delete()
    existing = {row.currency: row for row in CouponCurrency.objects.filter(coupon=coupon)}
    for currency, row in wanted.items():
        values = {
            "amount_off": row.amount_off,
            "max_discount": row.max_discount,
            "minimum_amount": row.minimum_amount,
        }
        current = existing.get(currency)
        if current is None:
            CouponCurrency.objects.create(coupon=coupon, currency=currency, **values)
        elif any(getattr(current, k) != v for k, v in values.items()):
            for name, value in values.items():
                setattr(current, name, value)
            current.save()


def _terms_details(terms: CouponTerms) -> dict:
    """The terms as JSON for the audit row (dates as ISO text)."""
    return {
        "name": terms.name,
        "kind": terms.kind,
        "percent_off_bps": terms.percent_off_bps,
        "currencies": {
            c.currency: {
                "amount_off": c.amount_off,
                "max_discount": c.max_discount,
                "minimum_amount": c.minimum_amount,
            }
            for c in terms.currencies
        },
        "max_redemptions": terms.max_redemptions,
        "max_redemptions_per_customer": terms.max_redemptions_per_customer,
        "product_kinds": list(terms.product_kinds),
        "product_ids": list(terms.product_ids),
        "valid_from": terms.valid_from.isoformat() if terms.valid_from else None,
        "valid_until": terms.valid_until.isoformat() if terms.valid_until else None,
    }


# --- staff actions ----------------------------------------------------------------------------


def coupon_create(
    *,
    code: str,
    terms: CouponTerms,
    acting_user,
    client: ClientInfo | None = None,
    push: bool = True,
) -> Coupon:
    """Create a coupon (audited), then push it to Stripe (`push=False`: the caller pushes).
    Raises CouponPermissionError, or CouponError with the problems per field. A failed push
    does not raise: the coupon stays `failed` with Stripe's words."""
    _raise_refusal(coupon_rules.create_refusal(user=acting_user))
    code = normalize_code(code)
    problems = {}
    try:
        code_validator(code)
    except Exception:  # django's ValidationError; its message is ours (ERR_CODE)
        problems["code"] = ERR_CODE
    problems.update(coupon_terms_problems(terms))
    _raise_problems(problems)
    with transaction.atomic():
        if Coupon.objects.select_for_update().filter(code=code).exists():
            raise CouponError(
                ERR_CODE_TAKEN.format(code=code),
                problems={"code": ERR_CODE_TAKEN.format(code=code)},
            )
        coupon = Coupon(code=code, created_by=acting_user if acting_user.pk else None)
        _write_terms(coupon, terms)
        coupon._change_reason = "Created"
        coupon.save()
        _write_currencies(coupon, terms)
        audit_record(
            acting_user=acting_user,
            action=AUDIT_CREATE,
            target=coupon,
            details=_terms_details(terms),
            client=client,
        )
    if push:
        coupon_push(coupon=coupon)
        coupon.refresh_from_db()
    return coupon


def coupon_change(
    *,
    coupon: Coupon,
    terms: CouponTerms,
    acting_user,
    client: ClientInfo | None = None,
    push: bool = True,
) -> tuple[Coupon, str]:
    """Change an active coupon's terms (audited with before and after). A change of what
    Stripe holds (CouponTerms.stripe_terms) makes a new version: new Stripe coupon and
    promotion code at the push, the previous code deactivated. Returns (coupon, message).
    Raises CouponPermissionError / CouponError."""
    _raise_refusal(coupon_rules.edit_refusal(user=acting_user, coupon=coupon))
    _raise_problems(coupon_terms_problems(terms))
    with transaction.atomic():
        locked = Coupon.objects.select_for_update().get(pk=coupon.pk)
        _raise_refusal(coupon_rules.edit_refusal(user=acting_user, coupon=locked))
        before = CouponTerms.of(locked)
        if before == terms:
            return locked, ERR_NOTHING_CHANGED
        new_version = before.stripe_terms() != terms.stripe_terms()
        _write_terms(locked, terms)
        if new_version:
            locked.terms_version += 1
            if locked.stripe_promotion_code_id:
                # Deactivated first at the next push (one active code per spelling).
                locked.stripe_previous_promotion_code_id = locked.stripe_promotion_code_id
            locked.stripe_coupon_id = ""
            locked.stripe_promotion_code_id = ""
            locked.stripe_state = Coupon.StripeState.PENDING
            locked.stripe_error = ""
        locked._change_reason = f"Terms changed (version {locked.terms_version})"
        locked.save()
        _write_currencies(locked, terms)
        audit_record(
            acting_user=acting_user,
            action=AUDIT_CHANGE,
            target=locked,
            details={
                "before": _terms_details(before),
                "after": _terms_details(terms),
                "new_stripe_version": new_version,
                "terms_version": locked.terms_version,
            },
            client=client,
        )
    if new_version:
        message = MSG_CHANGED_NEW_VERSION.format(code=locked.code, version=locked.terms_version)
        if push:
            coupon_push(coupon=locked)
            locked.refresh_from_db()
    else:
        message = MSG_CHANGED_LOCAL.format(code=locked.code)
    return locked, message


def coupon_deactivate(
    *,
    coupon: Coupon,
    reason: str,
    acting_user,
    client: ClientInfo | None = None,
    push: bool = True,
) -> Coupon:
    """Deactivate a coupon (audited): our rules refuse it from now on, and the push sets its
    Stripe promotion code `active=false`. Redemptions already made stay. Raises
    CouponPermissionError / CouponError."""
    _raise_refusal(coupon_rules.deactivate_refusal(user=acting_user, coupon=coupon))
    reason = (reason or "").strip()
    if not reason:
        raise CouponError(ERR_REASON_REQUIRED, problems={"reason": ERR_REASON_REQUIRED})
    with transaction.atomic():
        locked = Coupon.objects.select_for_update().get(pk=coupon.pk)
        _raise_refusal(coupon_rules.deactivate_refusal(user=acting_user, coupon=locked))
        locked.active = False
        locked.deactivated_at = timezone.now()
        locked.deactivated_by = acting_user if acting_user.pk else None
        locked.deactivation_reason = reason
        # Always pending, even with no code id recorded: a push whose answer was lost (a
        # timeout) may have made a live code we never heard of; the push looks for it.
        locked.stripe_state = Coupon.StripeState.PENDING
        locked._change_reason = "Deactivated"
        locked.save()
        audit_record(
            acting_user=acting_user,
            action=AUDIT_DEACTIVATE,
            target=locked,
            reason=reason,
            client=client,
        )
    if push:
        coupon_push(coupon=locked)
        locked.refresh_from_db()
    return locked


def coupon_push_again(
    *, coupon: Coupon, acting_user, client: ClientInfo | None = None
) -> CouponPushResult:
    """Staff's "Send to Stripe again" for a coupon whose push failed (audited)."""
    if acting_user is None or not acting_user.has_perm(coupon_rules.PERM_CHANGE):
        raise CouponPermissionError(coupon_rules.ERR_NO_CHANGE_PERMISSION)
    result = coupon_push(coupon=coupon)
    with transaction.atomic():
        audit_record(
            acting_user=acting_user,
            action=AUDIT_PUSH,
            target=result.coupon,
            result="success" if result.pushed else "failure",
            reason=result.message[:500],
            client=client,
        )
    return result


# --- the push -----------------------------------------------------------------------------------


def _claim(coupon_pk: int, now: datetime) -> Coupon | None:
    """Take the push lease under the row lock; None when another push holds it."""
    with transaction.atomic():
        locked = Coupon.objects.select_for_update().get(pk=coupon_pk)
        if locked.stripe_push_until is not None and locked.stripe_push_until > now:
            return None
        locked.stripe_push_until = now + PUSH_LEASE
        locked.save(update_fields=["stripe_push_until", "updated_at"])
        return locked


def _record(coupon_pk: int, **values) -> Coupon:
    """Write what the push learnt, under the row lock (staff may have edited meanwhile: only
    these columns are written)."""
    with transaction.atomic():
        locked = Coupon.objects.select_for_update().get(pk=coupon_pk)
        for name, value in values.items():
            setattr(locked, name, value)
        locked._change_reason = "Stripe push"
        locked.save(update_fields=[*values, "updated_at"])
        return locked


class _Stale(Exception):
    """Staff changed the terms or deactivated the coupon while this push ran."""


def _record_ids(coupon_pk: int, version: int, active: bool, **values) -> Coupon:
    """Like _record, for ids of what this push made, written only while the row still has
    the terms version and the `active` the push read: ids of an outdated version would
    otherwise land on the new version's row (the next push's sweep retires that code)."""
    with transaction.atomic():
        locked = Coupon.objects.select_for_update().get(pk=coupon_pk)
        if (locked.terms_version, locked.active) != (version, active):
            raise _Stale
        for name, value in values.items():
            setattr(locked, name, value)
        locked._change_reason = "Stripe push"
        locked.save(update_fields=[*values, "updated_at"])
        return locked


def _sweep(coupon: Coupon, version: int, active: bool, suffix: str, landed: list) -> None:
    """Switch off every active code of ours with this spelling except this version's while
    the coupon is active: the code of an earlier version or of a deactivated coupon whose
    create timed out (so its id was never recorded) would otherwise stay live at Stripe, and
    would block this version's code (one active code per spelling). Codes made in Stripe's
    dashboard (no `coupon_pk` metadata of ours) are left alone."""
    for code in gateway.stripe_promotion_code_list(code=coupon.code, active=True):
        ours = str(code.metadata.get("coupon_pk", "")) == str(coupon.pk)
        if not ours and code.id != coupon.stripe_promotion_code_id:
            continue
        current = code.id == coupon.stripe_promotion_code_id or str(
            code.metadata.get("terms_version", "")
        ) == str(version)
        if active and current:
            continue
        landed.append(
            gateway.stripe_promotion_code_update(
                promotion_code_id=code.id,
                active=False,
                idempotency_key=f"promotion_code:{coupon.pk}:{code.id}:deactivate{suffix}",
            )
        )


# A push that keeps meeting staff edits gives up after this many rounds (left pending).
PUSH_ROUNDS = 3


def _percent(bps: int) -> Decimal:
    return (Decimal(bps) / 100).quantize(Decimal("0.01"))


def coupon_push(*, coupon: Coupon) -> CouponPushResult:
    """Bring Stripe in line with `coupon` (see the module docstring): deactivate the
    previous version's code, create this version's coupon and code (after looking for what an
    earlier attempt made), or deactivate the code of an inactive coupon. Never raises a
    GatewayError: it is recorded on the coupon (`failed`, `stripe_error`)."""
    now = timezone.now()
    locked = _claim(coupon.pk, now)
    if locked is None:
        return CouponPushResult(coupon, False, MSG_PUSH_BUSY.format(code=coupon.code))
    if locked.stripe_state == Coupon.StripeState.SYNCED:
        locked = _record(locked.pk, stripe_push_until=None)
        return CouponPushResult(locked, True, MSG_PUSH_NOTHING.format(code=locked.code))
    for _round in range(PUSH_ROUNDS):
        result = _push_round(locked)
        if result is not None:
            return result
        # Staff changed the coupon meanwhile: push again what the row says now.
        locked = Coupon.objects.get(pk=locked.pk)
    locked = _record(locked.pk, stripe_push_until=None)
    return CouponPushResult(locked, False, MSG_PUSH_BUSY.format(code=locked.code))


def _push_round(locked: Coupon) -> CouponPushResult | None:
    """One pass of the push over what `locked` says; None when staff changed the terms or
    deactivated the coupon meanwhile (the row stays pending, the caller goes again)."""
    version, active = locked.terms_version, locked.active
    # Keys stay the same across timeouts (Stripe replays), change after a refusal.
    suffix = f":r{locked.stripe_refusals}" if locked.stripe_refusals else ""
    landed: list[gateway.StripePromotionCode] = []
    try:
        previous = locked.stripe_previous_promotion_code_id
        if previous:
            landed.append(
                gateway.stripe_promotion_code_update(
                    promotion_code_id=previous,
                    active=False,
                    idempotency_key=f"promotion_code:{locked.pk}:{previous}:deactivate{suffix}",
                )
            )
            locked = _record(locked.pk, stripe_previous_promotion_code_id="")
        _sweep(locked, version, active, suffix, landed)
        if active:
            locked = _push_active(locked, version, suffix, landed)
    except _Stale:
        if landed:
            upsert_promotion_codes(landed)
        return None
    except GatewayError as exc:
        error = f"{type(exc).__name__}: {exc.message}"
        logger.warning("Coupon %s: push to Stripe failed: %s", locked.code, error)
        if landed:
            upsert_promotion_codes(landed)
        refused = isinstance(exc, InvalidRequest)
        locked = _record(
            locked.pk,
            stripe_state=Coupon.StripeState.FAILED,
            stripe_error=error[:2000],
            stripe_push_until=None,
            stripe_refusals=locked.stripe_refusals + (1 if refused else 0),
        )
        return CouponPushResult(
            locked, False, MSG_PUSH_FAILED.format(code=locked.code, error=exc.message), [error]
        )
    if landed:
        upsert_promotion_codes(landed)
    try:
        locked = _record_ids(
            locked.pk,
            version,
            active,
            stripe_state=Coupon.StripeState.SYNCED,
            stripe_error="",
            stripe_synced_at=timezone.now(),
            stripe_push_until=None,
        )
    except _Stale:
        return None
    return CouponPushResult(locked, True, MSG_PUSHED.format(code=locked.code))


def _push_active(
    coupon: Coupon, version: int, suffix: str, landed: list[gateway.StripePromotionCode]
) -> Coupon:
    """This version's Stripe coupon and promotion code, made once."""
    terms = CouponTerms.of(coupon).stripe_terms()
    if not coupon.stripe_coupon_id:
        coupon_id = f"cpn-{coupon.pk}-v{version}"
        try:
            made = gateway.stripe_coupon_create(
                coupon_id=coupon_id,
                name=terms["name"],
                percent_off=_percent(terms["percent_off_bps"])
                if terms["kind"] == Coupon.Kind.PERCENTAGE
                else None,
                amounts_off=terms["amounts_off"] if terms["kind"] == Coupon.Kind.FIXED else None,
                max_redemptions=terms["max_redemptions"],
                redeem_by=terms["valid_until"],
                metadata={"coupon_pk": coupon.pk, "terms_version": version},
                idempotency_key=f"coupon:{coupon.pk}:v{version}{suffix}",
            )
        except InvalidRequest as exc:
            if exc.stripe_code != "resource_already_exists":
                raise
            # Made by an earlier attempt whose answer was lost (or whose key expired).
            made = gateway.stripe_coupon_retrieve(coupon_id=coupon_id)
        coupon = _record_ids(coupon.pk, version, True, stripe_coupon_id=made.id)
    if not coupon.stripe_promotion_code_id:
        found = gateway.stripe_promotion_code_list(coupon_id=coupon.stripe_coupon_id)
        if found:
            code = found[0]
        else:
            code = gateway.stripe_promotion_code_create(
                coupon_id=coupon.stripe_coupon_id,
                code=coupon.code,
                minimums=terms["minimums"],
                metadata={"coupon_pk": coupon.pk, "terms_version": version},
                idempotency_key=f"promotion_code:{coupon.pk}:v{version}{suffix}",
            )
        landed.append(code)
        coupon = _record_ids(coupon.pk, version, True, stripe_promotion_code_id=code.id)
    return coupon
