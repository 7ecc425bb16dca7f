"""Helpers for the customer adjustment tests: staff with the roles' permissions, and a fake
Stripe customer balance that records every call (the localstripe tests use the real peer)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

from django.contrib.auth.models import Permission

from payments.exceptions import GatewayTimeout, InvalidRequest
from payments.gateway import StripeCustomerBalanceTransaction
from tests.factories import UserFactory

_names = itertools.count(1)


def staff(*codenames: str, username: str | None = None):
    user = UserFactory(username=username or f"staff{next(_names)}")
    if codenames:
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # permission caches are per instance


def requester(**kw):
    return staff("view_customeradjustment", "add_customeradjustment", **kw)


def approver(**kw):
    return staff(
        "view_customeradjustment", "add_customeradjustment", "approve_customeradjustment", **kw
    )


def senior(**kw):
    return staff(
        "view_customeradjustment",
        "add_customeradjustment",
        "approve_customeradjustment",
        "approve_large_customeradjustment",
        **kw,
    )


class FakeCustomerBalance:
    """Stripe's customer balance as the services see it through the gateway. Honours
    idempotency keys (same key -> the first transaction). `fail_next`:
    "timeout_after_create" (the transaction IS made, the caller hears a timeout),
    "refuse" (Stripe says no)."""

    def __init__(self) -> None:
        self.transactions: list[StripeCustomerBalanceTransaction] = []
        self.by_key: dict[str, StripeCustomerBalanceTransaction] = {}
        self.balances: dict[str, int] = {}
        self.create_calls: list[dict] = []
        self.list_calls = 0
        self.fail_next: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def create(self, *, customer_id, amount, currency, idempotency_key, **params):
        with self._lock:
            self.create_calls.append(
                {"customer_id": customer_id, "amount": amount, "key": idempotency_key}
            )
            fail, self.fail_next = self.fail_next, None
            if fail == "refuse":
                raise InvalidRequest("No such customer", stripe_code="resource_missing")
            if idempotency_key in self.by_key:
                return self.by_key[idempotency_key]
            ending = self.balances.get(customer_id, 0) + amount
            self.balances[customer_id] = ending
            txn = StripeCustomerBalanceTransaction(
                id=f"cbtxn_fake{next(self._ids)}",
                customer_id=customer_id,
                amount=amount,
                currency=currency,
                ending_balance=ending,
                type="adjustment",
                created=datetime.now(UTC),
                description=params.get("description", ""),
                metadata=dict(params.get("metadata") or {}),
            )
            self.transactions.append(txn)
            self.by_key[idempotency_key] = txn
        if fail == "timeout_after_create":
            raise GatewayTimeout()
        return txn

    def list(self, *, customer_id, **_):
        with self._lock:
            self.list_calls += 1
            return [t for t in reversed(self.transactions) if t.customer_id == customer_id]

    def install(self, monkeypatch) -> FakeCustomerBalance:
        from payments import gateway

        monkeypatch.setattr(gateway, "stripe_customer_balance_transaction_create", self.create)
        monkeypatch.setattr(gateway, "stripe_customer_balance_transaction_list", self.list)

        def no_customer(**_):
            raise GatewayTimeout()  # the mirror refresh is best effort: never reached here

        monkeypatch.setattr(gateway, "stripe_customer_retrieve", no_customer)
        return self
