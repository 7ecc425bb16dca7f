"""factory_boy factories. Amounts are minor units; ids look like Stripe's."""

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from payments.models import Customer, Dispute, Instructor, Payment, PaymentMethod, Refund
from payments.money import percent_of


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@backoffice.example.com")
    is_staff = True
    password = factory.django.Password("pw")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    stripe_id = factory.Sequence(lambda n: f"cus_test{n:06d}")
    email = factory.Sequence(lambda n: f"student{n}@example.com")
    name = factory.Faker("name")
    created = factory.LazyFunction(lambda: timezone.now() - timedelta(days=100))


class InstructorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instructor

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"instructor{n}@example.com")
    # Where bank-transfer payouts go (a bank payout without one cannot be approved).
    bank_account = factory.Sequence(lambda n: f"GB00TEST{n:08d}")


class PaymentMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentMethod

    stripe_id = factory.Sequence(lambda n: f"pm_test{n:06d}")
    customer = factory.SubFactory(CustomerFactory)
    type = "card"
    card_brand = "visa"
    card_last4 = "4242"
    card_exp_month = 12
    card_exp_year = 2030
    created = factory.LazyFunction(timezone.now)


class PaymentFactory(factory.django.DjangoModelFactory):
    """A succeeded card payment of 50.00 USD with Stripe-like fees, unless told otherwise."""

    class Meta:
        model = Payment

    stripe_payment_intent_id = factory.Sequence(lambda n: f"pi_test{n:08d}")
    stripe_charge_id = factory.LazyAttribute(lambda o: "ch_" + o.stripe_payment_intent_id[3:])
    customer = factory.SubFactory(CustomerFactory)
    instructor = factory.SubFactory(InstructorFactory)
    amount = 5000
    currency = "usd"
    status = Payment.Status.SUCCEEDED
    stripe_status = "succeeded"
    payment_method_type = "card"
    product_kind = Payment.ProductKind.COURSE
    description = "Python for Data Analysis"
    created = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    succeeded_at = factory.LazyAttribute(
        lambda o: (
            o.created + timedelta(seconds=5) if o.status in Payment.CAPTURED_STATUSES else None
        )
    )
    stripe_fee = factory.LazyAttribute(
        lambda o: percent_of(o.amount, 290) + 30 if o.status in Payment.CAPTURED_STATUSES else 0
    )
    platform_fee = factory.LazyAttribute(
        lambda o: percent_of(o.amount, 2000) if o.status in Payment.CAPTURED_STATUSES else 0
    )
    net = factory.LazyAttribute(
        lambda o: (
            o.amount - o.stripe_fee - o.platform_fee if o.status in Payment.CAPTURED_STATUSES else 0
        )
    )
    # What Stripe's charge says, consistent with the status asked for (the ledger reads them).
    amount_refunded = 0
    stripe_amount_refunded = factory.SelfAttribute("amount_refunded")
    charge_disputed = factory.LazyAttribute(lambda o: o.status == Payment.Status.DISPUTED)

    class Params:
        failed = factory.Trait(
            status=Payment.Status.FAILED,
            stripe_status="requires_payment_method",
            failure_code="card_declined",
            decline_code="insufficient_funds",
            failure_message="Your card has insufficient funds.",
            failed_at=factory.LazyAttribute(lambda o: o.created + timedelta(seconds=3)),
        )


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    stripe_id = factory.Sequence(lambda n: f"re_test{n:06d}")
    payment = factory.SubFactory(PaymentFactory)
    amount = 1000
    currency = factory.LazyAttribute(lambda o: o.payment.currency)
    status = Refund.Status.SUCCEEDED
    reason = "requested_by_customer"
    created = factory.LazyFunction(timezone.now)


class DisputeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dispute

    stripe_id = factory.Sequence(lambda n: f"dp_test{n:06d}")
    payment = factory.SubFactory(PaymentFactory, status=Payment.Status.DISPUTED)
    amount = factory.LazyAttribute(lambda o: o.payment.amount)
    currency = factory.LazyAttribute(lambda o: o.payment.currency)
    status = Dispute.Status.NEEDS_RESPONSE
    reason = "fraudulent"
    created = factory.LazyFunction(timezone.now)
    evidence_due_by = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class RefundRequestFactory(factory.django.DjangoModelFactory):
    """A pending request for 10.00 of a 50.00 USD payment, made by a staff member."""

    class Meta:
        model = "refunds.RefundRequest"

    payment = factory.SubFactory(PaymentFactory)
    amount = 1000
    currency = factory.LazyAttribute(lambda o: o.payment.currency)
    reason = "requested_by_customer"
    requested_by = factory.SubFactory(UserFactory)
