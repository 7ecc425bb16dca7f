"""Transactions (payments) and customers in the API: /api/v1/transactions/, /customers/.

Reads only, through the same selectors as the admin's lists and pages: the changelist's
search (payment_search, customer_search), its amount range in major units per currency
(amount_major_range_q), the page's fee breakdown (ledger.payment_breakdown) and timeline
(payment_timeline), the customer summary (customer_summary). Lists are newest first,
(-created, -id), behind the payments' indexes, and cursor-paginated: one query per page at
any depth, no COUNT (backoffice/api/pagination.py).

Filters (query parameters; a bad value answers 400 naming it):
  status, method      any number of them (?status=failed&status=refunded)
  currency            three letters, any case
  created_after       ISO 8601 date or date-time, inclusive (>=)
  created_before      exclusive (<); a date means its midnight in UTC
  amount_min/max      major units (12.50), per row currency exponent, both inclusive
  customer            a customer's id
  livemode            true / false
  q                   the admin's search: a whole Stripe id (pi_, ch_, cus_, pm_, re_, dp_),
                      any case, or any part of the customer's name or e-mail
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets

from backoffice.api.fields import MoneyField, MoneySerializer, money
from backoffice.api.registry import api_router
from backoffice.changelist import MAX_SEARCH_LENGTH

from .api_filters import AmountRangeFilterMixin
from .ledger import payment_breakdown
from .models import Customer, Payment, PaymentMethodType
from .selectors import (
    customer_list_annotated,
    customer_search,
    customer_summary,
    payment_search,
    payment_timeline,
)

ERR_CURRENCY = "A currency is a three-letter ISO 4217 code, e.g. usd."

currency_validator = RegexValidator(r"^[A-Za-z]{3}$", ERR_CURRENCY)


# --- Serializers ------------------------------------------------------------------------------


class CustomerRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "stripe_id", "email", "name"]


class TransactionSerializer(serializers.ModelSerializer):
    """A payment as the payments list shows it."""

    method = serializers.ChoiceField(
        source="payment_method_type", choices=PaymentMethodType.choices
    )
    amount = MoneyField()
    amount_refunded = MoneyField(amount_attr="amount_refunded")
    stripe_fee = MoneyField(amount_attr="stripe_fee")
    platform_fee = MoneyField(amount_attr="platform_fee")
    net = MoneyField(amount_attr="net", help_text="To the instructor, after fees and refunds.")
    customer = CustomerRefSerializer(allow_null=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "stripe_payment_intent_id",
            "stripe_charge_id",
            "status",
            "stripe_status",
            "method",
            "currency",
            "amount",
            "amount_refunded",
            "stripe_fee",
            "platform_fee",
            "net",
            "customer",
            "instructor_id",
            "product_kind",
            "product_name",
            "description",
            "failure_code",
            "decline_code",
            "livemode",
            "created",
            "succeeded_at",
            "failed_at",
            "canceled_at",
        ]


class FeeBreakdownSerializer(serializers.Serializer):
    """payments.ledger.PaymentFigures: amount - refunded - stripe_fee - platform_fee -
    instructor_dispute_loss = net_to_instructor; platform_fee - platform_dispute_loss =
    net_to_platform. All zero for a payment that captured no money."""

    captured = serializers.BooleanField()
    amount = MoneyField()
    refunded = MoneyField(amount_attr="refunded")
    stripe_fee = MoneyField(amount_attr="stripe_fee")
    platform_fee_gross = MoneyField(amount_attr="platform_fee_gross")
    platform_fee_returned = MoneyField(amount_attr="platform_fee_returned")
    platform_fee = MoneyField(amount_attr="platform_fee")
    disputed_lost = MoneyField(amount_attr="disputed_lost")
    dispute_fees = MoneyField(amount_attr="dispute_fees")
    instructor_dispute_loss = MoneyField(amount_attr="instructor_dispute_loss")
    platform_dispute_loss = MoneyField(amount_attr="platform_dispute_loss")
    net_to_instructor = MoneyField(amount_attr="net_to_instructor")
    net_to_platform = MoneyField(amount_attr="net_to_platform")


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    title = serializers.CharField()
    detail = serializers.CharField()
    tone = serializers.ChoiceField(choices=["success", "info", "warning", "danger"])


class TransactionDetailSerializer(TransactionSerializer):
    """A payment as its page shows it: the list's fields, the fee breakdown and the timeline."""

    breakdown = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta(TransactionSerializer.Meta):
        fields = [
            *TransactionSerializer.Meta.fields,
            "payment_method_id",
            "failure_message",
            "product_id",
            "package_minutes",
            "coupon_code",
            "booking_id",
            "metadata_problems",
            "breakdown",
            "timeline",
        ]

    @extend_schema_field(FeeBreakdownSerializer)
    def get_breakdown(self, payment):
        return FeeBreakdownSerializer(payment_breakdown(payment=payment)).data

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, payment):
        return TimelineEntrySerializer(payment_timeline(payment=payment), many=True).data


