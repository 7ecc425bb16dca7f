"""Finance staff (not a superuser) in a real browser on the hours pages: the balance page
(figures, packages with days to expiry and the near-expiry highlight, the ledger) and the
lessons import page's preview of a file with bad rows. Screenshots in artifacts/:
hours-balance-page.png, hours-import-preview.png.

Hours come in through the production paths: an hour-package payment through the sync's
upsert (payments.hours credits it), lessons through the import service, the expiry job."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from payments import hours, lessons, sync
from payments.gateway import StripeCustomer, StripePaymentIntent
from payments.models import BalanceEntry, HourPackage, StudentBalance
from tests.e2e.test_dispute_page import full_page_screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def package_payment(pi: str, minutes: int, amount: int, expires: str | None, created):
    metadata = {
        "instructor_email": "marta.diaz@instructors.example.com",
        "product_kind": "hour_package",
        "product_id": "hour_package_010",
        "product_name": f"{minutes // 60} tutoring hours",
        "package_minutes": str(minutes),
    }
    if expires:
        metadata["expires_at"] = expires
    return StripePaymentIntent(
        id=pi,
        amount=amount,
        currency="usd",
        status="succeeded",
        created=created,
        customer_id="cus_e2eHours",
        latest_charge_id="ch_" + pi[3:],
        charge_status="succeeded",
        charge_created=created,
        stripe_fee=300,
        amount_received=amount,
        metadata=metadata,
    )


@pytest.fixture
def student():
    now = timezone.now()
    sync.upsert_customers(
        [
            StripeCustomer(
                id="cus_e2eHours",
                email="ana.lima@example.com",
                name="Ana Lima",
                livemode=False,
                created=datetime(2026, 1, 5, tzinfo=UTC),
            )
        ]
    )
    sync.upsert_payment_intents(
        [
            package_payment(
                "pi_e2eOld",
                300,
                15900,
                (now - timedelta(days=2)).date().isoformat(),
                now - timedelta(days=40),
            ),
            package_payment(
                "pi_e2eSoon",
                600,
                29900,
                (now + timedelta(days=4)).date().isoformat(),
                now - timedelta(days=20),
            ),
            package_payment("pi_e2eLater", 1200, 54900, None, now - timedelta(days=5)),
        ]
    )
    hours.expire_packages()
    rows = [
        ("bk-101", 60, "consumed", -12),
        ("bk-102", 90, "consumed", -8),
        ("bk-103", 60, "reserved", 2),
        ("bk-104", 45, "reserved", 3),
        ("bk-104", 45, "canceled", 3),
    ]
    result = lessons.lessons_import(
        [
            {
                "student": "ana.lima@example.com",
                "booking_id": booking,
                "minutes": str(minutes),
                "date": (now + timedelta(days=days)).date().isoformat(),
                "status": status,
            }
            for booking, minutes, status, days in rows
        ]
    )
    assert result.applied, result.errors
    return StudentBalance.objects.get(customer__stripe_id="cus_e2eHours")


def login(page, live_server, username):
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")


def test_the_balance_page_and_the_import_preview(live_server, page, screenshot_dir, student):
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(username="finance")
    user.groups.set(Group.objects.filter(name="Finance staff"))
    login(page, live_server, "finance")

    page.goto(f"{live_server.url}/admin/payments/studentbalance/{student.pk}/change/")
    figures = {
        key: page.inner_text(f"[data-testid=figure-{key}] dd")
        for key in ("purchased", "consumed", "reserved", "expired", "remaining")
    }
    assert figures == {
        "purchased": "35 h",
        "consumed": "2.5 h",
        "reserved": "1 h",
        "expired": "5 h",
        "remaining": "26.5 h",
    }
    soon = HourPackage.objects.get(payment__stripe_payment_intent_id="pi_e2eSoon")
    row = page.locator(f"[data-testid=package-{soon.pk}]")
    assert row.get_attribute("data-state") == "near_expiry"
    assert "EXPIRES SOON" in row.inner_text().upper()
    assert "bg-orange-50" in (row.get_attribute("class") or "")
    assert (
        page.locator("[data-testid=hours-ledger] tbody tr").count() == BalanceEntry.objects.count()
    )
    full_page_screenshot(page, screenshot_dir / "hours-balance-page.png")

    bad = screenshot_dir / "lessons-with-bad-rows.csv"
    bad.write_text(
        "student,booking_id,minutes,date,status\n"
        "ana.lima@example.com,bk-105,60,2026-12-03,consumed\n"
        "nobody@example.com,bk-106,60,2026-12-03,consumed\n"
        "ana.lima@example.com,bk-101,60,2026-12-03,canceled\n"
        "cus_e2eHours,bk-107,ninety,2026-12-03,reserved\n"
    )
    page.goto(f"{live_server.url}/admin/payments/lesson/import/")
    page.set_input_files("input[name=import_file]", str(bad))
    page.select_option("select[name=format]", "0")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_load_state("networkidle")
    text = page.inner_text("[data-testid=lesson-import-result]")
    assert "3 bad rows of 4: nothing was applied" in text
    assert "No student with e-mail 'nobody@example.com'." in text
    assert "Booking bk-101 is already consumed: it cannot become canceled." in text
    assert page.locator("[data-testid=lesson-import-confirm]").count() == 0
    full_page_screenshot(page, screenshot_dir / "hours-import-preview.png")
    assert not BalanceEntry.objects.filter(reference__startswith="lesson:bk-105").exists()
