"""Every list of the endpoints reads a page in a fixed number of queries, whatever the rows on
it (no query per row: related rows are joined, annotations are SQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice.audit import audit_record
from payments.models import (
    FraudAlert,
    PaymentRetry,
    SyncRun,
    Transfer,
    TransferReversal,
    WebhookEvent,
)
from payments.services.customer_adjustments import (
    customer_adjustment_reject,
    customer_adjustment_request,
)
from payments.services.earning_adjustments import (
    earning_adjustment_approve,
    earning_adjustment_request,
)
from payments.services.payouts import (
    payout_approve,
    payout_cancel,
    payout_manual_create,
    payout_run_create,
)
from reports.receipts import receipt_issue
from reports.rollups import generate_analytics
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    InstructorFactory,
    PaymentFactory,
    RefundRequestFactory,
    UserFactory,
)
from tests.payouts.conftest import earn

pytestmark = pytest.mark.django_db


def _refund_request(n):
    RefundRequestFactory(approved_by=UserFactory(), rejected_by=UserFactory())


def _fraud_alert(n):
    FraudAlert.objects.create(
        payment=PaymentFactory(),
        source=FraudAlert.Source.STAFF,
        created=timezone.now(),
        assigned_to=UserFactory(),
        reviewed_by=UserFactory(),
    )


def _event(n):
    WebhookEvent.objects.create(
        stripe_id=f"evt_q{WebhookEvent.objects.count()}",
        type="charge.succeeded",
        created=timezone.now(),
        payload={},
    )


def _retry(n):
    payment = PaymentFactory(failed=True)
    PaymentRetry.objects.create(
        payment=payment,
        amount=payment.amount,
        currency=payment.currency,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        stripe_payment_method_id="pm_x",
        requested_by=UserFactory(),
        status=PaymentRetry.Status.DECLINED,
    )


def _audit(n):
    audit_record(acting_user=UserFactory(), action="test.row", target=PaymentFactory())


def _payout(n):
    instructor = InstructorFactory(stripe_account_id=f"acct_q{n}")
    earn(instructor, 20_000)
    payout = payout_manual_create(
        instructor=instructor, amount=1000, currency="usd", note="x", acting_user=_clerk()
    )
    payout_approve(payout=payout, acting_user=_clerk("approver"))
    payout_cancel(payout=payout, reason="x", acting_user=_clerk("approver"))


def _clerk(name="clerk"):
    user = get_user_model().objects.filter(username=f"q-{name}").first()
    return user or UserFactory(username=f"q-{name}", is_superuser=True)


def _balances(n):
    # Entries in two currencies, some on hold: the page's balances are one grouped query.
    instructor = InstructorFactory()
    earn(instructor, 1000 + n)
    earn(instructor, 500, "eur", days_ago=1)


def _transfer(n):
    instructor = InstructorFactory()
    transfer = Transfer.objects.create(
        stripe_id=f"tr_q{n}",
        instructor=instructor,
        destination=f"acct_q{n}",
        amount=1000,
        currency="usd",
        created=timezone.now(),
    )
    TransferReversal.objects.create(
        stripe_id=f"trr_q{n}", transfer=transfer, amount=100, currency="usd", created=timezone.now()
    )


def _adjustment(n):
    adjustment = earning_adjustment_request(
        instructor=InstructorFactory(),
        amount=700,
        currency="usd",
        reason="Bonus",
        acting_user=_clerk(),
    )
    earning_adjustment_approve(adjustment=adjustment, acting_user=_clerk("approver"))


def _customer_adjustment(n):
    # Money and hours, decided or not: the page reads the customers and people joined.
    adjustment = customer_adjustment_request(
        customer=CustomerFactory(),
        direction="credit" if n % 2 else "debit",
        unit="money" if n % 2 else "hours",
        amount=700,
        currency="usd",
        minutes=60,
        reason="Goodwill",
        acting_user=_clerk(),
    )
    if n % 3 == 0:
        customer_adjustment_reject(adjustment=adjustment, acting_user=_clerk("approver"), note="No")


def _rollup(n):
    day = timezone.localdate() - timedelta(days=n)
    PaymentFactory(created=timezone.now() - timedelta(days=n))
    generate_analytics(start=day, end=day)


def _coupon(n):
    """A coupon with terms in two currencies and a redemption (the payment upsert's)."""
    from payments.sync import upsert_payment_intents
    from tests.coupons.support import coupon_row, fixed_terms, intent

    coupon_row(f"LIST{n}", fixed_terms({"usd": 500, "eur": 450}))
    upsert_payment_intents([intent(f"pi_list{n}", code=f"LIST{n}", discount=500)])


LISTS = [
    ("/api/v1/refund-requests/", _refund_request),
    ("/api/v1/refund-requests/queue/", _refund_request),
    ("/api/v1/fraud-alerts/", _fraud_alert),
    ("/api/v1/disputes/", lambda n: DisputeFactory()),
    ("/api/v1/webhook-events/", _event),
    ("/api/v1/sync-runs/", lambda n: SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED)),
    ("/api/v1/payment-retries/", _retry),
    ("/api/v1/audit-log/", _audit),
    ("/api/v1/rollups/", _rollup),
    ("/api/v1/receipts/", lambda n: receipt_issue(payment=PaymentFactory())),
    ("/api/v1/payouts/", _payout),
    ("/api/v1/payout-runs/", lambda n: (_balances(n), payout_run_create())),
    ("/api/v1/instructors/", _balances),
    ("/api/v1/earning-entries/", lambda n: earn(PaymentFactory().instructor, 100)),
    ("/api/v1/transfers/", _transfer),
    ("/api/v1/earning-adjustments/", _adjustment),
    ("/api/v1/coupons/", _coupon),
    ("/api/v1/coupon-redemptions/", _coupon),
    ("/api/v1/customer-adjustments/", _customer_adjustment),
]


@pytest.mark.parametrize(("path", "make"), LISTS, ids=[path for path, _ in LISTS])
def test_a_page_costs_the_same_with_2_or_12_rows(api_roles, path, make):
    client = api_roles["superuser"]

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200
        return len(captured)

    for n in range(2):
        make(n)
    client.get(path)  # warm the per-process caches (content types, the token's user)
    few = queries()
    for n in range(2, 12):
        make(n)
    assert queries() == few
