"""Dispute deadline alerts: an e-mail to the finance group when a dispute that still needs a
response comes within 7, 3 and 1 days (settings.DISPUTE_ALERT_DAYS) of Stripe's
`evidence_due_by`.

Rules, kept here once:
- A dispute gets the alert of the smallest threshold its deadline has crossed
  (selectors.dispute_deadline_threshold), once: a DisputeDeadlineAlert row per (dispute,
  threshold), unique in the database. A dispute first seen 2 days before its deadline gets
  the 3-day alert, never a late 7-day one. Closed, submitted and overdue disputes get none.
- "Once" holds under re-runs and concurrent runs: a run inserts the row, each in its own
  savepoint, and mails only the rows it inserted; a concurrent run's insert of the same row
  waits for the first run's commit (PostgreSQL) and then fails on the unique constraint, so
  it skips that alert. The rows and the e-mail commit together: when sending fails the rows
  roll back, and the next run sends them.
- One e-mail per run lists every new alert (a digest, most urgent first), to the active
  members with an address of settings.DISPUTE_ALERT_GROUP plus settings.DISPUTE_ALERT_EMAILS.
  With no recipient nothing is recorded (the alerts go out once someone is configured).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.models import Dispute, DisputeDeadlineAlert
from payments.money import format_money
from payments.selectors import (
    dispute_alert_thresholds,
    dispute_deadline_threshold,
    dispute_needing_response_due_within,
)

logger = logging.getLogger(__name__)

ERR_NO_RECIPIENTS = (
    "Dispute deadline alerts are due but nobody receives them: add members with an e-mail "
    "address to the group {group!r} or set DISPUTE_ALERT_EMAILS."
)
EMAIL_SUBJECT = "Dispute evidence due soon: {count} dispute{s} need{verb} a response"
EMAIL_INTRO = (
    "These disputes still need our evidence. Stripe takes none after the deadline, and a "
    "dispute without a response is lost.\n\n"
)
EMAIL_LINE = (
    "- within {threshold} day{s}: {dispute} ({status}), {amount}, reason {reason}, "
    "payment {payment}, customer {customer}: evidence due {due:%Y-%m-%d %H:%M} UTC "
    "({left} left)\n"
)
EMAIL_OUTRO = "\nRespond from the back-office: Payments > Disputes.\n"


def dispute_alert_recipients() -> list[str]:
    """Addresses of the alert: the group's active members with an e-mail, plus the
    configured extra addresses; lower-cased, de-duplicated, sorted."""
    User = get_user_model()
    members = User.objects.filter(
        groups__name=settings.DISPUTE_ALERT_GROUP, is_active=True
    ).exclude(email="")
    addresses = {email.strip().lower() for email in members.values_list("email", flat=True)}
    addresses |= {email.strip().lower() for email in settings.DISPUTE_ALERT_EMAILS if email}
    return sorted(addresses)


def dispute_alerts_due(*, now: datetime) -> list[tuple[Dispute, int]]:
    """(dispute, threshold) pairs whose alert has not been recorded yet, most urgent first."""
    thresholds = dispute_alert_thresholds()
    if not thresholds:
        return []
    candidates = (
        dispute_needing_response_due_within(days=thresholds[0], now=now)
        .select_related("payment__customer")
        .prefetch_related("deadline_alerts")
    )
    due = []
    for dispute in candidates:
        threshold = dispute_deadline_threshold(
            due_by=dispute.evidence_due_by, now=now, thresholds=thresholds
        )
        sent = {alert.threshold_days for alert in dispute.deadline_alerts.all()}
        if threshold is not None and threshold not in sent:
            due.append((dispute, threshold))
    return due


def _left(delta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24} days {hours % 24} h"
    minutes = int(delta.total_seconds() // 60) % 60
    return f"{hours} h {minutes} min"


def _email_body(alerts: list[tuple[Dispute, int]], now: datetime) -> str:
    lines = []
    for dispute, threshold in alerts:
        customer = dispute.payment.customer
        lines.append(
            EMAIL_LINE.format(
                threshold=threshold,
                s="" if threshold == 1 else "s",
                dispute=dispute.stripe_id,
                status=dispute.get_status_display(),
                amount=format_money(dispute.amount, dispute.currency, with_code=True),
                reason=dispute.reason or "unknown",
                payment=dispute.payment.stripe_payment_intent_id,
                customer=(customer.email or customer.stripe_id) if customer else "unknown",
                due=dispute.evidence_due_by.astimezone(UTC),
                left=_left(dispute.evidence_due_by - now),
            )
        )
    return EMAIL_INTRO + "".join(lines) + EMAIL_OUTRO


def dispute_deadline_alerts_send(*, now: datetime | None = None) -> dict:
    """Send the deadline alerts that are due and not sent yet (one digest e-mail) and record
    each. Returns {"due", "sent", "recipients", "error"}; never sends an alert twice. A
    failing mail server raises (nothing recorded: the next run retries)."""
    now = now or timezone.now()
    due = dispute_alerts_due(now=now)
    recipients = dispute_alert_recipients()
    result = {"due": len(due), "sent": 0, "recipients": len(recipients), "error": ""}
    if not due:
        return result
    if not recipients:
        result["error"] = ERR_NO_RECIPIENTS.format(group=settings.DISPUTE_ALERT_GROUP)
        logger.warning(result["error"])
        return result
    with transaction.atomic():
        recorded = []
        for dispute, threshold in due:
            try:
                with transaction.atomic():
                    DisputeDeadlineAlert.objects.create(
                        dispute=dispute,
                        threshold_days=threshold,
                        evidence_due_by=dispute.evidence_due_by,
                        sent_at=now,
                        recipients=", ".join(recipients),
                    )
            except IntegrityError:
                continue  # another run recorded (and mails) this one
            recorded.append((dispute, threshold))
        if recorded:
            send_mail(
                EMAIL_SUBJECT.format(
                    count=len(recorded),
                    s="" if len(recorded) == 1 else "s",
                    verb="s" if len(recorded) == 1 else "",
                ),
                _email_body(recorded, now),
                settings.DEFAULT_FROM_EMAIL,
                recipients,
            )
    result["sent"] = len(recorded)
    return result
