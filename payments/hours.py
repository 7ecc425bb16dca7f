"""The prepaid hours ledger: every change to a student's hours goes through this module.

The model (payments/models/balance.py):
- a StudentBalance per student: `minutes` is always the sum of its BalanceEntry rows;
- a BalanceEntry per effect, unique by `reference` (a purchase, a lesson reserved / taken /
  released, an expiry, a refund, an adjustment): an effect is applied once, whatever the
  replays (a second call with the same reference returns None and changes nothing);
- an HourPackage (a lot) per credit, with its expiry and the minutes it has left;
- an HourDraw per (entry, package) it touched: an entry's draws add up to its minutes, a
  package's draws to its `remaining`, so the sum of a student's packages' `remaining` is the
  balance too (until the expiry job has taken an expired package's remainder off).

Rules kept here:
- A debit draws FIFO over the student's unexpired packages, the one expiring first first
  (ties: the older package). A debit needing more than the unexpired packages hold is
  refused (NotEnoughMinutes) and changes nothing.
- A reservation holds minutes (an entry of kind reservation); a cancellation releases them
  to the packages they came from (an already expired package's share expires at once); a
  consumed reservation releases them and takes them again as usage from the same packages,
  even when a package has expired since (the lesson was booked while it was valid).
- An hour-package payment credits its `package_minutes` once, when it has succeeded
  (reference per payment), expiring at metadata `expires_at` or HOUR_PACKAGE_VALID_DAYS after
  the payment succeeded. Called by the sync's upserts in their transaction (record_payment_hours),
  so a webhook, a sync, a re-sync and a back-office refund all end here.
- A refund of a package (or a lost dispute: the business lost the money, the ledger's
  disputed_lost) takes back the minutes it pays for: package_minutes x refunded /
  amount, cumulative per payment (partial refunds add up to the whole package, no rounding
  drift). Policy when the student has already used some of them: they come off the refunded
  package first, then off the student's other unexpired packages (oldest expiry first), and
  what is still missing leaves the balance negative, carried by the refunded package as a
  negative `remaining` (a debt); the next credit settles debts before anything else. So a
  refund never leaves hours that were not paid for, and a negative balance (the dashboard's
  card, the balances list's filter) is what finance follows up.
- What a refunded package lost to expiry counts as already gone: a refund takes back only
  what its share exceeds the package's refunds plus its expired minutes, so a refund before
  and after the expiry job end at the same balance. A refund that no longer stands gives
  its minutes back to the packages the refunds took them from; what lands on an expired
  package expires at once.
- Expired minutes leave by one entry per package (the daily job, expire_packages).

Locks: every writer locks the student's balance row (FOR UPDATE) before it reads or writes
their entries and packages, so the packages themselves need no lock. Lock order: payments
(the sync's upserts hold them) before balances; nothing locks a payment after a balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from payments import ledger as money_ledger
from payments.metadata import parse_payment_metadata
from payments.models import BalanceEntry, HourDraw, HourPackage, Payment, StudentBalance
from payments.money import format_money, pro_rata

ERR_MINUTES_NOT_POSITIVE = "Minutes must be a whole number above zero (got {minutes!r})."
ERR_NO_REFERENCE = "Every hours entry needs a reference (the effect's unique name)."
ERR_NOT_ENOUGH_MINUTES = (
    "Not enough hours: {available} minutes left in unexpired packages, {minutes} needed."
)
ERR_CREDIT_KIND = "{kind!r} is not a kind of credit."
ERR_DEBIT_KIND = "{kind!r} is not a kind of debit."

# The kinds each public entry point may write (reservations, releases, expiries and refunds
# have their own paths here, which keep the draws they need).
CREDIT_KINDS = frozenset({BalanceEntry.Kind.PURCHASE, BalanceEntry.Kind.ADJUSTMENT})
DEBIT_KINDS = frozenset(
    {BalanceEntry.Kind.USAGE, BalanceEntry.Kind.RESERVATION, BalanceEntry.Kind.ADJUSTMENT}
)

NOTE_PURCHASE = "Payment {payment}: {hours} h package ({amount})"
NOTE_REFUND = "Payment {payment}: {refunded} of {amount} refunded"
NOTE_REFUND_OR_LOST = "Payment {payment}: {refunded} of {amount} refunded or lost in a dispute"
NOTE_REFUND_REVERSED = "Payment {payment}: a refund no longer stands ({refunded} refunded now)"
NOTE_EXPIRY = "Package #{package} expired {when}"
NOTE_EXPIRY_AT_RELEASE = "Released from a package that has expired"


class HoursError(Exception):
    """A change to hours that the rules refuse; the message is for staff, as it is."""


class NotEnoughMinutes(HoursError):
    """The student's unexpired packages hold fewer minutes than the debit needs."""

    def __init__(self, *, available: int, minutes: int):
        self.available = available
        self.minutes = minutes
        super().__init__(ERR_NOT_ENOUGH_MINUTES.format(available=available, minutes=minutes))


