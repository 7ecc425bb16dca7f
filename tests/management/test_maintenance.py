"""--fix-inconsistencies repairs derived columns from their sources, audited; --cleanup-old-data
deletes only operational records past retention."""

import json
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from backoffice.audit import audit_record
from backoffice.models import AdminAction, IdempotencyRecord
from payments.models import BalanceEntry, Payment, StudentBalance, WebhookEvent
from tests.factories import CustomerFactory, PaymentFactory, RefundFactory, UserFactory

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = StringIO()
    call_command("manage_payments", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_refunded_amount_and_status_are_rebuilt_from_succeeded_refunds():
    payment = PaymentFactory(amount=5000)  # succeeded, amount_refunded 0
    RefundFactory(payment=payment, amount=2000)
    RefundFactory(payment=payment, amount=999, status="failed")
    result = run("--fix-inconsistencies")
    payment.refresh_from_db()
    assert payment.amount_refunded == 2000
    assert payment.status == Payment.Status.PARTIALLY_REFUNDED
    # The refund gives back 2/5 of the 10.00 platform fee, and the net follows.
    assert payment.platform_fee == 600
    assert payment.net == 5000 - 2000 - payment.stripe_fee - 600
    fixed = AdminAction.objects.filter(action="fix_inconsistency", target_id=str(payment.pk))
    assert result["repairs"] == 4
    assert sorted(fixed.values_list("details__field", flat=True)) == [
        "amount_refunded",
        "net",
        "platform_fee",
        "status",
    ]
    # Staff read the reason on the audit trail: money formatted, the raw values in details.
    refunded = fixed.get(details__field="amount_refunded")
    assert refunded.reason == "amount_refunded: $0.00 -> $20.00"
    assert (refunded.details["old"], refunded.details["new"]) == (0, 2000)
    assert fixed.get(details__field="status").reason == "status: succeeded -> partially_refunded"
    assert run("--fix-inconsistencies")["repairs"] == 0  # idempotent


def test_net_is_rebuilt_and_disputed_status_is_kept():
    payment = PaymentFactory(amount=10000, status=Payment.Status.DISPUTED)
    Payment.objects.filter(pk=payment.pk).update(net=1)
    run("--fix-inconsistencies")
    payment.refresh_from_db()
    assert payment.net == 10000 - payment.stripe_fee - payment.platform_fee
    assert payment.status == Payment.Status.DISPUTED


def test_dry_run_changes_nothing():
    payment = PaymentFactory(amount=5000)
    RefundFactory(payment=payment, amount=5000)
    result = run("--fix-inconsistencies", "--dry-run")
    payment.refresh_from_db()
    assert result["repairs"] == 4 and result["dry_run"] is True
    assert payment.amount_refunded == 0
    assert not AdminAction.objects.exists()


def test_balance_is_rebuilt_from_its_ledger():
    balance = StudentBalance.objects.create(customer=CustomerFactory(), minutes=999)
    BalanceEntry.objects.create(balance=balance, kind="purchase", minutes=600)
    BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-120)
    run("--fix-inconsistencies")
    balance.refresh_from_db()
    assert balance.minutes == 480


def test_balances_are_locked_in_customer_order():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    StudentBalance.objects.create(customer=CustomerFactory(), minutes=5)
    with CaptureQueriesContext(connection) as queries:
        run("--fix-inconsistencies")
    locks = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('SELECT "payments_studentbalance"')
    ]
    assert locks and all(
        sql.endswith('ORDER BY "payments_studentbalance"."customer_id" ASC') for sql in locks
    ), locks


def test_cleanup_deletes_only_old_done_events(settings):
    old = timezone.now() - timedelta(days=settings.RETENTION_DAYS["webhook_events"] + 1)

    def event(event_id, status, received_at):
        return WebhookEvent.objects.create(
            stripe_id=event_id,
            type="payment_intent.succeeded",
            status=status,
            payload={},
            created=received_at,
            received_at=received_at,
        )

    event("evt_old_done", WebhookEvent.Status.PROCESSED, old)
    event("evt_old_failed", WebhookEvent.Status.FAILED, old)
    event("evt_new_done", WebhookEvent.Status.PROCESSED, timezone.now())
    payment = PaymentFactory(created=old)
    with mock.patch("django.utils.timezone.now", return_value=old):
        audit = audit_record(acting_user=None, action="old", target=payment)
    assert audit.created_at == old
    result = run("--cleanup-old-data")
    assert result["deleted"]["webhook_events"] == 1
    assert set(WebhookEvent.objects.values_list("stripe_id", flat=True)) == {
        "evt_old_failed",
        "evt_new_done",
    }
    assert Payment.objects.count() == 1
    assert AdminAction.objects.filter(pk=audit.pk).exists()  # the audit trail is kept


def test_cleanup_deletes_idempotency_records_past_their_ttl(settings):
    user = UserFactory()
    old = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS, minutes=1)
    for key, at in (("old", old), ("new", timezone.now())):
        with mock.patch("django.utils.timezone.now", return_value=at):
            IdempotencyRecord.objects.create(
                user=user, key=key, method="POST", path="/", request_hash="x", locked_at=at
            )
    result = run("--cleanup-old-data")
    assert result["deleted"]["idempotency_records"] == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_rows_the_boundary_checks_would_refuse_are_reported_not_changed():
    from management.maintenance import (
        ROW_ABOVE_PAYMENT,
        ROW_BAD_ID,
        ROW_NEGATIVE_AMOUNT,
        ROW_UNKNOWN_CURRENCY,
        ROW_UNKNOWN_STATUS,
    )
    from payments.models import Dispute
    from tests.factories import DisputeFactory

    PaymentFactory()  # a good one: not reported
    usx = PaymentFactory(stripe_payment_intent_id="pi_usx", currency="usx", amount=20300)
    disputed = PaymentFactory(amount=5000, status="disputed")
    negative = DisputeFactory(stripe_id="du_neg", payment=disputed, amount=-100)
    mystery = DisputeFactory(stripe_id="du_new", payment=disputed, status="brand_new")
    refund = RefundFactory(stripe_id="ch_not_a_refund", payment=disputed, amount=6000)

    result = run("--fix-inconsistencies", "--dry-run")
    found = {(e["row"], e["problem"]) for e in result["bad_row_examples"]}
    assert found == {
        (f"payments.payment:{usx.pk}", ROW_UNKNOWN_CURRENCY.format(value="usx")),
        (f"payments.dispute:{negative.pk}", ROW_NEGATIVE_AMOUNT.format(value=-100)),
        (f"payments.dispute:{mystery.pk}", ROW_UNKNOWN_STATUS.format(value="brand_new")),
        (
            f"payments.refund:{refund.pk}",
            ROW_BAD_ID.format(value="ch_not_a_refund", kind="refund"),
        ),
        (f"payments.refund:{refund.pk}", ROW_ABOVE_PAYMENT.format(value=6000)),
    }
    assert result["bad_row_findings"] == 5
    example = next(e for e in result["bad_row_examples"] if e["stripe_id"] == "du_new")
    assert example["admin"] == f"/admin/payments/dispute/{mystery.pk}/change/"
    # Reported, never changed: what they should hold is Stripe's to say.
    assert Dispute.objects.get(pk=mystery.pk).status == "brand_new"
    assert Payment.objects.get(pk=usx.pk).currency == "usx"
