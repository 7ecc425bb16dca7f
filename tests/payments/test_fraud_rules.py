"""Our own fraud rules (payments/fraud_rules.py): each rule just under and just over its
threshold (per currency where money is involved), one unresolved alert per cause however
often detection runs, a resolved alert lets new evidence open another, and the alert carries
the numbers that tripped the rule."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import fraud_rules
from payments.models import FraudAlert, FraudRuleFailure
from tests.factories import CustomerFactory, PaymentFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now()


def detect(now, **kwargs):
    result = fraud_rules.fraud_detect(now=now, **kwargs)
    assert result.errors == {}, result.errors
    return result


def alerts(rule):
    return list(FraudAlert.objects.filter(rule=rule).order_by("pk"))


def pay(customer, now, minutes_ago=0, **kwargs):
    return PaymentFactory(customer=customer, created=now - timedelta(minutes=minutes_ago), **kwargs)


# --- multiple failed attempts ----------------------------------------------------------------


def test_failed_attempts_just_under_the_threshold_open_nothing(now):
    customer = CustomerFactory()
    pay(customer, now, 1, failed=True)
    pay(customer, now, 59, failed=True)
    # A third failure, but 61 minutes before the latest: outside every 60-minute window
    # that holds the other two.
    pay(customer, now, 121, failed=True)
    pay(customer, now, 30)  # a success does not count
    detect(now)
    assert alerts("failed_attempts") == []


def test_failed_attempts_at_the_threshold_open_one_alert_with_its_numbers(now):
    customer = CustomerFactory()
    payments = [pay(customer, now, minutes, failed=True) for minutes in (58, 30, 1)]
    detect(now)
    (alert,) = alerts("failed_attempts")
    latest = payments[-1]
    assert alert.source == FraudAlert.Source.RULE and alert.status == FraudAlert.Status.OPEN
    assert alert.payment == latest and alert.customer == customer
    assert alert.cause_key == f"customer:{customer.pk}"
    assert alert.numbers == {"count": 3, "threshold": 3, "window_minutes": 60}
    assert alert.payment_ids[0] == latest.pk
    assert sorted(alert.payment_ids) == sorted(p.pk for p in payments)
    assert (alert.risk_score, alert.severity) == (40, "medium")


def test_failed_attempts_counted_per_customer(now):
    pay(CustomerFactory(), now, 1, failed=True)
    pay(CustomerFactory(), now, 2, failed=True)
    pay(CustomerFactory(), now, 3, failed=True)
    detect(now)
    assert alerts("failed_attempts") == []


def test_double_the_threshold_is_critical(now):
    customer = CustomerFactory()
    for minutes in range(6):
        pay(customer, now, minutes, failed=True)
    detect(now)
    (alert,) = alerts("failed_attempts")
    assert (alert.numbers["count"], alert.risk_score, alert.severity) == (6, 80, "critical")


# --- rapid attempts --------------------------------------------------------------------------


def test_rapid_attempts_under_and_over(now):
    slow, fast = CustomerFactory(), CustomerFactory()
    for minutes in (0, 2, 4, 6):
        pay(slow, now, minutes)
    pay(slow, now, 11)  # five payments, but only four within 10 minutes of any one
    for minutes in (0, 2, 4, 6, 9):
        pay(fast, now, minutes)
    detect(now)
    (alert,) = alerts("rapid_attempts")
    assert alert.customer == fast
    assert alert.numbers == {"count": 5, "threshold": 5, "window_minutes": 10}


# --- unusual amount --------------------------------------------------------------------------


def history(customer, now, amount, currency="usd", n=3):
    for day in range(n):
        pay(customer, now, 60 * 24 * (day + 2), amount=amount, currency=currency)


def test_unusual_amount_relative_to_the_customers_average(now):
    at_limit, above = CustomerFactory(), CustomerFactory()
    history(at_limit, now, 5000)
    history(above, now, 5000)
    pay(at_limit, now, 1, amount=25000)  # exactly 5 x 50.00: not above
    latest = pay(above, now, 1, amount=25001)
    detect(now)
    (alert,) = alerts("unusual_amount")
    assert alert.payment == latest
    assert alert.numbers["reasons"] == ["customer_average"]
    assert alert.numbers["amount"] == {"amount": 25001, "currency": "usd"}
    assert alert.numbers["customer_average"] == {"amount": 5000, "currency": "usd"}
    assert alert.numbers["history_count"] == 3


def test_unusual_amount_needs_enough_history(now):
    customer = CustomerFactory()
    history(customer, now, 5000, n=2)
    pay(customer, now, 1, amount=90000)
    detect(now)
    assert alerts("unusual_amount") == []


def test_unusual_amount_never_mixes_currencies(now):
    """Three 10.00 EUR payments are no baseline for a 60.00 USD one (mixing them would say
    6 x the average), and a baseline in EUR flags an EUR payment only."""
    customer = CustomerFactory()
    history(customer, now, 1000, currency="eur")
    pay(customer, now, 2, amount=6000, currency="usd")
    detect(now)
    assert alerts("unusual_amount") == []
    pay(customer, now, 1, amount=6000, currency="eur")
    detect(now)
    (alert,) = alerts("unusual_amount")
    assert alert.numbers["amount"] == {"amount": 6000, "currency": "eur"}


@pytest.mark.parametrize(
    ("currency", "at_threshold"),
    [("usd", 200000), ("eur", 200000), ("gbp", 160000), ("jpy", 300000)],
)
def test_unusual_amount_absolute_threshold_per_currency(now, currency, at_threshold):
    pay(None, now, 2, amount=at_threshold, currency=currency)  # a guest: no history at all
    detect(now)
    assert alerts("unusual_amount") == []
    over = pay(None, now, 1, amount=at_threshold + 1, currency=currency)
    detect(now)
    (alert,) = alerts("unusual_amount")
    assert alert.payment == over and alert.cause_key == f"payment:{over.pk}"
    assert alert.numbers["reasons"] == ["absolute"]
    assert alert.numbers["absolute_threshold"] == {"amount": at_threshold, "currency": currency}


def test_a_currency_without_a_threshold_has_no_absolute_check(now, settings):
    settings.FRAUD_UNUSUAL_AMOUNT_ABOVE = {"usd": "2000.00"}
    pay(None, now, 1, amount=10**9, currency="chf")
    detect(now)
    assert alerts("unusual_amount") == []


# --- new account, high amount ----------------------------------------------------------------


@pytest.mark.parametrize(("currency", "limit"), [("usd", 50000), ("jpy", 75000)])
def test_new_account_high_amount_under_and_over(now, currency, limit):
    young = CustomerFactory(created=now - timedelta(days=6))
    old = CustomerFactory(created=now - timedelta(days=8))
    pay(young, now, 5, amount=limit, currency=currency)  # at the threshold: not above
    pay(old, now, 5, amount=limit + 1, currency=currency)  # above, but the account is 8 days old
    detect(now)
    assert alerts("new_account_high_amount") == []
    over = pay(young, now, 1, amount=limit + 1, currency=currency)
    detect(now)
    (alert,) = alerts("new_account_high_amount")
    assert alert.payment == over and alert.customer == young
    assert alert.numbers["amount"] == {"amount": limit + 1, "currency": currency}
    assert alert.numbers["threshold"] == {"amount": limit, "currency": currency}
    assert alert.numbers["account_age_hours"] == 6 * 24 - 1


# --- many payment methods --------------------------------------------------------------------


def test_many_payment_methods_under_and_over(now):
    customer = CustomerFactory()
    for hours in (1, 5, 20):
        PaymentMethodFactory(customer=customer, created=now - timedelta(hours=hours))
    PaymentMethodFactory(customer=customer, created=now - timedelta(hours=30))  # too old
    pay(customer, now, 0)
    detect(now)
    assert alerts("many_payment_methods") == []
    PaymentMethodFactory(customer=customer, created=now - timedelta(hours=2))
    detect(now)
    (alert,) = alerts("many_payment_methods")
    assert alert.numbers == {"count": 4, "threshold": 4, "window_hours": 24}


# --- shared card / IP ------------------------------------------------------------------------


def test_one_card_across_customers_under_and_over(now):
    customers = [CustomerFactory() for _ in range(3)]
    pay(customers[0], now, 60, card_fingerprint="fpA")
    pay(customers[1], now, 30, card_fingerprint="fpA")
    pay(customers[1], now, 20, card_fingerprint="fpA")  # the same customer twice counts once
    pay(customers[2], now, 60 * 30, card_fingerprint="fpA")  # outside the 24 h window
    pay(customers[2], now, 10, card_fingerprint="fpB")
    detect(now)
    assert alerts("shared_card") == []
    latest = pay(customers[2], now, 1, card_fingerprint="fpA")
    detect(now)
    (alert,) = alerts("shared_card")
    assert alert.cause_key == "card:fpA" and alert.payment == latest
    assert alert.numbers["customers"] == 3
    assert alert.numbers["customer_ids"] == sorted(c.pk for c in customers)
    assert len(alert.payment_ids) == 4
    assert (alert.risk_score, alert.severity) == (60, "high")


def test_one_ip_across_customers_under_and_over(now):
    for minutes in range(4):
        pay(CustomerFactory(), now, minutes + 1, ip_address="203.0.113.7")
    pay(CustomerFactory(), now, 1, ip_address="203.0.113.8")
    detect(now)
    assert alerts("shared_ip") == []
    pay(CustomerFactory(), now, 0, ip_address="203.0.113.7")
    detect(now)
    (alert,) = alerts("shared_ip")
    assert alert.cause_key == "ip:203.0.113.7"
    assert (alert.numbers["customers"], alert.numbers["ip"]) == (5, "203.0.113.7")


# --- one unresolved alert per cause ----------------------------------------------------------


def failed_burst(customer, now, start_minutes=0):
    return [pay(customer, now, start_minutes + m, failed=True) for m in (2, 1, 0)]


def test_repeated_runs_never_open_a_second_alert(now):
    customer = CustomerFactory()
    failed_burst(customer, now)
    first = detect(now)
    assert first.opened == {"failed_attempts": 1}
    # More of the same pattern while the alert is open: still one.
    pay(customer, now - timedelta(minutes=1), 0, failed=True)
    for _ in range(3):
        assert detect(now).opened == {}
    assert len(alerts("failed_attempts")) == 1


def test_the_unique_constraint_refuses_a_second_unresolved_alert(now):
    from django.db import IntegrityError, transaction

    customer = CustomerFactory()
    failed_burst(customer, now)
    detect(now)
    alert = alerts("failed_attempts")[0]
    alert.pk = None
    alert.status = "investigating"
    with pytest.raises(IntegrityError), transaction.atomic():
        alert.save(force_insert=True)


def test_a_resolved_alert_lets_new_evidence_open_another(now):
    customer = CustomerFactory()
    failed_burst(customer, now, start_minutes=30)
    detect(now)
    (first,) = alerts("failed_attempts")
    FraudAlert.objects.filter(pk=first.pk).update(status=FraudAlert.Status.DISMISSED)
    # The same evidence does not reopen what staff dismissed.
    assert detect(now).opened == {}
    # A new failure after the dismissed alert's payment: a new alert for the same cause.
    newest = pay(customer, now, 0, failed=True)
    assert detect(now).opened == {"failed_attempts": 1}
    second = alerts("failed_attempts")[-1]
    assert second.pk != first.pk and second.payment == newest
    assert second.cause_key == first.cause_key


def test_only_payments_in_the_lookback_are_examined_unless_asked(now):
    customer = CustomerFactory()
    failed_burst(customer, now, start_minutes=60 * 30)  # 30 hours ago
    detect(now)
    assert alerts("failed_attempts") == []
    detect(now, since=now - timedelta(days=2))
    assert len(alerts("failed_attempts")) == 1


def test_one_pass_costs_the_same_queries_for_one_hit_or_many(now):
    def hits(n):
        for _ in range(n):
            failed_burst(CustomerFactory(), now)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for n in (1, 20):
        FraudAlert.objects.all().delete()
        hits(n)
        with CaptureQueriesContext(connection) as ctx:
            result = detect(now)
        assert result.opened["failed_attempts"] >= 1
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


# --- errors ----------------------------------------------------------------------------------


def test_a_failing_rule_is_recorded_and_the_others_still_open_alerts(now, monkeypatch):
    def broken(scope):
        raise RuntimeError("boom")

    monkeypatch.setitem(fraud_rules.RULES, "rapid_attempts", broken)
    failed_burst(CustomerFactory(), now)
    result = fraud_rules.fraud_detect(now=now)
    assert result.status == "failed"
    assert result.errors == {"rapid_attempts": "RuntimeError: boom"}
    assert result.opened == {"failed_attempts": 1}
    failure = FraudRuleFailure.objects.get()
    assert (failure.rule, failure.trigger) == ("rapid_attempts", "command")


def test_a_run_holding_the_lock_makes_the_next_one_skip(now):
    from payments.models import JobLock

    token = JobLock.objects.acquire(fraud_rules.LOCK_NAME, ttl=timedelta(minutes=5))
    result = fraud_rules.fraud_detect(now=now)
    assert result.status == "skipped" and result.errors == {"lock": fraud_rules.MSG_LOCKED}
    JobLock.objects.release(fraud_rules.LOCK_NAME, token)
    assert fraud_rules.fraud_detect(now=now).status == "succeeded"


def test_risk_score_and_severity_bands():
    assert fraud_rules.risk_score("shared_ip", 5, 5) == 35
    assert fraud_rules.risk_score("shared_card", 10, 3) == 100
    assert [fraud_rules.severity_for(s) for s in (0, 39, 40, 59, 60, 79, 80, 100)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]


def test_thresholds_are_read_from_settings_at_each_pass(now, settings):
    customer = CustomerFactory()
    pay(customer, now, 1, failed=True)
    pay(customer, now, 50, failed=True)
    detect(now)
    assert alerts("failed_attempts") == []
    settings.FRAUD_FAILED_ATTEMPTS_COUNT = 2
    settings.FRAUD_FAILED_ATTEMPTS_WINDOW_MINUTES = 30  # 49 minutes apart: still nothing
    detect(now)
    assert alerts("failed_attempts") == []
    settings.FRAUD_FAILED_ATTEMPTS_WINDOW_MINUTES = 50
    detect(now)
    (alert,) = alerts("failed_attempts")
    assert alert.numbers == {"count": 2, "threshold": 2, "window_minutes": 50}
