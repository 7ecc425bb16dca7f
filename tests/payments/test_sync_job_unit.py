"""The sync job's resume logic with fake gateway listers (cases localstripe cannot produce:
it ignores an unknown `starting_after` instead of rejecting it as Stripe does)."""

from datetime import UTC, datetime

import pytest

from payments import gateway
from payments.exceptions import InvalidRequest
from payments.gateway import Page, StripeRefund
from payments.models import Refund, SyncObjectType, SyncState
from payments.sync_runs import stripe_sync
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def empty_lister(**kwargs):
    return iter([Page(items=[], has_more=False, last_id="")])


def refund(re_id, created):
    return StripeRefund(
        id=re_id,
        payment_intent_id="pi_job1",
        charge_id="",
        amount=100,
        currency="usd",
        status="succeeded",
        created=datetime.fromtimestamp(created, tz=UTC),
    )


@pytest.fixture
def fake_gateway(monkeypatch):
    calls = []
    for name in (
        "stripe_customer_list_pages",
        "stripe_payment_intent_list_pages",
        "stripe_dispute_list_pages",
        "stripe_transfer_list_pages",
        "stripe_promotion_code_list_pages",
        "stripe_subscription_list_pages",
    ):
        monkeypatch.setattr(gateway, name, empty_lister)

    def refunds(*, created_gt, starting_after, client):
        calls.append({"created_gt": created_gt, "starting_after": starting_after})
        if starting_after == "re_deleted":
            raise InvalidRequest("No such refund: 're_deleted'", param="starting_after")
        return iter(
            [
                Page(items=[refund("re_b", 1_800_000_200)], has_more=True, last_id="re_b"),
                Page(items=[refund("re_a", 1_800_000_100)], has_more=False, last_id="re_a"),
            ]
        )

    monkeypatch.setattr(gateway, "stripe_refund_list_pages", refunds)
    return calls


def test_a_resume_cursor_stripe_no_longer_knows_restarts_the_pass_from_the_same_floor(
    fake_gateway,
):
    PaymentFactory(stripe_payment_intent_id="pi_job1", amount=5000)
    floor = datetime.fromtimestamp(1_700_000_000, tz=UTC)
    SyncState.objects.create(
        object_type=SyncObjectType.REFUND, cursor="re_deleted", pass_floor=floor
    )
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert fake_gateway == [
        {"created_gt": floor, "starting_after": "re_deleted"},
        {"created_gt": floor, "starting_after": None},
    ]
    assert set(Refund.objects.values_list("stripe_id", flat=True)) == {"re_a", "re_b"}
    state = SyncState.objects.get(object_type=SyncObjectType.REFUND)
    assert state.cursor == ""
    assert state.watermark == datetime.fromtimestamp(1_800_000_200, tz=UTC)


def test_other_invalid_requests_fail_the_run(fake_gateway, monkeypatch):
    def broken(**kwargs):
        raise InvalidRequest("Invalid API version", param="stripe_version")

    monkeypatch.setattr(gateway, "stripe_refund_list_pages", broken)
    report = stripe_sync()
    assert report.status == "failed"
    # The error names the object types it hit.
    assert report.error == "InvalidRequest: Invalid API version [refund]"
