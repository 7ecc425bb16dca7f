"""The subscription mirror without a peer: the mapper reads both of Stripe's API shapes, the
boundary checks refuse bad objects, and the upsert never takes a subscription out of
canceled, keeps an unknown status raw, and writes nothing on a re-run."""

from datetime import UTC, datetime

import pytest

from payments import sync
from payments.gateway import invoice_subscription_id, subscription_from_stripe
from payments.models import Subscription
from tests.factories import CustomerFactory
from tests.payments.subscription_support import stripe_subscription

pytestmark = pytest.mark.django_db

T0, T1 = 1_796_000_000, 1_798_600_000


def test_the_mapper_reads_the_legacy_plan_shape_with_an_expanded_invoice():
    sub = subscription_from_stripe(
        {
            "id": "sub_1",
            "customer": "cus_1",
            "status": "active",
            "created": T0,
            "current_period_start": T0,
            "current_period_end": T1,
            "cancel_at_period_end": False,
            "items": {
                "data": [
                    {
                        "quantity": 2,
                        "plan": {
                            "id": "plan_1",
                            "amount": 1500,
                            "currency": "EUR",
                            "interval": "month",
                            "interval_count": 3,
                            "product": "prod_1",
                            "nickname": "Quarterly",
                        },
                    }
                ]
            },
            "latest_invoice": {
                "id": "in_1",
                "status": "open",
                "amount_due": 3000,
                "amount_paid": 0,
            },
            "cancellation_details": {"reason": None, "comment": None, "feedback": None},
        }
    )
    assert (sub.amount, sub.currency, sub.interval, sub.interval_count, sub.quantity) == (
        3000,
        "eur",
        "month",
        3,
        2,
    )
    assert (sub.price_id, sub.product_id, sub.plan_name) == ("plan_1", "prod_1", "Quarterly")
    assert (sub.latest_invoice_id, sub.latest_invoice_status, sub.latest_invoice_amount_due) == (
        "in_1",
        "open",
        3000,
    )
    assert sub.current_period_end == datetime.fromtimestamp(T1, tz=UTC)
    assert sub.cancellation_reason == ""


def test_the_mapper_reads_the_current_shape_period_on_items_price_and_unexpanded_invoice():
    sub = subscription_from_stripe(
        {
            "id": "sub_2",
            "customer": {"id": "cus_2"},
            "status": "past_due",
            "created": T0,
            "items": {
                "data": [
                    {
                        "quantity": 1,
                        "current_period_start": T0,
                        "current_period_end": T1,
                        "price": {
                            "id": "price_a",
                            "unit_amount": 4900,
                            "currency": "usd",
                            "recurring": {"interval": "year", "interval_count": 1},
                            "product": {"id": "prod_a", "name": "Tutoring"},
                        },
                    },
                    {"quantity": 3, "price": {"id": "price_b", "unit_amount": 100}},
                ]
            },
            "latest_invoice": "in_2",
            "cancellation_details": {"reason": "payment_failed", "feedback": "too_expensive"},
        }
    )
    assert (sub.customer_id, sub.amount, sub.interval) == ("cus_2", 5200, "year")
    assert sub.items_count == 2
    assert (sub.product_id, sub.plan_name) == ("prod_a", "")
    assert sub.current_period_start == datetime.fromtimestamp(T0, tz=UTC)
    assert (sub.latest_invoice_id, sub.latest_invoice_status) == ("in_2", "")
    assert sub.cancellation_reason == "payment_failed"
    assert sub.cancellation_feedback == "too_expensive"


@pytest.mark.parametrize(
    ("invoice", "expected"),
    [
        ({"id": "in_1", "subscription": "sub_old"}, "sub_old"),
        (
            {"id": "in_2", "parent": {"subscription_details": {"subscription": "sub_new"}}},
            "sub_new",
        ),
        ({"id": "in_3", "subscription": None, "parent": None}, ""),
    ],
)
def test_an_invoice_names_its_subscription_in_either_api_shape(invoice, expected):
    assert invoice_subscription_id(invoice) == expected


@pytest.fixture
def customer():
    return CustomerFactory(stripe_id="cus_test0001")


def test_a_canceled_subscription_is_never_brought_back_by_an_older_snapshot(customer):
    sync.upsert_subscriptions([stripe_subscription(status="canceled")])
    result = sync.upsert_subscriptions([stripe_subscription(status="active")])
    assert (result.updated, result.unchanged) == (0, 1)
    assert Subscription.objects.get().status == "canceled"


def test_an_unknown_status_is_stored_raw_and_a_rerun_writes_nothing(customer):
    first = sync.upsert_subscriptions([stripe_subscription(status="frozen")])
    again = sync.upsert_subscriptions([stripe_subscription(status="frozen")])
    assert (first.created, again.unchanged, again.updated) == (1, 1, 0)
    row = Subscription.objects.get()
    assert row.status == "frozen"
    assert row.history.count() == 1


def test_a_snapshot_naming_the_same_invoice_unexpanded_keeps_its_status(customer):
    sync.upsert_subscriptions([stripe_subscription()])
    sync.upsert_subscriptions(
        [
            stripe_subscription(
                latest_invoice_status="",
                latest_invoice_amount_due=None,
                latest_invoice_amount_paid=None,
                cancel_at_period_end=True,
            )
        ]
    )
    row = Subscription.objects.get()
    assert row.cancel_at_period_end
    assert (row.latest_invoice_status, row.latest_invoice_amount_paid) == ("paid", 4900)


def test_a_subscription_of_an_unknown_customer_is_skipped_and_its_customer_named():
    result = sync.upsert_subscriptions([stripe_subscription(customer_id="cus_unknown1")])
    assert (result.skipped, result.missing_parents) == (1, {"cus_unknown1"})
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"id": "si_notasub"}, "Subscription id 'si_notasub' does not start with sub_."),
        ({"currency": "usx"}, "subscription sub_test0001: unknown currency 'usx'."),
        ({"amount": -1}, "subscription sub_test0001: amount -1 is negative."),
        ({"customer_id": ""}, "Subscription sub_test0001 has no customer."),
        ({"latest_invoice_id": "ch_1"}, "latest_invoice 'ch_1' is not a invoice id (in_)."),
    ],
)
def test_bad_subscriptions_are_refused_at_the_boundary(customer, overrides, error):
    result = sync.upsert_subscriptions([stripe_subscription(**overrides)])
    assert list(result.invalid.values()) == [error]
    assert not Subscription.objects.exists()
