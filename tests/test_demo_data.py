"""The demo data generator: deterministic, realistic, internally consistent."""

import io
from collections import Counter
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from django.core.management import call_command

from management.demo_data import DemoGenerator, demo_size
from management.demo_payouts import BANK_INSTRUCTOR_SALES
from payments.models import (
    BalanceEntry,
    CouponRedemption,
    Customer,
    Dispute,
    EarningEntry,
    FraudAlert,
    HourDraw,
    HourPackage,
    Lesson,
    Payment,
    Refund,
    StudentBalance,
)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def snapshot():
    return list(
        Payment.objects.order_by("stripe_payment_intent_id").values_list(
            "stripe_payment_intent_id",
            "customer__email",
            "amount",
            "currency",
            "status",
            "decline_code",
            "created",
        )
    )


def test_same_seed_gives_the_same_data():
    DemoGenerator(seed=7, now=NOW).run(demo_size(400))
    first = snapshot()
    for model in (
        EarningEntry,
        FraudAlert,
        HourDraw,
        HourPackage,
        Lesson,
        BalanceEntry,
        StudentBalance,
        Refund,
        Dispute,
        CouponRedemption,  # the generator's coupon codes are redeemed (unknown codes, flagged)
        Payment,
    ):
        model.objects.all().delete()
    Customer.objects.all().delete()
    DemoGenerator(seed=7, now=NOW).run(demo_size(400))
    assert snapshot() == first
    assert len(first) == 400


def test_a_realistic_mix():
    DemoGenerator(seed=1, now=NOW).run(demo_size(2000))
    payments = Payment.objects.all()
    statuses = Counter(payments.values_list("status", flat=True))
    currencies = Counter(payments.values_list("currency", flat=True))
    assert set(statuses) == set(Payment.Status.values)
    assert statuses["succeeded"] > statuses["failed"] > statuses["disputed"]
    assert currencies.most_common(1)[0][0] == "usd"
    assert {"eur", "jpy"} <= set(currencies)
    declines = set(payments.filter(status="failed").values_list("decline_code", flat=True))
    assert {"insufficient_funds", "expired_card", "authentication_required"} <= declines
    methods = set(payments.values_list("payment_method_type", flat=True))
    assert {"card", "wallet", "bank_transfer"} <= methods
    oldest = min(payments.values_list("created", flat=True))
    assert (NOW - oldest).days <= 90


def test_amounts_are_consistent():
    DemoGenerator(seed=3, now=NOW).run(demo_size(1000))
    for payment in Payment.objects.all():
        if payment.is_captured:
            # The fee policy, recomputed here: 20% of the amount, returned pro rata (half up)
            # with refunds; a lost dispute comes off the instructor's net.
            gross = Fraction(payment.amount * 2000, 10000)
            kept = int(gross + Fraction(1, 2)) - int(
                int(gross + Fraction(1, 2)) * Fraction(payment.amount_refunded, payment.amount)
                + Fraction(1, 2)
            )
            lost = sum(d.amount for d in payment.disputes.all() if d.status == "lost")
            assert payment.platform_fee == kept
            assert payment.net == (
                payment.amount - payment.amount_refunded - payment.stripe_fee - kept - lost
            )
            assert payment.stripe_fee > 0 or payment.currency == "jpy"
        else:
            assert (payment.stripe_fee, payment.platform_fee, payment.net) == (0, 0, 0)
        refunded = sum(r.amount for r in payment.refunds.all())
        assert refunded == payment.amount_refunded
        if payment.currency == "jpy":
            assert payment.amount % 10 == 0
    # The marketplace's fields came from the metadata contract, through the sync.
    with_instructor = Payment.objects.filter(instructor__isnull=False)
    assert with_instructor.count() > 950
    assert Payment.objects.exclude(metadata_problems=[]).count() < 50
    assert (
        not Payment.objects.filter(product_kind="hour_package", package_minutes=None)
        .exclude(metadata_problems=[])
        .filter(instructor__isnull=False)
        .exists()
    )
    assert Payment.objects.filter(coupon_code__gt="").exists()
    assert Payment.objects.filter(status="disputed", disputes__status="lost").exists()


def test_seed_demo_command_is_idempotent_with_if_empty():
    call_command("seed_demo", "--payments", "50")
    call_command("seed_demo", "--payments", "50", "--if-empty")
    # The payouts demo's bank-transfer instructors add their few sales to --payments.
    assert Payment.objects.count() == 50 + BANK_INSTRUCTOR_SALES


