"""Fixtures and helpers for the payout tests: ledger entries written directly (the payout
services read the ledger, whoever wrote it), staff with the payout roles, and a fake Stripe
Connect that records every call (the localstripe tests use the real peer)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.contrib.auth.models import Permission
from django.utils import timezone

from payments import gateway
from payments.exceptions import GatewayTimeout, InvalidRequest
from payments.gateway import StripeTransfer, StripeTransferReversal
from payments.models import EarningEntry, Instructor
from tests.factories import InstructorFactory, UserFactory
from tests.management.stripe_peer import setup_peer

_refs = itertools.count(1)


def earn(
    instructor: Instructor,
    amount: int,
    currency: str = "usd",
    *,
    days_ago: float = 30,
    kind: str = EarningEntry.Kind.EARNING,
    available_at=None,
) -> EarningEntry:
    """One ledger entry that occurred `days_ago` and is available after the hold (7 days)."""
    occurred = timezone.now() - timedelta(days=days_ago)
    return EarningEntry.objects.create(
        instructor=instructor,
        currency=currency,
        amount=amount,
        kind=kind,
        reference=f"test:{next(_refs)}",
        occurred_at=occurred,
        available_at=available_at or occurred + timedelta(days=7),
    )


def staff(username: str, *codenames: str):
    user = UserFactory(username=username)
    if codenames:
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # permission caches are per instance


@pytest.fixture
def clerk(db):
    """Finance: creates and approves payouts (not large ones)."""
    return staff("clerk", "add_payout", "approve_payout", "view_payout")


@pytest.fixture
def approver(db):
    return staff("approver", "add_payout", "approve_payout", "view_payout")


@pytest.fixture
def senior(db):
    return staff(
        "senior",
        "add_payout",
        "approve_payout",
        "approve_large_payout",
        "mark_payout_paid",
        "reverse_payout",
        "view_payout",
    )


class FakeConnect:
    """Stripe Connect as the services see it through the gateway (the gateway's own types;
    what they land goes through the real payments.sync.upsert_transfers). Honours idempotency
    keys (same key -> the first transfer). `fail_next = "timeout_after_create"`: the next
    transfer IS made, the caller hears a timeout."""

    def __init__(self) -> None:
        self.transfers: dict[str, StripeTransfer] = {}
        self.by_key: dict[str, str] = {}
        self.create_calls: list[dict] = []
        self.fail_next: str | None = None
        self.unknown_accounts: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def transfer_create(self, *, idempotency_key, **params):
        with self._lock:
            self.create_calls.append({"idempotency_key": idempotency_key, **params})
            if idempotency_key in self.by_key:
                return self.transfers[self.by_key[idempotency_key]]
            if params["destination"] in self.unknown_accounts:
                raise InvalidRequest(
                    "No such destination: " + params["destination"],
                    stripe_code="resource_missing",
                )
            transfer = StripeTransfer(
                id=f"tr_fake{next(self._ids)}",
                amount=params["amount"],
                currency=params["currency"],
                destination=params["destination"],
                created=datetime.now(UTC),
                transfer_group=params["transfer_group"],
                metadata=dict(params["metadata"]),
                description=params.get("description", ""),
            )
            self.transfers[transfer.id] = transfer
            self.by_key[idempotency_key] = transfer.id
            fail, self.fail_next = self.fail_next, None
        if fail == "timeout_after_create":
            raise GatewayTimeout()
        return transfer

    def transfer_list(self, *, transfer_group=None, destination=None, created_gte=None):
        return [t for t in self.transfers.values() if t.transfer_group == transfer_group]

    def transfer_retrieve(self, *, transfer_id):
        return self.transfers[transfer_id]

    def reversal_create(self, *, transfer_id, amount, metadata, idempotency_key):
        with self._lock:
            transfer = self.transfers[transfer_id]
            if amount > transfer.amount - transfer.amount_reversed:
                raise InvalidRequest("Amount exceeds what is left to reverse.")
            reversal = StripeTransferReversal(
                id=f"trr_fake{next(self._ids)}",
                transfer_id=transfer_id,
                amount=amount,
                currency=transfer.currency,
                metadata=dict(metadata),
                created=datetime.now(UTC),
            )
            self.transfers[transfer_id] = dataclasses.replace(
                transfer,
                amount_reversed=transfer.amount_reversed + amount,
                reversed=transfer.amount_reversed + amount == transfer.amount,
                reversals=[reversal, *transfer.reversals],
            )
            return reversal


@pytest.fixture
def connect(monkeypatch):
    fake = FakeConnect()
    monkeypatch.setattr(gateway, "stripe_transfer_create", fake.transfer_create)
    monkeypatch.setattr(gateway, "stripe_transfer_list", fake.transfer_list)
    monkeypatch.setattr(gateway, "stripe_transfer_retrieve", fake.transfer_retrieve)
    monkeypatch.setattr(gateway, "stripe_transfer_reversal_create", fake.reversal_create)
    return fake


# --- the Stripe peer (localstripe with Connect) ------------------------------------------------


@pytest.fixture
def peer(localstripe, settings, monkeypatch):
    peer = setup_peer(localstripe, settings, monkeypatch)
    yield peer
    requests.delete(f"{localstripe}/_config/transfers/fault", timeout=5).raise_for_status()


def arm_fault(peer, **params):
    """The peer's switch for the next transfer create (scripts/localstripe_connect.py)."""
    requests.post(f"{peer.url}/_config/transfers/fault", json=params, timeout=5).raise_for_status()


@pytest.fixture
def ines(peer):
    """An instructor with an Express account in the peer and 250.00 available."""
    account = gateway.stripe_account_create(
        email="ines@example.com", name="Ines Teacher", idempotency_key="instructor:ines"
    )
    instructor = InstructorFactory(
        name="Ines Teacher", email="ines@example.com", stripe_account_id=account.id
    )
    earn(instructor, 25_000)
    return instructor
