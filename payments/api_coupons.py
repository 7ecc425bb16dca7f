"""Coupons through the API: the booking system's quote, the coupons with their usage and
statistics, and their redemptions.

POST /api/v1/coupons/quote/ asks payments.coupon_rules.coupon_quote, the function the admin
and the redemption recorder ask: does a code apply to this order, and what does it take off.
A "no" is an answer, not an error: 200 with `applies: false` and one refusal per rule (a
stable `rule` name and the words to show). A quote reserves nothing (two quotes may both get
the last redemption; the payment that comes second is recorded and flagged). It changes
nothing either, so whoever may read coupons may ask it, read-only tokens included. The
checkout puts the code and the quoted discount in the payment's metadata (`coupon_code`,
`coupon_discount`: the metadata contract), and the payment upsert records the redemption.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.fields import MoneyField, MoneySerializer, money
from backoffice.api.permissions import IsActiveStaff
from backoffice.api.registry import api_router

from .coupon_rules import coupon_quote
from .coupon_stats import (
    STATUS_LABELS,
    coupon_statistics,
    coupon_status,
    coupons_with_usage,
)
from .models import Coupon, CouponCurrency, CouponRedemption, Customer, Payment
from .money import SUPPORTED_CURRENCIES

PERM_VIEW = "payments.view_coupon"
ERR_UNKNOWN_CURRENCY = "Unknown currency {currency!r}: a lower-case ISO 4217 code such as usd."
ERR_AMOUNT = "The order amount in minor units: a whole number above zero."
MAX_AMOUNT = 10**12


class CouponCurrencySerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount_off = MoneyField(
        amount_attr="amount_off", allow_null=True, help_text="Fixed coupons; null otherwise."
    )
    max_discount = MoneyField(
        amount_attr="max_discount", allow_null=True, help_text="Percentage coupons' cap, or null."
    )
    minimum_amount = MoneyField(amount_attr="minimum_amount")


class CouponSerializer(serializers.ModelSerializer):
    currencies = CouponCurrencySerializer(many=True, read_only=True)
    status = serializers.SerializerMethodField(
        help_text="Where it stands for a new order now: " + ", ".join(STATUS_LABELS) + "."
    )
    redemptions = serializers.IntegerField(source="used", read_only=True)
    flagged_redemptions = serializers.IntegerField(source="flagged_uses", read_only=True)

    class Meta:
        model = Coupon
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "percent_off_bps",
            "currencies",
            "max_redemptions",
            "max_redemptions_per_customer",
            "product_kinds",
            "product_ids",
            "valid_from",
            "valid_until",
            "active",
            "status",
            "redemptions",
            "flagged_redemptions",
            "terms_version",
            "stripe_state",
            "stripe_coupon_id",
            "stripe_promotion_code_id",
            "created_at",
        ]
        read_only_fields = fields

    def get_status(self, coupon) -> str:
        return coupon_status(coupon, used=coupon.used)


class CouponStatisticsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    redemptions = serializers.IntegerField()
    flagged = serializers.IntegerField()
    customers = serializers.IntegerField()
    discount = serializers.SerializerMethodField(help_text="The redemptions' discounts.")
    revenue = serializers.SerializerMethodField(
        help_text="The redeemed payments' amounts net of refunds (after the discount)."
    )
    order_value = serializers.SerializerMethodField(help_text="The orders before the discount.")
    attempts = serializers.IntegerField(help_text="Payments that carried the code, any status.")
    captured = serializers.IntegerField(help_text="Of those, the captured ones.")
    conversion = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        allow_null=True,
        help_text="captured / attempts (null when no payment carried the code).",
    )

    def get_discount(self, row) -> MoneySerializer:
        return money(row.discount, row.currency)

    def get_revenue(self, row) -> MoneySerializer:
        return money(row.revenue, row.currency)

    def get_order_value(self, row) -> MoneySerializer:
        return money(row.order_value, row.currency)


class CouponStatisticsResponseSerializer(serializers.Serializer):
    coupon = serializers.IntegerField()
    code = serializers.CharField()
    currencies = CouponStatisticsSerializer(many=True, help_text="One row per currency.")


class QuoteRequestSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64)
    amount = serializers.IntegerField(
        min_value=1,
        max_value=MAX_AMOUNT,
        help_text="The order before any discount, in minor units of `currency`.",
        error_messages={"min_value": ERR_AMOUNT, "invalid": ERR_AMOUNT},
    )
    currency = serializers.CharField(max_length=3, help_text="Lower-case ISO 4217 code.")
    product_kind = serializers.ChoiceField(
        choices=Payment.ProductKind.choices, required=False, allow_blank=True, default=""
    )
    product_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    customer = serializers.CharField(
        max_length=254,
        required=False,
        allow_blank=True,
        default="",
        help_text="The buyer: a Stripe customer id (cus_...) or an e-mail address. Needed for "
        "coupons limited per customer; a buyer we have never seen has used nothing.",
    )

    def validate_currency(self, value: str) -> str:
        value = value.lower()
        if value not in SUPPORTED_CURRENCIES:
            raise serializers.ValidationError(ERR_UNKNOWN_CURRENCY.format(currency=value))
        return value


class RefusalSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="Stable name of the rule (payments/coupon_rules.py).")
    message = serializers.CharField()


class QuoteSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The code as we keep it (upper-case).")
    coupon = serializers.IntegerField(allow_null=True, help_text="The coupon's id, if any.")
    applies = serializers.BooleanField()
    amount = MoneySerializer(help_text="The order before the discount.")
    discount = MoneySerializer(help_text="What the coupon takes off (0 when it does not apply).")
    amount_after_discount = MoneySerializer(help_text="What the customer pays.")
    refusals = RefusalSerializer(many=True)
    metadata = serializers.DictField(
        child=serializers.CharField(),
        help_text="What the checkout puts in the PaymentIntent's metadata when it applies.",
    )


class CouponFilter(filters.FilterSet):
    active = filters.BooleanFilter()
    code = filters.CharFilter(method="filter_code")
    kind = filters.ChoiceFilter(choices=Coupon.Kind.choices)

    class Meta:
        model = Coupon
        fields = []

    def filter_code(self, queryset, name, value):
        return queryset.filter(code=(value or "").strip().upper())


class QuotePermission(IsActiveStaff):
    """A quote is a read: whoever may view coupons, read-only tokens included."""

    def has_permission(self, request, view):
        return super().has_permission(request, view) and request.user.has_perm(PERM_VIEW)


def _customer(reference: str) -> tuple[Customer | None, bool]:
    """(the buyer's row, whether a buyer was named at all)."""
    reference = reference.strip()
    if not reference:
        return None, False
    if reference.startswith("cus_"):
        return Customer.objects.filter(stripe_id=reference).first(), True
    return Customer.objects.filter(email=reference.lower()).order_by("pk").first(), True


@extend_schema_view(
    list=extend_schema(summary="Coupons", description="Newest first, with their usage."),
    retrieve=extend_schema(summary="A coupon"),
)
class CouponViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CouponSerializer
    filterset_class = CouponFilter
    queryset = coupons_with_usage(Coupon.objects.order_by("-created_at", "-id")).prefetch_related(
        Prefetch("currencies", queryset=CouponCurrency.objects.order_by("currency"))
    )
    read_permissions = [PERM_VIEW]

    def get_permissions(self):
        if getattr(self, "action", None) == "quote":
            return [QuotePermission()]
        return super().get_permissions()

    @extend_schema(
        summary="A coupon's statistics per currency",
        description="Redemptions, discount given, revenue and conversion, one row per "
        "currency (see payments/coupon_stats.py for each definition).",
        responses={200: CouponStatisticsResponseSerializer},
    )
    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        coupon = self.get_object()
        return Response(
            CouponStatisticsResponseSerializer(
                {
                    "coupon": coupon.pk,
                    "code": coupon.code,
                    "currencies": coupon_statistics(coupon=coupon),
                }
            ).data
        )

    @extend_schema(
        summary="Quote a coupon for an order",
        description="Does the code apply to this order, and what does it take off? 200 either "
        "way; `refusals` names every rule that refuses. Reserves nothing.",
        request=QuoteRequestSerializer,
        responses={200: QuoteSerializer},
    )
    @action(detail=False, methods=["post"])
    def quote(self, request):
        body = QuoteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        customer, named = _customer(data["customer"])
        decision = coupon_quote(
            code=data["code"],
            amount=data["amount"],
            currency=data["currency"],
            product_kind=data["product_kind"],
            product_id=data["product_id"],
            customer=customer,
            customer_known=named,
        )
        currency = decision.order.currency
        metadata = (
            {"coupon_code": decision.code, "coupon_discount": str(decision.discount)}
            if decision.applies
            else {}
        )
        return Response(
            QuoteSerializer(
                {
                    "code": decision.code,
                    "coupon": decision.coupon.pk if decision.coupon else None,
                    "applies": decision.applies,
                    "amount": money(decision.order.amount, currency),
                    "discount": money(decision.discount, currency),
                    "amount_after_discount": money(decision.amount_after_discount, currency),
                    "refusals": [{"rule": r.rule, "message": r.message} for r in decision.refusals],
                    "metadata": metadata,
                }
            ).data
        )


class CouponRedemptionSerializer(serializers.ModelSerializer):
    payment = serializers.CharField(source="payment.stripe_payment_intent_id", read_only=True)
    customer = serializers.CharField(
        source="customer.stripe_id",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="The customer's Stripe id (null: the payment had none).",
    )
    discount = MoneyField(amount_attr="discount_amount")
    order = MoneyField(amount_attr="order_amount")

    class Meta:
        model = CouponRedemption
        fields = [
            "id",
            "coupon",
            "code",
            "payment",
            "customer",
            "currency",
            "discount",
            "order",
            "discount_source",
            "terms_version",
            "redeemed_at",
            "flagged",
            "flags",
        ]
        read_only_fields = fields


class CouponRedemptionFilter(filters.FilterSet):
    coupon = filters.NumberFilter(field_name="coupon_id")
    flagged = filters.BooleanFilter()
    currency = filters.CharFilter(method="filter_currency")

    class Meta:
        model = CouponRedemption
        fields = []

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=(value or "").lower())


@extend_schema_view(
    list=extend_schema(summary="Coupon redemptions", description="Newest first."),
    retrieve=extend_schema(summary="A coupon redemption"),
)
class CouponRedemptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = CouponRedemptionSerializer
    filterset_class = CouponRedemptionFilter
    queryset = CouponRedemption.objects.select_related("payment", "customer").order_by(
        "-redeemed_at", "-id"
    )


api_router.register("coupons", CouponViewSet, basename="coupon")
api_router.register("coupon-redemptions", CouponRedemptionViewSet, basename="coupon-redemption")