def test_the_demo_trips_our_fraud_rules_through_the_sync():
    """A shared card, a burst of failed attempts and a new account paying a large amount
    arrive as Stripe objects through the sync's upserts; one detection pass opens the rule
    alerts the fraud screen shows."""
    counts = DemoGenerator(seed=5, now=NOW).run(demo_size(400))
    assert Payment.objects.count() == 400
    rules = set(FraudAlert.objects.filter(source="rule").values_list("rule", flat=True))
    assert {
        "shared_card",
        "failed_attempts",
        "rapid_attempts",
        "new_account_high_amount",
    } <= rules
    assert counts["fraud_rule_alerts"] == FraudAlert.objects.filter(source="rule").count()
    shared = FraudAlert.objects.get(rule="shared_card")
    assert shared.numbers["customers"] == 3 and len(shared.payment_ids) == 3
    # Fingerprints and IPs came through the mappers' fields and the metadata contract.
    assert Payment.objects.exclude(card_fingerprint="").count() > 300
    assert Payment.objects.filter(ip_address__isnull=False).count() > 300


def test_the_demo_has_fraud_alerts_in_every_review_state_and_a_blocked_customer():
    from backoffice.models import AdminAction
    from management.demo_fraud import seed_fraud_reviews

    DemoGenerator(seed=5, now=NOW).run(demo_size(3000))
    counts = seed_fraud_reviews()
    assert counts == {"assigned": 2, "investigating": 2, "resolved": 4, "blocked_customers": 1}
    statuses = Counter(FraudAlert.objects.values_list("status", flat=True))
    assert statuses["investigating"] == 2 and statuses["confirmed"] == 2
    assert statuses["dismissed"] == 2 and statuses["open"] >= 2
    assert FraudAlert.objects.filter(status="open", assigned_to__isnull=False).count() == 2
    blocked = Customer.objects.get(blocked_at__isnull=False)
    assert blocked.blocked_by.username == "risk.dana"
    # Through the services: every step left its audit row.
    assert AdminAction.objects.filter(action="customer_block").count() == 1
    assert AdminAction.objects.filter(action="fraud_alert_assign").count() == 3
    assert seed_fraud_reviews()["resolved"] == 0  # idempotent


def _result_count(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200
    return response.context["cl"].result_count


def test_seed_demo_prints_the_counts_the_screens_show(admin_client, settings):
    """Every count in the start-up lines is what the screen it names shows: the refund queue's
    presets, the Scheduled jobs list (a printed "11 pending" beside a queue of 9 was a count
    the seeding code kept itself)."""
    import re

    from refunds.selectors import Priority

    settings.STRIPE_API_BASE = ""  # no peer: pending requests go on generated payments
    out = io.StringIO()
    call_command("seed_demo", "--payments", "400", stdout=out)
    printed = out.getvalue()
    queue = re.search(
        r"Refund queue: (\d+) pending \((\d+) urgent, (\d+) high, (\d+) large, (\d+) normal\); "
        r"(\d+) requests in all",
        printed,
    )
    assert queue, printed
    pending, urgent, high, large, normal, total = map(int, queue.groups())
    changelist = "/admin/refunds/refundrequest/"
    assert pending == _result_count(admin_client, changelist + "?status__exact=pending") > 20
    assert total == _result_count(admin_client, changelist + "?all=1") > pending
    for value, shown in zip(Priority.RANK, (urgent, high, large, normal), strict=True):
        url = f"{changelist}?status__exact=pending&priority={value}"
        assert shown == _result_count(admin_client, url) > 0, value
    schedules = int(re.search(r"Scheduled jobs: (\d+) in place", printed).group(1))
    assert schedules == _result_count(admin_client, "/admin/django_q/schedule/") >= 6
    payments = int(re.search(r"Payments: ([\d,]+) from", printed).group(1).replace(",", ""))
    shown = _result_count(admin_client, "/admin/payments/payment/")
    assert payments == shown == 400 + BANK_INSTRUCTOR_SALES
    # Started again on the same database, the demo prints the same truthful lines.
    again = io.StringIO()
    call_command("seed_demo", "--if-empty", stdout=again)
    assert queue.group(0) in again.getvalue()
    assert f"Scheduled jobs: {schedules} in place" in again.getvalue()
