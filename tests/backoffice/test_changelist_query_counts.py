"""Every changelist of the payments area runs the same number of queries for 10 and 100 rows."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.models import (
    BalanceEntry,
    Dispute,
    FraudAlert,
    Instructor,
    PaymentMethod,
    StudentBalance,
)
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    InstructorFactory,
    PaymentFactory,
    PaymentMethodFactory,
    UserFactory,
)

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
    elif model is StudentBalance:
        for customer in CustomerFactory.create_batch(ROWS):
            balance = StudentBalance.objects.create(customer=customer, minutes=60)
            BalanceEntry.objects.create(balance=balance, kind="purchase", minutes=60)
    elif model is PaymentMethod:
        PaymentMethodFactory.create_batch(ROWS)
    elif model is Instructor:
        InstructorFactory.create_batch(ROWS)
    elif model is AdminAction:
        for _ in range(ROWS):
            AdminAction.objects.create(
                actor=UserFactory(), action="x", target_type="t", target_id="1"
            )


@pytest.mark.parametrize(
    "model", [Dispute, FraudAlert, StudentBalance, PaymentMethod, Instructor, AdminAction]
)
def test_query_count_is_constant_in_page_size(admin_client, monkeypatch, model):
    make_rows(model)
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
