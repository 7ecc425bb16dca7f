"""Demo fraud reviews: a few of the demo's early fraud warnings walked through the review
workflow by demo reviewers, and one customer blocked, all through the production services
(payments.services.fraud_alert and customer_block: same checks, same audit rows).

Called by `seed_demo` after the alerts exist. Idempotent: does nothing once any alert has
been reviewed or assigned.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from payments.models import FraudAlert
from payments.services.customer_block import customer_block
from payments.services.fraud_alert import (
    fraud_alert_assign,
    fraud_alert_resolve,
    fraud_alert_start_investigating,
)

# The role that reviews fraud and blocks customers (fixtures/groups.json).
GROUP_REVIEWERS = "Senior approvers"
# Demo reviewers who did the earlier reviews (nobody logs in as them; `senior` can).
DEMO_REVIEWERS = ["risk.dana", "risk.omar"]
# (outcome, note) of the resolved demo alerts.
RESOLUTIONS = [
    (
        FraudAlert.Status.CONFIRMED,
        "Issuer confirmed the card was reported stolen the day before the purchase.",
    ),
    (
        FraudAlert.Status.CONFIRMED,
        "Three cards in one hour from the same IP; the cardholder did not recognise it.",
    ),
    (
        FraudAlert.Status.DISMISSED,
        "The student confirmed the purchase by phone; same card as their earlier courses.",
    ),
    (
        FraudAlert.Status.DISMISSED,
        "Known customer, billing address matches; Radar warning on a shared corporate card.",
    ),
]
BLOCK_REASON = "Confirmed fraud on alert #{alert}: {note}"


def _reviewers():
    call_command("loaddata", "groups", verbosity=0)
    group = Group.objects.get(name=GROUP_REVIEWERS)
    User = get_user_model()
    users = []
    for username in DEMO_REVIEWERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        # Fresh instance: permission caches are per instance.
        users.append(User.objects.get(pk=user.pk))
    return users


def seed_fraud_reviews(*, stdout=None) -> dict[str, int]:
    """Two alerts assigned (one taken over), two investigating, two confirmed fraud, two
    false positives, the rest left open; the customer of the first confirmed one blocked.
    Returns counts per state reached (all zero when reviews already exist)."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    reviewed = FraudAlert.objects.exclude(status=FraudAlert.Status.OPEN).exists()
    if reviewed or FraudAlert.objects.filter(assigned_to__isnull=False).exists():
        log("Fraud reviews already present; nothing to do.")
        return {"assigned": 0, "investigating": 0, "resolved": 0, "blocked_customers": 0}
    dana, omar = _reviewers()
    alerts = list(
        FraudAlert.objects.filter(
            status=FraudAlert.Status.OPEN, payment__customer__isnull=False
        ).order_by("-created", "-id")[:8]
    )
    counts = {"assigned": 0, "investigating": 0, "resolved": 0, "blocked_customers": 0}
    for index, alert in enumerate(alerts):
        if index < 2:
            # Assigned, not started; the second taken over by a colleague.
            fraud_alert_assign(alert=alert, acting_user=dana)
            if index == 1:
                fraud_alert_assign(alert=alert, acting_user=omar)
            counts["assigned"] += 1
        elif index < 4:
            fraud_alert_start_investigating(alert=alert, acting_user=omar)
            counts["investigating"] += 1
        else:
            outcome, note = RESOLUTIONS[index - 4]
            fraud_alert_start_investigating(alert=alert, acting_user=dana)
            fraud_alert_resolve(alert=alert, outcome=outcome, note=note, acting_user=dana)
            counts["resolved"] += 1
            if index == 4:
                result = customer_block(
                    customer=alert.payment.customer,
                    reason=BLOCK_REASON.format(alert=alert.pk, note=note),
                    fraud_alert=alert,
                    acting_user=dana,
                )
                counts["blocked_customers"] += int(result.changed)
    log(
        "Fraud reviews: {assigned} assigned, {investigating} investigating, {resolved} "
        "resolved, {blocked_customers} customer blocked".format(**counts)
    )
    return counts
