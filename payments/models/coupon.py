"""Coupons: our discount terms, the Stripe objects they are pushed as, and their redemptions.

Ours (Coupon, CouponCurrency) is the truth the rules (payments/coupon_rules.py) read; Stripe
holds a copy of what it can express (a coupon and a promotion code per version of the
terms, payments/services/coupons.py), mirrored back into PromotionCode by the sync and the
webhooks (payments/coupon_mirror.py). A CouponRedemption is written once per payment that
used a code, by the payment upsert (payments/coupon_redemptions.py).

Money is minor units of the row's currency; a percentage is in basis points (1 bp = 0.01 %,
so 1250 = 12.5 %, 10000 = 100 %).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from .base import CurrencyField, MinorUnitsField, TimestampedModel

# Stripe's promotion code alphabet (letters, digits, dashes); we keep codes upper-case, and
# Stripe and our rules match them whatever their case.
CODE_MAX_LENGTH = 64
code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{2,63}$",
    "3 to 64 capital letters, digits and dashes, starting with a letter or digit.",
)
BASIS_POINTS_MAX = 10_000  # 100 %
# Stripe's coupon `name` is at most 40 characters.
NAME_MAX_LENGTH = 40


def normalize_code(code: str) -> str:
    """The one spelling of a code we store and compare: stripped, upper-case."""
    return (code or "").strip().upper()


class Coupon(TimestampedModel):
    """A discount code and its terms (ours). Terms that Stripe can express are pushed to it;
    changing them makes a new Stripe coupon and promotion code (`terms_version` + 1), because
    Stripe's coupons cannot be changed."""

    class Kind(models.TextChoices):
        PERCENTAGE = "percentage", "Percentage"
        FIXED = "fixed", "Fixed amount"

    class StripeState(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SYNCED = "synced", "In Stripe"
        FAILED = "failed", "Sending failed"

    code = models.CharField(max_length=CODE_MAX_LENGTH, unique=True, validators=[code_validator])
    name = models.CharField(max_length=NAME_MAX_LENGTH, help_text="Shown to customers by Stripe.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Percentage coupons only: the share taken off, in basis points (1250 = 12.5 %).
    percent_off_bps = models.PositiveIntegerField(
        "Percent off (basis points)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(BASIS_POINTS_MAX)],
    )
    # Limits: null = no limit.
    max_redemptions = models.PositiveIntegerField(
        "Total redemptions limit", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    max_redemptions_per_customer = models.PositiveIntegerField(
        "Redemptions per customer", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    # Targeting: [] = every kind / every product. Kinds are Payment.ProductKind values; ids
    # are the marketplace's product ids (the metadata contract's `product_id`).
    product_kinds = models.JSONField(default=list, blank=True)
    product_ids = models.JSONField(default=list, blank=True)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)

    active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="coupons_deactivated",
    )
    deactivation_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="coupons_created",
    )

    # --- Stripe ------------------------------------------------------------------------------
    # Each version of the Stripe-facing terms is one Stripe coupon (id `cpn-<pk>-v<n>`, ours)
    # and one promotion code; the previous version's code is deactivated first (Stripe allows
    # one active code per spelling).
    terms_version = models.PositiveIntegerField(default=1)
    stripe_coupon_id = models.CharField("Stripe coupon", max_length=255, blank=True)
    stripe_promotion_code_id = models.CharField("Stripe promotion code", max_length=255, blank=True)
    # The superseded version's promotion code, until Stripe confirms it is inactive.
    stripe_previous_promotion_code_id = models.CharField(max_length=255, blank=True)
    stripe_state = models.CharField(
        max_length=16, choices=StripeState.choices, default=StripeState.PENDING
    )
    stripe_error = models.TextField(blank=True)
    stripe_synced_at = models.DateTimeField(null=True, blank=True)
    # A push in flight holds this lease (payments/services/coupons.py): one pusher at a time.
    stripe_push_until = models.DateTimeField(null=True, blank=True)
    # Pushes Stripe refused outright (a 4xx: nothing was made). Part of the idempotency keys,
    # so the attempt after a refusal is a new request; a timeout keeps the same keys.
    stripe_refusals = models.PositiveIntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("deactivate_coupon", "Can deactivate coupons")]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="coupon_created_idx"),
            models.Index(fields=["active", "-created_at", "-id"], name="coupon_active_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="percentage") & Q(percent_off_bps__isnull=False))
                | (Q(kind="fixed") & Q(percent_off_bps__isnull=True)),
                name="coupon_percent_only_for_percentage",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gt=models.F("valid_from")),
                name="coupon_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args, **kwargs):
        self.code = normalize_code(self.code)
        super().save(*args, **kwargs)

    @property
    def stripe_coupon_key(self) -> str:
        """Our id for this version's Stripe coupon (Stripe lets us choose it): a second create
        after a lost answer finds it instead of making another."""
        return f"cpn-{self.pk}-v{self.terms_version}"


