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
- A refund of a package takes back the minutes it pays for: package_minutes x refunded /
  amount, cumulative per payment (partial refunds add up to the whole package, no rounding
  drift). Policy when the student has already used some of them: they come off the refunded
  package first, then off the student's other unexpired packages (oldest expiry first), and
  what is still missing leaves the balance negative, carried by the refunded package as a
  negative `remaining` (a debt); the next credit settles debts before anything else. So a
  refund never leaves hours that were not paid for, and a negative balance (the dashboard's
  card, the balances list's filter) is what finance follows up.
- Expired minutes leave by one entry per package (the daily job, expire_packages).

Locks: every writer locks the student's balance row (FOR UPDATE) before it reads or writes
their entries and packages, so the packages themselves need no lock. Lock order: payments
(the sync's upserts hold them) before balances; nothing locks a payment after a balance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

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
NOTE_REFUND_REVERSED = "Payment {payment}: a refund no longer stands ({refunded} refunded now)"
NOTE_EXPIRY = "Package #{package} expired {when}"
NOTE_DEBT = "Opened to carry a refund's debt"


class HoursError(Exception):
    """A change to hours that the rules refuse; the message is for staff, as it is."""


class NotEnoughMinutes(HoursError):
    """The student's unexpired packages hold fewer minutes than the debit needs."""

    def __init__(self, *, available: int, minutes: int):
        self.available = available
        self.minutes = minutes
        super().__init__(ERR_NOT_ENOUGH_MINUTES.format(available=available, minutes=minutes))


def purchase_reference(payment_intent_id: str) -> str:
    return f"hours:purchase:{payment_intent_id}"


def refund_reference(payment_intent_id: str, n: int) -> str:
    return f"hours:refund:{payment_intent_id}:{n}"


def expiry_reference(package_pk: int) -> str:
    return f"hours:expiry:{package_pk}"


# --- the building blocks (the caller holds the balance lock) -----------------------------------


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


def applied(reference: str) -> bool:
    return BalanceEntry.objects.filter(reference=reference).exists()


def _write(
    balance: StudentBalance,
    *,
    kind: str,
    reference: str,
    draws: Sequence[tuple[HourPackage, int]],
    note: str = "",
    payment_id: int | None = None,
) -> BalanceEntry:
    """One entry of sum(draws) minutes, its draws, the packages' `remaining` and the balance,
    in the caller's transaction (under the balance lock)."""
    if not reference:
        raise HoursError(ERR_NO_REFERENCE)
    minutes = sum(m for _, m in draws)
    entry = BalanceEntry.objects.create(
        balance=balance,
        kind=kind,
        minutes=minutes,
        payment_id=payment_id,
        reference=reference,
        note=note[:255],
    )
    by_package: dict[int, int] = {}
    for package, m in draws:
        if m:
            by_package[package.pk] = by_package.get(package.pk, 0) + m
            package.remaining += m
    HourDraw.objects.bulk_create(
        [HourDraw(entry=entry, package_id=pk, minutes=m) for pk, m in by_package.items()]
    )
    now = timezone.now()
    for pk, m in by_package.items():
        HourPackage.objects.filter(pk=pk).update(remaining=F("remaining") + m, updated_at=now)
    if minutes:
        StudentBalance.objects.filter(pk=balance.pk).update(
            minutes=F("minutes") + minutes, updated_at=now
        )
        balance.minutes += minutes
    return entry


def _credit(
    balance: StudentBalance,
    *,
    minutes: int,
    kind: str,
    reference: str,
    note: str = "",
    expires_at: datetime | None = None,
    payment_id: int | None = None,
    now: datetime | None = None,
) -> BalanceEntry | None:
    if applied(reference):
        return None
    now = now or timezone.now()
    package = HourPackage.objects.create(
        balance=balance,
        payment_id=payment_id,
        reference=reference,
        minutes=minutes,
        remaining=0,
        expires_at=expires_at or now + timedelta(days=settings.HOUR_PACKAGE_VALID_DAYS),
    )
    # Debts (refunded minutes the student had used) are settled first.
    draws: list[tuple[HourPackage, int]] = []
    left = minutes
    for debt in HourPackage.objects.filter(balance=balance, remaining__lt=0).order_by(
        "expires_at", "id"
    ):
        settle = min(left, -debt.remaining)
        draws.append((debt, settle))
        left -= settle
        if not left:
            break
    draws.append((package, left))
    return _write(
        balance, kind=kind, reference=reference, draws=draws, note=note, payment_id=payment_id
    )


def _fifo(
    balance: StudentBalance,
    minutes: int,
    *,
    now: datetime,
    first: HourPackage | None = None,
    allow_debt: bool = False,
) -> list[tuple[HourPackage, int]]:
    """The draws (negative) taking `minutes` FIFO over the unexpired packages, from `first`
    before any other. The rest goes on `first` (or the newest package) as a debt when
    `allow_debt`; otherwise NotEnoughMinutes."""
    packages = list(
        HourPackage.objects.filter(balance=balance, remaining__gt=0, expires_at__gt=now).order_by(
            "expires_at", "id"
        )
    )
    if first is not None:
        packages = [first, *(p for p in packages if p.pk != first.pk)]
    draws: list[tuple[HourPackage, int]] = []
    left = minutes
    for package in packages:
        take = min(left, max(0, package.remaining))
        if take:
            draws.append((package, -take))
            left -= take
        if not left:
            return draws
    if not allow_debt:
        raise NotEnoughMinutes(available=minutes - left, minutes=minutes)
    draws.append((first or _debt_package(balance, now=now), -left))
    return draws


def _debt_package(balance: StudentBalance, *, now: datetime) -> HourPackage:
    """Where a debt goes when the refunded package has no lot of its own (a balance written
    before packages existed and none carried over): the newest package, else a new empty one."""
    newest = HourPackage.objects.filter(balance=balance).order_by("-expires_at", "-id").first()
    if newest is not None:
        return newest
    return HourPackage.objects.create(
        balance=balance,
        reference=f"hours:debt:{balance.pk}",
        minutes=0,
        remaining=0,
        expires_at=now,
    )


def _debit(
    balance: StudentBalance,
    *,
    minutes: int,
    kind: str,
    reference: str,
    note: str = "",
    payment_id: int | None = None,
    first: HourPackage | None = None,
    allow_debt: bool = False,
    now: datetime | None = None,
) -> BalanceEntry | None:
    if applied(reference):
        return None
    draws = _fifo(balance, minutes, now=now or timezone.now(), first=first, allow_debt=allow_debt)
    return _write(
        balance, kind=kind, reference=reference, draws=draws, note=note, payment_id=payment_id
    )


def _give_back(
    balance: StudentBalance,
    entry: BalanceEntry,
    *,
    reference: str,
    kind: str,
    note: str,
    expire_reference: str = "",
    now: datetime | None = None,
) -> BalanceEntry | None:
    """Return what `entry` took to the packages it took it from (a released reservation).
    With `expire_reference`, the share of packages past their expiry expires at once."""
    if applied(reference):
        return None
    now = now or timezone.now()
    taken = list(entry.draws.select_related("package"))
    back = _write(
        balance,
        kind=kind,
        reference=reference,
        draws=[(d.package, -d.minutes) for d in taken],
        note=note,
    )
    if expire_reference:
        expired = [(d.package, d.minutes) for d in taken if d.package.expires_at <= now]
        if expired:
            _write(
                balance,
                kind=BalanceEntry.Kind.EXPIRY,
                reference=expire_reference,
                draws=expired,
                note=NOTE_EXPIRY.format(package=expired[0][0].pk, when="before the release"),
            )
    return back


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
        balance = locked_balance(customer_id)
        return _credit(
            balance,
            minutes=minutes,
            kind=kind,
            reference=reference,
            note=note,
            expires_at=expires_at,
            payment_id=payment_id,
        )


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
        balance = locked_balance(customer_id)
        return _debit(balance, minutes=minutes, kind=kind, reference=reference, note=note)


# --- lessons (payments/lessons.py decides which of these a booking's row means) ---------------


def lesson_reference(booking_id: str, step: str) -> str:
    return f"lesson:{booking_id}:{step}"


def lesson_reserve(
    balance: StudentBalance, *, booking_id: str, minutes: int, note: str = ""
) -> BalanceEntry | None:
    """Hold a booking's minutes (FIFO). Under the caller's balance lock."""
    return _debit(
        balance,
        minutes=minutes,
        kind=BalanceEntry.Kind.RESERVATION,
        reference=lesson_reference(booking_id, "reserved"),
        note=note,
    )


def lesson_consume(
    balance: StudentBalance, *, booking_id: str, minutes: int, note: str = ""
) -> BalanceEntry | None:
    """A lesson taken. A reserved booking's minutes move from its reservation to usage on the
    same packages; a booking never reserved draws FIFO. Under the caller's balance lock."""
    reservation = BalanceEntry.objects.filter(
        reference=lesson_reference(booking_id, "reserved")
    ).first()
    reference = lesson_reference(booking_id, "consumed")
    if reservation is None:
        return _debit(
            balance, minutes=minutes, kind=BalanceEntry.Kind.USAGE, reference=reference, note=note
        )
    if applied(reference):
        return None
    _give_back(
        balance,
        reservation,
        reference=lesson_reference(booking_id, "released"),
        kind=BalanceEntry.Kind.RELEASE,
        note=note,
    )
    taken = list(reservation.draws.select_related("package"))
    return _write(
        balance,
        kind=BalanceEntry.Kind.USAGE,
        reference=reference,
        draws=[(d.package, d.minutes) for d in taken],
        note=note,
    )


def lesson_cancel(
    balance: StudentBalance, *, booking_id: str, note: str = ""
) -> BalanceEntry | None:
    """Release a canceled booking's reservation (nothing when it held none). Under the
    caller's balance lock."""
    reservation = BalanceEntry.objects.filter(
        reference=lesson_reference(booking_id, "reserved")
    ).first()
    if reservation is None:
        return None
    return _give_back(
        balance,
        reservation,
        reference=lesson_reference(booking_id, "canceled"),
        kind=BalanceEntry.Kind.RELEASE,
        note=note,
        expire_reference=lesson_reference(booking_id, "canceled:expired"),
    )


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
    payments = list(
        Payment.objects.filter(
            pk__in=pks,
            product_kind=Payment.ProductKind.HOUR_PACKAGE,
            package_minutes__isnull=False,
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
    written = 0
    for payment in payments:
        purchased = (payment.pk, BalanceEntry.Kind.PURCHASE) in done
        taken, n_refunds = done.get((payment.pk, BalanceEntry.Kind.REFUND), (0, 0))
        refunded = min(payment.amount, max(0, payment.amount_refunded))
        target = pro_rata(payment.package_minutes, refunded, payment.amount)
        delta = target + taken  # taken is negative (minutes already taken back)
        if purchased and not delta:
            continue
        balance = locked_balance(payment.customer_id)
        if not purchased:
            written += bool(_payment_credit(balance, payment))
        if delta:
            written += bool(_payment_refund(balance, payment, delta, n=n_refunds + 1))
    return written


def _payment_credit(balance: StudentBalance, payment: Payment) -> BalanceEntry | None:
    return _credit(
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
    balance: StudentBalance, payment: Payment, delta: int, *, n: int
) -> BalanceEntry | None:
    """Take `delta` minutes back (or give -delta back when a refund no longer stands), from
    the payment's own package first (see the module's policy)."""
    package = HourPackage.objects.filter(payment_id=payment.pk).order_by("id").first()
    reference = refund_reference(payment.stripe_payment_intent_id, n)
    amounts = {
        "payment": payment.stripe_payment_intent_id,
        "refunded": format_money(min(payment.amount, payment.amount_refunded), payment.currency),
        "amount": format_money(payment.amount, payment.currency),
    }
    if delta > 0:
        return _debit(
            balance,
            minutes=delta,
            kind=BalanceEntry.Kind.REFUND,
            reference=reference,
            note=NOTE_REFUND.format(**amounts),
            payment_id=payment.pk,
            first=package,
            allow_debt=True,
        )
    if applied(reference):
        return None
    target = package or _debt_package(balance, now=timezone.now())
    return _write(
        balance,
        kind=BalanceEntry.Kind.REFUND,
        reference=reference,
        draws=[(target, -delta)],
        note=NOTE_REFUND_REVERSED.format(**amounts),
        payment_id=payment.pk,
    )


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
    concurrent run. One transaction per package, under its balance's lock."""
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
        for package_pk, balance_pk in due:
            last_pk = package_pk
            with transaction.atomic():
                balance = StudentBalance.objects.select_for_update().get(pk=balance_pk)
                package = HourPackage.objects.get(pk=package_pk)
                if package.remaining <= 0 or applied(expiry_reference(package.pk)):
                    continue
                left = package.remaining
                _write(
                    balance,
                    kind=BalanceEntry.Kind.EXPIRY,
                    reference=expiry_reference(package.pk),
                    draws=[(package, -left)],
                    note=NOTE_EXPIRY.format(
                        package=package.pk, when=package.expires_at.date().isoformat()
                    ),
                )
                HourPackage.objects.filter(pk=package.pk).update(expired_at=now)
                packages += 1
                minutes += left
    return ExpiryResult(packages=packages, minutes=minutes)


# --- figures (one definition; the pages and the API read these) --------------------------------

# Each figure is the sum of one kind of entry, signed so that
# purchased + adjusted - consumed - reserved - expired - refunded = remaining (the balance).
FIGURE_KINDS = {
    "purchased": (BalanceEntry.Kind.PURCHASE,),
    "adjusted": (BalanceEntry.Kind.ADJUSTMENT,),
    "consumed": (BalanceEntry.Kind.USAGE,),
    "reserved": (BalanceEntry.Kind.RESERVATION, BalanceEntry.Kind.RELEASE),
    "expired": (BalanceEntry.Kind.EXPIRY,),
    "refunded": (BalanceEntry.Kind.REFUND,),
}
_CREDIT_FIGURES = frozenset({"purchased", "adjusted"})


def figures_aggregates() -> dict:
    """The aggregates (one query over a balance's entries) behind HoursFigures."""
    return {
        name: Sum("minutes", filter=Q(kind__in=kinds), default=0)
        for name, kinds in FIGURE_KINDS.items()
    }


@dataclass(frozen=True)
class HoursFigures:
    """A student's hours in minutes. `remaining` is the balance."""

    purchased: int = 0
    adjusted: int = 0
    consumed: int = 0
    reserved: int = 0
    expired: int = 0
    refunded: int = 0
    remaining: int = 0

    @classmethod
    def from_sums(cls, sums: dict, *, remaining: int) -> HoursFigures:
        values = {
            name: (sums.get(name) or 0) * (1 if name in _CREDIT_FIGURES else -1)
            for name in FIGURE_KINDS
        }
        return cls(**values, remaining=remaining)


def balance_figures(balance: StudentBalance) -> HoursFigures:
    sums = BalanceEntry.objects.filter(balance=balance).order_by().aggregate(**figures_aggregates())
    return HoursFigures.from_sums(sums, remaining=balance.minutes)
