"""The Stripe webhook log: what Stripe told us, what we did with it, and a replay button."""

import json
import re

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display
from unfold.utils import display_for_label

from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin, SearchSpec
from backoffice.pagination import EstimatedCountPaginator
from backoffice.redaction import mask_personal_data
from payments import selectors
from payments.models import WebhookEvent
from payments.webhooks import webhook_event_replay

from .display import money

WEBHOOK_STATUS_COLOURS = {
    WebhookEvent.Status.RECEIVED: "info",
    WebhookEvent.Status.PROCESSING: "info",
    WebhookEvent.Status.PROCESSED: "success",
    WebhookEvent.Status.RETRYING: "warning",
    WebhookEvent.Status.FAILED: "danger",
    WebhookEvent.Status.IGNORED: "primary",
}

MESSAGE_REPLAYED = "Replay queued for {count} event(s)."
MESSAGE_BUSY = "{count} event(s) are being processed right now; try again in a moment."
REPLAY_PERMISSION = "payments.replay_webhookevent"
# Who sees payloads as Stripe sent them; everyone else sees personal data masked.
PAYLOAD_PERMISSION = "payments.view_webhook_payload"
PAYLOAD_MASKED_NOTE = (
    "Names, e-mail addresses, phone numbers, addresses and IPs are masked: seeing them needs "
    "the permission payments.view_webhook_payload."
)

# Event types in the type filter: the ones we handle. A fixed list keeps the filter free of a
# SELECT DISTINCT over the whole table.
# A Stripe event type: dotted lower-case words ("charge.dispute.created").
EVENT_TYPE_RE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
FILTER_TYPES = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
    "payment_method.detached",
)


