"""Transfer webhooks delivered by the peer itself: the project's localstripe launcher signs and
POSTs transfer.created / transfer.reversed / transfer.updated over real HTTP to our live
server, the handler re-reads the transfer through the gateway, and the mirror follows: the
transfer linked to its payout, each reversal's entry written once however often the event
is handled.

One event type is let through at a time (see test_webhook_disputes_localstripe.py: the live
server's in-memory SQLite fails, rather than waits, on concurrent writers)."""

import pytest
import requests

from payments import gateway, webhooks
from payments.models import EarningEntry, Payout, Transfer, TransferReversal, WebhookEvent
from tests.factories import InstructorFactory
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.webhook_support import PRIMARY_SECRET

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

HOOK_ID = "wh_backoffice_transfer_tests"


@pytest.fixture
def peer(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    return localstripe


@pytest.fixture
def deliver(localstripe, live_server):
    url = f"{live_server.url}/stripe/webhook/"

    let_earlier_events_pass()

    def only(*types):
        requests.post(
            f"{localstripe}/_config/webhooks/{HOOK_ID}",
            json={"url": url, "secret": PRIMARY_SECRET, "events": list(types)},
            timeout=5,
        ).raise_for_status()

    yield only
    stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)


def wait_for(condition, timeout=15.0):
    wait_until(
        condition,
        timeout=timeout,
        describe=lambda: f"events: {list(WebhookEvent.objects.values('type', 'status', 'error'))}",
    )


def test_a_transfer_and_its_reversal_reach_the_mirror_and_the_ledger_once(peer, deliver):
    account = gateway.stripe_account_create(email="ines@example.com", idempotency_key="acct:1")
    ines = InstructorFactory(name="Ines", stripe_account_id=account.id)
    payout = Payout.objects.create(
        instructor=ines,
        amount=4000,
        currency="usd",
        status=Payout.Status.PROCESSING,
        destination_account=account.id,
    )

    deliver("transfer.created")
    made = gateway.stripe_transfer_create(
        amount=4000,
        currency="usd",
        destination=account.id,
        transfer_group=f"payout:{payout.pk}",
        metadata={"payout_id": payout.pk},
        idempotency_key=f"payout:{payout.pk}",
    )
    wait_for(lambda: Transfer.objects.filter(stripe_id=made.id).exists())
    row = Transfer.objects.get()
    assert (row.payout_id, row.instructor_id, row.amount, row.amount_reversed) == (
        payout.pk,
        ines.pk,
        4000,
        0,
    )
    assert WebhookEvent.objects.get(type="transfer.created").status == "processed"

    deliver("transfer.reversed")
    gateway.stripe_transfer_reversal_create(
        transfer_id=made.id, amount=1500, metadata={}, idempotency_key="reverse:1"
    )
    wait_for(lambda: TransferReversal.objects.exists())
    wait_for(lambda: WebhookEvent.objects.filter(type="transfer.reversed", status="processed"))
    event = WebhookEvent.objects.get(type="transfer.reversed")
    # Handled again (a replay): the same state, no second entry.
    webhooks.handle_transfer(event)
    webhooks.handle_transfer(event)
    (entry,) = EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_REVERSED)
    reversal = TransferReversal.objects.get()
    assert (entry.reference, entry.amount, entry.payout_id, entry.instructor_id) == (
        f"transfer_reversal:{reversal.stripe_id}",
        1500,
        payout.pk,
        ines.pk,
    )
    row.refresh_from_db()
    payout.refresh_from_db()
    assert (row.amount_reversed, row.reversed, payout.amount_reversed) == (1500, False, 1500)

    deliver("transfer.updated")
    requests.post(
        f"{peer}/v1/transfers/{made.id}",
        data={"description": "Payout, checked"},
        auth=("sk_test_localstripe", ""),
        timeout=5,
    ).raise_for_status()
    wait_for(lambda: Transfer.objects.filter(description="Payout, checked").exists())