PURCHASE_REFERENCE_PREFIX = "hours:purchase:"


def purchase_reference(payment_intent_id: str) -> str:
    return f"{PURCHASE_REFERENCE_PREFIX}{payment_intent_id}"


def refund_reference(payment_intent_id: str, n: int) -> str:
    return f"hours:refund:{payment_intent_id}:{n}"


def expiry_reference(package_pk: int) -> str:
    return f"hours:expiry:{package_pk}"


# --- the unit of work ---------------------------------------------------------------------------


def _check_minutes(minutes) -> None:
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise HoursError(ERR_MINUTES_NOT_POSITIVE.format(minutes=minutes))


def locked_balance(customer_id: int) -> StudentBalance:
    """The student's balance row, created if missing, locked FOR UPDATE until the caller's
    transaction ends. Call inside transaction.atomic()."""
    balance = StudentBalance.objects.select_for_update().filter(customer_id=customer_id).first()
    if balance is not None:
        return balance
    try:
        with transaction.atomic():
            StudentBalance.objects.create(customer_id=customer_id)
    except IntegrityError:
        pass  # created by a concurrent writer since our read: lock theirs
    return StudentBalance.objects.select_for_update().get(customer_id=customer_id)


Draws = list[tuple[HourPackage, int]]


class HoursLedger:
    """One transaction's work on the hours ledger. Balances are locked (FOR UPDATE) the first
    time they are asked for and their packages loaded once; entries, draws and the packages'
    and balances' new figures are kept in memory and written by flush() in a few statements
    (bulk inserts and updates), so an import of many rows costs a few statements per chunk,
    not several per row. Use inside transaction.atomic(), and flush() before it ends.

    Absolute values are written for balances and packages: that is safe because every value
    was read under the balance's lock, which the transaction holds until it ends."""

    def __init__(self, *, now: datetime | None = None):
        self.now = now or timezone.now()
        self._balances: dict[int, StudentBalance] = {}  # by customer pk
        self._packages: dict[int, dict[int, HourPackage]] = {}  # by balance pk, then pk
        self._entries: list[BalanceEntry] = []
        self._draws: list[tuple[BalanceEntry, HourPackage, int]] = []
        # Entries by reference: written in this unit (not flushed yet) or read (prefetch);
        # None = known not to exist. With their draws as (package pk, minutes).
        self._known: dict[str, BalanceEntry | None] = {}
        self._known_draws: dict[str, list[tuple[int, int]]] = {}
        self._dirty_packages: dict[int, HourPackage] = {}
        self._dirty_balances: dict[int, StudentBalance] = {}

    # -- balances and packages --

    def balance(self, customer_id: int) -> StudentBalance:
        """The student's balance, locked, with their packages loaded."""
        balance = self._balances.get(customer_id)
        if balance is None:
            balance = self.adopt(locked_balance(customer_id))
        return balance

    def adopt(self, balance: StudentBalance) -> StudentBalance:
        """Take a balance the caller has locked (FOR UPDATE) into this unit."""
        if balance.customer_id in self._balances:
            return self._balances[balance.customer_id]
        self._balances[balance.customer_id] = balance
        self._packages[balance.pk] = {
            package.pk: package for package in HourPackage.objects.filter(balance=balance)
        }
        return balance

    def packages(self, balance: StudentBalance) -> list[HourPackage]:
        """The student's packages, the one expiring first first (ties: the older one)."""
        return sorted(self._packages[balance.pk].values(), key=lambda p: (p.expires_at, p.pk))

    def _new_package(self, balance: StudentBalance, **fields) -> HourPackage:
        package = HourPackage.objects.create(balance=balance, remaining=0, **fields)
        self._packages[balance.pk][package.pk] = package
        return package

    # -- references --

    def prefetch(self, references: Iterable[str]) -> None:
        """Read which of these references exist (and their draws) in two queries, so the
        steps that ask about them do not query one by one (an import's chunk)."""
        wanted = {ref for ref in references if ref not in self._known}
        if not wanted:
            return
        found = {e.reference: e for e in BalanceEntry.objects.filter(reference__in=wanted)}
        draws: dict[int, list[tuple[int, int]]] = {}
        if found:
            rows = HourDraw.objects.filter(entry__in=list(found.values())).order_by("id")
            for entry_id, package_id, minutes in rows.values_list(
                "entry_id", "package_id", "minutes"
            ):
                draws.setdefault(entry_id, []).append((package_id, minutes))
        for ref in wanted:
            entry = found.get(ref)
            self._known[ref] = entry
            if entry is not None:
                self._known_draws[ref] = draws.get(entry.pk, [])

    def entry(self, reference: str) -> BalanceEntry | None:
        if reference not in self._known:
            self.prefetch([reference])
        return self._known[reference]

    def applied(self, reference: str) -> bool:
        return self.entry(reference) is not None

    def _draws_of(self, balance: StudentBalance, reference: str) -> Draws:
        packages = self._packages[balance.pk]
        return [(packages[pk], minutes) for pk, minutes in self._known_draws[reference]]

    # -- writing --

    def write(
        self,
        balance: StudentBalance,
        *,
        kind: str,
        reference: str,
        draws: Draws,
        note: str = "",
        payment_id: int | None = None,
    ) -> BalanceEntry:
        """One entry of sum(draws) minutes and its draws; the packages' `remaining` and the
        balance follow (in memory now, in the database at flush())."""
        if not reference:
            raise HoursError(ERR_NO_REFERENCE)
        merged: dict[int, list] = {}
        for package, minutes in draws:
            if minutes:
                merged.setdefault(package.pk, [package, 0])[1] += minutes
        total = sum(minutes for _, minutes in merged.values())
        entry = BalanceEntry(
            balance=balance,
            kind=kind,
            minutes=total,
            payment_id=payment_id,
            reference=reference,
            note=note[:255],
        )
        self._entries.append(entry)
        self._known[reference] = entry
        self._known_draws[reference] = [(pk, minutes) for pk, (_, minutes) in merged.items()]
        for package, minutes in merged.values():
            package.remaining += minutes
            self._dirty_packages[package.pk] = package
            self._draws.append((entry, package, minutes))
        balance.minutes += total
        self._dirty_balances[balance.pk] = balance
        return entry

    def flush(self) -> None:
        """Write what this unit holds: entries, draws, packages, balances; then forget the
        references it knew (the balances stay locked and loaded)."""
        if self._entries:
            BalanceEntry.objects.bulk_create(self._entries, batch_size=1000)
            HourDraw.objects.bulk_create(
                [
                    HourDraw(entry_id=entry.pk, package_id=package.pk, minutes=minutes)
                    for entry, package, minutes in self._draws
                ],
                batch_size=1000,
            )
        if self._dirty_packages:
            for package in self._dirty_packages.values():
                package.updated_at = self.now
            HourPackage.objects.bulk_update(
                self._dirty_packages.values(),
                ["remaining", "expired_at", "updated_at"],
                batch_size=500,
            )
        if self._dirty_balances:
            for balance in self._dirty_balances.values():
                balance.updated_at = self.now
            StudentBalance.objects.bulk_update(
                self._dirty_balances.values(), ["minutes", "updated_at"], batch_size=500
            )
        self._entries, self._draws = [], []
        self._known, self._known_draws = {}, {}
        self._dirty_packages, self._dirty_balances = {}, {}

    # -- the steps --

    def credit(
        self,
        balance: StudentBalance,
        *,
        minutes: int,
        kind: str,
        reference: str,
        note: str = "",
        expires_at: datetime | None = None,
        payment_id: int | None = None,
    ) -> BalanceEntry | None:
        """A new package of `minutes`; debts are settled from it first."""
        if self.applied(reference):
            return None
        package = self._new_package(
            balance,
            payment_id=payment_id,
            reference=reference,
            minutes=minutes,
            expires_at=expires_at or self.now + timedelta(days=settings.HOUR_PACKAGE_VALID_DAYS),
        )
        draws: Draws = []
        left = minutes
        for debt in self.packages(balance):
            if left and debt.remaining < 0:
                settle = min(left, -debt.remaining)
                draws.append((debt, settle))
                left -= settle
        draws.append((package, left))
        return self.write(
            balance, kind=kind, reference=reference, draws=draws, note=note, payment_id=payment_id
        )

    def fifo(
        self,
        balance: StudentBalance,
        minutes: int,
        *,
        first: HourPackage | None = None,
        allow_debt: bool = False,
    ) -> Draws:
        """The draws (negative) taking `minutes` FIFO over the unexpired packages, from
        `first` before any other. The rest goes on `first` (or the newest package) as a debt
        when `allow_debt`; otherwise NotEnoughMinutes."""
        usable = [p for p in self.packages(balance) if p.remaining > 0 and p.expires_at > self.now]
        if first is not None:
            usable = [first, *(p for p in usable if p.pk != first.pk)]
        draws: Draws = []
        left = minutes
        for package in usable:
            take = min(left, max(0, package.remaining))
            if take:
                draws.append((package, -take))
                left -= take
            if not left:
                return draws
        if not allow_debt:
            raise NotEnoughMinutes(available=minutes - left, minutes=minutes)
        draws.append((first or self._debt_package(balance), -left))
        return draws

    def _debt_package(self, balance: StudentBalance) -> HourPackage:
        """Where a debt goes when the refunded package has no lot of its own (a payment
        credited before packages existed): the newest package, else a new empty one."""
        packages = self.packages(balance)
        if packages:
            return packages[-1]
        return self._new_package(
            balance, reference=f"hours:debt:{balance.pk}", minutes=0, expires_at=self.now
        )

    def debit(
        self,
        balance: StudentBalance,
        *,
        minutes: int,
        kind: str,
        reference: str,
        note: str = "",
        payment_id: int | None = None,
        first: HourPackage | None = None,
        allow_debt: bool = False,
    ) -> BalanceEntry | None:
        if self.applied(reference):
            return None
        draws = self.fifo(balance, minutes, first=first, allow_debt=allow_debt)
        return self.write(
            balance, kind=kind, reference=reference, draws=draws, note=note, payment_id=payment_id
        )

    def give_back(
        self,
        balance: StudentBalance,
        taken_reference: str,
        *,
        reference: str,
        kind: str,
        note: str,
        expire_reference: str = "",
    ) -> BalanceEntry | None:
        """Return what the entry `taken_reference` took to the packages it took it from (a
        released reservation). With `expire_reference`, the share of packages past their
        expiry expires at once."""
        if self.applied(reference):
            return None
        taken = self._draws_of(balance, taken_reference)
        back = self.write(
            balance, kind=kind, reference=reference, draws=[(p, -m) for p, m in taken], note=note
        )
        if expire_reference:
            expired = [(p, m) for p, m in taken if p.expires_at <= self.now]
            if expired:
                self.write(
                    balance,
                    kind=BalanceEntry.Kind.EXPIRY,
                    reference=expire_reference,
                    draws=expired,
                    note=NOTE_EXPIRY_AT_RELEASE,
                )
        return back

    # -- lessons (payments/lessons.py decides which step a booking's row means) --

    def lesson_reserve(
        self, balance: StudentBalance, *, booking_id: str, minutes: int, note: str = ""
    ) -> BalanceEntry | None:
        """Hold a booking's minutes (FIFO)."""
        return self.debit(
            balance,
            minutes=minutes,
            kind=BalanceEntry.Kind.RESERVATION,
            reference=lesson_reference(booking_id, "reserved"),
            note=note,
        )

    def lesson_consume(
        self, balance: StudentBalance, *, booking_id: str, minutes: int, note: str = ""
    ) -> BalanceEntry | None:
        """A lesson taken. A reserved booking's minutes move from its reservation to usage
        on the same packages; a booking never reserved draws FIFO."""
        reserved = lesson_reference(booking_id, "reserved")
        reference = lesson_reference(booking_id, "consumed")
        if not self.applied(reserved):
            return self.debit(
                balance,
                minutes=minutes,
                kind=BalanceEntry.Kind.USAGE,
                reference=reference,
                note=note,
            )
        if self.applied(reference):
            return None
        self.give_back(
            balance,
            reserved,
            reference=lesson_reference(booking_id, "released"),
            kind=BalanceEntry.Kind.RELEASE,
            note=note,
        )
        return self.write(
            balance,
            kind=BalanceEntry.Kind.USAGE,
            reference=reference,
            draws=self._draws_of(balance, reserved),
            note=note,
        )

    def lesson_cancel(
        self, balance: StudentBalance, *, booking_id: str, note: str = ""
    ) -> BalanceEntry | None:
        """Release a canceled booking's reservation (nothing when it held none)."""
        reserved = lesson_reference(booking_id, "reserved")
        if not self.applied(reserved):
            return None
        return self.give_back(
            balance,
            reserved,
            reference=lesson_reference(booking_id, "canceled"),
            kind=BalanceEntry.Kind.RELEASE,
            note=note,
            expire_reference=lesson_reference(booking_id, "canceled:expired"),
        )

    @staticmethod
    def lesson_references(booking_id: str) -> list[str]:
        """Every reference a booking's steps may write (for prefetch)."""
        return [
            lesson_reference(booking_id, step)
            for step in ("reserved", "consumed", "released", "canceled", "canceled:expired")
        ]

    # -- expiry --

    def expire(self, balance: StudentBalance, package: HourPackage) -> BalanceEntry | None:
        """Take what is left in a package past its expiry off the balance, once."""
        if package.remaining <= 0 or package.expires_at > self.now:
            return None
        if self.applied(expiry_reference(package.pk)):
            return None
        entry = self.write(
            balance,
            kind=BalanceEntry.Kind.EXPIRY,
            reference=expiry_reference(package.pk),
            draws=[(package, -package.remaining)],
            note=NOTE_EXPIRY.format(package=package.pk, when=package.expires_at.date().isoformat()),
        )
        package.expired_at = self.now
        return entry