class CustomerSerializer(serializers.ModelSerializer):
    """A customer as the customers list shows it."""

    payment_count = serializers.IntegerField()
    last_payment_at = serializers.DateTimeField(allow_null=True)
    blocked = serializers.BooleanField(source="is_blocked")
    erased_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the customer's personal data was erased (GDPR); email and name are "
        "then blank and a pseudonym.",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "stripe_id",
            "email",
            "name",
            "livemode",
            "created",
            "blocked",
            "blocked_at",
            "erased_at",
            "payment_count",
            "last_payment_at",
        ]


class CustomerDetailSerializer(CustomerSerializer):
    """A customer's page: the list's fields, the block reason and the summary."""

    spent = serializers.SerializerMethodField(
        help_text="Captured minus refunded, one entry per currency."
    )
    preferred_method = serializers.SerializerMethodField()

    class Meta(CustomerSerializer.Meta):
        fields = [*CustomerSerializer.Meta.fields, "block_reason", "spent", "preferred_method"]

    def _summary(self, customer):
        cached = getattr(customer, "_api_summary", None)
        if cached is None:
            cached = customer._api_summary = customer_summary(customer=customer)
        return cached

    @extend_schema_field(MoneySerializer(many=True))
    def get_spent(self, customer):
        return [money(entry.amount, entry.currency) for entry in self._summary(customer).spent]

    @extend_schema_field(serializers.CharField())
    def get_preferred_method(self, customer) -> str:
        return self._summary(customer).preferred_method


# --- Filters ----------------------------------------------------------------------------------


class CurrencyFilter(filters.CharFilter):
    """Three letters in any case; the rows stored with it (lower case)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validators", [currency_validator])
        kwargs.setdefault("help_text", "Three-letter ISO 4217 code, any case (usd).")
        super().__init__(**kwargs)

    def filter(self, queryset, value):
        return super().filter(queryset, value.lower() if value else value)


class SearchFilterMixin(filters.FilterSet):
    q = filters.CharFilter(
        method="filter_search", max_length=MAX_SEARCH_LENGTH, help_text="The admin's search."
    )
    search_function = None

    def filter_search(self, queryset, name, value):
        return type(self).search_function(queryset=queryset, term=value)


class TransactionFilter(SearchFilterMixin, AmountRangeFilterMixin, filters.FilterSet):
    """The payments changelist's filters and search (see the module docstring)."""

    # distinct=False: one column's values OR-ed need no DISTINCT (which would also stop the
    # keyset seek and the index's order).
    status = filters.MultipleChoiceFilter(choices=Payment.Status.choices, distinct=False)
    method = filters.MultipleChoiceFilter(
        field_name="payment_method_type", choices=PaymentMethodType.choices, distinct=False
    )
    currency = CurrencyFilter()
    created_after = filters.IsoDateTimeFilter(
        field_name="created", lookup_expr="gte", help_text="Inclusive; ISO 8601."
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created", lookup_expr="lt", help_text="Exclusive; ISO 8601."
    )
    customer = filters.NumberFilter(field_name="customer_id", help_text="A customer's id.")
    livemode = filters.BooleanFilter()

    search_function = staticmethod(payment_search)

    class Meta:
        model = Payment
        fields = []


class CustomerFilter(SearchFilterMixin, filters.FilterSet):
    blocked = filters.BooleanFilter(field_name="blocked_at", lookup_expr="isnull", exclude=True)
    livemode = filters.BooleanFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    search_function = staticmethod(customer_search)

    class Meta:
        model = Customer
        fields = []


# --- Views ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Transactions (payments), newest first",
        description=(
            "The payments list: filters as the admin's, cursor pagination (follow `next`). "
            "Needs payments.view_payment."
        ),
    ),
    retrieve=extend_schema(
        summary="A transaction with its fee breakdown and timeline",
        description="Needs payments.view_payment.",
    ),
)
class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Payment.objects.select_related("customer").order_by("-created", "-id")
    filterset_class = TransactionFilter

    def get_serializer_class(self):
        return TransactionDetailSerializer if self.action == "retrieve" else TransactionSerializer


@extend_schema_view(
    list=extend_schema(
        summary="Customers, newest first",
        description="Filters and search as the admin's customers list. Needs view_customer.",
    ),
    retrieve=extend_schema(
        summary="A customer with what they spent per currency",
        description="Needs payments.view_customer.",
    ),
)
class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = customer_list_annotated(queryset=Customer.objects.order_by("-created", "-id"))
    filterset_class = CustomerFilter

    def get_serializer_class(self):
        return CustomerDetailSerializer if self.action == "retrieve" else CustomerSerializer


api_router.register("transactions", TransactionViewSet, basename="transaction")
api_router.register("customers", CustomerViewSet, basename="customer")
