"""Connect calls of the gateway against the project's localstripe launcher over real HTTP
(scripts/localstripe_connect.py): connected accounts, transfers and their reversals, Stripe's
refusals, idempotency keys honoured, the events, and the fault switch the payout tests use
(the transfer is made but the answer is lost or late)."""

from datetime import timedelta

import pytest
import requests

from payments import gateway
from payments.exceptions import (
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
    InvalidRequest,
    ResourceMissing,
)
from tests.management.stripe_peer import setup_peer

pytestmark = pytest.mark.stripe


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    peer = setup_peer(localstripe, settings, monkeypatch)
    yield peer
    requests.delete(f"{localstripe}/_config/transfers/fault", timeout=5).raise_for_status()


def account(email="ines@example.com", key=None):
    return gateway.stripe_account_create(
        email=email, name="Ines Teacher", idempotency_key=key or f"instructor:{email}"
    )


def transfer(destination, *, amount=2500, currency="usd", group="payout:1", key="payout:1", **kw):
    return gateway.stripe_transfer_create(
        amount=amount,
        currency=currency,
        destination=destination,
        transfer_group=group,
        metadata={"payout_id": group.split(":")[-1]},
        description=kw.pop("description", "Payout"),
        idempotency_key=key,
        **kw,
    )


def arm_fault(peer, **params):
    requests.post(f"{peer.url}/_config/transfers/fault", json=params, timeout=5).raise_for_status()


def events(peer, kind):
    found = peer.client.v1.events.list(params={"type": kind, "limit": 100}).data
    return [e.data.object for e in found]


# --- accounts ------------------------------------------------------------------------------


def test_an_express_account_can_receive_transfers_once_created(peer):
    created = account()
    assert created.id.startswith("acct_")
    assert (created.email, created.type, created.country) == ("ines@example.com", "express", "US")
    assert created.transfers_capability == "active" and created.can_receive_transfers
    assert created.payouts_enabled is True
    assert gateway.stripe_account_retrieve(account_id=created.id) == created


def test_the_same_key_answers_the_same_account_and_other_params_are_refused(peer):
    first = account(key="instructor:7")
    assert account(key="instructor:7").id == first.id
    assert len(peer.client.v1.accounts.list(params={"limit": 100}).data) == 1
    with pytest.raises(IdempotencyConflict):
        account(email="other@example.com", key="instructor:7")


def test_an_unknown_account_is_missing(peer):
    with pytest.raises(ResourceMissing):
        gateway.stripe_account_retrieve(account_id="acct_nope")


def test_the_account_states_follow_the_config_switch(peer):
    created = account()
    requests.post(
        f"{peer.url}/_config/accounts/{created.id}",
        json={"transfers": "inactive", "payouts_enabled": "false"},
        timeout=5,
    ).raise_for_status()
    now = gateway.stripe_account_retrieve(account_id=created.id)
    assert (now.transfers_capability, now.can_receive_transfers, now.payouts_enabled) == (
        "inactive",
        False,
        False,
    )


# --- transfers -----------------------------------------------------------------------------


def test_a_transfer_lands_in_stripes_shape_and_is_found_by_its_group(peer):
    destination = account().id
    made = transfer(destination, amount=2500, group="payout:42", key="payout:42")
    assert made.id.startswith("tr_")
    assert (made.amount, made.currency, made.destination, made.transfer_group) == (
        2500,
        "usd",
        destination,
        "payout:42",
    )
    assert (made.amount_reversed, made.reversed, made.reversals) == (0, False, [])
    assert (made.metadata, made.description) == ({"payout_id": "42"}, "Payout")
    assert gateway.stripe_transfer_retrieve(transfer_id=made.id) == made
    transfer(destination, group="payout:43", key="payout:43")
    assert gateway.stripe_transfer_list(transfer_group="payout:42") == [made]
    assert len(gateway.stripe_transfer_list(destination=destination)) == 2
    assert gateway.stripe_transfer_list(destination="acct_other") == []
    since = gateway.stripe_transfer_list(created_gte=made.created)
    assert {t.transfer_group for t in since} == {"payout:42", "payout:43"}
    assert gateway.stripe_transfer_list(created_gte=made.created + timedelta(hours=1)) == []
    assert sorted(e.id for e in events(peer, "transfer.created")) == sorted(
        t.id for t in gateway.stripe_transfer_list()
    )


def test_a_replayed_key_makes_one_transfer_and_other_params_are_refused(peer):
    destination = account().id
    first = transfer(destination, key="payout:5", group="payout:5")
    assert transfer(destination, key="payout:5", group="payout:5").id == first.id
    assert len(gateway.stripe_transfer_list(transfer_group="payout:5")) == 1
    with pytest.raises(IdempotencyConflict):
        transfer(destination, amount=9999, key="payout:5", group="payout:5")


def test_stripe_refuses_an_unknown_destination_and_one_without_the_capability(peer):
    with pytest.raises(InvalidRequest) as unknown:
        transfer("acct_unknown", key="payout:1")
    assert unknown.value.stripe_code == "resource_missing"
    assert unknown.value.param == "destination"
    assert "No such destination" in unknown.value.message

    destination = account().id
    requests.post(
        f"{peer.url}/_config/accounts/{destination}", json={"transfers": "none"}, timeout=5
    ).raise_for_status()
    with pytest.raises(InvalidRequest) as refused:
        transfer(destination, key="payout:2")
    assert refused.value.stripe_code == "insufficient_capabilities_for_transfer"
    assert gateway.stripe_transfer_list() == []


