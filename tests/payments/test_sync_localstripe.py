"""The Stripe sync against localstripe, a real HTTP peer: objects are created there with the
stripe SDK, the sync mirrors them, and local rows are compared field by field.

localstripe quirks bent here, not in the product: it has no `created` filters on its lists
(STRIPE_LOCALSTRIPE_COMPAT makes the gateway filter by `created` itself), its balance
transactions carry a fee of 0, its payment intents lack amount_received, it declines only
card 4000000000000341 and sets no decline_code. Disputes come from the launcher's extension
(test_sync_disputes_localstripe.py) and as Stripe-shaped payloads (test_sync_upserts.py).
"""

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from payments.models import (
    Customer,
    JobLock,
    Payment,
    PaymentMethod,
    Refund,
    SyncObjectType,
    SyncRun,
    SyncState,
)
from payments.money import percent_of
from payments.sync_runs import LOCK_NAME, MSG_ABANDONED, MSG_LOCKED, stripe_sync
from tests.management.stripe_peer import CARD_DECLINED, make_customer, make_payment, setup_peer

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


def ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    return setup_peer(localstripe, settings, monkeypatch)


@pytest.fixture
def account(peer):
    """Two customers, four payments (one declined), two refunds at localstripe."""
    c = peer.client
    ada, ada_card = make_customer(c, email="ada@example.com", name="Ada Lovelace")
    bob, bob_card = make_customer(c, email="Bob@Example.com", name="Bob")
    _, bad_card = (
        None,
        c.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": CARD_DECLINED, "exp_month": 1, "exp_year": 2030, "cvc": "123"},
            }
        ),
    )
    c.v1.payment_methods.attach(bad_card.id, params={"customer": bob.id})
    p1 = make_payment(c, customer=ada, method=ada_card, amount=5000, metadata={"order": "1"})
    p2 = make_payment(c, customer=ada, method=ada_card, amount=12_345)
    p3 = make_payment(c, customer=bob, method=bob_card, amount=800, currency="eur")
    declined = make_payment(c, customer=bob, method=bad_card, amount=3000)
    c.v1.refunds.create(params={"payment_intent": p1.id, "amount": 1000})
    c.v1.refunds.create(params={"payment_intent": p3.id, "amount": 800})
    return {
        "customers": [ada, bob],
        "methods": [ada_card, bob_card, bad_card],
        "payments": [p1, p2, p3, declined],
    }


