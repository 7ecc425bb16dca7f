"""The earnings pages in a real browser: the ledger list, the adjustments queue and its bulk
approval page. Screenshots: artifacts/earnings-ledger.png, artifacts/earnings-adjustments.png,
artifacts/earnings-adjustments-approve.png."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from payments import sync
from payments.models import Instructor
from payments.services.earning_adjustments import earning_adjustment_request
from tests.factories import UserFactory
from tests.payments.test_earnings_ledger import _dispute, _intent, _refund

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _seed():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    sync.upsert_refunds([_refund(now)])
    sync.upsert_disputes([_dispute(now, "lost")])
    old = now - timedelta(days=30)
    sync.upsert_payment_intents(
        [_intent(old, pi="pi_older", metadata={"instructor_account": "acct_earn"})]
    )
    requester = UserFactory(username="requester")
    requester.user_permissions.add(Permission.objects.get(codename="add_earningadjustment"))
    requester = type(requester).objects.get(pk=requester.pk)
    instructor = Instructor.objects.get()
    for amount, currency, reason in (
        (2500, "usd", "Bonus for the March workshop"),
        (-1200, "usd", "Duplicate payout in February"),
        (150_000, "jpy", "Tokyo event: cash collected on site"),
    ):
        earning_adjustment_request(
            instructor=instructor,
            amount=amount,
            currency=currency,
            reason=reason,
            acting_user=requester,
        )
    return instructor


def test_earnings_pages(live_server, page, screenshot_dir):
    instructor = _seed()
    UserFactory(username="boss", is_superuser=True)
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    page.goto(
        f"{live_server.url}/admin/payments/earningentry/?instructor__id__exact={instructor.pk}"
    )
    body = page.inner_text("#result_list")
    assert "$76.80" in body and "-$20.00" in body and "-$75.00" in body
    assert "on hold" in body
    page.screenshot(path=str(screenshot_dir / "earnings-ledger.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/payments/earningadjustment/?status__exact=pending")
    body = page.inner_text("#result_list")
    assert "-$12.00" in body and "¥150,000" in body
    assert "needs a senior approver" in body  # 150,000 yen is above the 75,000 limit
    page.screenshot(path=str(screenshot_dir / "earnings-adjustments.png"), full_page=True)

    page.check("#action-toggle")
    page.select_option("select[name=action]", "bulk_approve")
    page.click("button[name=index]")
    page.wait_for_load_state("networkidle")
    assert "in total ¥150,000 + $13.00" in page.inner_text("[data-testid=bulk-totals]")
    page.screenshot(path=str(screenshot_dir / "earnings-adjustments-approve.png"), full_page=True)
    page.fill("textarea[name=note]", "Checked against the bookings")
    page.click("[data-testid=bulk-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Approved and applied 3 adjustment(s)." in page.inner_text("body")