def test_the_sync_pager_reads_transfers_after_a_time_page_by_page(peer):
    destination = account().id
    made = [transfer(destination, amount=100 + i, key=f"k{i}", group=f"g{i}") for i in range(103)]
    pages = list(gateway.stripe_transfer_list_pages())
    assert [len(p.items) for p in pages] == [100, 3]
    assert [p.has_more for p in pages] == [True, False]
    assert {t.id for p in pages for t in p.items} == {t.id for t in made}
    later = list(gateway.stripe_transfer_list_pages(created_gt=made[-1].created))
    assert later[0].items == []


# --- reversals -----------------------------------------------------------------------------


def test_reversals_pull_money_back_up_to_what_is_left(peer):
    made = transfer(account().id, amount=3000)
    first = gateway.stripe_transfer_reversal_create(
        transfer_id=made.id, amount=1000, metadata={"payout_id": "1"}, idempotency_key="r:1"
    )
    assert first.id.startswith("trr_")
    assert (first.transfer_id, first.amount, first.currency, first.metadata) == (
        made.id,
        1000,
        "usd",
        {"payout_id": "1"},
    )
    # The same key: the same reversal, nothing more pulled back.
    again = gateway.stripe_transfer_reversal_create(
        transfer_id=made.id, amount=1000, metadata={"payout_id": "1"}, idempotency_key="r:1"
    )
    assert again == first
    with pytest.raises(InvalidRequest) as too_much:
        gateway.stripe_transfer_reversal_create(
            transfer_id=made.id, amount=2001, metadata={}, idempotency_key="r:2"
        )
    assert too_much.value.param == "amount"
    now = gateway.stripe_transfer_retrieve(transfer_id=made.id)
    assert (now.amount_reversed, now.reversed, now.reversals) == (1000, False, [first])

    rest = gateway.stripe_transfer_reversal_create(
        transfer_id=made.id, amount=2000, metadata={}, idempotency_key="r:3"
    )
    now = gateway.stripe_transfer_retrieve(transfer_id=made.id)
    assert (now.amount_reversed, now.reversed) == (3000, True)
    assert [r.id for r in now.reversals] == [rest.id, first.id]
    assert [t.id for t in events(peer, "transfer.reversed")] == [made.id, made.id]
    assert [
        r["id"] for r in peer.client.v1.transfers.reversals.list(made.id).to_dict()["data"]
    ] == [rest.id, first.id]
    assert peer.client.v1.transfers.reversals.retrieve(made.id, first.id).amount == 1000


def test_the_gateway_pages_reversals_past_the_ten_stripe_embeds(peer):
    made = transfer(account().id, amount=1200)
    for i in range(12):
        gateway.stripe_transfer_reversal_create(
            transfer_id=made.id, amount=100, metadata={}, idempotency_key=f"r:{i}"
        )
    embedded = peer.client.v1.transfers.retrieve(made.id).reversals
    assert (len(embedded.data), embedded.has_more) == (10, True)
    now = gateway.stripe_transfer_retrieve(transfer_id=made.id)
    assert (len(now.reversals), sum(r.amount for r in now.reversals)) == (12, 1200)
    ((listed,),) = [p.items for p in gateway.stripe_transfer_list_pages()]
    assert listed == now


def test_an_update_sends_transfer_updated(peer):
    made = transfer(account().id)
    peer.client.v1.transfers.update(made.id, params={"metadata": {"note": "checked"}})
    assert gateway.stripe_transfer_retrieve(transfer_id=made.id).metadata == {
        "payout_id": "1",
        "note": "checked",
    }
    assert [t.id for t in events(peer, "transfer.updated")] == [made.id]


# --- the fault switch ----------------------------------------------------------------------


def test_a_500_after_the_transfer_was_made_is_healed_by_the_retry_with_the_same_key(peer):
    destination = account().id
    arm_fault(peer, mode="500")
    made = transfer(destination, key="payout:9", group="payout:9")
    assert peer.sleeps, "the client retried"
    assert [t.id for t in gateway.stripe_transfer_list(transfer_group="payout:9")] == [made.id]


def test_a_500_without_retries_leaves_a_transfer_the_lookup_finds(peer, settings):
    settings.STRIPE_MAX_RETRIES = 0
    destination = account().id
    arm_fault(peer, mode="500")
    with pytest.raises(GatewayServerError):
        transfer(destination, key="payout:9", group="payout:9")
    (found,) = gateway.stripe_transfer_list(transfer_group="payout:9")
    assert transfer(destination, key="payout:9", group="payout:9").id == found.id


def test_a_late_answer_times_out_but_the_transfer_was_made_once(peer, settings):
    settings.STRIPE_MAX_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    destination = account().id
    arm_fault(peer, mode="delay", seconds=1.5)
    with pytest.raises(GatewayTimeout):
        transfer(destination, key="payout:3", group="payout:3")
    settings.STRIPE_TIMEOUT_SECONDS = 10
    (found,) = gateway.stripe_transfer_list(transfer_group="payout:3")
    assert (found.amount, found.metadata) == (2500, {"payout_id": "3"})
    # Disarmed after one hit: the next create answers at once.
    other = transfer(destination, key="payout:4", group="payout:4")
    assert other.id != found.id


def test_an_insufficient_platform_balance_is_refused_before_anything_is_made(peer):
    destination = account().id
    arm_fault(peer, mode="balance_insufficient")
    with pytest.raises(InvalidRequest) as refused:
        transfer(destination, key="payout:8", group="payout:8")
    assert refused.value.stripe_code == "balance_insufficient"
    assert gateway.stripe_transfer_list() == []
    # Nothing was stored under the key: once funds are there, the same key makes it.
    assert transfer(destination, key="payout:8", group="payout:8").amount == 2500
