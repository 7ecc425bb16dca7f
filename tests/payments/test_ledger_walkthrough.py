"""One payment walked through success, a partial refund, a dispute, and the dispute lost or
won, fed as Stripe sends it (through the sync's upserts, as the webhooks do). At every step
every screen and report shows the same figures, and they are the fee policy's figures,
worked out by hand here:

    amount 100.00, Stripe fee 3.20, platform fee 20% = 20.00
    partial refund 25.00 -> the platform returns 25% of its fee (5.00), keeps 15.00
    net to instructor = 100.00 - 25.00 - 3.20 - 15.00 = 56.80
    dispute of the remaining 75.00 lost -> the instructor bears it: 56.80 - 75.00 = -18.20,
    and the platform pays Stripe's 15.00 dispute fee out of its 15.00: it keeps 0.00
    dispute won -> nothing moves: 56.80

The instructor's earnings ledger says the same at each step: its balance is the net, on hold
for PAYOUT_HOLD_DAYS after the payment, available after.
"""

import csv
import io
from dataclasses import replace
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from management import jobs
from payments import ledger, sync
from payments.earnings_selectors import earning_balances
from payments.gateway import StripeDispute, StripePaymentIntent, StripeRefund
from payments.models import EarningEntry, Payment
from payments.money import format_money
from reports.export_columns import PAYMENT_COLUMNS
from reports.exports import PaymentResource, csv_rows
from reports.models import DailyRollup
from reports.rollups import generate_analytics, local_today
from reports.selectors import payment_report, payments_summary

pytestmark = pytest.mark.django_db

PI = "pi_walkthrough"


def _intent(now, **changes) -> StripePaymentIntent:
    base = StripePaymentIntent(
        id=PI,
        amount=10_000,
        currency="usd",
        status="succeeded",
        created=now - timedelta(minutes=30),
        latest_charge_id="ch_walkthrough",
        charge_status="succeeded",
        charge_created=now - timedelta(minutes=29),
        stripe_fee=320,
        amount_received=10_000,
        metadata={"instructor_account": "acct_walk", "product_kind": "course"},
    )
    return replace(base, **changes)


def _dispute(now, status: str, fee: int = 1500) -> StripeDispute:
    return StripeDispute(
        id="dp_walkthrough",
        charge_id="ch_walkthrough",
        payment_intent_id=PI,
        amount=7_500,
        currency="usd",
        status=status,
        created=now - timedelta(minutes=10),
        reason="fraudulent",
        evidence_due_by=now + timedelta(days=7),
        fee=fee,
    )


def _every_screen_and_report(client, *, status, refunded, platform_fee, net, platform_keeps):
    """The same figures on the changelist, the payment page, the rollups, the period report,
    both exports, the JSON report, and no repair for --fix-inconsistencies."""
    payment = Payment.objects.get(stripe_payment_intent_id=PI)
    assert (payment.status, payment.amount_refunded) == (status, refunded)
    assert (payment.stripe_fee, payment.platform_fee, payment.net) == (320, platform_fee, net)

    figures = ledger.payment_breakdown(payment=payment)
    assert figures.net_to_instructor == net
    assert figures.net_to_platform == platform_keeps
    assert (
        figures.amount
        - figures.refunded
        - figures.stripe_fee
        - figures.platform_fee
        - figures.instructor_dispute_loss
        == figures.net_to_instructor
    )

    changelist = client.get("/admin/payments/payment/").content.decode()
    assert PI in changelist
    assert format_money(net, "usd") in changelist

    page = client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
    assert "Net to instructor" in page
    assert format_money(net, "usd") in page
    assert f"The platform keeps {format_money(platform_keeps, 'usd')}" in page
    assert "The stored net differs" not in page
    if refunded:
        assert format_money(-refunded, "usd") in page

    today = local_today()
    generate_analytics(start=today - timedelta(days=1), end=today)
    rollups = DailyRollup.objects.filter(currency="usd")
    assert sum(r.net_amount for r in rollups) == net
    assert sum(r.platform_fee_amount for r in rollups) == platform_fee
    assert sum(r.stripe_fee_amount for r in rollups) == 320
    report = payment_report(period="weekly", end=today)["currencies"]["usd"]
    assert (report["net"], report["fees"]["platform"]) == (net, platform_fee)

    summary = payments_summary(queryset=Payment.objects.all())["currencies"]["usd"]
    assert (summary["net"], summary["refunds"]["amount"]) == (net, refunded)

    streamed = list(
        csv.DictReader(io.StringIO("".join(csv_rows(Payment.objects.all(), PAYMENT_COLUMNS))))
    )
    assert streamed[0]["net"] == str(ledger_major(net))
    assert streamed[0]["platform_fee"] == str(ledger_major(platform_fee))
    exported = PaymentResource().export(queryset=Payment.objects.all())
    assert str(exported.dict[0]["net"]) == str(ledger_major(net))

    # The instructor's balance: the same net, held until PAYOUT_HOLD_DAYS after the payment.
    key = (payment.instructor_id, "usd")
    now = timezone.now()
    held = earning_balances(instructor_ids=[payment.instructor_id], now=now)[key]
    assert (held.balance, held.on_hold, held.available) == (net, net, 0)
    later = now + timedelta(days=settings.PAYOUT_HOLD_DAYS, minutes=1)
    released = earning_balances(instructor_ids=[payment.instructor_id], now=later)[key]
    assert (released.balance, released.on_hold, released.available) == (net, 0, net)

    fixed = jobs.fix_inconsistencies()
    assert fixed["repairs"] == 0
    assert fixed["earnings"]["payments_off"] == 0


