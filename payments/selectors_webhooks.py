"""Reads about Stripe webhook events (the dashboard, the sidebar badge, a payment's page)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Avg, QuerySet
from django.utils import timezone

from .models import Dispute, Payment, Refund, WebhookEvent

HEALTH_WINDOW = timedelta(hours=24)


def webhook_health(*, now: datetime | None = None) -> dict:
    """Webhook health over the last 24 h: events that failed for good (`failed_24h`), events
    waiting for a retry (`retrying`, any age) and the average processing time in whole
    milliseconds of handled events finished in the window (`avg_processing_ms`, None without
    any; ignored types excluded).
    Three indexed queries (status + received_at, status, processed_at)."""
    now = now or timezone.now()
    since = now - HEALTH_WINDOW
    failed_24h = WebhookEvent.objects.filter(
        status=WebhookEvent.Status.FAILED, received_at__gte=since
    ).count()
    retrying = WebhookEvent.objects.filter(status=WebhookEvent.Status.RETRYING).count()
    # Ignored events (types we have no handler for) take no work: they would flatter it.
    average = (
        WebhookEvent.objects.filter(processed_at__gte=since, processing_ms__isnull=False)
        .exclude(status=WebhookEvent.Status.IGNORED)
        .aggregate(avg=Avg("processing_ms"))["avg"]
    )
    return {
        "failed_24h": failed_24h,
        "retrying": retrying,
        "avg_processing_ms": None if average is None else round(average),
    }


def webhook_failed_count() -> int:
    """Events that failed for good and wait for staff (the sidebar badge). Indexed count."""
    return WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).count()


def webhook_failed_badge(request) -> str:
    """Unfold sidebar badge callback: the failed count, or nothing when there is none."""
    count = webhook_failed_count()
    return str(count) if count else ""


def payment_object_ids(*, payment_pk: int) -> list[str]:
    """The Stripe ids events about a payment carry as data.object.id: its payment intent,
    charge, refunds and disputes. Three indexed reads."""
    row = (
        Payment.objects.filter(pk=payment_pk)
        .values_list("stripe_payment_intent_id", "stripe_charge_id")
        .first()
    )
    if row is None:
        return []
    ids = [i for i in row if i]
    ids += Refund.objects.filter(payment_id=payment_pk).values_list("stripe_id", flat=True)
    ids += Dispute.objects.filter(payment_id=payment_pk).values_list("stripe_id", flat=True)
    return ids


def webhook_events_for_object(*, object_id: str) -> QuerySet[WebhookEvent]:
    """Events about one Stripe object (pi_, ch_, re_, dp_ ...), oldest first."""
    return WebhookEvent.objects.filter(object_id=object_id).order_by("created", "id")
