"""Reads of the prepaid hours ledger (payments/hours.py writes it): a student's figures, their
packages with days to expiry, their ledger. The balance page, the customer page and the API
read these, so a figure is defined once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from payments.models import BalanceEntry, HourPackage, StudentBalance

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


@dataclass(frozen=True)
class PackageRow:
    """A package as the balance page shows it."""

    package: HourPackage
    days_left: int  # whole days to expiry (negative: expired that many days ago)
    state: str  # "active", "near_expiry", "expired", "used_up", "owed"

    @property
    def hours(self) -> float:
        return self.package.minutes / 60

    @property
    def remaining_hours(self) -> float:
        return self.package.remaining / 60


PACKAGE_STATE_LABELS = {
    "active": "Active",
    "near_expiry": "Expires soon",
    "expired": "Expired",
    "used_up": "Used up",
    "owed": "Owed (refunded after use)",
}


def near_expiry_days() -> int:
    return settings.HOUR_PACKAGE_NEAR_EXPIRY_DAYS


def package_state(package: HourPackage, *, now: datetime) -> tuple[int, str]:
    """(days to expiry, state) of a package at `now`; near expiry = within
    HOUR_PACKAGE_NEAR_EXPIRY_DAYS and minutes left."""
    days_left = (package.expires_at - now).days
    if package.remaining < 0:
        return days_left, "owed"
    if package.expires_at <= now:
        return days_left, "expired"
    if package.remaining == 0:
        return days_left, "used_up"
    if days_left < settings.HOUR_PACKAGE_NEAR_EXPIRY_DAYS:
        return days_left, "near_expiry"
    return days_left, "active"


def balance_packages(balance: StudentBalance, *, now: datetime | None = None) -> list[PackageRow]:
    """The student's packages, the one expiring first first (one query)."""
    now = now or timezone.now()
    rows = []
    packages = HourPackage.objects.filter(balance=balance).select_related("payment")
    for package in packages.order_by("expires_at", "id"):
        days_left, state = package_state(package, now=now)
        rows.append(PackageRow(package, days_left, state))
    return rows


def balance_ledger(balance: StudentBalance, *, limit: int = 50) -> list[BalanceEntry]:
    """The newest `limit` entries (balance_entry_ledger_idx)."""
    return list(BalanceEntry.objects.filter(balance=balance).order_by("-created_at", "-id")[:limit])