def ledger_major(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_one_payment_reads_the_same_everywhere_at_every_step(admin_client, outcome):
    now = timezone.now()

    sync.upsert_payment_intents([_intent(now)])
    _every_screen_and_report(
        admin_client,
        status=Payment.Status.SUCCEEDED,
        refunded=0,
        platform_fee=2000,
        net=7680,
        platform_keeps=2000,
    )

    refund = StripeRefund(
        id="re_walkthrough",
        payment_intent_id=PI,
        charge_id="ch_walkthrough",
        amount=2500,
        currency="usd",
        status="succeeded",
        created=now - timedelta(minutes=20),
    )
    sync.upsert_refunds([refund])
    sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
    _every_screen_and_report(
        admin_client,
        status=Payment.Status.PARTIALLY_REFUNDED,
        refunded=2500,
        platform_fee=1500,
        net=5680,
        platform_keeps=1500,
    )

    sync.upsert_payment_intents([_intent(now, amount_refunded=2500, charge_disputed=True)])
    sync.upsert_disputes([_dispute(now, "needs_response", fee=0)])
    # Open: the money is held, nothing is decided, the net stands.
    _every_screen_and_report(
        admin_client,
        status=Payment.Status.DISPUTED,
        refunded=2500,
        platform_fee=1500,
        net=5680,
        platform_keeps=1500,
    )

    if outcome == "lost":
        sync.upsert_disputes([_dispute(now, "lost")])
        _every_screen_and_report(
            admin_client,
            status=Payment.Status.DISPUTED,
            refunded=2500,
            platform_fee=1500,
            net=-1820,
            platform_keeps=0,
        )
        # A late, older snapshot of the intent changes nothing.
        sync.upsert_payment_intents([_intent(now, amount_refunded=2500)])
        assert Payment.objects.get().net == -1820
        assert _entries() == [
            ("earning", 7680),
            ("refund", -2000),
            ("dispute_lost", -7500),
        ]
    else:
        sync.upsert_disputes([_dispute(now, "won", fee=0)])
        _every_screen_and_report(
            admin_client,
            status=Payment.Status.PARTIALLY_REFUNDED,
            refunded=2500,
            platform_fee=1500,
            net=5680,
            platform_keeps=1500,
        )
        assert _entries() == [("earning", 7680), ("refund", -2000)]


def _entries() -> list[tuple[str, int]]:
    """The instructor's entries for the payment: one per effect, no correction needed."""
    return list(EarningEntry.objects.order_by("pk").values_list("kind", "amount"))


def test_the_other_policies(admin_client, settings):
    """The platform keeps its fee on refunds, and bears lost disputes itself."""
    settings.PLATFORM_FEE_ON_REFUND = "keep"
    settings.DISPUTE_LOSS_BORNE_BY = "platform"
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now, amount_refunded=2500, charge_disputed=True)])
    sync.upsert_disputes([_dispute(now, "lost")])
    payment = Payment.objects.get()
    # 100.00 - 25.00 refunded - 3.20 - 20.00 kept fee - 15.00 dispute fee.
    assert (payment.platform_fee, payment.net) == (2000, 3680)
    figures = ledger.payment_breakdown(payment=payment)
    assert figures.net_to_platform == 2000 - 7500
