"""The fraud alerts changelist's columns for our own rules (payments/fraud_rules.py): rule,
severity badge, risk score and the numbers that tripped the rule, money formatted in its own
currency. Every cell reads the alert row only (no query per row)."""

from __future__ import annotations

import json
import logging

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from unfold.decorators import display

from backoffice.formats import format_datetime
from payments.models import FraudAlert, FraudRule, FraudSeverity, Payment
from payments.money import format_money

logger = logging.getLogger(__name__)

SEVERITY_COLOURS = {
    FraudSeverity.LOW: "info",
    FraudSeverity.MEDIUM: "warning",
    FraudSeverity.HIGH: "danger",
    FraudSeverity.CRITICAL: "danger",
}


def _money(value) -> str:
    return format_money(int(value["amount"]), str(value["currency"]))


def _count_line(numbers: dict, what: str, window: str) -> str:
    return f"{numbers['count']} {what} in {window} (threshold {numbers['threshold']})"


def numbers_text(rule: str, numbers: dict) -> str:
    """What tripped the rule, in one line for staff. Never raises: a row this code cannot
    read shows its raw JSON (one odd row never breaks the changelist)."""
    if not rule:
        return ""
    try:
        if rule == FraudRule.FAILED_ATTEMPTS:
            return _count_line(numbers, "failed payments", f"{numbers['window_minutes']} min")
        if rule == FraudRule.RAPID_ATTEMPTS:
            return _count_line(numbers, "payments", f"{numbers['window_minutes']} min")
        if rule == FraudRule.MANY_PAYMENT_METHODS:
            return _count_line(numbers, "payment methods", f"{numbers['window_hours']} h")
        if rule in (FraudRule.SHARED_CARD, FraudRule.SHARED_IP):
            on = "one card" if rule == FraudRule.SHARED_CARD else f"IP {numbers['ip']}"
            return (
                f"{numbers['customers']} customers on {on} in {numbers['window_hours']} h "
                f"(threshold {numbers['threshold']})"
            )
        if rule == FraudRule.NEW_ACCOUNT_HIGH_AMOUNT:
            return (
                f"{_money(numbers['amount'])} above {_money(numbers['threshold'])}, "
                f"{numbers['account_age_hours']} h after the account was created"
            )
        if rule == FraudRule.UNUSUAL_AMOUNT:
            parts = [_money(numbers["amount"])]
            if "customer_average" in numbers:
                average = _money(numbers["customer_average"])
                parts.append(
                    f"over {numbers['multiplier']}x the average {average} of "
                    f"{numbers['history_count']} payments"
                )
            if "absolute_threshold" in numbers:
                parts.append(f"above {_money(numbers['absolute_threshold'])}")
            return ", ".join(parts)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):
        logger.warning("Unreadable numbers on a %s fraud alert: %r", rule, numbers)
    return json.dumps(numbers, sort_keys=True, default=str)[:300]


class RuleAlertColumnsMixin:
    """Mixed into FraudAlertAdmin (payments/admin/fraud.py)."""

    @display(description="Type", ordering="rule")
    def rule_cell(self, obj: FraudAlert) -> str:
        """Our rule's name; for Radar's warnings Stripe's fraud_type (the column it replaced)."""
        if obj.rule:
            return obj.get_rule_display()
        return obj.fraud_type.replace("_", " ") or obj.get_source_display()

    @display(description="Severity", ordering="severity", label=SEVERITY_COLOURS)
    def severity_badge(self, obj: FraudAlert):
        if not obj.severity:
            return None
        return obj.severity, obj.get_severity_display()

    @display(description="Risk", ordering="risk_score")
    def risk_cell(self, obj: FraudAlert) -> str:
        return "—" if obj.risk_score is None else str(obj.risk_score)

    @display(description="What tripped it")
    def numbers_cell(self, obj: FraudAlert) -> str:
        return numbers_text(obj.rule, obj.numbers)

    @display(description="Payments of the pattern")
    def linked_payments(self, obj: FraudAlert):
        """Links to every payment the rule saw (one query, on the detail page only)."""
        ids = [i for i in (obj.payment_ids or []) if isinstance(i, int)]
        if not ids:
            return "—"
        payments = Payment.objects.filter(pk__in=ids).only(
            "pk", "stripe_payment_intent_id", "amount", "currency", "status", "created"
        )
        by_pk = {p.pk: p for p in payments}
        rows = [by_pk[i] for i in ids if i in by_pk]
        return format_html_join(
            "",
            '<div><a href="{}">{}</a> {} · {} · {}</div>',
            (
                (
                    reverse("admin:payments_payment_change", args=[p.pk]),
                    p.stripe_payment_intent_id,
                    format_money(p.amount, p.currency),
                    p.get_status_display(),
                    format_datetime(p.created),
                )
                for p in rows
            ),
        ) or format_html("{}", "—")