def lesson_reference(booking_id: str, step: str) -> str:
    return f"lesson:{booking_id}:{step}"


# --- the agreed entry points -------------------------------------------------------------------


def credit_minutes(
    *,
    customer_id: int,
    minutes: int,
    kind: str,
    reference: str,
    note: str = "",
    expires_at: datetime | None = None,
    payment_id: int | None = None,
) -> BalanceEntry | None:
    """Credit `minutes` to the student as a new package expiring at `expires_at` (default:
    HOUR_PACKAGE_VALID_DAYS from now). Returns the entry, or None when `reference` was
    applied before (exactly once). Locks the student's balance row. Raises HoursError for
    minutes that are not a positive integer or a kind that is no credit."""
    _check_minutes(minutes)
    if kind not in CREDIT_KINDS:
        raise HoursError(ERR_CREDIT_KIND.format(kind=kind))
    with transaction.atomic():
        ledger = HoursLedger()
        entry = ledger.credit(
            ledger.balance(customer_id),
            minutes=minutes,
            kind=kind,
            reference=reference,
            note=note,
            expires_at=expires_at,
            payment_id=payment_id,
        )
        ledger.flush()
        return entry


def debit_minutes(
    *, customer_id: int, minutes: int, kind: str, reference: str, note: str = ""
) -> BalanceEntry | None:
    """Take `minutes` from the student FIFO over their unexpired packages (oldest expiry
    first). Returns the entry, or None when `reference` was applied before (exactly once).
    Locks the student's balance row. Raises NotEnoughMinutes when the unexpired packages hold
    fewer minutes (nothing is taken), HoursError for bad minutes or a kind that is no debit."""
    _check_minutes(minutes)
    if kind not in DEBIT_KINDS:
        raise HoursError(ERR_DEBIT_KIND.format(kind=kind))
    with transaction.atomic():
        ledger = HoursLedger()
        entry = ledger.debit(
            ledger.balance(customer_id),
            minutes=minutes,
            kind=kind,
            reference=reference,
            note=note,
        )
        ledger.flush()
        return entry