class FailedEventsFilter(admin.SimpleListFilter):
    """The on-call view: events that need a look (failed for good, or waiting to retry)."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("failed", "Failed"), ("failing", "Failed or retrying")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=WebhookEvent.Status.FAILED)
        if self.value() == "failing":
            return queryset.filter(
                status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.RETRYING]
            )
        return queryset


class EventTypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(t, t) for t in FILTER_TYPES]

    @staticmethod
    def accepts_value(value: str) -> bool:
        # Any Stripe event type, not only the ones offered ("charge.refunded" ...).
        return bool(EVENT_TYPE_RE.match(value))

    def queryset(self, request, queryset):
        value = self.value()
        # Any string is a valid (maybe empty) filter: never a 500 on a hand-edited URL.
        return queryset.filter(type=value[:100]) if value else queryset


class PaymentEventsFilter(admin.SimpleListFilter):
    """?payment=<pk>: every event about one payment (its intent, charge, refunds and
    disputes), linked from the payment's page. Indexed lookups on object_id."""

    title = "payment"
    parameter_name = "payment"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"Payment #{value}")] if value else []

    @staticmethod
    def accepts_value(value: str) -> bool:
        return value.isdigit() and len(value) <= 18

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        # A primary key: digits, and short enough for a bigint.
        valid = value.isdigit() and len(value) <= 18
        ids = selectors.payment_object_ids(payment_pk=int(value)) if valid else []
        # An always-false condition rather than .none() / an empty IN: those raise
        # EmptyResultSet inside EstimatedCountPaginator's EXPLAIN on PostgreSQL.
        return queryset.filter(object_id__in=ids) if ids else queryset.filter(pk__isnull=True)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ChangelistMixin, ModelAdmin):
    """Read-only log. Replay is a POST (bulk action or the button on the event's page)
    checked against payments.replay_webhookevent."""

    list_display = [
        "event_cell",
        "status_badge",
        "object_id",
        "attempts",
        "processing_ms_cell",
        "error_cell",
        "received_at",
    ]
    list_display_links = ["event_cell"]
    list_filter = [
        PaymentEventsFilter,
        FailedEventsFilter,
        ("status", ChoicesDropdownFilter),
        EventTypeFilter,
        "livemode",
    ]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_spec = SearchSpec(
        ids=(("evt_", "stripe_id"), ("", "object_id")),
        help_text=(
            "Searches: a whole Stripe event id (evt_) or the whole id of the object it is "
            "about (pi_, ch_, re_, dp_ …), any case."
        ),
    )
    ordering = ["-received_at", "-id"]
    actions = ["replay_selected"]
    change_form_outer_before_template = "payments/admin/webhook_replay_button.html"

    fieldsets = [
        (
            "Event",
            {
                "fields": [
                    "stripe_id",
                    "type",
                    "status_label",
                    "object_id",
                    "object_amount",
                    "api_version",
                    "livemode",
                    "created",
                ]
            },
        ),
        (
            "Processing",
            {
                "fields": [
                    "received_at",
                    "attempts",
                    "processing_ms_cell",
                    "processed_at",
                    "next_attempt_at",
                    "error",
                ]
            },
        ),
        ("Payload as Stripe signed it (amounts in minor units)", {"fields": ["payload_pretty"]}),
    ]
    masked_payload_fieldset = (
        "Payload, personal data masked (amounts in minor units)",
        {"fields": ["payload_masked"], "description": PAYLOAD_MASKED_NOTE},
    )
    readonly_fields = [
        "stripe_id",
        "type",
        "status_label",
        "object_id",
        "object_amount",
        "api_version",
        "livemode",
        "created",
        "received_at",
        "attempts",
        "processing_ms_cell",
        "processed_at",
        "next_attempt_at",
        "error",
        "payload_pretty",
        "payload_masked",
    ]

    def get_queryset(self, request):
        # The changelist never shows the payload: don't read (possibly large) JSON per row.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("payload")
        return queryset

    def has_view_payload_permission(self, request):
        return request.user.has_perm(PAYLOAD_PERMISSION)

    def get_fieldsets(self, request, obj=None):
        # Staff without payments.view_webhook_payload get the masked payload instead.
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_view_payload_permission(request):
            return fieldsets
        return [*fieldsets[:-1], self.masked_payload_fieldset]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm(REPLAY_PERMISSION)

    # --- Columns ---------------------------------------------------------------------------

    @display(description="Event", header=True, ordering="received_at")
    def event_cell(self, obj):
        return [obj.type, obj.stripe_id]

    @display(description="Status", ordering="status", label=WEBHOOK_STATUS_COLOURS)
    def status_badge(self, obj):
        return obj.status, obj.get_status_display()

    @display(description="Status")
    def status_label(self, obj):
        # Detail pages don't apply `label=`: render the same badge explicitly.
        return display_for_label(
            (obj.status, obj.get_status_display()), "-", WEBHOOK_STATUS_COLOURS
        )

    @display(description="Processing time", ordering="processing_ms")
    def processing_ms_cell(self, obj):
        return "—" if obj.processing_ms is None else f"{obj.processing_ms} ms"

    @display(description="Error")
    def error_cell(self, obj):
        if not obj.error:
            return ""
        first_line = obj.error.splitlines()[0]
        return first_line[:80] + ("…" if len(first_line) > 80 else "")

    @display(description="Amount")
    def object_amount(self, obj):
        """The amount of the object the event is about, formatted: the payload below is
        Stripe's JSON, in minor units."""
        data = ((obj.payload or {}).get("data") or {}).get("object") or {}
        amount, currency = data.get("amount"), data.get("currency")
        if not isinstance(amount, int) or isinstance(amount, bool) or not currency:
            return "—"
        return money(amount, str(currency))

    @display(description="Payload")
    def payload_pretty(self, obj):
        return self._payload_block(obj.payload)

    @display(description="Payload")
    def payload_masked(self, obj):
        return self._payload_block(mask_personal_data(obj.payload), masked=True)

    @staticmethod
    def _payload_block(payload, *, masked=False):
        # Machine-readable on purpose (what Stripe signed, for debugging): marked so, and the
        # formatted amount is above. The e2e crawl skips elements marked data-machine-readable.
        text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html(
            '<pre data-machine-readable {}class="text-xs overflow-x-auto whitespace-pre '
            'max-h-[40rem]">{}</pre>',
            "data-payload-masked " if masked else "",
            text,
        )

    # --- Replay ----------------------------------------------------------------------------

    @action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request, queryset):
        events = list(queryset.only("pk", "stripe_id", "type", "status")[:500])
        client = client_info_from_request(request)
        replayed = sum(
            webhook_event_replay(event=e, acting_user=request.user, client=client) for e in events
        )
        self._report_replay(request, replayed=replayed, busy=len(events) - replayed)

    def _report_replay(self, request, *, replayed, busy):
        if replayed:
            self.message_user(request, MESSAGE_REPLAYED.format(count=replayed), messages.SUCCESS)
        if busy:
            self.message_user(request, MESSAGE_BUSY.format(count=busy), messages.WARNING)

    def get_urls(self):
        urls = super().get_urls()
        replay = path(
            "<path:object_id>/replay/",
            self.admin_site.admin_view(self.replay_view),
            name="payments_webhookevent_replay",
        )
        return [replay, *urls]

    def replay_view(self, request, object_id):
        # admin_view has checked staff; require_POST answers GET with 405.
        return require_POST(self._replay)(request, object_id)

    def _replay(self, request, object_id):
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = get_object_or_404(WebhookEvent, pk=object_id)
        replayed = webhook_event_replay(
            event=event, acting_user=request.user, client=client_info_from_request(request)
        )
        self._report_replay(request, replayed=int(replayed), busy=1 - int(replayed))
        return HttpResponseRedirect(reverse("admin:payments_webhookevent_change", args=[event.pk]))
