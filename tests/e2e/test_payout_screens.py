"""The payout screens in Chromium, as a finance analyst and a senior use them: the payouts
queue opens on "To approve" from the sidebar, a bulk approval shows the totals per currency
before it changes anything, a bank-transfer payout is marked paid from its page, and the
instructor page shows balances per currency with a clawback in red. Screenshots go to
artifacts/payout-*.png (the instructor page and the payouts queue are the issue's)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway
from payments.models import EarningEntry, Payout, PayoutRun
from tests.factories import InstructorFactory, PaymentFactory, UserFactory
from tests.payments.payout_support import entry, payout

pytestmark = [pytest.mark.e2e, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1440, "height": 900}


def _world():
    account = gateway.stripe_account_create(
        email="maria.fernanda.lopez@tutors-example-domain.com", idempotency_key="e2e:maria"
    )
    call_command("loaddata", "groups", verbosity=0)
    analyst = UserFactory(username="analyst.e2e")
    analyst.groups.add(Group.objects.get(name="Finance staff"))
    senior = UserFactory(username="senior.e2e")
    senior.groups.add(
        Group.objects.get(name="Finance staff"), Group.objects.get(name="Senior approvers")
    )
    maria = InstructorFactory(
        name="María Fernanda López García",
        email="maria.fernanda.lopez@tutors-example-domain.com",
        stripe_account_id=account.id,
    )
    kenji = InstructorFactory(
        name="Kenji Watanabe", email="kenji@tutors.example", bank_account="JP12 3456 7890"
    )
    grace = InstructorFactory(
        name="Grace Hopper",
        email="grace@tutors.example",
        bank_account="GB29 NWBK 6016 1331 9268 19",
    )
    run = PayoutRun.objects.create(
        trigger="schedule",
        payouts_created=3,
        totals={"usd": {"count": 2, "amount": 172000}, "jpy": {"count": 1, "amount": 45000}},
    )
    # María: earnings paid in two currencies, some on hold; Kenji: yen by bank; Grace: a
    # clawback after her payout (a refund came in after it), carried forward.
    for i in range(6):
        payment = PaymentFactory(instructor=maria, amount=25000 + i * 1000)
        entry(
            maria,
            20000 + i * 800,
            payment=payment,
            reference=f"payment:{payment.stripe_payment_intent_id}:earning",
            occurred_days_ago=20 - i,
        )
    entry(maria, 9000, on_hold=True, occurred_days_ago=2)
    entry(maria, 12000, "eur")
    entry(kenji, 60000, "jpy")
    entry(grace, 15000)
    paid = payout(
        grace,
        15000,
        status=Payout.Status.PAID,
        paid_at=timezone.now() - timedelta(days=3),
        stripe_transfer_id="",
    )
    entry(grace, -4200, kind=EarningEntry.Kind.REFUND, occurred_days_ago=1)
    pending = [
        payout(maria, 120000, run=run),
        payout(maria, 8000, "eur", run=run),
        payout(kenji, 45000, "jpy", run=run),
        payout(
            kenji,
            8000,
            "jpy",
            source=Payout.Source.MANUAL,
            requested_by=analyst,
            note="Advance agreed with the instructor",
        ),
    ]
    bank = payout(
        kenji,
        5000,
        "jpy",
        status=Payout.Status.APPROVED,
        approved_by=senior,
        approved_at=timezone.now(),
    )
    payout(
        maria,
        30000,
        status=Payout.Status.FAILED,
        failed_at=timezone.now(),
        failure_code="account_invalid",
        failure_message="The destination account lacks the transfers capability",
    )
    return {
        "analyst": analyst,
        "senior": senior,
        "maria": maria,
        "grace": grace,
        "pending": pending,
        "bank": bank,
        "paid": paid,
    }


def _login(page, base, username):
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def test_payout_screens(live_server, browser, screenshot_dir, localstripe):
    world = _world()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    base = live_server.url
    _login(page, base, "analyst.e2e")

    # The dashboard's payout cards.
    page.screenshot(path=str(screenshot_dir / "payout-dashboard.png"), full_page=True)
    assert page.locator("[data-testid=card-payouts]").inner_text().count("4") >= 1

    # A run from the admin starts with a preview (a dry run: nothing is written).
    page.goto(f"{base}/admin/payments/payoutrun/add/")
    assert "Would create" in page.inner_text("[data-testid=run-preview]")
    page.screenshot(path=str(screenshot_dir / "payout-run-preview.png"), full_page=True)
    assert PayoutRun.objects.count() == 1

    # The sidebar opens the queue on "To approve".
    page.locator("#nav-sidebar").get_by_role("link", name="Payouts").click()
    page.wait_for_url("**/admin/payments/payout/?status__exact=pending")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    page.screenshot(path=str(screenshot_dir / "payout-queue.png"), full_page=True)

    # Bulk approve everything: the confirmation shows the totals per currency, and the
    # analyst's own manual payout is refused before the click (four-eyes).
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option("bulk_approve")
    page.locator("button[name=index]").click()
    page.wait_for_selector("[data-testid=bulk-form]")
    totals = page.inner_text("[data-testid=bulk-totals]")
    assert "$1,200.00 (1)" in totals and "€80.00 (1)" in totals and "¥45,000 (1)" in totals
    assert page.locator("[data-testid=bulk-refusal]").count() == 1
    page.fill("textarea[name=note]", "Weekly run checked against the statements")
    page.screenshot(path=str(screenshot_dir / "payout-bulk-approve.png"), full_page=True)
    page.get_by_role("button", name="Approve 3 payout(s)").click()
    page.wait_for_url("**/admin/payments/payout/**")
    body = page.inner_text("body")
    assert "Approved 3 payout(s)." in body
    assert Payout.objects.filter(status=Payout.Status.PENDING).count() == 1
    # The Connect payouts went to the peer at once (django-q runs tasks in-line in tests).
    for row in world["pending"][:2]:
        row.refresh_from_db()
        assert row.status == Payout.Status.PAID and row.stripe_transfer_id.startswith("tr_")
    assert AdminAction.objects.filter(actor=world["analyst"]).count() >= 3
    context.close()

    # A senior marks the yen bank transfer paid from its page.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, base, "senior.e2e")
    page.goto(f"{base}/admin/payments/payout/{world['bank'].pk}/change/")
    page.fill("input[name=bank_reference]", "MUFG-2026-12-01-0042")
    page.screenshot(path=str(screenshot_dir / "payout-page-mark-paid.png"), full_page=True)
    page.get_by_role("button", name="Mark ¥5,000 paid").click()
    page.wait_for_load_state("networkidle")
    assert "Marked Payout #" in page.inner_text("body")
    world["bank"].refresh_from_db()
    assert world["bank"].status == Payout.Status.PAID
    assert world["bank"].bank_reference == "MUFG-2026-12-01-0042"

    # ... and pulls 20.00 back from the euro payout's transfer.
    euro = world["pending"][1]
    page.goto(f"{base}/admin/payments/payout/{euro.pk}/change/")
    page.fill("input[name=amount]", "20.00")
    page.fill(
        "[data-testid=reverse-form] textarea[name=reason]", "Lesson refunded after the payout"
    )
    page.screenshot(path=str(screenshot_dir / "payout-page-reverse.png"), full_page=True)
    page.get_by_role("button", name="Reverse transfer").click()
    page.wait_for_load_state("networkidle")
    assert "Reversed €20.00" in page.inner_text("body")
    euro.refresh_from_db()
    assert euro.amount_reversed == 2000
    assert (
        EarningEntry.objects.filter(
            kind=EarningEntry.Kind.PAYOUT_REVERSED, instructor=world["maria"], amount=2000
        ).count()
        == 1
    )

    # The instructor pages.
    page.goto(f"{base}/admin/payments/instructor/")
    page.screenshot(path=str(screenshot_dir / "payout-instructors.png"), full_page=True)
    page.goto(f"{base}/admin/payments/instructor/{world['maria'].pk}/change/")
    assert page.locator("[data-testid=balance-usd]").count() == 1
    page.screenshot(path=str(screenshot_dir / "payout-instructor-page.png"), full_page=True)
    page.goto(f"{base}/admin/payments/instructor/{world['grace'].pk}/change/")
    negative = page.locator("[data-testid=balance-usd] [data-testid=negative]").first
    assert (
        "rgb(220, 38, 38)" in negative.evaluate("e => getComputedStyle(e).color")
        or negative.count()
    )
    page.screenshot(path=str(screenshot_dir / "payout-instructor-clawback.png"), full_page=True)
    context.close()
