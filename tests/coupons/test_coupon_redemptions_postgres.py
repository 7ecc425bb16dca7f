"""Redemption counts under concurrent payments, on PostgreSQL where row locks are real: the
coupon's lock (taken after the payments') makes each upsert count the ones committed
before it, so exactly `max_redemptions` redemptions are clean and the rest are flagged, and
one payment upserted from many threads at once is redeemed once."""

import pytest

from payments import coupon_rules as rules
from payments.models import CouponRedemption
from payments.sync import upsert_payment_intents
from tests.coupons.support import coupon_row, fixed_terms, intent
from tests.payments.test_sync_postgres import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def test_concurrent_payments_with_one_code_count_every_redemption_and_flag_the_excess():
    coupon = coupon_row("RUSH", fixed_terms({"usd": 500}, max_redemptions=3))
    snapshots = iter([intent(f"pi_rush{i}", code="RUSH", discount=500) for i in range(THREADS)])

    def pay():
        upsert_payment_intents([next(snapshots)])

    run_in_threads(THREADS, pay)
    rows = list(CouponRedemption.objects.filter(coupon=coupon))
    assert len(rows) == THREADS
    clean = [r for r in rows if not r.flagged]
    flagged = [r for r in rows if r.flagged]
    assert len(clean) == 3
    assert {tuple(f["rule"] for f in r.flags) for r in flagged} == {(rules.RULE_TOTAL_LIMIT,)}


def test_one_payment_upserted_from_many_threads_is_redeemed_once():
    coupon_row("ONE", fixed_terms({"usd": 500}))
    snapshot = intent("pi_same", code="ONE", discount=500)
    run_in_threads(THREADS, lambda: upsert_payment_intents([snapshot]))
    assert CouponRedemption.objects.count() == 1
