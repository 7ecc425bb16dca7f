"""One Stripe object type failing does not stop the others: every pass is attempted, each
outcome is recorded on the SyncRun, and the run is failed if any pass failed. Fake gateway
listers (no HTTP): the failure is raised where the gateway would raise it."""

from datetime import UTC, datetime

import pytest

from payments import gateway
from payments.exceptions import GatewayServerError
from payments.gateway import Page, payment_intent_from_stripe
from payments.models import Payment, SyncObjectType, SyncRun, SyncState
from payments.sync_runs import stripe_sync
from tests.payments.test_sync_upserts import T0, intent_payload

pytestmark = pytest.mark.django_db

ERR_500 = "Stripe answered 500"


def pages(*items):
    return iter([Page(items=list(items), has_more=False, last_id=items[-1].id if items else "")])


@pytest.fixture
def listers(monkeypatch):
    """Every lister serves one page (payment intents: one intent; others: nothing) and
    records that it was called; a test makes one of them fail."""
    called = []

    def make(kind, items=()):
        def lister(*, created_gt, starting_after, client):
            called.append(kind)
            return pages(*items)

        return lister

    intent = payment_intent_from_stripe(intent_payload("pi_outcome1"))
    monkeypatch.setattr(gateway, "stripe_customer_list_pages", make("customer"))
    monkeypatch.setattr(
        gateway, "stripe_payment_intent_list_pages", make("payment_intent", [intent])
    )
    monkeypatch.setattr(gateway, "stripe_refund_list_pages", make("refund"))
    monkeypatch.setattr(gateway, "stripe_dispute_list_pages", make("dispute"))
    monkeypatch.setattr(gateway, "stripe_transfer_list_pages", make("transfer"))
    monkeypatch.setattr(gateway, "stripe_promotion_code_list_pages", make("promotion_code"))
    monkeypatch.setattr(gateway, "stripe_subscription_list_pages", make("subscription"))

    def fail(name, kind):
        def failing(**kwargs):
            called.append(kind)
            raise GatewayServerError(ERR_500)

        monkeypatch.setattr(gateway, name, failing)

    return called, fail


def watermark(object_type):
    return SyncState.objects.get(object_type=object_type).watermark


def test_a_failing_type_is_recorded_and_the_others_still_sync(listers):
    called, fail = listers
    fail("stripe_refund_list_pages", "refund")
    report = stripe_sync()

    assert called == [
        "customer",
        "payment_intent",
        "refund",
        "dispute",
        "transfer",
        "promotion_code",
        "subscription",
    ]
    assert report.status == SyncRun.Status.FAILED
    assert report.error == f"GatewayServerError: {ERR_500} [refund]"
    run = SyncRun.objects.get(pk=report.run_id)
    assert (run.status, run.error) == (report.status, report.error)
    assert run.outcomes == {
        "customer": {"status": "succeeded", "error": ""},
        "payment_method": {"status": "succeeded", "error": ""},
        "payment_intent": {"status": "succeeded", "error": ""},
        "refund": {"status": "failed", "error": f"GatewayServerError: {ERR_500}"},
        "dispute": {"status": "succeeded", "error": ""},
        "transfer": {"status": "succeeded", "error": ""},
        "promotion_code": {"status": "succeeded", "error": ""},
        "subscription": {"status": "succeeded", "error": ""},
    }
    # The pass after the failed one ran, and the one before it kept its work.
    assert Payment.objects.filter(stripe_payment_intent_id="pi_outcome1").exists()
    assert run.counts["payment_intent"]["created"] == 1
    assert watermark(SyncObjectType.PAYMENT_INTENT) == datetime.fromtimestamp(T0, tz=UTC)


def test_a_child_of_a_failed_parent_syncs_but_keeps_its_watermark(listers):
    called, fail = listers
    fail("stripe_customer_list_pages", "customer")
    report = stripe_sync()

    assert called == [
        "customer",
        "payment_intent",
        "refund",
        "dispute",
        "transfer",
        "promotion_code",
        "subscription",
    ]
    assert report.status == SyncRun.Status.FAILED
    assert report.outcomes["customer"]["status"] == "failed"
    # Payment methods are read inside the customers' pass: they share its outcome.
    assert report.outcomes["payment_method"]["status"] == "failed"
    assert report.outcomes["payment_intent"]["status"] == "succeeded"
    assert report.error == f"GatewayServerError: {ERR_500} [customer, payment_method]"
    assert Payment.objects.filter(stripe_payment_intent_id="pi_outcome1").exists()
    # Read without its customer: the next run reads the same window again.
    state = SyncState.objects.get(object_type=SyncObjectType.PAYMENT_INTENT)
    assert (state.watermark, state.cursor) == (None, "")


def test_every_type_succeeding_is_a_succeeded_run(listers):
    report = stripe_sync()
    assert report.status == SyncRun.Status.SUCCEEDED
    assert report.error == ""
    assert {o["status"] for o in report.outcomes.values()} == {"succeeded"}
    assert set(report.outcomes) == set(SyncObjectType.values)
