"""The audit trail (backoffice.AdminAction) through the API: read-only, filterable, newest
first. Lives in payments for the reason payments/admin/audit_trail.py does: the amount goes
out through the money formatter, which backoffice does not import."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from backoffice.admin import AdminActionAdmin
from backoffice.api.fields import MoneyField
from backoffice.api.registry import api_router
from backoffice.models import AdminAction

from .api_filters import admin_search_filter
from .api_transactions import CurrencyFilter


class AdminActionSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    amount = MoneyField(allow_null=True, help_text="Null when the action moved no money.")

    class Meta:
        model = AdminAction
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "amount",
            "reason",
            "result",
            "ip_address",
            "user_agent",
            "details",
        ]
        read_only_fields = fields

    def get_actor(self, obj) -> str | None:
        """The staff username; null for a system job."""
        return obj.actor.get_username() if obj.actor else None


class AdminActionFilter(filters.FilterSet):
    action = filters.CharFilter(help_text="Exact action name, e.g. refund_request.approve.")
    action_prefix = filters.CharFilter(
        field_name="action", lookup_expr="startswith", help_text="e.g. refund_request."
    )
    result = filters.ChoiceFilter(choices=AdminAction.Result.choices)
    actor = filters.CharFilter(field_name="actor__username", help_text="A staff username.")
    target_type = filters.CharFilter(help_text="app_label.model, e.g. refunds.refundrequest.")
    target_id = filters.CharFilter()
    currency = CurrencyFilter()
    q = admin_search_filter(AdminActionAdmin.search_spec)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AdminAction
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="Audit log",
        description="Every staff action, newest first; read-only. `q` searches as the admin's "
        "audit trail (a target's number or Stripe id, an action, a username).",
    ),
    retrieve=extend_schema(summary="An audit row"),
)
class AdminActionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AdminActionSerializer
    filterset_class = AdminActionFilter
    queryset = AdminAction.objects.select_related("actor").order_by("-created_at", "-id")


api_router.register("audit-log", AdminActionViewSet, basename="audit-log")