# --- payments: purchases and refunds -----------------------------------------------------------


def package_expiry(payment: Payment) -> datetime:
    """When a package bought by `payment` expires: its metadata's `expires_at`, else
    HOUR_PACKAGE_VALID_DAYS after the payment succeeded. Derived from the payment alone, so
    every replay computes the same."""
    meta = parse_payment_metadata(payment.metadata)
    if meta.expires_at is not None:
        return meta.expires_at
    start = payment.succeeded_at or payment.created
    return start + timedelta(days=settings.HOUR_PACKAGE_VALID_DAYS)


_PAYMENT_FIELDS = (
    "pk",
    "stripe_payment_intent_id",
    "customer_id",
    "package_minutes",
    "amount",
    "amount_refunded",
    "currency",
    "metadata",
    "succeeded_at",
    "created",
)


def record_payment_hours(payment_pks: Iterable[int]) -> int:
    """Credit every succeeded hour-package payment among `payment_pks` once, and take back
    what refunds pay for (cumulative per payment, pro rata). Idempotent: called by the sync's
    upserts (payments/sync.py) in their transaction, with the payments locked, after the
    derived columns (amount_refunded) are written. Returns the number of entries written."""
    pks = list(payment_pks)
    if not pks:
        return 0
    # The minutes each payment's package was credited with: a refund takes back a share of
    # these, not of what the payment's metadata says now (an edit cannot change the package,
    # nor stop its refunds once it is no longer tagged as one).
    purchased_minutes = dict(
        HourPackage.objects.filter(
            payment_id__in=pks, reference__startswith=PURCHASE_REFERENCE_PREFIX
        )
        .order_by()
        .values_list("payment_id", "minutes")
    )
    payments = list(
        Payment.objects.filter(
            Q(product_kind=Payment.ProductKind.HOUR_PACKAGE, package_minutes__isnull=False)
            | Q(pk__in=list(purchased_minutes)),
            pk__in=pks,
            customer__isnull=False,
            succeeded_at__isnull=False,
            amount__gt=0,
        )
        .only(*_PAYMENT_FIELDS)
        .order_by("pk")
    )
    if not payments:
        return 0
    done: dict[tuple[int, str], tuple[int, int]] = {
        (row["payment_id"], row["kind"]): (row["total"], row["n"])
        for row in BalanceEntry.objects.filter(
            payment_id__in=[p.pk for p in payments],
            kind__in=[BalanceEntry.Kind.PURCHASE, BalanceEntry.Kind.REFUND],
        )
        .order_by()
        .values("payment_id", "kind")
        .annotate(total=Sum("minutes"), n=Count("id"))
    }
    # What each payment's packages lost to expiry: already gone, a refund does not take it
    # again (so a refund before and after the expiry job end at the same balance).
    expired: dict[int, int] = {
        row["package__payment_id"]: -row["total"]
        for row in HourDraw.objects.filter(
            package__payment_id__in=[p.pk for p in payments],
            entry__kind=BalanceEntry.Kind.EXPIRY,
        )
        .order_by()
        .values("package__payment_id")
        .annotate(total=Sum("minutes"))
    }
    facts = money_ledger.payment_facts(p.pk for p in payments)
    ledger = HoursLedger()
    # Balances locked in customer order: two upserts of different payments of the same
    # students then wait for each other instead of deadlocking.
    for customer_id in sorted({p.customer_id for p in payments}):
        ledger.balance(customer_id)
    written = 0
    for payment in payments:
        purchased = (payment.pk, BalanceEntry.Kind.PURCHASE) in done
        taken, n_refunds = done.get((payment.pk, BalanceEntry.Kind.REFUND), (0, 0))
        # A lost dispute (a chargeback) takes the money back like a refund: so do the hours.
        fact = facts.get(payment.pk, money_ledger.PaymentFacts())
        refunded = money_ledger.amount_taken_back(
            amount=payment.amount, amount_refunded=payment.amount_refunded, facts=fact
        )
        package_minutes = purchased_minutes.get(payment.pk, payment.package_minutes)
        target = pro_rata(package_minutes, refunded, payment.amount)
        taken_back = -taken  # minutes refunds have taken back so far (net)
        gone = taken_back + expired.get(payment.pk, 0)
        if target > gone:
            delta = target - gone
        elif taken_back > target:
            delta = target - taken_back  # negative: a refund no longer stands
        else:
            delta = 0
        if purchased and not delta:
            continue
        balance = ledger.balance(payment.customer_id)
        if not purchased:
            written += bool(_payment_credit(ledger, balance, payment))
        if delta:
            written += bool(
                _payment_refund(
                    ledger,
                    balance,
                    payment,
                    delta,
                    n=n_refunds + 1,
                    taken_back=refunded,
                    lost=fact.disputed_lost > 0,
                )
            )
    ledger.flush()
    return written


