"""Every changelist of the payments area runs the same number of queries for 10 and 100 rows,
also when customers on the page are blocked (the "Blocked" badge reads the joined row)."""

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from post_office.models import Email

from backoffice.models import AdminAction, CustomerEmail
from backoffice.outbox import queue_customer_email
from payments.models import (
    BalanceEntry,
    Coupon,
    CouponCurrency,
    CouponRedemption,
    Customer,
    CustomerAdjustment,
    Dispute,
    EarningAdjustment,
    EarningEntry,
    FraudAlert,
    Instructor,
    Lesson,
    Payment,
    PaymentMethod,
    Payout,
    PayoutRun,
    StudentBalance,
    Subscription,
    Transfer,
)
from refunds.models import RefundRequest
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    InstructorFactory,
    PaymentFactory,
    PaymentMethodFactory,
    RefundRequestFactory,
    UserFactory,
)
from tests.payments.payout_support import entry, payout

pytestmark = pytest.mark.django_db
ROWS = 105


def make_rows(model):
    if model is Dispute:
        DisputeFactory.create_batch(ROWS)
    elif model is FraudAlert:
        for index, payment in enumerate(PaymentFactory.create_batch(ROWS)):
            if index % 2:
                FraudAlert.objects.create(
                    payment=payment,
                    source=FraudAlert.Source.STAFF,
                    created=timezone.now(),
                    reviewed_by=UserFactory(),
                )
                continue
            # Our rules' alerts: their columns read the row only (customer, numbers, money).
            FraudAlert.objects.create(
                payment=payment,
                customer=payment.customer,
                source=FraudAlert.Source.RULE,
                rule="new_account_high_amount",
                severity="high",
                risk_score=61,
                cause_key=f"customer:{payment.customer_id}",
                numbers={
                    "amount": {"amount": payment.amount, "currency": payment.currency},
                    "threshold": {"amount": 50000, "currency": payment.currency},
                    "account_age_hours": 3,
                    "new_account_days": 7,
                },
                payment_ids=[payment.pk],
                created=timezone.now(),
            )
    elif model in (StudentBalance, BalanceEntry, Lesson):
        # Through the hours ledger and the lessons import, as production writes them.
        from payments import hours, lessons

        for customer in CustomerFactory.create_batch(ROWS):
            hours.credit_minutes(
                customer_id=customer.pk, minutes=600, kind="adjustment", reference=customer.email
            )
        rows = [
            {
                "student": customer.email,
                "booking_id": f"bk-{customer.pk}",
                "minutes": "60",
                "date": "2026-11-30",
                "status": "consumed" if customer.pk % 2 else "reserved",
            }
            for customer in Customer.objects.all()
        ]
        assert lessons.lessons_import(rows).applied
    elif model is PaymentMethod:
        PaymentMethodFactory.create_batch(ROWS)
    elif model is Instructor:
        # With balances in two currencies, one of them negative: the list reads the page's
        # balances in one grouped query.
        for index, instructor in enumerate(InstructorFactory.create_batch(ROWS)):
            entry(instructor, 1000 + index)
            entry(instructor, -500 if index % 2 else 500, "eur", on_hold=bool(index % 3))
    elif model is Payout:
        requester, approver = UserFactory(), UserFactory()
        run = PayoutRun.objects.create(trigger="command")
        statuses = list(Payout.Status)
        for index, instructor in enumerate(InstructorFactory.create_batch(ROWS)):
            payout(
                instructor,
                1000 + index,
                "usd" if index % 2 else "jpy",
                status=statuses[index % len(statuses)],
                source=Payout.Source.MANUAL if index % 3 else Payout.Source.RUN,
                run=None if index % 3 else run,
                requested_by=requester if index % 3 else None,
                approved_by=approver if index % 2 else None,
                failure_message="No such destination" if index % 5 == 0 else "",
                amount_reversed=100 if index % 7 == 0 else 0,
            )
    elif model is PayoutRun:
        creator = UserFactory()
        for index in range(ROWS):
            PayoutRun.objects.create(
                trigger="admin" if index % 2 else "schedule",
                created_by=creator if index % 2 else None,
                payouts_created=2,
                totals={"usd": {"count": 1, "amount": 1000}, "jpy": {"count": 1, "amount": 500}},
            )
    elif model is Customer:
        CustomerFactory.create_batch(ROWS)
    elif model is Payment:
        PaymentFactory.create_batch(ROWS)
    elif model is RefundRequest:
        RefundRequestFactory.create_batch(ROWS, requested_by=None)
    elif model is Transfer:
        for index, instructor in enumerate(InstructorFactory.create_batch(ROWS)):
            Transfer.objects.create(
                stripe_id=f"tr_count{index}",
                instructor=instructor if index % 3 else None,
                destination=f"acct_count{index}",
                amount=1000 + index,
                currency="usd",
                amount_reversed=index % 2 * 100,
                created=timezone.now(),
            )
    elif model is EarningEntry:
        from payments.earnings import record_payment_earnings

        record_payment_earnings(p.pk for p in PaymentFactory.create_batch(ROWS))
    elif model is EarningAdjustment:
        requester, decider = UserFactory(), UserFactory()
        for index, instructor in enumerate(InstructorFactory.create_batch(ROWS)):
            EarningAdjustment.objects.create(
                instructor=instructor,
                amount=-500 if index % 2 else 2500,
                currency="usd",
                reason="Bonus",
                requested_by=requester,
                decided_by=decider if index % 3 else None,
            )
    elif model is AccessAttempt:
        # Sign-in lockouts (backoffice/sign_in_admin.py): failures per account and address.
        for index in range(ROWS):
            AccessAttempt.objects.create(
                username=f"guess{index}",
                ip_address=f"203.0.113.{index % 250}",
                user_agent="curl",
                http_accept="*/*",
                path_info="/admin/login/",
                get_data="",
                post_data="",
                failures_since_start=index % 15,
            )
    elif model is User:
        # The users list with its second-factor column (an annotation, not a query per row).
        for index, user in enumerate(UserFactory.create_batch(ROWS)):
            if index % 2:
                TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    elif model is Coupon:
        # Terms in two currencies each, and redemptions (one flagged) on some: the list reads
        # the terms by one prefetch and the usage by one grouped annotation.
        for index in range(ROWS):
            coupon = Coupon.objects.create(
                code=f"CODE{index}",
                name=f"Coupon {index}",
                kind="fixed",
                max_redemptions=3 if index % 2 else None,
                stripe_state="synced",
            )
            for currency in ("usd", "eur"):
                CouponCurrency.objects.create(
                    coupon=coupon, currency=currency, amount_off=500, minimum_amount=1000
                )
            if index % 10 == 0:
                payment = PaymentFactory(coupon_code=coupon.code)
                CouponRedemption.objects.create(
                    payment=payment,
                    coupon=coupon,
                    code=coupon.code,
                    customer=payment.customer,
                    currency="usd",
                    discount_amount=500,
                    order_amount=payment.amount + 500,
                    discount_source="metadata",
                    redeemed_at=payment.created,
                    flagged=bool(index % 20),
                )
    elif model is Email:
        # Customer e-mails with their causes, in every status the Outbox shows.
        for index, payment in enumerate(PaymentFactory.create_batch(ROWS)):
            with transaction.atomic():
                email = queue_customer_email(
                    to=f"c{index}@example.com",
                    subject="Receipt",
                    body="Thanks",
                    kind=CustomerEmail.Kind.RECEIPT,
                    cause=payment,
                )
            Email.objects.filter(pk=email.pk).update(status=index % 4)
    elif model is Subscription:
        statuses = [*Subscription.Status.values, "a_status_stripe_added"]
        for index, customer in enumerate(CustomerFactory.create_batch(ROWS)):
            Subscription.objects.create(
                stripe_id=f"sub_count{index}",
                customer=customer,
                status=statuses[index % len(statuses)],
                plan_name="Monthly tutoring",
                amount=4900,
                currency="usd" if index % 2 else "jpy",
                interval="month",
                cancel_at_period_end=index % 3 == 0,
                current_period_end=timezone.now(),
                latest_invoice_status="paid" if index % 2 else "open",
                created=timezone.now(),
            )
    elif model is CustomerAdjustment:
        # Money and hours, credits and debits, every status, decided or not; customers
        # blocked by the shared step below (the "needs a senior" note reads the joined row).
        requester, decider = UserFactory(), UserFactory()
        statuses = list(CustomerAdjustment.Status)
        for index, customer in enumerate(CustomerFactory.create_batch(ROWS)):
            money = index % 2 == 0
            CustomerAdjustment.objects.create(
                customer=customer,
                unit="money" if money else "hours",
                direction="credit" if index % 3 else "debit",
                amount=1000 + index if money else 0,
                currency=("usd" if index % 4 else "jpy") if money else "",
                minutes=0 if money else 30 + index,
                reason="Goodwill",
                status=statuses[index % len(statuses)],
                requested_by=requester if index % 5 else None,
                decided_by=decider if index % 3 else None,
                failure_message="No such customer" if index % 7 == 0 else "",
            )
    elif model is AdminAction:
        for _ in range(ROWS):
            AdminAction.objects.create(
                actor=UserFactory(), action="x", target_type="t", target_id="1"
            )


