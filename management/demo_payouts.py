"""Demo payouts: a payout run over the demo's earnings, then its payouts walked through every
status by demo staff, a clawback, and earning adjustments, all through the production
services (payments.services.payouts, payments.services.earning_adjustments: same rules, same
audit rows) and, for Stripe Connect, the demo's localstripe through the gateway.

- the run (`payout_run_create`, trigger "demo") makes one pending payout per instructor and
  currency whose available balance reaches the minimum: Connect for instructors with a
  connected account, bank transfer for the others;
- bank transfers: one approved and marked paid with the bank's reference, one approved and
  waiting for the bank file, one canceled (its money back in the balance, then asked for
  again as a manual payout that only a second person may approve); the rest stay pending;
- Connect (needs the peer): two approved and sent (paid, with their transfers mirrored), one
  refused by Stripe because the instructor's account lost its `transfers` capability (failed,
  its money back in the balance), one whose transfer answer is lost on the way back (the
  peer's fault switch: Stripe made the transfer, we did not hear): it stays processing until
  the next processing pass finds the transfer by its transfer_group and records it paid;
  the rest stay pending;
- a clawback: an instructor paid by bank transfer for three sales a month ago loses a dispute
  on one of them afterwards; the sale, the payout and the lost dispute reach the ledger the
  way production's do (Stripe-shaped objects through the sync's upserts, the payout services),
  so her balance is negative and the next runs net it;
- earning adjustments: two pending (a credit and a debit), one applied, one rejected.

Called by `seed_demo` after the payments exist. Idempotent: does nothing once a payout exists.
The peer's test switches (`/_config/...`, scripts/localstripe_connect.py) are demo-only steps
with no production counterpart, taken only with a test key and an explicit STRIPE_API_BASE.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from management.demo_data import stripe_fee_for
from management.demo_purchases import ERR_TEST_MODE_ONLY
from management.demo_refunds import stripe_reachable
from payments import gateway, sync
from payments.exceptions import GatewayError
from payments.gateway import StripeDispute, StripePaymentIntent
from payments.models import Customer, EarningAdjustment, Instructor, Payment, Payout
from payments.money import format_money
from payments.services.earning_adjustments import (
    earning_adjustment_approve,
    earning_adjustment_reject,
    earning_adjustment_request,
)
from payments.services.payouts import (
    payout_approve,
    payout_cancel,
    payout_manual_create,
    payout_mark_paid,
    payout_process,
    payout_run_create,
)

GROUP_FINANCE = "Finance staff"
GROUP_SENIOR = "Senior approvers"
# Demo staff who did the earlier payout work (nobody logs in as them; `analyst` and `senior`
# can do the same). pia approves and cancels; sam may also approve large payouts and mark
# bank transfers paid.
DEMO_PAYOUT_STAFF = [
    ("payouts.pia", [GROUP_FINANCE]),
    ("payouts.sam", [GROUP_FINANCE, GROUP_SENIOR]),
]

WARN_NO_STRIPE = (
    "WARNING: localstripe is not reachable at {base!r}: the demo's Stripe Connect payouts stay "
    "pending (paying them needs the peer's connected accounts)."
)
CANCEL_REASON = "The bank returned the instructor's details as invalid; she sent new ones."
MANUAL_NOTE = "Paid again by hand after the canceled payout #{payout}: new bank details checked."
BANK_REFERENCE = "BACS-{day:%Y%m%d}-{n:04d}"


# Instructors without a connected account (paid by bank transfer), each with a few sales
# about a month ago (so available), as (amount in minor units, days ago). The first is the
# clawback: she loses a dispute on her first sale after her payout is paid.
@dataclass(frozen=True)
class BankInstructor:
    name: str
    email: str
    marketplace_id: str
    bank_account: str
    currency: str
    sales: tuple[tuple[int, int], ...]
    course: str


BANK_INSTRUCTORS = [
    BankInstructor(
        "Iris Novak",
        "iris.novak@instructors.example.com",
        "ins_0900",
        "GB33BUKB20201555555555",
        "usd",
        ((19900, 34), (8900, 31), (5900, 27)),
        "Watercolour for beginners",
    ),
    BankInstructor(
        "Tomas Berg",
        "tomas.berg@instructors.example.com",
        "ins_0901",
        "DE89370400440532013000",
        "eur",
        ((12900, 40), (12900, 33), (7900, 26), (4900, 21)),
        "Swedish for travellers",
    ),
    BankInstructor(
        "Amara Okafor",
        "amara.okafor@instructors.example.com",
        "ins_0902",
        "GB29NWBK60161331926819",
        "gbp",
        ((9900, 38), (6900, 29), (6900, 24)),
        "Public speaking in 30 days",
    ),
]
# seed_demo's payments beyond `--payments`: these instructors' sales.
BANK_INSTRUCTOR_SALES = sum(len(spec.sales) for spec in BANK_INSTRUCTORS)
CLAWBACK_DISPUTE_ID = "dp_demoClawback0000000001"
CLAWBACK_DISPUTE_REASON = "fraudulent"


@dataclass(frozen=True)
class DemoAdjustment:
    """An earning adjustment asked for by pia: `decision` "approve" (by sam), "reject" (by
    sam, with `note`) or "" (left pending)."""

    amount: int  # signed minor units of usd
    reason: str
    decision: str = ""
    note: str = ""


ADJUSTMENTS = [
    DemoAdjustment(2500, "Goodwill credit: the platform canceled her live class on Nov 12."),
    DemoAdjustment(-4000, "Lesson fee paid twice by the old bank-transfer process in October."),
    DemoAdjustment(1500, "Referral bonus for the autumn campaign.", decision="approve"),
    DemoAdjustment(
        9900,
        "Compensation asked for a course the student says was not delivered.",
        decision="reject",
        note="The course was delivered; the dispute evidence shows the lessons taken.",
    ),
]


def _log(stdout, message: str) -> None:
    if stdout is not None:
        stdout.write(message)


def _staff() -> dict:
    call_command("loaddata", "groups", verbosity=0)
    User = get_user_model()
    users = {}
    for username, groups in DEMO_PAYOUT_STAFF:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
        )
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.set(Group.objects.filter(name__in=groups))
        # A fresh object: the permission cache of an earlier one would miss the groups.
        users[username.split(".")[1]] = User.objects.get(pk=user.pk)
    return users


def _peer_config(path: str, data: dict) -> None:
    """One of the peer's test-only switches (Stripe has no such thing)."""
    if not str(settings.STRIPE_SECRET_KEY).startswith("sk_test") or not settings.STRIPE_API_BASE:
        raise RuntimeError(ERR_TEST_MODE_ONLY)
    base = settings.STRIPE_API_BASE.rstrip("/")
    body = urllib.parse.urlencode(data).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}{path}", data=body), timeout=5):
        pass