def _payment_credit(
    ledger: HoursLedger, balance: StudentBalance, payment: Payment
) -> BalanceEntry | None:
    return ledger.credit(
        balance,
        minutes=payment.package_minutes,
        kind=BalanceEntry.Kind.PURCHASE,
        reference=purchase_reference(payment.stripe_payment_intent_id),
        note=NOTE_PURCHASE.format(
            payment=payment.stripe_payment_intent_id,
            hours=f"{payment.package_minutes / 60:g}",
            amount=format_money(payment.amount, payment.currency),
        ),
        expires_at=package_expiry(payment),
        payment_id=payment.pk,
    )


def _payment_refund(
    ledger: HoursLedger,
    balance: StudentBalance,
    payment: Payment,
    delta: int,
    *,
    n: int,
    taken_back: int,
    lost: bool = False,
) -> BalanceEntry | None:
    """Take `delta` minutes back (or give -delta back when a refund no longer stands), from
    the payment's own package first (see the module's policy)."""
    own = [p for p in ledger.packages(balance) if p.payment_id == payment.pk]
    package = min(own, key=lambda p: p.pk) if own else None
    reference = refund_reference(payment.stripe_payment_intent_id, n)
    amounts = {
        "payment": payment.stripe_payment_intent_id,
        "refunded": format_money(taken_back, payment.currency),
        "amount": format_money(payment.amount, payment.currency),
    }
    if delta > 0:
        return ledger.debit(
            balance,
            minutes=delta,
            kind=BalanceEntry.Kind.REFUND,
            reference=reference,
            note=(NOTE_REFUND_OR_LOST if lost else NOTE_REFUND).format(**amounts),
            payment_id=payment.pk,
            first=package,
            allow_debt=True,
        )
    if ledger.applied(reference):
        return None
    return _undo_refund_draws(ledger, balance, payment, package, -delta, reference, amounts)


