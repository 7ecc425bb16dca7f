"""The demo's hour packages bought through localstripe (management/demo_hours.py): credited
once through the sync's path with the metadata's expiry, lessons through the import service;
two packages near expiry."""

import io

import pytest
from django.utils import timezone

from management.demo_hours import PEER_PACKAGES, seed_hour_packages
from payments import hours_selectors
from payments.models import BalanceEntry, HourPackage, Lesson, StudentBalance


@pytest.mark.stripe
@pytest.mark.django_db(transaction=True)
def test_peer_packages_near_expiry_with_their_lessons(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    counts = seed_hour_packages(seed=3, stdout=io.StringIO())
    assert counts["hour_packages"] == len(PEER_PACKAGES)
    assert seed_hour_packages(seed=3)["hour_packages"] == 0  # idempotent
    packages = HourPackage.objects.select_related("payment")
    assert packages.count() == len(PEER_PACKAGES)
    assert all(p.payment.stripe_payment_intent_id.startswith("pi_") for p in packages)
    assert BalanceEntry.objects.filter(kind="purchase").count() == len(PEER_PACKAGES)
    now = timezone.now()
    states = sorted(
        row.state
        for balance in StudentBalance.objects.all()
        for row in hours_selectors.balance_packages(balance, now=now)
    )
    assert states == ["active", "near_expiry", "near_expiry"]
    assert set(Lesson.objects.values_list("status", flat=True)) == set(Lesson.Status.values)
    near = StudentBalance.objects.get(customer__email="near.expiry.3@students.example.com")
    figures = hours_selectors.balance_figures(near)
    assert (figures.purchased, figures.consumed, figures.reserved) == (600, 120, 90)
