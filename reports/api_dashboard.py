"""The dashboard's figures, the metrics per currency and the daily rollups through the API.

- /dashboard/: the admin dashboard's cards (reports/dashboard.py builds them; each card's
  `figures` are the numbers its text is written from) and today's revenue per currency;
- /metrics/: the rollups of a window summed per currency (reports.selectors.rollup_totals,
  the analytics page's totals) with the rates and their targets;
- /rollups/: the daily rows themselves, one per day and currency.

Every figure comes from the module that computes it for the admin: nothing is derived here.
Amounts are never summed across currencies.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.urls import path
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from backoffice.api.errors import ApiError
from backoffice.api.fields import MoneyField
from backoffice.api.registry import api_router, api_urlpatterns
from payments.api_transactions import CurrencyFilter

from . import dashboard
from .models import DailyRollup
from .selectors import rollup_totals

VIEW_ROLLUPS = "reports.view_dailyrollup"
MAX_METRICS_DAYS = 366
ERR_BAD_DATE = "Use a date as YYYY-MM-DD."
ERR_BAD_DAYS = "days must be a whole number from 1 to {max}."
ERR_RANGE = "`start` must not be after `end`, and the range at most {max} days."


def _rate(value) -> float | None:
    return None if value is None else float(value)


# --- Dashboard -------------------------------------------------------------------------------


class CardSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Stable name of the card (success_rate, webhooks …).")
    title = serializers.CharField()
    value = serializers.CharField(help_text="As the dashboard shows it.")
    tone = serializers.ChoiceField(
        choices=[dashboard.OK, dashboard.WARNING, dashboard.DANGER, dashboard.INFO],
        help_text="success: on target; warning / danger: needs a look.",
    )
    target = serializers.CharField(help_text="What the value is measured against, in words.")
    detail = serializers.CharField()
    figures = serializers.DictField(
        help_text="The numbers the card is written from (counts, percentages, hours, "
        "thresholds, ISO 8601 times); keys per card."
    )


class TodaySerializer(serializers.Serializer):
    currency = serializers.CharField()
    transactions = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    revenue = MoneyField(amount_attr="revenue", help_text="Captured today.")


class DashboardSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    today = serializers.DateField(help_text="The site's date (settings.TIME_ZONE).")
    today_by_currency = TodaySerializer(many=True)
    cards = CardSerializer(many=True)
    alerts = serializers.ListField(
        child=serializers.CharField(), help_text="Keys of the cards in warning or danger."
    )
    rollups_computed_at = serializers.DateTimeField(allow_null=True)


class DashboardView(APIView):
    """The dashboard's cards as data: one object, not a list."""

    read_permissions = [dashboard.DASHBOARD_PERMISSION]

    @extend_schema(
        summary="Dashboard KPIs",
        description="The admin dashboard's cards with their targets and figures, and today's "
        "revenue per currency.",
        responses={200: DashboardSerializer},
    )
    def get(self, request):
        context = dashboard.dashboard_context()
        return Response(
            DashboardSerializer(
                {
                    "generated_at": timezone.now(),
                    "today": context["today"],
                    "today_by_currency": context["today_rows"],
                    "cards": context["cards"],
                    "alerts": [card.key for card in context["alerts"]],
                    "rollups_computed_at": context["rollups_computed_at"],
                }
            ).data
        )


# --- Metrics ---------------------------------------------------------------------------------


class TargetsSerializer(serializers.Serializer):
    success_rate = serializers.FloatField(help_text="Percent; the success rate should reach it.")
    failed_share_alert = serializers.FloatField(help_text="Percent of attempts; alert above.")
    refund_hours = serializers.FloatField(help_text="Median request-to-refund time, hours.")
    pending_refunds_alert = serializers.IntegerField()


class CurrencyMetricsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    attempted = serializers.IntegerField(source="attempted_count")
    succeeded = serializers.IntegerField(source="succeeded_count")
    failed = serializers.IntegerField(source="failed_count")
    canceled = serializers.IntegerField(source="canceled_count")
    success_rate = serializers.SerializerMethodField(
        help_text="Percent: succeeded / (succeeded + failed); null without attempts."
    )
    conversion_rate = serializers.SerializerMethodField(help_text="Percent: succeeded / attempted.")
    meets_success_target = serializers.SerializerMethodField()
    gross = MoneyField(amount_attr="gross_amount")
    stripe_fees = MoneyField(amount_attr="stripe_fee_amount")
    platform_fees = MoneyField(amount_attr="platform_fee_amount")
    net = MoneyField(amount_attr="net_amount")
    refunds = serializers.IntegerField(source="refunded_count")
    refunded = MoneyField(amount_attr="refunded_amount")
    average = MoneyField(amount_attr="average_amount", allow_null=True)
    disputes_opened = serializers.IntegerField()

    def get_success_rate(self, obj) -> float | None:
        return _rate(obj.success_rate)

    def get_conversion_rate(self, obj) -> float | None:
        return _rate(obj.conversion_rate)

    def get_meets_success_target(self, obj) -> bool | None:
        rate = obj.success_rate
        return None if rate is None else rate >= dashboard.success_target()


class MetricsSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    targets = TargetsSerializer()
    currencies = CurrencyMetricsSerializer(many=True)


def _parse_day(request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError("invalid", ERR_BAD_DATE, 400, fields={name: [ERR_BAD_DATE]}) from None


def metrics_window(request) -> tuple[date, date]:
    """[start, end] from ?start&end (dates), else the last ?days (default 7) ending today."""
    end = _parse_day(request, "end") or timezone.localdate()
    start = _parse_day(request, "start")
    if start is None:
        raw = request.query_params.get("days", "7")
        message = ERR_BAD_DAYS.format(max=MAX_METRICS_DAYS)
        try:
            days = int(raw)
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_METRICS_DAYS:
            raise ApiError("invalid", message, 400, fields={"days": [message]})
        start = end - timedelta(days=days - 1)
    if start > end or (end - start).days >= MAX_METRICS_DAYS:
        message = ERR_RANGE.format(max=MAX_METRICS_DAYS)
        raise ApiError("invalid", message, 400, fields={"start": [message]})
    return start, end


class MetricsView(APIView):
    """Per-currency totals of a window of days, from the rollups: one object."""

    read_permissions = [VIEW_ROLLUPS]

    @extend_schema(
        summary="Metrics per currency",
        description="The daily rollups of [start, end] summed per currency (the analytics "
        "page's totals), with the rates and the targets the dashboard measures them against. "
        "Default: the last 7 days up to today.",
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE, description="First day, inclusive."),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Last day (default today)."),
            OpenApiParameter("days", OpenApiTypes.INT, description="Without start: days to end."),
        ],
        responses={200: MetricsSerializer},
    )
    def get(self, request):
        start, end = metrics_window(request)
        totals = rollup_totals(queryset=DailyRollup.objects.filter(day__gte=start, day__lte=end))
        return Response(
            MetricsSerializer(
                {
                    "start": start,
                    "end": end,
                    "targets": {
                        "success_rate": float(dashboard.success_target()),
                        "failed_share_alert": float(settings.REPORTS_FAILED_SHARE_ALERT),
                        "refund_hours": float(settings.REPORTS_REFUND_HOURS_TARGET),
                        "pending_refunds_alert": int(settings.REPORTS_PENDING_REFUNDS_ALERT),
                    },
                    "currencies": totals,
                }
            ).data
        )


# --- Rollups ---------------------------------------------------------------------------------


class DailyRollupSerializer(serializers.ModelSerializer):
    gross = MoneyField(amount_attr="gross_amount")
    stripe_fees = MoneyField(amount_attr="stripe_fee_amount")
    platform_fees = MoneyField(amount_attr="platform_fee_amount")
    net = MoneyField(amount_attr="net_amount")
    refunded = MoneyField(amount_attr="refunded_amount")
    average = MoneyField(amount_attr="average_amount", allow_null=True)
    success_rate = serializers.SerializerMethodField(help_text="Percent; null: no attempts.")
    conversion_rate = serializers.SerializerMethodField(help_text="Percent.")
    median_refund_hours = serializers.SerializerMethodField()

    class Meta:
        model = DailyRollup
        fields = [
            "id",
            "day",
            "currency",
            "attempted_count",
            "succeeded_count",
            "failed_count",
            "canceled_count",
            "success_rate",
            "conversion_rate",
            "gross",
            "stripe_fees",
            "platform_fees",
            "net",
            "average",
            "refunded_count",
            "refunded",
            "disputes_opened",
            "refund_requests_processed",
            "median_refund_hours",
            "payment_methods",
            "failure_reasons",
            "computed_at",
        ]
        read_only_fields = fields

    def get_success_rate(self, obj) -> float | None:
        return _rate(obj.success_rate)

    def get_conversion_rate(self, obj) -> float | None:
        return _rate(obj.conversion_rate)

    def get_median_refund_hours(self, obj) -> float | None:
        return _rate(obj.median_refund_hours)


class DailyRollupFilter(filters.FilterSet):
    currency = CurrencyFilter()
    day_from = filters.DateFilter(field_name="day", lookup_expr="gte")
    day_to = filters.DateFilter(field_name="day", lookup_expr="lte")

    class Meta:
        model = DailyRollup
        fields = []


@extend_schema_view(
    list=extend_schema(summary="Daily rollups", description="Newest day first."),
    retrieve=extend_schema(summary="One day of one currency"),
)
class DailyRollupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DailyRollupSerializer
    filterset_class = DailyRollupFilter
    # Keyset order: non-null columns ending in the primary key.
    queryset = DailyRollup.objects.order_by("-day", "currency", "id")


api_urlpatterns.append(path("dashboard/", DashboardView.as_view(), name="dashboard"))
api_urlpatterns.append(path("metrics/", MetricsView.as_view(), name="metrics"))
api_router.register("rollups", DailyRollupViewSet, basename="rollup")
