"""What the demo's screens show, counted with the queries those screens use, for the lines
`seed_demo` (and so scripts/demo.sh) prints. A count the seeding code kept itself can say
"11 pending" while the queue shows 9 (it counted approved ones too); these cannot.

- Refund queue: pending = the sidebar badge and the "All pending" preset
  (refunds.selectors.refund_request_pending_count); each priority = the queue's priority
  filter (refunds.selectors.priority_q); statuses = the status filter (a GROUP BY status).
- Disputes needing a response and unresolved fraud alerts: the dashboard's cards.
- Schedules: every row of django-q2's Schedule table, which the Scheduled jobs screen lists.
"""

from __future__ import annotations

from django.db.models import Count

from management.demo_customer_adjustments import adjustment_line
from payments import card_expiry
from payments.models import Customer, Payment, PaymentMethod, Payout, Subscription
from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q, refund_request_pending_count
from reports.dashboard import dashboard_context


def refund_queue_counts() -> dict:
    """{"pending": n, "priorities": {urgent: n, ...}, "statuses": {status: n, ...},
    "currencies": {code: n, ...}, "total": n}, every status and priority present (0 if none)."""
    statuses = dict.fromkeys(RefundRequest.Status.values, 0)
    statuses.update(
        RefundRequest.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    currencies = dict(
        RefundRequest.objects.order_by("currency")
        .values_list("currency")
        .annotate(n=Count("id"))
        .values_list("currency", "n")
    )
    return {
        "pending": refund_request_pending_count(),
        "priorities": {
            value: RefundRequest.objects.filter(priority_q(value)).count()
            for value, _ in Priority.CHOICES
        },
        "statuses": statuses,
        "currencies": currencies,
        "total": RefundRequest.objects.count(),
    }


def refund_queue_line(counts: dict | None = None) -> str:
    counts = counts or refund_queue_counts()
    priorities = ", ".join(f"{n} {value}" for value, n in counts["priorities"].items())
    statuses = ", ".join(f"{n} {status}" for status, n in counts["statuses"].items())
    currencies = ", ".join(f"{n} {code.upper()}" for code, n in counts["currencies"].items())
    return (
        f"Refund queue: {counts['pending']} pending ({priorities}); "
        f"{counts['total']} requests in all ({statuses}; {currencies})"
    )


def schedule_count() -> int:
    from django_q.models import Schedule

    return Schedule.objects.count()


def payout_status_counts() -> dict[str, int]:
    """Payouts per status, as the payouts list's status filter counts them (a GROUP BY
    status), every status present (0 if none)."""
    counts = dict.fromkeys(Payout.Status.values, 0)
    counts.update(
        Payout.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return counts


def subscription_counts() -> dict:
    """Subscriptions per status (the subscriptions list's status filter, a GROUP BY status),
    those set to end at the period's end (its "cancel at period end" filter) and the cards
    expiring this month (the payment methods list's expiry filter)."""
    statuses = dict(
        Subscription.objects.order_by("status")
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {
        "statuses": statuses,
        "ending": Subscription.objects.filter(cancel_at_period_end=True)
        .exclude(status__in=Subscription.FINAL_STATUSES)
        .count(),
        "cards_expiring_this_month": PaymentMethod.objects.filter(
            card_expiry.card_expiry_q(card_expiry.THIS_MONTH)
        ).count(),
    }


def demo_counts() -> dict:
    cards = {card.key: card.value for card in dashboard_context()["cards"]}
    return {
        "payments": Payment.objects.count(),
        "customers": Customer.objects.count(),
        "refund_queue": refund_queue_counts(),
        "disputes_needing_response": cards["disputes"],
        "unresolved_fraud_alerts": cards["fraud"],
        "schedules": schedule_count(),
        "payouts": payout_status_counts(),
        "subscriptions": subscription_counts(),
    }


def demo_count_lines() -> list[str]:
    """The start-up lines: each count read as the screen named in it reads it."""
    counts = demo_counts()
    return [
        f"Payments: {counts['payments']:,} from {counts['customers']:,} customers",
        refund_queue_line(counts["refund_queue"]),
        f"Disputes needing a response: {counts['disputes_needing_response']}",
        f"Unresolved fraud alerts: {counts['unresolved_fraud_alerts']}",
        f"Scheduled jobs: {counts['schedules']} in place",
        "Payouts: " + ", ".join(f"{n} {status}" for status, n in counts["payouts"].items()),
        subscription_line(counts["subscriptions"]),
        adjustment_line(),
    ]


def subscription_line(counts: dict) -> str:
    statuses = ", ".join(f"{n} {status}" for status, n in counts["statuses"].items())
    return (
        f"Subscriptions: {statuses or 'none'}; {counts['ending']} ending at period end; "
        f"{counts['cards_expiring_this_month']} saved cards expiring this month"
    )
