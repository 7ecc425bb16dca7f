"""The demo's instructors in Connect: most get an Express account created in the peer
through the gateway before their payments are written, so the sync links them by account
and a payout to them is a real transfer; every fourth is paid by bank transfer and gets a
bank account. Without a peer the generator keeps its made-up accounts and says so."""

import io
from datetime import UTC, datetime

import pytest

from management.demo_connect import (
    WARN_NO_STRIPE,
    bank_accounts_seed,
    connected_accounts_create,
)
from management.demo_data import DemoGenerator, demo_size
from payments import gateway
from payments.models import Instructor

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.stripe
def test_demo_instructors_get_real_connected_accounts_or_a_bank_account(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    out = io.StringIO()
    DemoGenerator(seed=5, now=NOW, stdout=out, connected_accounts=connected_accounts_create).run(
        demo_size(300)
    )
    assert bank_accounts_seed(seed=5) == 3

    instructors = list(Instructor.objects.order_by("external_id"))
    assert len(instructors) == 12
    connected = [i for i in instructors if i.stripe_account_id]
    by_bank = [i for i in instructors if not i.stripe_account_id]
    assert [i.external_id for i in by_bank] == ["ins_0004", "ins_0008", "ins_0012"]
    assert all(i.bank_account.startswith("DE") and len(i.bank_account) == 27 for i in by_bank)
    assert all(i.bank_account == "" for i in connected)
    for instructor in connected:
        account = gateway.stripe_account_retrieve(account_id=instructor.stripe_account_id)
        assert (account.email, account.can_receive_transfers) == (instructor.email, True)
    # Their payments name the same account: the sync linked them by it.
    grace = connected[0]
    assert {p.metadata["instructor_account"] for p in grace.payments.all()[:20]} == {
        grace.stripe_account_id
    }
    # A payout to one of them is a real transfer in the peer.
    transfer = gateway.stripe_transfer_create(
        amount=1000,
        currency="usd",
        destination=grace.stripe_account_id,
        transfer_group="payout:demo",
        metadata={},
        idempotency_key="demo-test:transfer",
    )
    assert transfer.destination == grace.stripe_account_id


@pytest.mark.stripe
def test_seeding_again_answers_the_same_accounts(localstripe, settings):
    metas = [
        {
            "instructor_id": f"ins_{i:04d}",
            "instructor_name": f"Teacher {i}",
            "instructor_email": f"t{i}@example.com",
        }
        for i in range(1, 6)
    ]
    first = connected_accounts_create(metas)
    assert sorted(first) == ["ins_0001", "ins_0002", "ins_0003", "ins_0005"]
    assert connected_accounts_create(metas) == first


def test_without_a_peer_the_generator_keeps_made_up_accounts_and_warns(settings):
    settings.STRIPE_API_BASE = ""
    out = io.StringIO()
    DemoGenerator(seed=5, now=NOW, stdout=out, connected_accounts=connected_accounts_create).run(
        demo_size(100)
    )
    assert WARN_NO_STRIPE.format(base="") in out.getvalue()
    assert not Instructor.objects.filter(stripe_account_id="").exists()
    assert bank_accounts_seed() == 0