def _account_exists(account_id: str) -> bool:
    try:
        gateway.stripe_account_retrieve(account_id=account_id)
    except GatewayError:
        return False
    return True


def _bank_instructor_sales(*, now: datetime) -> dict[str, list[str]]:
    """The bank-transfer instructors' sales, as Stripe sends them, through the sync (which
    creates the instructors from the metadata contract and writes their earnings); then their
    bank details, as staff enter them on the instructor page. Returns each one's payment
    intent ids by e-mail."""
    customers = list(Customer.objects.order_by("pk").values_list("stripe_id", flat=True)[:5])
    intents, sales = [], {}
    for n, spec in enumerate(BANK_INSTRUCTORS):
        for index, (amount, days) in enumerate(spec.sales):
            created = now - timedelta(days=days, hours=3 * index)
            pi = f"pi_demoBank{n:02d}{index:012d}"
            sales.setdefault(spec.email, []).append(pi)
            intents.append(
                StripePaymentIntent(
                    id=pi,
                    amount=amount,
                    currency=spec.currency,
                    status="succeeded",
                    created=created,
                    customer_id=customers[(n + index) % len(customers)] if customers else "",
                    payment_method_type="card",
                    description=spec.course,
                    metadata={
                        "instructor_name": spec.name,
                        "instructor_email": spec.email,
                        "instructor_id": spec.marketplace_id,
                        "product_kind": "course",
                        "product_id": f"course_9{n}{index}",
                        "product_name": spec.course,
                        "order_id": f"ord_bank_{n}_{index}",
                    },
                    latest_charge_id="ch_" + pi[3:],
                    charge_status="succeeded",
                    charge_created=created + timedelta(seconds=20),
                    stripe_fee=stripe_fee_for(amount, spec.currency),
                    amount_received=amount,
                )
            )
    with transaction.atomic():
        sync.upsert_payment_intents(intents, send_signals=False, detect_fraud=False)
    for spec in BANK_INSTRUCTORS:
        instructor = Instructor.objects.get(email=spec.email)
        instructor.bank_account = spec.bank_account
        instructor.save(update_fields=["bank_account", "updated_at"])
    return sales


