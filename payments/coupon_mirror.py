"""Stripe's promotion codes (each with its coupon) -> PromotionCode rows: the one upsert the
sync's pass, the webhooks (`coupon.*`, `promotion_code.*`) and the coupon push all end in.

A code is linked to our coupon when its metadata `coupon_pk` names one whose code is the
same spelling (metadata is free text: both must agree), or when our coupon already names
the code. When the CURRENT code of one of our active coupons shows `active: false` (someone
switched it off in Stripe's dashboard), our coupon is deactivated too, audited with no actor
(payments.services.coupons.coupon_deactivate_from_stripe): Stripe would refuse the code, so
our quote must not offer it (coupon_deactivate_from_stripe). A re-run over the same codes
writes nothing.

Every object is checked first (promotion_code_problem): a wrong id prefix, an unknown
currency or a negative amount refuses that code (UpsertResult.invalid), the rest land.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backoffice.audit import audit_record
from payments import gateway
from payments.gateway import StripePromotionCode
from payments.models import Coupon, PromotionCode, WebhookEvent
from payments.models.coupon import normalize_code
from payments.money import SUPPORTED_CURRENCIES
from payments.sync import UpsertResult
from payments.validation import InvalidStripeObject

AUDIT_DEACTIVATED_IN_STRIPE = "coupon_deactivated_in_stripe"
DEACTIVATED_IN_STRIPE_REASON = "Its promotion code was deactivated in Stripe."
ERR_BAD_PROMOTION_CODE_ID = "promotion code id {id!r} does not start with promo_."
ERR_BAD_CURRENCY = "promotion code {id}: unknown currency {currency!r}."
ERR_NEGATIVE = "promotion code {id}: {field} {amount} is negative."

_FIELDS = [
    "code",
    "coupon_id",
    "active",
    "times_redeemed",
    "max_redemptions",
    "expires_at",
    "minimum_amount",
    "minimum_amount_currency",
    "minimum_amount_options",
    "customer_stripe_id",
    "stripe_coupon_id",
    "coupon_name",
    "coupon_percent_off",
    "coupon_amount_off",
    "coupon_currency",
    "coupon_currency_options",
    "coupon_max_redemptions",
    "coupon_redeem_by",
    "coupon_times_redeemed",
    "coupon_valid",
    "metadata",
    "livemode",
    "created",
]


def promotion_code_problem(row: StripePromotionCode) -> str | None:
    """The first thing wrong with a promotion code from Stripe, or None."""
    if not str(row.id or "").startswith("promo_"):
        return ERR_BAD_PROMOTION_CODE_ID.format(id=str(row.id)[:80])
    for currency, amount in [*row.minimums.items(), *row.coupon.amounts_off.items()]:
        if currency not in SUPPORTED_CURRENCIES:
            return ERR_BAD_CURRENCY.format(id=row.id, currency=currency[:10])
        if amount < 0:
            return ERR_NEGATIVE.format(id=row.id, field="amount", amount=amount)
    if row.times_redeemed < 0:
        return ERR_NEGATIVE.format(id=row.id, field="times_redeemed", amount=row.times_redeemed)
    return None


def _linked_coupons(rows: list[StripePromotionCode]) -> dict[str, int]:
    """Promotion code id -> our coupon's pk, for the codes that are ours (one query)."""
    named = {}
    for row in rows:
        raw = str(row.metadata.get("coupon_pk") or "")
        if raw.isdigit() and len(raw) < 19:
            named[row.id] = int(raw)
    ids = [row.id for row in rows]
    coupons = Coupon.objects.filter(
        Q(pk__in=named.values())
        | Q(stripe_promotion_code_id__in=ids)
        | Q(stripe_previous_promotion_code_id__in=ids)
    ).only("pk", "code", "stripe_promotion_code_id", "stripe_previous_promotion_code_id")
    by_pk = {c.pk: c for c in coupons}
    by_code_id = {}
    for coupon in coupons:
        for code_id in (coupon.stripe_promotion_code_id, coupon.stripe_previous_promotion_code_id):
            if code_id:
                by_code_id[code_id] = coupon.pk
    linked = {}
    for row in rows:
        pk = by_code_id.get(row.id)
        candidate = by_pk.get(named.get(row.id, 0))
        if pk is None and candidate is not None and candidate.code == normalize_code(row.code):
            pk = candidate.pk
        if pk is not None:
            linked[row.id] = pk
    return linked