def block_every_other_customer():
    blocker = UserFactory(username="blocker")
    ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))[::2]
    Customer.objects.filter(pk__in=ids).update(
        blocked_at=timezone.now(), blocked_by=blocker, block_reason="fraud"
    )
    return len(ids)


@pytest.mark.parametrize(
    "model",
    [
        Dispute,
        FraudAlert,
        StudentBalance,
        BalanceEntry,
        Lesson,
        PaymentMethod,
        Instructor,
        AdminAction,
        Email,
        Customer,
        Payment,
        RefundRequest,
        Transfer,
        Payout,
        PayoutRun,
        EarningEntry,
        EarningAdjustment,
        AccessAttempt,
        User,
        Coupon,
        Subscription,
        CustomerAdjustment,
    ],
)
def test_query_count_is_constant_in_page_size(admin_client, monkeypatch, model):
    make_rows(model)
    blocked = block_every_other_customer()
    model_admin = admin.site._registry[model]
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    counts = []
    for per_page in (10, 100):
        monkeypatch.setattr(model_admin, "list_per_page", per_page)
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(url)
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == per_page
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    if model in (
        Dispute,
        FraudAlert,
        Customer,
        Payment,
        RefundRequest,
        Subscription,
        CustomerAdjustment,
    ):
        # The badge is on the page, so the constant count covers it.
        assert blocked and 'data-testid="customer-blocked"' in response.content.decode()
