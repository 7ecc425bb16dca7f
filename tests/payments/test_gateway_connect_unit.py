"""Connect mappers and call guards without a peer: a webhook's plain dict and an SDK object
map alike, expanded references give their id, missing fields have defaults, and mutating
calls refuse to go without an idempotency key or with a non-positive amount."""

from datetime import UTC, datetime

import pytest

from payments import gateway
from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.calls import ERR_AMOUNT_NOT_POSITIVE

TRANSFER = {
    "id": "tr_1",
    "object": "transfer",
    "amount": 5000,
    "amount_reversed": 1500,
    "currency": "EUR",
    "created": 1_700_000_000,
    "destination": {"id": "acct_1", "object": "account"},
    "livemode": False,
    "metadata": {"payout_id": "7"},
    "reversed": False,
    "transfer_group": "payout:7",
    "description": None,
    "reversals": {
        "object": "list",
        "has_more": False,
        "data": [
            {
                "id": "trr_1",
                "object": "transfer_reversal",
                "amount": 1500,
                "currency": "eur",
                "created": 1_700_000_100,
                "metadata": {},
                "transfer": "tr_1",
            }
        ],
    },
}


def test_a_transfer_dict_maps_with_its_reversals():
    mapped = gateway.transfer_from_stripe(TRANSFER)
    assert (mapped.id, mapped.amount, mapped.currency, mapped.destination) == (
        "tr_1",
        5000,
        "eur",
        "acct_1",
    )
    assert (mapped.amount_reversed, mapped.transfer_group, mapped.description) == (
        1500,
        "payout:7",
        "",
    )
    assert mapped.created == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    (reversal,) = mapped.reversals
    assert (reversal.id, reversal.transfer_id, reversal.amount, reversal.currency) == (
        "trr_1",
        "tr_1",
        1500,
        "eur",
    )


def test_missing_fields_take_defaults():
    mapped = gateway.transfer_from_stripe({"id": "tr_2", "amount": 10, "currency": "usd"})
    assert (mapped.destination, mapped.amount_reversed, mapped.reversed, mapped.reversals) == (
        "",
        0,
        False,
        [],
    )
    account = gateway.account_from_stripe({"id": "acct_2"})
    assert (account.transfers_capability, account.can_receive_transfers) == ("", False)


def test_an_account_reads_its_transfers_capability():
    account = gateway.account_from_stripe(
        {
            "id": "acct_3",
            "email": " Ana@Example.com ",
            "capabilities": {"transfers": "pending"},
            "charges_enabled": False,
            "payouts_enabled": True,
        }
    )
    assert (account.email, account.transfers_capability, account.can_receive_transfers) == (
        "ana@example.com",
        "pending",
        False,
    )


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        (
            gateway.stripe_transfer_create,
            {
                "amount": 100,
                "currency": "usd",
                "destination": "acct_1",
                "transfer_group": "payout:1",
                "metadata": {},
            },
        ),
        (
            gateway.stripe_transfer_reversal_create,
            {"transfer_id": "tr_1", "amount": 100, "metadata": {}},
        ),
        (gateway.stripe_account_create, {"email": "a@example.com"}),
    ],
)
def test_mutations_need_an_idempotency_key(call, kwargs):
    with pytest.raises(ValueError, match=ERR_IDEMPOTENCY_KEY_REQUIRED):
        call(**kwargs, idempotency_key="")


def test_transfers_and_reversals_need_a_positive_amount():
    with pytest.raises(ValueError, match=ERR_AMOUNT_NOT_POSITIVE):
        gateway.stripe_transfer_create(
            amount=0,
            currency="usd",
            destination="acct_1",
            transfer_group="g",
            metadata={},
            idempotency_key="k",
        )
    with pytest.raises(ValueError, match=ERR_AMOUNT_NOT_POSITIVE):
        gateway.stripe_transfer_reversal_create(
            transfer_id="tr_1", amount=-5, metadata={}, idempotency_key="k"
        )