def snapshot() -> dict:
    """Every mirrored row, for 'nothing changed' comparisons."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Customer, PaymentMethod, Payment, Refund)
    }


def test_sync_mirrors_localstripe_field_by_field(peer, account, settings):
    settings.PLATFORM_FEE_BPS = 2000
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    c = peer.client

    for remote in account["customers"]:
        local = Customer.objects.get(stripe_id=remote.id)
        assert local.email == remote.email.lower()
        assert local.name == remote.name
        assert local.created == ts(remote.created)
        assert local.livemode is False

    for remote in account["methods"]:
        remote = c.v1.payment_methods.retrieve(remote.id)
        local = PaymentMethod.objects.get(stripe_id=remote.id)
        assert local.customer.stripe_id == remote.customer
        assert (local.type, local.card_brand, local.card_last4) == (
            "card",
            remote.card.brand,
            remote.card.last4,
        )
        assert (local.card_exp_month, local.card_exp_year) == (
            remote.card.exp_month,
            remote.card.exp_year,
        )

    for remote in account["payments"]:
        remote = c.v1.payment_intents.retrieve(
            remote.id, params={"expand": ["latest_charge.balance_transaction"]}
        )
        local = Payment.objects.get(stripe_payment_intent_id=remote.id)
        charge = remote.latest_charge
        assert local.amount == remote.amount
        assert local.currency == remote.currency
        assert local.stripe_status == remote.status
        assert local.stripe_charge_id == charge.id
        assert local.customer.stripe_id == remote.customer
        assert local.payment_method.stripe_id == remote.payment_method
        assert local.created == ts(remote.created)
        assert local.metadata == remote.metadata.to_dict()
        if remote.status == "succeeded":
            refunded = charge.amount_refunded
            assert local.amount_refunded == refunded
            expected = (
                Payment.Status.SUCCEEDED
                if refunded == 0
                else Payment.Status.REFUNDED
                if refunded == remote.amount
                else Payment.Status.PARTIALLY_REFUNDED
            )
            assert local.status == expected
            assert local.stripe_fee == charge.balance_transaction.fee
            # 20% of what the customer kept paying: the fee goes back pro rata with refunds.
            gross = percent_of(remote.amount, 2000)
            returned = int(Fraction(gross * refunded, remote.amount) + Fraction(1, 2))  # half up
            assert local.platform_fee == gross - returned
            assert local.net == remote.amount - refunded - local.stripe_fee - local.platform_fee
            assert local.succeeded_at == ts(charge.created)
            assert local.failure_code == ""
        else:
            assert remote.status == "requires_payment_method"
            assert local.status == Payment.Status.FAILED
            assert local.failure_code == "card_declined"
            assert local.failure_message == charge.failure_message
            assert (local.stripe_fee, local.platform_fee, local.net) == (0, 0, 0)
            assert local.failed_at == ts(charge.created)

    remote_refunds = c.v1.refunds.list(params={"limit": 100}).data
    assert Refund.objects.count() == len(remote_refunds) == 2
    for remote in remote_refunds:
        local = Refund.objects.get(stripe_id=remote.id)
        assert local.payment.stripe_payment_intent_id == remote.payment_intent
        assert (local.amount, local.currency, local.status) == (
            remote.amount,
            remote.currency,
            remote.status,
        )
        assert local.created == ts(remote.created)

    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.counts["customer"]["created"] == 2
    assert run.counts["payment_method"]["created"] == 3
    assert run.counts["payment_intent"]["created"] == 4
    assert run.counts["refund"]["created"] == 2
    assert run.objects_changed == 11
    # customers 1 page + 2 payment method lists + intents 1 page + refunds 1 page +
    # disputes 1 (empty) page + transfers 1 (empty) page + promotion codes 1 (empty) page +
    # subscriptions 1 (empty) page; no retrieve per object.
    assert run.api_calls == report.api_calls == 9
    assert run.finished_at is not None and run.duration_ms is not None
    assert not JobLock.objects.exists()
    # No dispute, transfer, promotion code or subscription at the peer here: their watermarks
    # have nothing to follow.
    assert all(
        s.watermark
        for s in SyncState.objects.exclude(
            object_type__in=["dispute", "transfer", "promotion_code", "subscription"]
        )
    )


def test_second_run_changes_nothing(peer, account):
    assert stripe_sync().status == "succeeded"
    before = snapshot()
    report = stripe_sync()
    assert report.status == "succeeded"
    assert report.objects_changed == 0
    assert report.counts["payment_intent"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 4,
        "skipped": 0,
    }
    assert snapshot() == before


def test_incremental_run_reads_new_objects_and_updates_refunded_payment(peer, account):
    stripe_sync()
    c = peer.client
    ada, card = account["customers"][0], account["methods"][0]
    new = make_payment(c, customer=ada, method=card, amount=2500)
    c.v1.refunds.create(params={"payment_intent": account["payments"][1].id, "amount": 345})
    report = stripe_sync()
    assert report.counts["payment_intent"]["created"] == 1
    assert report.counts["refund"]["created"] == 1
    assert Payment.objects.get(stripe_payment_intent_id=new.id).status == "succeeded"
    p2 = Payment.objects.get(stripe_payment_intent_id=account["payments"][1].id)
    assert (p2.status, p2.amount_refunded) == (Payment.Status.PARTIALLY_REFUNDED, 345)


def _hide_everything_from_incremental_runs():
    # Watermarks in the future: an incremental run reads nothing new.
    SyncState.objects.update(watermark=timezone.now() + timedelta(days=1))


def test_since_rereads_a_window_and_full_backfills(peer, account, settings):
    settings.STRIPE_SYNC_OVERLAP_SECONDS = 0
    stripe_sync()
    target = account["payments"][0].id
    Payment.objects.filter(stripe_payment_intent_id=target).update(description="tampered")
    _hide_everything_from_incremental_runs()

    assert stripe_sync().objects_changed == 0
    assert Payment.objects.get(stripe_payment_intent_id=target).description == "tampered"

    report = stripe_sync(since=timezone.now().date())
    assert report.counts["payment_intent"]["updated"] == 1
    assert Payment.objects.get(stripe_payment_intent_id=target).description == ""
    assert SyncRun.objects.first().mode == SyncRun.Mode.SINCE

    Payment.objects.filter(stripe_payment_intent_id=target).update(description="tampered")
    assert stripe_sync(since=date(2000, 1, 1) + timedelta(days=365 * 60)).objects_changed == 0
    report = stripe_sync(full=True)
    assert report.counts["payment_intent"] == {
        "created": 0,
        "updated": 1,
        "unchanged": 3,
        "skipped": 0,
    }
    assert SyncRun.objects.first().mode == SyncRun.Mode.FULL


def test_a_run_while_another_holds_the_lock_is_skipped(peer, account):
    token = JobLock.objects.acquire(LOCK_NAME, ttl=timedelta(minutes=10))
    assert token
    report = stripe_sync()
    assert (report.status, report.error, report.api_calls) == ("skipped", MSG_LOCKED, 0)
    assert not Payment.objects.exists()
    assert SyncRun.objects.get().status == SyncRun.Status.SKIPPED
    JobLock.objects.release(LOCK_NAME, token)
    assert stripe_sync().status == "succeeded"


def test_an_expired_lock_of_a_dead_run_is_taken_over(peer, account):
    dead = SyncRun.objects.create(status=SyncRun.Status.RUNNING)
    JobLock.objects.create(
        name=LOCK_NAME,
        owner="crashed-worker",
        acquired_at=timezone.now() - timedelta(hours=1),
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert stripe_sync().status == "succeeded"
    assert Payment.objects.count() == 4
    dead.refresh_from_db()
    assert (dead.status, dead.error) == (SyncRun.Status.FAILED, MSG_ABANDONED)


def test_command_prints_one_summary_line_without_a_terminal(peer, account):
    out = StringIO()
    call_command("manage_payments", "--sync-stripe", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Stripe sync #{SyncRun.objects.get().pk} succeeded: customer +2")


def test_command_exits_non_zero_when_the_sync_fails(peer, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings.STRIPE_MAX_RETRIES = 2
    with pytest.raises(CommandError, match="Stripe sync failed: GatewayConnectionError") as exc:
        call_command("manage_payments", "--sync-stripe", stdout=StringIO())
    assert exc.value.returncode == 1
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert "Could not reach Stripe" in run.error
    # Every pass is attempted (one failing type does not stop the others), each with the
    # first try and two retries; disputes are listed from the peer like the rest.
    passes = (
        "customer",
        "payment_intent",
        "refund",
        "dispute",
        "transfer",
        "promotion_code",
        "subscription",
    )
    assert all(run.outcomes[kind]["status"] == "failed" for kind in passes)
    assert run.api_calls == 3 * len(passes)
    assert len(peer.sleeps) == 2 * len(passes)
    assert not JobLock.objects.exists()


def test_command_rejects_full_with_since(peer):
    with pytest.raises(CommandError, match="either --full or --since"):
        call_command(
            "manage_payments", "--sync-stripe", "--full", "--since", "2026-01-01", stdout=StringIO()
        )
    with pytest.raises(CommandError, match="go with --sync-stripe"):
        call_command("manage_payments", "--full", stdout=StringIO())


def test_watermarks_follow_the_newest_object(peer, account):
    stripe_sync()
    newest = max(p.created for p in account["payments"])
    state = SyncState.objects.get(object_type=SyncObjectType.PAYMENT_INTENT)
    assert state.watermark == ts(newest)
    assert state.cursor == ""


class Terminal(StringIO):
    def isatty(self):
        return True


def test_command_draws_a_progress_line_on_a_terminal(peer, account):
    out = Terminal()
    call_command("manage_payments", "--sync-stripe", stdout=out)
    text = out.getvalue()
    assert "\r[#" in text and "payment_intent 4" in text
    assert text.strip().splitlines()[-1].startswith("Stripe sync #")
