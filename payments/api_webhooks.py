"""Stripe's webhooks and the sync through the API, for monitoring: webhook health (the
dashboard's figures), the event log with its filters, an event's payload, replay; the sync
runs.

Replay is payments.webhooks.webhook_event_replay, as the admin's button: the event is reset
and queued again (handlers are idempotent); an event a worker is processing right now is
refused with 409, as the admin says "try again in a moment".
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from backoffice.api.errors import ApiError
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router, api_urlpatterns
from backoffice.audit import client_info_from_request
from backoffice.redaction import mask_personal_data

from .admin.webhook import MESSAGE_BUSY, MESSAGE_REPLAYED, PAYLOAD_PERMISSION, REPLAY_PERMISSION
from .models import SyncRun, WebhookEvent
from .selectors import HEALTH_WINDOW, webhook_failed_count, webhook_health
from .webhooks import webhook_event_replay

VIEW_WEBHOOKS = "payments.view_webhookevent"


class WebhookStatusSerializer(serializers.Serializer):
    healthy = serializers.BooleanField(help_text="Nothing failed in the window.")
    window_hours = serializers.IntegerField()
    failed_24h = serializers.IntegerField(help_text="Events that failed for good in the window.")
    failed_total = serializers.IntegerField(help_text="Failed events waiting for staff, any age.")
    retrying = serializers.IntegerField(help_text="Events waiting for a retry, any age.")
    avg_processing_ms = serializers.IntegerField(
        allow_null=True, help_text="Handled events finished in the window; null without any."
    )
    last_received_at = serializers.DateTimeField(allow_null=True)
    checked_at = serializers.DateTimeField()


class WebhookStatusView(APIView):
    """The dashboard's webhook card as figures: one object, not a list."""

    read_permissions = [VIEW_WEBHOOKS]

    @extend_schema(summary="Webhook health", responses={200: WebhookStatusSerializer})
    def get(self, request):
        now = timezone.now()
        health = webhook_health(now=now)
        last = (
            WebhookEvent.objects.order_by("-received_at", "-id")
            .values_list("received_at", flat=True)
            .first()
        )
        return Response(
            WebhookStatusSerializer(
                {
                    **health,
                    "healthy": health["failed_24h"] == 0,
                    "window_hours": int(HEALTH_WINDOW.total_seconds() // 3600),
                    "failed_total": webhook_failed_count(),
                    "last_received_at": last,
                    "checked_at": now,
                }
            ).data
        )


class WebhookEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEvent
        fields = [
            "id",
            "stripe_id",
            "type",
            "status",
            "object_id",
            "livemode",
            "api_version",
            "created",
            "received_at",
            "attempts",
            "processing_ms",
            "processed_at",
            "next_attempt_at",
            "error",
        ]
        read_only_fields = fields


class WebhookEventDetailSerializer(WebhookEventSerializer):
    payload = serializers.JSONField(
        read_only=True,
        help_text="As Stripe signed it; with names, e-mails, phones, addresses and IPs masked "
        "unless the caller has payments.view_webhook_payload (see payload_masked).",
    )
    payload_masked = serializers.SerializerMethodField(
        help_text="True when personal data in `payload` is masked for this caller."
    )

    class Meta(WebhookEventSerializer.Meta):
        fields = [*WebhookEventSerializer.Meta.fields, "payload", "payload_masked"]
        read_only_fields = fields

    def _masks(self) -> bool:
        request = self.context.get("request")
        return not (request and request.user.has_perm(PAYLOAD_PERMISSION))

    def get_payload_masked(self, obj) -> bool:
        return self._masks()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self._masks():
            data["payload"] = mask_personal_data(data["payload"])
        return data


class ReplayResultSerializer(serializers.Serializer):
    replayed = serializers.BooleanField()
    message = serializers.CharField()
    event = WebhookEventSerializer()


class WebhookEventFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=WebhookEvent.Status.choices, distinct=False)
    type = filters.CharFilter()
    object_id = filters.CharFilter(help_text="The Stripe object the event is about (pi_, re_ …).")
    livemode = filters.BooleanFilter()
    received_after = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = WebhookEvent
        fields = []


@extend_schema_view(
    list=extend_schema(summary="Webhook events", description="Newest first."),
    retrieve=extend_schema(summary="A webhook event, with its payload"),
)
class WebhookEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    filterset_class = WebhookEventFilter
    write_permissions = {"replay": [REPLAY_PERMISSION]}

    def get_queryset(self):
        queryset = WebhookEvent.objects.order_by("-received_at", "-id")
        if self.action == "list":
            # Lists never show the payload: don't read (possibly large) JSON per row.
            queryset = queryset.defer("payload")
        return queryset

    queryset = WebhookEvent.objects.all()

    def get_serializer_class(self):
        return WebhookEventDetailSerializer if self.action == "retrieve" else WebhookEventSerializer

    @extend_schema(
        summary="Replay an event",
        description="Reset and queue the event's handler again (handlers are idempotent). "
        "409 while a worker is processing it.",
        request=None,
        responses={200: ReplayResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def replay(self, request, pk=None):
        event = get_object_or_404(WebhookEvent, pk=pk)
        replayed = webhook_event_replay(
            event=event, acting_user=request.user, client=client_info_from_request(request)
        )
        if not replayed:
            raise ApiError("conflict", MESSAGE_BUSY.format(count=1), 409)
        event.refresh_from_db()
        return Response(
            ReplayResultSerializer(
                {"replayed": True, "message": MESSAGE_REPLAYED.format(count=1), "event": event}
            ).data
        )


class SyncRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncRun
        fields = [
            "id",
            "status",
            "mode",
            "trigger",
            "since",
            "started_at",
            "finished_at",
            "duration_ms",
            "counts",
            "objects_changed",
            "api_calls",
            "api_retries",
            "pages",
            "outcomes",
            "error",
        ]
        read_only_fields = fields


class SyncRunFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=SyncRun.Status.choices, distinct=False)
    mode = filters.ChoiceFilter(choices=SyncRun.Mode.choices)
    trigger = filters.ChoiceFilter(choices=SyncRun.Trigger.choices)
    started_after = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = SyncRun
        fields = []


@extend_schema_view(
    list=extend_schema(summary="Stripe sync runs", description="Newest first."),
    retrieve=extend_schema(summary="A sync run"),
)
class SyncRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SyncRunSerializer
    filterset_class = SyncRunFilter
    queryset = SyncRun.objects.order_by("-started_at", "-id")


api_urlpatterns.append(path("webhook-status/", WebhookStatusView.as_view(), name="webhook-status"))
api_router.register("webhook-events", WebhookEventViewSet, basename="webhook-event")
api_router.register("sync-runs", SyncRunViewSet, basename="sync-run")