def _clawback_dispute(payment: Payment) -> None:
    """The bank takes the first sale back after the payout: a lost dispute as Stripe sends it,
    through the sync (which writes its ledger entry)."""
    with transaction.atomic():
        sync.upsert_disputes(
            [
                StripeDispute(
                    id=CLAWBACK_DISPUTE_ID,
                    charge_id=payment.stripe_charge_id,
                    payment_intent_id=payment.stripe_payment_intent_id,
                    amount=payment.amount,
                    currency=payment.currency,
                    status="lost",
                    # Now: after her payout was paid.
                    created=timezone.now(),
                    reason=CLAWBACK_DISPUTE_REASON,
                    evidence_due_by=timezone.now() + timedelta(days=5),
                )
            ]
        )


def _approve_and_send(payout: Payout, *, approver) -> Payout:
    payout = payout_approve(payout=payout, acting_user=approver, note="Checked against the run.")
    # The approval queues the transfer (django-q2, after commit); where tasks run at once
    # (Q_SYNC) it is sent already. Otherwise send it now, as that task will: the task then
    # finds it paid and does nothing.
    payout.refresh_from_db()
    if payout.status == Payout.Status.APPROVED:
        payout = payout_process(payout_id=payout.pk)
    return payout


def seed_payouts(*, now: datetime | None = None, stdout=None) -> dict[str, int]:
    """The demo's payout run and its payouts in every status, a clawback and adjustments
    (idempotent: nothing when payouts exist). Returns the payouts per status."""
    if Payout.objects.exists():
        _log(stdout, "Payouts already present; nothing to do.")
        return {}
    now = now or timezone.now()
    staff = _staff()
    pia, sam = staff["pia"], staff["sam"]
    sales = _bank_instructor_sales(now=now)
    run = payout_run_create(trigger="demo", now=now)
    payouts = list(
        Payout.objects.filter(run_id=run.run_id)
        .select_related("instructor")
        .order_by("currency", "instructor__name", "pk")
    )
    by_email = {p.instructor.email: p for p in payouts if p.method == Payout.Method.BANK}
    bank = [by_email[spec.email] for spec in BANK_INSTRUCTORS if spec.email in by_email]
    # USD first: the demo's main currency.
    connect = sorted(
        (p for p in payouts if p.method == Payout.Method.CONNECT),
        key=lambda p: (p.currency != "usd", p.currency, p.instructor.name),
    )

    # Bank transfers: Iris's approved and paid (the clawback comes after), Tomas's approved
    # and waiting for the bank file, Amara's canceled and asked for again by hand (pending:
    # pia asked, so only someone else may approve it).
    if bank:
        payout_approve(payout=bank[0], acting_user=sam, note="Checked against the run.")
        payout_mark_paid(
            payout=bank[0], bank_reference=BANK_REFERENCE.format(day=now, n=1), acting_user=sam
        )
    if len(bank) > 1:
        payout_approve(payout=bank[1], acting_user=sam, note="In the next bank file.")
    if len(bank) > 2:
        canceled = payout_cancel(payout=bank[2], reason=CANCEL_REASON, acting_user=pia)
        payout_manual_create(
            instructor=canceled.instructor,
            amount=canceled.amount,
            currency=canceled.currency,
            note=MANUAL_NOTE.format(payout=canceled.pk),
            acting_user=pia,
        )
    # The clawback: the bank takes Iris's first sale back after she was paid.
    iris_email = BANK_INSTRUCTORS[0].email
    _clawback_dispute(Payment.objects.get(stripe_payment_intent_id=sales[iris_email][0]))

    # Stripe Connect, in the demo's localstripe.
    if connect and not stripe_reachable():
        _log(stdout, WARN_NO_STRIPE.format(base=settings.STRIPE_API_BASE))
        connect = []
    sendable = [p for p in connect if _account_exists(p.destination_account)]
    for payout in sendable[:2]:
        _approve_and_send(payout, approver=sam)
    if len(sendable) > 2:
        # Stripe refuses: the account lost its transfers capability (a review, say).
        _peer_config(
            f"/_config/accounts/{sendable[2].destination_account}", {"transfers": "inactive"}
        )
        _approve_and_send(sendable[2], approver=sam)
    if len(sendable) > 3:
        # Stripe makes the transfer, the answer is lost: processing until looked up.
        # Every attempt the gateway makes (its retries send the same key) gets the 500.
        attempts = int(settings.STRIPE_MAX_RETRIES) + 1
        _peer_config("/_config/transfers/fault", {"mode": "500", "count": str(attempts)})
        try:
            _approve_and_send(sendable[3], approver=sam)
        finally:
            _peer_config_disarm()

    adjustments = _seed_adjustments(requester=pia, approver=sam)

    counts = dict.fromkeys(Payout.Status.values, 0)
    for status in Payout.objects.values_list("status", flat=True):
        counts[status] += 1
    iris = Instructor.objects.get(email=iris_email)
    owed = sum(iris.earning_entries.filter(currency="usd").values_list("amount", flat=True))
    _log(
        stdout,
        "Payouts: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f"; {iris.name}'s balance after a clawback: {format_money(owed, 'usd')}; "
        + "earning adjustments: "
        + ", ".join(f"{n} {status}" for status, n in adjustments.items()),
    )
    return {**counts, **{f"adjustments_{k}": v for k, v in adjustments.items()}}