def upsert_promotion_codes(
    rows: Iterable[StripePromotionCode], *, snapshot: bool = False
) -> UpsertResult:
    """Mirror promotion codes and their coupons (see the module docstring). A fixed number
    of statements per call. `snapshot`: the rows come from a sync page, read maybe minutes
    before a webhook or a push mirrored a deactivation; such a page never switches a code
    back on (a real reactivation at Stripe arrives by its webhook, which re-reads the code
    fresh)."""
    result = UpsertResult()
    good: dict[str, StripePromotionCode] = {}
    for row in rows:
        error = promotion_code_problem(row)
        if error:
            result.refuse(row.id, error)
        else:
            good[row.id] = row
    if not good:
        return result
    rows = list(good.values())
    with transaction.atomic():
        linked = _linked_coupons(rows)
        existing = {
            p.stripe_id: p
            for p in PromotionCode.objects.select_for_update()
            .filter(stripe_id__in=good)
            .order_by("pk")
        }
        to_write = []
        for row in rows:
            current = existing.get(row.id)
            coupon = row.coupon
            own_currency = coupon.currency if coupon.currency in coupon.amounts_off else ""
            minimum_currency = sorted(row.minimums)[0] if row.minimums else ""
            values = {
                "code": row.code[:500],
                "coupon_id": linked.get(row.id) or (current.coupon_id if current else None),
                "active": row.active and not (snapshot and current and not current.active),
                "times_redeemed": row.times_redeemed,
                "max_redemptions": row.max_redemptions,
                "expires_at": row.expires_at,
                "minimum_amount": row.minimums.get(minimum_currency),
                "minimum_amount_currency": minimum_currency,
                "minimum_amount_options": {
                    c: {"minimum_amount": a} for c, a in row.minimums.items()
                },
                "customer_stripe_id": row.customer_id[:255],
                "stripe_coupon_id": coupon.id[:255],
                "coupon_name": coupon.name[:255],
                "coupon_percent_off": coupon.percent_off,
                "coupon_amount_off": coupon.amounts_off.get(own_currency),
                "coupon_currency": own_currency,
                "coupon_currency_options": {
                    c: {"amount_off": a} for c, a in coupon.amounts_off.items()
                },
                "coupon_max_redemptions": coupon.max_redemptions,
                "coupon_redeem_by": coupon.redeem_by,
                "coupon_times_redeemed": coupon.times_redeemed,
                "coupon_valid": coupon.valid and not coupon.deleted,
                "metadata": row.metadata,
                "livemode": row.livemode,
                "created": row.created or (current.created if current else None),
            }
            if values["created"] is None:
                result.refuse(row.id, ERR_BAD_PROMOTION_CODE_ID.format(id=row.id))
                continue
            if current is None:
                result.created += 1
            elif any(getattr(current, k) != v for k, v in values.items()):
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            to_write.append(PromotionCode(stripe_id=row.id, **values))
        if to_write:
            PromotionCode.objects.bulk_create(
                to_write,
                update_conflicts=True,
                unique_fields=["stripe_id"],
                update_fields=[*_FIELDS, "updated_at"],
            )
        switched_off = [
            pk
            for pk in Coupon.objects.filter(
                stripe_promotion_code_id__in=[r.id for r in rows if not r.active], active=True
            ).values_list("pk", flat=True)
        ]
        if switched_off:
            coupon_deactivate_from_stripe(coupon_pks=switched_off)
    return result


def coupon_deactivate_from_stripe(*, coupon_pks: list[int]) -> list[Coupon]:
    """The mirror saw these coupons' current promotion codes inactive at Stripe (switched
    off in its dashboard): deactivate ours too, audited with no actor. Under each row's lock;
    a coupon already inactive, or with a push of ours under way (not `synced`), is left
    alone."""
    changed = []
    with transaction.atomic():
        for locked in Coupon.objects.select_for_update().filter(pk__in=coupon_pks).order_by("pk"):
            if not locked.active or locked.stripe_state != Coupon.StripeState.SYNCED:
                continue
            locked.active = False
            locked.deactivated_at = timezone.now()
            locked.deactivation_reason = DEACTIVATED_IN_STRIPE_REASON
            locked._change_reason = "Stripe"
            locked.save()
            audit_record(
                acting_user=None,
                action=AUDIT_DEACTIVATED_IN_STRIPE,
                target=locked,
                reason=DEACTIVATED_IN_STRIPE_REASON,
                details={"promotion_code": locked.stripe_promotion_code_id},
            )
            changed.append(locked)
    return changed


# --- webhooks --------------------------------------------------------------------------------


def _event_object(event: WebhookEvent) -> dict:
    return (event.payload.get("data") or {}).get("object") or {}


def _refuse_rejected(result: UpsertResult) -> None:
    for object_id, error in sorted(result.invalid.items()):
        raise InvalidStripeObject(object_id, error)


def handle_promotion_code(event: WebhookEvent) -> None:
    """promotion_code.created / updated: re-read the code (with its coupon) and land it."""
    code_id = str(_event_object(event).get("id") or "")
    if not code_id.startswith("promo_"):
        raise InvalidStripeObject(code_id, ERR_BAD_PROMOTION_CODE_ID.format(id=code_id[:80]))
    code = gateway.stripe_promotion_code_retrieve(promotion_code_id=code_id)
    _refuse_rejected(upsert_promotion_codes([code]))


def handle_coupon(event: WebhookEvent) -> None:
    """coupon.created / updated / deleted: re-read the coupon's promotion codes (which embed
    it) and land them; a deleted coupon's codes come back with it invalid. A coupon without
    codes has nothing of ours to mirror."""
    coupon_id = str(_event_object(event).get("id") or "")
    if not coupon_id:
        raise InvalidStripeObject(coupon_id, "coupon event without an id")
    codes = gateway.stripe_promotion_code_list(coupon_id=coupon_id)
    if event.type == "coupon.deleted":
        # Stripe may still embed the coupon as it was: what the event says wins.
        codes = [_with_deleted_coupon(code) for code in codes]
    _refuse_rejected(upsert_promotion_codes(codes))


def _with_deleted_coupon(code: StripePromotionCode) -> StripePromotionCode:
    from dataclasses import replace

    return replace(code, coupon=replace(code.coupon, valid=False, deleted=True))


COUPON_HANDLERS = {
    **dict.fromkeys(["coupon.created", "coupon.updated", "coupon.deleted"], handle_coupon),
    **dict.fromkeys(["promotion_code.created", "promotion_code.updated"], handle_promotion_code),
}
