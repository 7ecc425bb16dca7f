"""Database-level guarantees on money columns, and the history kept on payments."""

import pytest
from django.db import IntegrityError, transaction

from payments.models import Payment
from tests.factories import PaymentFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": -1},
        {"amount": 1000, "amount_refunded": 1001},
        {"amount_refunded": -5},
        {"stripe_fee": -1},
        {"platform_fee": -1},
        {"amount": 1000, "net": 1001, "stripe_fee": 0, "platform_fee": 0},
    ],
)
def test_check_constraints_reject_impossible_amounts(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(**fields)


def test_payment_intent_id_is_unique():
    PaymentFactory(stripe_payment_intent_id="pi_same")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(stripe_payment_intent_id="pi_same")


def test_one_default_payment_method_per_customer():
    method = PaymentMethodFactory(is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethodFactory(customer=method.customer, is_default=True)
    PaymentMethodFactory(customer=method.customer, is_default=False)


def test_changes_to_a_payment_are_kept_in_its_history():
    payment = PaymentFactory(status=Payment.Status.PROCESSING)
    payment.status = Payment.Status.SUCCEEDED
    payment.save()
    assert list(payment.history.values_list("status", flat=True)) == ["succeeded", "processing"]
