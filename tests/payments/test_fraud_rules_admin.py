"""The fraud alerts changelist shows our rules' alerts: rule, severity badge, risk score and the
numbers that tripped the rule (money formatted in its currency); filters by rule, severity
and source; the alert page links every payment of the pattern."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from payments import fraud_rules
from payments.admin.fraud_rules import numbers_text
from payments.models import FraudAlert
from tests.factories import CustomerFactory, PaymentFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:payments_fraudalert_changelist")


@pytest.fixture
def rule_alerts():
    now = timezone.now()
    burst = CustomerFactory(email="burst@example.com")
    for minutes in (1, 2, 3):
        PaymentFactory(customer=burst, failed=True, created=now - timedelta(minutes=minutes))
    young = CustomerFactory(created=now - timedelta(days=1))
    PaymentFactory(customer=young, amount=150_000, currency="jpy", created=now)
    fraud_rules.fraud_detect(now=now)
    return {a.rule: a for a in FraudAlert.objects.all()}


def test_the_changelist_shows_rule_severity_score_and_numbers(admin_client, rule_alerts):
    assert set(rule_alerts) == {"failed_attempts", "new_account_high_amount"}
    body = admin_client.get(CHANGELIST).content.decode()
    assert "Multiple failed attempts" in body and "New account, high amount" in body
    assert "3 failed payments in 60 min (threshold 3)" in body
    assert "¥150,000 above ¥75,000, 24 h after the account was created" in body
    # Severity badges (red for critical, amber for medium), not just the filter's options.
    badges = re.findall(r'<span class="inline-block[^"]*(bg-\w+-100)[^"]*"\s*>\s*(\w+)', body)
    assert ("bg-red-100", "Critical") in badges and ("bg-orange-100", "Medium") in badges
    assert (
        rule_alerts["new_account_high_amount"].risk_score,
        rule_alerts["failed_attempts"].risk_score,
    ) == (100, 40)
    # The score under the severity and status badges.
    assert "risk 100" in body and "risk 40" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("rule__exact=failed_attempts", {"failed_attempts"}),
        ("severity__exact=critical", {"new_account_high_amount"}),
        ("source__exact=rule", {"failed_attempts", "new_account_high_amount"}),
        ("source__exact=staff", set()),
    ],
)
def test_filters_by_rule_severity_and_source(admin_client, rule_alerts, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert {a.rule for a in response.context["cl"].result_list} == expected


def test_the_alert_page_links_the_payments_of_the_pattern(admin_client, rule_alerts):
    alert = rule_alerts["failed_attempts"]
    body = admin_client.get(
        reverse("admin:payments_fraudalert_change", args=[alert.pk])
    ).content.decode()
    assert len(alert.payment_ids) == 3
    for pk in alert.payment_ids:
        assert reverse("admin:payments_payment_change", args=[pk]) in body
    # The evidence reads in words; the raw JSON columns are not on the page.
    assert "What tripped it" in body and "Payments of the pattern" in body
    assert "Payment ids" not in body and ">Numbers<" not in body


def test_numbers_this_code_cannot_read_show_as_raw_json():
    assert numbers_text("failed_attempts", {"count": 3}) == '{"count": 3}'
    assert numbers_text("", {}) == ""
    amount = {"amount": {"amount": 250001, "currency": "usd"}, "reasons": ["absolute"]}
    amount["absolute_threshold"] = {"amount": 200000, "currency": "usd"}
    assert numbers_text("unusual_amount", amount) == "$2,500.01, above $2,000.00"