def _seed_adjustments(*, requester, approver) -> dict[str, int]:
    """pia asks for each adjustment (to the instructors with the most usd payments, one each);
    sam approves or rejects those that say so; the others wait for a second person."""
    instructors = list(
        Instructor.objects.filter(payouts__currency="usd")
        .exclude(email__in=[spec.email for spec in BANK_INSTRUCTORS])
        .order_by("name")
        .distinct()[: len(ADJUSTMENTS)]
    )
    counts = dict.fromkeys(EarningAdjustment.Status.values, 0)
    for instructor, spec in zip(instructors, ADJUSTMENTS, strict=False):
        adjustment = earning_adjustment_request(
            instructor=instructor,
            amount=spec.amount,
            currency="usd",
            reason=spec.reason,
            acting_user=requester,
        )
        if spec.decision == "approve":
            adjustment = earning_adjustment_approve(
                adjustment=adjustment, acting_user=approver, note="Campaign list checked."
            )
        elif spec.decision == "reject":
            adjustment = earning_adjustment_reject(
                adjustment=adjustment, acting_user=approver, note=spec.note
            )
        counts[adjustment.status] += 1
    return counts


def _peer_config_disarm() -> None:
    if not settings.STRIPE_API_BASE:
        return
    base = settings.STRIPE_API_BASE.rstrip("/")
    request = urllib.request.Request(f"{base}/_config/transfers/fault", method="DELETE")
    with urllib.request.urlopen(request, timeout=5):
        pass