def _undo_refund_draws(ledger, balance, payment, package, back, reference, amounts):
    """Give `back` minutes to the packages the payment's refund entries took them from
    (the other packages first, newest first, then the payment's own); what lands on a
    package that has expired expires at once (as lesson_cancel's give_back does), so a
    reversed refund never leaves minutes the expiry job will not see again."""
    taken: dict[int, int] = {}
    for package_pk, minutes in HourDraw.objects.filter(
        entry__payment_id=payment.pk, entry__kind=BalanceEntry.Kind.REFUND
    ).values_list("package_id", "minutes"):
        taken[package_pk] = taken.get(package_pk, 0) - minutes
    # record_payment_hours writes one refund entry per payment per call: the earlier ones
    # are all in the database.
    packages = {p.pk: p for p in ledger.packages(balance)}
    own_pk = package.pk if package is not None else None
    order = sorted((pk for pk in taken if pk != own_pk), reverse=True)
    if own_pk is not None:
        order.append(own_pk)
    draws: Draws = []
    left = back
    for pk in order:
        give = min(left, max(0, taken.get(pk, 0)))
        if give and pk in packages:
            draws.append((packages[pk], give))
            left -= give
    if left:  # refunds written before draws were kept: the old behaviour
        draws.append((package or ledger._debt_package(balance), left))
    entry = ledger.write(
        balance,
        kind=BalanceEntry.Kind.REFUND,
        reference=reference,
        draws=draws,
        note=NOTE_REFUND_REVERSED.format(**amounts),
        payment_id=payment.pk,
    )
    expire = []
    for given, minutes in draws:
        if given.expired_at is not None or given.expires_at <= ledger.now:
            share = min(minutes, max(0, given.remaining))
            if share:
                expire.append((given, -share))
    if expire:
        ledger.write(
            balance,
            kind=BalanceEntry.Kind.EXPIRY,
            reference=f"{reference}:expired",
            draws=expire,
            note=NOTE_EXPIRY_AT_RELEASE,
        )
    return entry


