"""The demo's instructors in Stripe Connect.

Most demo instructors get an Express connected account, created in the peer (localstripe,
scripts/localstripe_connect.py) through the gateway BEFORE the generator writes their
payments: the payments' metadata then names real accounts and the sync links them
(payments.sync._instructor_pks), as production's checkout does, so a payout to them is a
real transfer in the peer. Every BANK_TRANSFER_EVERY-th instructor keeps none: they are paid
by bank transfer, with a (made-up, deterministic) bank account on their row.

Test mode only: nothing is created without a reachable STRIPE_API_BASE and a test key; the
generator then keeps its made-up account ids and this module warns.
"""

from __future__ import annotations

import random

from django.conf import settings

from management.demo_refunds import stripe_reachable
from payments import gateway
from payments.exceptions import GatewayError
from payments.models import Instructor

# Instructors 4, 8, 12 ... (1-based) are paid by bank transfer.
BANK_TRANSFER_EVERY = 4

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r} (or the key is not a test key): the "
    "demo instructors have made-up connected accounts, and their payouts would fail."
)
WARN_FAILED = "WARNING: creating the demo's connected accounts failed: {error}"


def paid_by_bank_transfer(index: int) -> bool:
    """Whether the `index`-th (0-based) demo instructor keeps no connected account."""
    return index % BANK_TRANSFER_EVERY == BANK_TRANSFER_EVERY - 1


def _test_mode() -> bool:
    return not settings.STRIPE_LIVEMODE and str(settings.STRIPE_SECRET_KEY).startswith("sk_test")


def connected_accounts_create(instructors: list[dict], *, stdout=None) -> dict[str, str] | None:
    """Create the connected accounts of the demo instructors (the metadata contract's dicts
    the generator made: instructor_id, _name, _email) through the gateway. Returns
    instructor_id -> account id for those that got one (the others are paid by bank
    transfer), or None when the peer cannot be used (the generator then keeps its own
    ids). Idempotent: each account's key is derived from the instructor's marketplace id,
    so seeding again against the same peer answers the same accounts."""

    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    if not _test_mode() or not stripe_reachable():
        log(WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))
        return None
    accounts: dict[str, str] = {}
    try:
        for index, meta in enumerate(instructors):
            if paid_by_bank_transfer(index):
                continue
            account = gateway.stripe_account_create(
                email=meta["instructor_email"],
                name=meta["instructor_name"],
                idempotency_key=f"demo:instructor:{meta['instructor_id']}:account",
            )
            accounts[meta["instructor_id"]] = account.id
    except GatewayError as exc:
        log(WARN_FAILED.format(error=exc))
        return None
    log(f"  {len(accounts)} connected accounts in the peer")
    return accounts


def bank_accounts_seed(*, seed: int = 42) -> int:
    """A made-up IBAN for each instructor without a connected account and without a bank
    account (where their bank-transfer payouts go). Returns how many were set."""
    rng = random.Random(seed)
    missing = list(
        Instructor.objects.filter(stripe_account_id="", bank_account="").order_by(
            "external_id", "pk"
        )
    )
    for instructor in missing:
        digits = "".join(rng.choice("0123456789") for _ in range(20))
        # German IBAN layout (DE + 2 check digits + 18), in groups of four as banks print it.
        iban = f"DE{digits}"
        instructor.bank_account = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    Instructor.objects.bulk_update(missing, ["bank_account"])
    return len(missing)
