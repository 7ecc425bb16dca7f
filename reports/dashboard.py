"""The Unfold dashboard (UNFOLD["DASHBOARD_CALLBACK"]): what finance checks first each day.

Reads rollups and a few cheap indexed queries only; a fixed number of queries whatever the
size of the tables (tests/reports/test_dashboard.py counts them).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.timesince import timesince

from payments.instructor_selectors import owed_by_currency, payout_queue_counts
from payments.models import (
    Dispute,
    FraudAlert,
    Payment,
    StudentBalance,
    Subscription,
    SyncRun,
)
from payments.money import format_money
from payments.selectors import dispute_alert_thresholds, dispute_deadline_bands, webhook_health
from refunds.models import RefundRequest
from refunds.selectors import refund_request_pending_count

from .models import DailyRollup
from .rollups import day_bounds, percent
from .selectors import chart_series_from_rows

# Revenue and payment figures are for staff who may read payments.
DASHBOARD_PERMISSION = "payments.view_payment"
CHART_DAYS = 30
RATE_WINDOW_DAYS = 7
REFUND_TIME_WINDOW_DAYS = 30
FAILED_PAYOUT_DAYS = 30
# Distinguishable line colours for the revenue chart, one per currency.
CHART_COLOURS = ["#9333ea", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#64748b"]

OK, WARNING, DANGER, INFO = "success", "warning", "danger", "info"
TONE_ICONS = {OK: "check_circle", WARNING: "warning", DANGER: "error", INFO: "info"}


def _decimal(value) -> Decimal:
    return Decimal(str(value))


def _number(value: Decimal | None) -> float | None:
    """A percentage or hours figure for the API (JSON has no decimals); None stays None."""
    return None if value is None else float(value)


@dataclass
class Card:
    """One tile: a figure, what it is measured against, and its state (colour + icon)."""

    key: str
    title: str
    value: str
    tone: str = INFO
    target: str = ""
    detail: str = ""
    href: str = ""
    icon: str = ""
    lines: list = field(default_factory=list)
    # The card's figures as numbers (counts, percentages, hours, datetimes), for the API
    # (reports/api_dashboard.py): the same values the text above is written from.
    figures: dict = field(default_factory=dict)

    @property
    def state_icon(self) -> str:
        return TONE_ICONS[self.tone]


def _url(name: str, query: str = "") -> str:
    try:
        return reverse(name) + query
    except NoReverseMatch:
        return ""


def today_by_currency() -> list[dict]:
    """Today's revenue (captured, minor units) and transactions per currency, live from the
    payments table: a range scan of today on the (created) index, one query."""
    lo, hi = day_bounds(timezone.localdate(), timezone.localdate())
    captured = Q(status__in=Payment.CAPTURED_STATUSES)
    rows = (
        Payment.objects.filter(created__gte=lo, created__lt=hi)
        .order_by()
        .values("currency")
        .annotate(
            transactions=Count("id"),
            succeeded=Count("id", filter=captured),
            revenue=Sum("amount", filter=captured, default=0),
        )
        .order_by("-revenue", "currency")
    )
    return [
        {**row, "revenue_display": format_money(row["revenue"], row["currency"])} for row in rows
    ]


def _rate_cards(rollups: list[DailyRollup]) -> list[Card]:
    since = timezone.localdate() - timedelta(days=RATE_WINDOW_DAYS - 1)
    window = [row for row in rollups if row.day >= since]
    attempted = sum(row.attempted_count for row in window)
    succeeded = sum(row.succeeded_count for row in window)
    failed = sum(row.failed_count for row in window)
    target = success_target()
    alert = _decimal(settings.REPORTS_FAILED_SHARE_ALERT)
    rate = percent(succeeded, succeeded + failed)
    share = percent(failed, attempted)
    analytics = _url("admin:reports_dailyrollup_changelist")
    return [
        Card(
            key="success_rate",
            title="Success rate",
            value="—" if rate is None else f"{rate} %",
            tone=INFO if rate is None else (OK if rate >= target else DANGER),
            target=f"target ≥ {target} %",
            detail=f"last {RATE_WINDOW_DAYS} days · {succeeded:,} of {succeeded + failed:,}",
            href=analytics,
            icon="verified",
            figures={
                "rate": _number(rate),
                "target": _number(target),
                "succeeded": succeeded,
                "failed": failed,
                "window_days": RATE_WINDOW_DAYS,
            },
        ),
        Card(
            key="failed_share",
            title="Failed payments",
            value="—" if share is None else f"{share} %",
            tone=INFO if share is None else (DANGER if share > alert else OK),
            target=f"alert above {alert} %",
            detail=f"last {RATE_WINDOW_DAYS} days · {failed:,} of {attempted:,} attempts",
            href=_url("admin:payments_payment_changelist", "?status__exact=failed"),
            icon="credit_card_off",
            figures={
                "share": _number(share),
                "alert_above": _number(alert),
                "failed": failed,
                "attempted": attempted,
                "window_days": RATE_WINDOW_DAYS,
            },
        ),
    ]


def _refund_cards() -> list[Card]:
    alert = int(settings.REPORTS_PENDING_REFUNDS_ALERT)
    target_hours = _decimal(settings.REPORTS_REFUND_HOURS_TARGET)
    pending = refund_request_pending_count()
    since = timezone.now() - timedelta(days=REFUND_TIME_WINDOW_DAYS)
    durations = [
        (processed - created).total_seconds()
        for processed, created in RefundRequest.objects.filter(
            status=RefundRequest.Status.PROCESSED, processed_at__gte=since
        )
        .order_by()
        .values_list("processed_at", "created_at")[:10_000]
    ]
    median = _decimal(round(statistics.median(durations) / 3600, 1)) if durations else None
    return [
        Card(
            key="pending_refunds",
            title="Pending refunds",
            value=f"{pending:,}",
            tone=DANGER if pending >= alert else (WARNING if pending else OK),
            target=f"alert at {alert}",
            detail="refund requests waiting for a decision",
            href=_url("admin:refunds_refundrequest_changelist", "?status__exact=pending"),
            icon="currency_exchange",
            figures={"pending": pending, "alert_at": alert},
        ),
        Card(
            key="refund_time",
            title="Median refund time",
            value="—" if median is None else f"{median} h",
            tone=INFO if median is None else (OK if median <= target_hours else DANGER),
            target=f"target ≤ {target_hours} h",
            detail=f"request to processed, last {REFUND_TIME_WINDOW_DAYS} days "
            f"({len(durations):,} refunds)",
            href=_url("admin:refunds_refundrequest_changelist", "?status__exact=processed"),
            icon="timer",
            figures={
                "median_hours": _number(median),
                "target_hours": _number(target_hours),
                "refunds": len(durations),
                "window_days": REFUND_TIME_WINDOW_DAYS,
            },
        ),
    ]


def _dispute_card() -> Card:
    needs = [Dispute.Status.NEEDS_RESPONSE, Dispute.Status.WARNING_NEEDS_RESPONSE]
    row = Dispute.objects.filter(status__in=needs).aggregate(
        n=Count("id"), due=Min("evidence_due_by")
    )
    n, due = row["n"], row["due"]
    soon = due is not None and due - timezone.now() < timedelta(days=3)
    detail = "none waiting"
    if due is not None:
        detail = (
            f"next evidence due in {timesince(timezone.now(), due)}"
            if due > timezone.now()
            else "evidence deadline passed"
        )
    return Card(
        key="disputes",
        title="Disputes needing a response",
        value=f"{n:,}",
        tone=OK if not n else (DANGER if soon else WARNING),
        target="respond before the evidence deadline",
        detail=detail,
        href=_url("admin:payments_dispute_changelist", "?status__exact=needs_response"),
        icon="gavel",
        figures={"needing_response": n, "next_due_by": due},
    )


def _band_label(days: int, bands: dict[int, int]) -> str:
    """'2 under 1 day', '1 in 1 to 3 days', ...: the band of `days` starts at the next smaller
    threshold."""
    lower = max((d for d in bands if d < days), default=0)
    if lower == 0:
        return f"{bands[days]} under {days} day{'s' if days != 1 else ''}"
    return f"{bands[days]} in {lower} to {days} days"


def _dispute_deadline_card() -> Card | None:
    """Disputes needing a response by deadline band (the alert thresholds, 7/3/1 days):
    red while one is due within 3 days (the dispute page's countdown turns red there too)."""
    bands = dispute_deadline_bands()
    if not bands:
        return None
    total = sum(bands.values())
    urgent = sum(n for days, n in bands.items() if days <= 3)
    return Card(
        key="dispute_deadlines",
        title="Dispute evidence deadlines",
        value=f"{total:,}",
        tone=OK if not total else (DANGER if urgent else WARNING),
        target=f"due within {max(bands)} days; alerts at "
        + ", ".join(str(d) for d in dispute_alert_thresholds())
        + " days",
        detail=" · ".join(_band_label(days, bands) for days in sorted(bands)),
        href=_url("admin:payments_dispute_changelist", "?status__exact=needs_response"),
        icon="alarm",
        figures={
            "due": total,
            "due_within_3_days": urgent,
            # {days: disputes due within that many days, not within the next smaller band}
            "bands": {str(days): bands[days] for days in sorted(bands)},
        },
    )


def _fraud_card() -> Card:
    # Unresolved = open or investigating: an alert under review still needs a decision.
    n = FraudAlert.objects.filter(status__in=FraudAlert.UNRESOLVED_STATUSES).count()
    return Card(
        key="fraud",
        title="Unresolved fraud alerts",
        value=f"{n:,}",
        tone=DANGER if n else OK,
        target="alert at 1",
        href=_url("admin:payments_fraudalert_changelist", "?status__in=open,investigating"),
        icon="shield",
        figures={"unresolved": n},
    )


def _webhook_card() -> Card:
    health = webhook_health()
    failed, retrying, avg_ms = health["failed_24h"], health["retrying"], health["avg_processing_ms"]
    tone = DANGER if failed else (WARNING if retrying else OK)
    return Card(
        key="webhooks",
        title="Webhook health",
        value="Failing" if failed else ("Retrying" if retrying else "Healthy"),
        tone=tone,
        target="0 failed in 24 h",
        detail=(
            f"{failed} failed (24 h) · {retrying} retrying · "
            + ("no events in 24 h" if avg_ms is None else f"avg {avg_ms} ms")
        ),
        href=_url("admin:payments_webhookevent_changelist"),
        icon="webhook",
        figures=dict(health),
    )


def _payout_cards() -> list[Card]:
    """Payouts waiting for approval (and failed in the last FAILED_PAYOUT_DAYS), and what the
    marketplace owes its instructors per currency (never summed across currencies)."""
    counts = payout_queue_counts(failed_since=timezone.now() - timedelta(days=FAILED_PAYOUT_DAYS))
    pending, failed = counts["pending"], counts["failed"]
    owed = owed_by_currency()
    owed_back = [row for row in owed if row.owed_back]
    return [
        Card(
            key="payouts",
            title="Payouts to approve",
            value=f"{pending:,}",
            tone=WARNING if pending else OK,
            target="each needs an approver (four-eyes for manual ones)",
            detail=f"{failed:,} failed in the last {FAILED_PAYOUT_DAYS} days",
            href=_url("admin:payments_payout_changelist", "?status__exact=pending"),
            icon="outbox",
        ),
        Card(
            key="payouts_failed",
            title="Failed payouts",
            value=f"{failed:,}",
            tone=DANGER if failed else OK,
            target=f"last {FAILED_PAYOUT_DAYS} days; their amounts are back in the balances",
            href=_url("admin:payments_payout_changelist", "?status__exact=failed"),
            icon="running_with_errors",
        ),
        Card(
            key="owed",
            title="Owed to instructors",
            value=" · ".join(format_money(row.owed, row.currency) for row in owed) or "—",
            tone=INFO,
            target="balances above zero, per currency",
            detail=" · ".join(
                f"{format_money(row.owed_back, row.currency)} owed back (clawbacks)"
                for row in owed_back
            ),
            href=_url("admin:payments_instructor_changelist"),
            icon="account_balance_wallet",
        ),
    ]


def _balance_card() -> Card:
    n = StudentBalance.objects.filter(minutes__lt=0).count()
    return Card(
        key="negative_balances",
        title="Students with a negative balance",
        value=f"{n:,}",
        tone=WARNING if n else OK,
        target="follow up each one",
        href=_url("admin:payments_studentbalance_changelist", "?balance=negative"),
        icon="person_alert",
        figures={"negative_balances": n},
    )


def _past_due_subscriptions_card() -> Card:
    # One COUNT on the (status, created) index.
    n = Subscription.objects.filter(status=Subscription.Status.PAST_DUE).count()
    return Card(
        key="past_due_subscriptions",
        title="Past-due subscriptions",
        value=f"{n:,}",
        tone=WARNING if n else OK,
        target="a renewal failed: Stripe retries; follow up each one",
        href=_url("admin:payments_subscription_changelist", "?status__exact=past_due"),
        icon="event_busy",
        figures={"past_due": n},
    )


def _sync_card() -> Card:
    # A run skipped because another held the lock says nothing about freshness.
    run = SyncRun.objects.exclude(status=SyncRun.Status.SKIPPED).order_by("-started_at").first()
    if run is None:
        return Card(
            key="sync",
            title="Last sync",
            value="never",
            tone=WARNING,
            icon="sync",
            href=_url("admin:payments_syncrun_changelist"),
            figures={"last_run_at": None, "status": None, "stale": True},
        )
    when = run.finished_at or run.started_at
    status = run.status
    failed = status == SyncRun.Status.FAILED
    stale = when is not None and timezone.now() - when > timedelta(
        minutes=int(settings.REPORTS_SYNC_STALE_MINUTES)
    )
    return Card(
        key="sync",
        title="Last sync",
        value=f"{timesince(when)} ago" if when else "running",
        tone=DANGER if failed else (WARNING if stale else OK),
        target="at least hourly",
        detail=status.replace("_", " "),
        href=_url("admin:payments_syncrun_changelist"),
        icon="sync",
        figures={"last_run_at": when, "status": status, "stale": stale},
    )


def _line_options(*, y: dict) -> str:
    """Chart.js options: a visible, labelled y axis (Unfold's default hides it)."""
    return json.dumps(
        {
            "animation": False,
            "responsive": True,
            "maintainAspectRatio": False,
            "plugins": {"legend": {"display": False}, "tooltip": {"enabled": True}},
            "datasets": {"line": {"borderWidth": 2, "pointRadius": 0}},
            "scales": {
                "x": {"grid": {"display": False}, "ticks": {"maxTicksLimit": 8}},
                "y": {"ticks": {"maxTicksLimit": 5}, **y},
            },
        }
    )


# Revenue axes tick in whole major units (precision 0): a day without sales in yen would
# otherwise get Chart.js's automatic 0-1 axis in tenths of a yen.
REVENUE_CHART_OPTIONS = _line_options(
    y={"beginAtZero": True, "ticks": {"maxTicksLimit": 5, "precision": 0}}
)
RATE_CHART_OPTIONS = _line_options(y={"suggestedMin": 80, "suggestedMax": 100})


def success_target() -> Decimal:
    return _decimal(settings.REPORTS_SUCCESS_RATE_TARGET)


def revenue_charts(series: dict) -> list[dict]:
    """Chart.js data, one chart per currency (major units): currencies are never summed, and
    yen beside dollars on one axis would flatten the dollars."""
    return [
        {
            "currency": code,
            "data": json.dumps(
                {
                    "labels": series["labels"],
                    "datasets": [
                        {
                            "label": code.upper(),
                            "data": values,
                            "borderColor": CHART_COLOURS[i % len(CHART_COLOURS)],
                            "backgroundColor": CHART_COLOURS[i % len(CHART_COLOURS)],
                        }
                    ],
                }
            ),
        }
        for i, (code, values) in enumerate(series["revenue"].items())
    ]


def success_chart_json(series: dict) -> str:
    """Chart.js data: the daily success rate and the target as a flat dashed line."""
    target = float(success_target())
    return json.dumps(
        {
            "labels": series["labels"],
            "datasets": [
                {
                    "label": "Success rate %",
                    "data": series["success_rate"],
                    "borderColor": "#16a34a",
                    "backgroundColor": "#16a34a",
                },
                {
                    "label": f"Target {target:g} %",
                    "data": [target] * len(series["labels"]),
                    "borderColor": "#dc2626",
                    "borderDash": [6, 4],
                    "pointRadius": 0,
                },
            ],
        }
    )


def dashboard_context() -> dict:
    today = timezone.localdate()
    since = today - timedelta(days=CHART_DAYS - 1)
    rollups_qs = DailyRollup.objects.filter(day__gte=since, day__lte=today)
    rollups = list(rollups_qs.order_by("day", "currency"))
    series = chart_series_from_rows(
        [
            (row.day, row.currency, row.gross_amount, row.succeeded_count, row.failed_count)
            for row in rollups
        ],
        max_days=CHART_DAYS,
    )
    cards = [
        *_rate_cards(rollups),
        *_refund_cards(),
        _dispute_card(),
        _dispute_deadline_card(),
        _fraud_card(),
        _webhook_card(),
        _balance_card(),
        _past_due_subscriptions_card(),
        *_payout_cards(),
        _sync_card(),
    ]
    cards = [card for card in cards if card is not None]
    last_computed = max((row.computed_at for row in rollups), default=None)
    return {
        "today": today,
        "today_rows": today_by_currency(),
        "cards": cards,
        "alerts": [card for card in cards if card.tone in {DANGER, WARNING}],
        "revenue_charts": revenue_charts(series),
        "success_chart": success_chart_json(series),
        "revenue_options": REVENUE_CHART_OPTIONS,
        "rate_options": RATE_CHART_OPTIONS,
        "rollups_computed_at": last_computed,
        "analytics_url": _url("admin:reports_dailyrollup_changelist"),
    }


def dashboard_callback(request, context):
    """Unfold hook: adds the dashboard's figures to the admin index context, for staff who
    may read payments (others get the plain app list)."""
    if request.user.has_perm(DASHBOARD_PERMISSION):
        context.update({"dashboard": dashboard_context()})
    return context
