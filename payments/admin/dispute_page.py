"""What the dispute page shows: the reason in words, the amount, the deadline with a countdown
badge, the evidence Stripe holds (as last mirrored), the responses sent from here, and links to
the payment and the customer. Read-only; the evidence form and the respond buttons are added
by reports (reports/dispute_admin.py) through backoffice.admin_extensions.admin_extend, because
the evidence packet needs refunds and reports, which payments never imports."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from unfold.decorators import display
from unfold.utils import display_for_label

from backoffice.formats import format_datetime
from payments.dispute_evidence import EVIDENCE_FIELDS, FIELD_LABELS, FILE_FIELDS
from payments.models import DisputeResponse
from payments.models.dispute import dispute_reason_label
from payments.money import format_money
from payments.services.dispute_response import RESPONDABLE_STATUSES

from .display import money

# Countdown thresholds: red under DANGER, amber under WARNING, plain after.
COUNTDOWN_DANGER = timedelta(days=3)
COUNTDOWN_WARNING = timedelta(days=7)
# A plain countdown (a week or more left) is text, not a badge.
COUNTDOWN_COLOURS = {"overdue": "danger", "danger": "danger", "warning": "warning"}


def reason_label(reason: str) -> str:
    """A Stripe reason in words (the model's vocabulary); "—" when there is none."""
    return dispute_reason_label(reason) or "—"


def _span(left: timedelta) -> str:
    days, hours = left.days, left.seconds // 3600
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    minutes = (left.seconds % 3600) // 60
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def deadline_countdown(
    *, due: datetime | None, status: str, now: datetime | None = None
) -> tuple[str, str] | None:
    """(badge key, text) for the evidence deadline, or None when there is nothing to count
    down to (no deadline, or the dispute no longer takes a response: submitted or closed).
    Keys: "overdue" past the deadline, "danger" under 3 days, "warning" under 7, else "plain"."""
    if due is None or status not in RESPONDABLE_STATUSES:
        return None
    left = due - (now or timezone.now())
    if left <= timedelta(0):
        return "overdue", f"overdue by {_span(-left)}"
    key = (
        "danger" if left < COUNTDOWN_DANGER else "warning" if left < COUNTDOWN_WARNING else "plain"
    )
    return key, f"{_span(left)} left"


class DisputePageMixin:
    """The read-only fields of the dispute page (mixed into DisputeAdmin)."""

    fieldsets = [
        (
            "Dispute",
            {
                "fields": [
                    "stripe_id",
                    "status_label",
                    "reason_words",
                    "amount_display",
                    "deadline",
                    "payment_link",
                    "customer_link",
                    "created",
                    "closed_at",
                ]
            },
        ),
        (
            "Evidence in Stripe",
            {"fields": ["evidence_submission_count", "evidence_staged", "responses_sent"]},
        ),
    ]
    page_readonly_fields = [
        "stripe_id",
        "status_label",
        "reason_words",
        "amount_display",
        "deadline",
        "payment_link",
        "customer_link",
        "created",
        "closed_at",
        "evidence_submission_count",
        "evidence_staged",
        "responses_sent",
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *self.page_readonly_fields]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "payment__customer")

    @display(description="Status")
    def status_label(self, obj):
        # Detail pages don't apply `label=`: render the changelist's badge explicitly.
        return display_for_label(self.status_badge(obj), "-", self.status_badge.label)

    @display(description="Reason", ordering="reason")
    def reason_words(self, obj):
        return reason_label(obj.reason)

    @display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        # The money cell: an unknown currency of a bad row renders raw with a warning badge.
        return money(obj.amount, obj.currency)

    @display(description="Evidence due")
    def deadline(self, obj):
        if obj.evidence_due_by is None:
            return "—"
        when = format_datetime(obj.evidence_due_by)
        countdown = deadline_countdown(due=obj.evidence_due_by, status=obj.status)
        if countdown is None:
            return when
        key, text = countdown
        if key not in COUNTDOWN_COLOURS:
            return f"{when} ({text})"
        return format_html(
            '{} &nbsp; <span data-testid="countdown">{}</span>',
            when,
            display_for_label((key, text), None, COUNTDOWN_COLOURS),
        )

    @display(description="Payment")
    def payment_link(self, obj):
        payment = obj.payment
        return format_html(
            '<a href="{}" class="text-primary-600 underline">{}</a> ({}, {})',
            reverse("admin:payments_payment_change", args=[payment.pk]),
            payment.stripe_payment_intent_id,
            format_money(payment.amount, payment.currency),
            payment.get_status_display(),
        )

    @display(description="Customer")
    def customer_link(self, obj):
        customer = obj.payment.customer
        if customer is None:
            return "—"
        return format_html(
            '<a href="{}" class="text-primary-600 underline">{}</a> {}',
            reverse("admin:payments_customer_change", args=[customer.pk]),
            customer.name or customer.stripe_id,
            customer.email,
        )

    @display(description="Evidence as staged")
    def evidence_staged(self, obj):
        staged = [(f, obj.evidence[f]) for f in EVIDENCE_FIELDS if (obj.evidence or {}).get(f)]
        if not staged:
            return "None yet"
        return format_html(
            '<table class="text-sm">{}</table>',
            format_html_join(
                "",
                '<tr><th class="text-left font-normal text-base-500 pr-6 py-1 align-top">{}</th>'
                '<td class="py-1 whitespace-pre-line">{}</td></tr>',
                (
                    (
                        FIELD_LABELS[field],
                        f"File {value}" if field in FILE_FIELDS else _shorten(value),
                    )
                    for field, value in staged
                ),
            ),
        )

    @display(description="Sent from here")
    def responses_sent(self, obj):
        rows = list(DisputeResponse.objects.filter(dispute=obj).select_related("requested_by")[:10])
        if not rows:
            return "Nothing yet"
        return format_html_join(
            "",
            "<div>{} — {} — {} by {}{}</div>",
            (
                (
                    format_datetime(row.created_at),
                    row.get_kind_display(),
                    row.get_status_display(),
                    row.requested_by or "—",
                    f" ({row.error})" if row.error else "",
                )
                for row in rows
            ),
        )


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"