# --- expiry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpiryResult:
    packages: int
    minutes: int

    def as_dict(self) -> dict[str, int]:
        return {"packages_expired": self.packages, "minutes_expired": self.minutes}


def expire_packages(*, now: datetime | None = None, batch: int = 500) -> ExpiryResult:
    """Take the minutes left in packages past their expiry off the balances: one entry per
    package (reference hours:expiry:<package>), exactly once whatever the re-runs or a
    concurrent run. One transaction per batch of packages, their balances locked in
    customer order."""
    now = now or timezone.now()
    packages = minutes = 0
    last_pk = 0
    while True:
        due = list(
            HourPackage.objects.filter(remaining__gt=0, expires_at__lte=now, pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "balance_id")[:batch]
        )
        if not due:
            break
        last_pk = due[-1][0]
        with transaction.atomic():
            ledger = HoursLedger(now=now)
            balances = StudentBalance.objects.select_for_update().filter(
                pk__in={balance_pk for _, balance_pk in due}
            )
            # Customer order, as every other writer (locked_balance's callers, the sync's
            # record_payment_hours, the lessons import): no deadlock with them.
            by_pk = {b.pk: ledger.adopt(b) for b in balances.order_by("customer_id")}
            ledger.prefetch(expiry_reference(package_pk) for package_pk, _ in due)
            for package_pk, balance_pk in due:
                balance = by_pk[balance_pk]
                package = ledger._packages[balance.pk][package_pk]
                left = package.remaining  # read under the lock: another run may have been first
                if ledger.expire(balance, package) is not None:
                    packages += 1
                    minutes += left
            ledger.flush()
    return ExpiryResult(packages=packages, minutes=minutes)