class CouponCurrency(models.Model):
    """A coupon's terms in one currency, in its minor units. A fixed coupon is offered only in
    the currencies it has a row for (with `amount_off`); a percentage coupon applies in every
    currency, and a row adds a cap (`max_discount`) and/or a minimum order there."""

    coupon = models.ForeignKey(Coupon, related_name="currencies", on_delete=models.CASCADE)
    currency = CurrencyField()
    amount_off = models.BigIntegerField(
        null=True, blank=True, help_text="Fixed coupons: minor units taken off."
    )
    max_discount = models.BigIntegerField(
        null=True, blank=True, help_text="Percentage coupons: the most taken off (minor units)."
    )
    minimum_amount = MinorUnitsField(help_text="The smallest order it applies to (minor units).")

    history = HistoricalRecords()

    class Meta:
        verbose_name = "coupon currency"
        verbose_name_plural = "coupon currencies"
        ordering = ["currency"]
        constraints = [
            models.UniqueConstraint(fields=["coupon", "currency"], name="coupon_currency_unique"),
            models.CheckConstraint(
                condition=(Q(amount_off__isnull=True) | Q(amount_off__gt=0))
                & (Q(max_discount__isnull=True) | Q(max_discount__gt=0))
                & Q(minimum_amount__gte=0),
                name="coupon_currency_amounts_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coupon_id}:{self.currency}"


class CouponRedemption(TimestampedModel):
    """One payment that used a coupon code, recorded once (unique payment) when the payment
    is captured, inside the payment upsert's transaction. A redemption the rules would have
    refused (a limit reached, expired, ...) is recorded all the same, with `flags`: the money
    has moved, so staff must see it, not lose it."""

    class DiscountSource(models.TextChoices):
        METADATA = "metadata", "Checkout (metadata)"
        COMPUTED = "computed", "Computed from our terms"
        UNKNOWN = "unknown", "Unknown"

    payment = models.OneToOneField(
        "payments.Payment", related_name="coupon_redemption", on_delete=models.PROTECT
    )
    # Null when the code names no coupon of ours (flagged).
    coupon = models.ForeignKey(
        Coupon, null=True, blank=True, related_name="redemptions", on_delete=models.PROTECT
    )
    code = models.CharField(max_length=CODE_MAX_LENGTH)
    customer = models.ForeignKey(
        "payments.Customer",
        null=True,
        blank=True,
        related_name="coupon_redemptions",
        on_delete=models.PROTECT,
    )
    currency = CurrencyField()
    discount_amount = MinorUnitsField(help_text="Minor units taken off the order.")
    order_amount = MinorUnitsField(help_text="The order before the discount (minor units).")
    discount_source = models.CharField(max_length=16, choices=DiscountSource.choices)
    terms_version = models.PositiveIntegerField(null=True, blank=True)
    redeemed_at = models.DateTimeField(help_text="When the payment was captured.")
    # [{"rule": "total_limit", "message": "..."}] from payments.coupon_rules; [] = clean.
    flags = models.JSONField(default=list, blank=True)
    flagged = models.BooleanField(default=False)

    class Meta:
        ordering = ["-redeemed_at", "-id"]
        permissions = [("export_couponredemption", "Can export coupon redemptions")]
        indexes = [
            models.Index(fields=["coupon", "-redeemed_at"], name="coupon_redemption_coupon_idx"),
            models.Index(fields=["coupon", "customer"], name="coupon_redemption_customer_idx"),
            models.Index(
                fields=["-redeemed_at"],
                name="coupon_redemption_flagged_idx",
                condition=Q(flagged=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(discount_amount__gte=0) & Q(order_amount__gte=0),
                name="coupon_redemption_amounts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} on {self.payment_id}"


class PromotionCode(TimestampedModel):
    """The mirror of a Stripe promotion code and its coupon, as Stripe last told us (written
    only by payments/coupon_mirror.py, from the sync and the webhooks alike). Linked to our
    coupon when it is one of ours (metadata `coupon_pk`)."""

    stripe_id = models.CharField(max_length=255, unique=True)
    code = models.CharField(max_length=500)
    coupon = models.ForeignKey(
        Coupon,
        null=True,
        blank=True,
        related_name="promotion_codes",
        on_delete=models.SET_NULL,
    )
    active = models.BooleanField(default=True)
    times_redeemed = models.PositiveIntegerField(default=0)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    minimum_amount = models.BigIntegerField(null=True, blank=True)
    minimum_amount_currency = models.CharField(max_length=3, blank=True)
    # {"eur": {"minimum_amount": 1800}}, as Stripe sends it.
    minimum_amount_options = models.JSONField(default=dict, blank=True)
    customer_stripe_id = models.CharField(max_length=255, blank=True)
    stripe_coupon_id = models.CharField(max_length=255)
    coupon_name = models.CharField(max_length=255, blank=True)
    coupon_percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    coupon_amount_off = models.BigIntegerField(null=True, blank=True)
    coupon_currency = models.CharField(max_length=3, blank=True)
    # {"eur": {"amount_off": 450}, ...}, as Stripe sends it.
    coupon_currency_options = models.JSONField(default=dict, blank=True)
    coupon_max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    coupon_redeem_by = models.DateTimeField(null=True, blank=True)
    coupon_times_redeemed = models.PositiveIntegerField(default=0)
    coupon_valid = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When Stripe created the promotion code.")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["coupon", "-created"], name="promotion_code_coupon_idx"),
            models.Index(fields=["stripe_coupon_id"], name="promotion_code_stripe_cpn_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.stripe_id})"
