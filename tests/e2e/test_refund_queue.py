"""An approver in a real browser: open the refund queue's "Urgent pending" view, select the
three urgent requests, bulk-approve them through the intermediate form, and see them refunded
in localstripe."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from management.demo_refunds import demo_payment_create
from refunds.models import RefundRequest
from tests.factories import PaymentFactory, RefundRequestFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


def _urgent_request(i, requester):
    payment = demo_payment_create(
        amount=4000, email=f"e2e{i}@example.com", name=f"E2E {i}", key=f"e2e{i}"
    )
    row = RefundRequest.objects.create(
        payment=payment, amount=1000 + i, currency="usd", requested_by=requester
    )
    RefundRequest.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=4, hours=i)
    )
    return row


def test_bulk_approve_three_urgent_requests(
    live_server, page, screenshot_dir, localstripe, settings
):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    UserFactory(username="approver", is_superuser=True)
    requester = UserFactory(username="support")
    urgent = [_urgent_request(i, requester) for i in range(3)]
    RefundRequestFactory(requested_by=requester)  # a NORMAL one that must stay pending
    RefundRequestFactory(requested_by=requester, payment=PaymentFactory(amount=20000), amount=9000)

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "approver")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    # The sidebar's entry opens on "All pending".
    page.locator("#nav-sidebar").get_by_role("link", name="Refund queue").click()
    page.wait_for_url("**/admin/refunds/refundrequest/?status__exact=pending")
    assert page.locator("#result_list tbody tr").count() == 5

    page.get_by_role("link", name="Urgent pending").click()
    page.wait_for_url("**priority=urgent**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    assert rows.first.inner_text().count("URGENT") == 1
    for checkbox in page.locator("#result_list tbody input.action-select").all():
        checkbox.check()
    page.locator("select[name=action]").select_option("bulk_approve")
    page.locator("button[name=index]").click()

    # The intermediate form: a note is required before anything changes.
    page.wait_for_selector("[data-testid=bulk-form]")
    assert page.locator("[data-testid=bulk-rows] tbody tr").count() == 3
    page.fill("textarea[name=note]", "Course canceled by the instructor")
    page.screenshot(path=str(screenshot_dir / "refund-bulk-approve-form.png"), full_page=True)
    page.get_by_role("button", name="Approve 3 request(s)").click()
    page.wait_for_url("**/admin/refunds/refundrequest/**")
    assert "Approved 3 refund request(s)." in page.inner_text("body")
    page.get_by_role("link", name="Everything").click()
    page.wait_for_load_state("networkidle")
    page.screenshot(
        path=str(screenshot_dir / "refund-queue-after-bulk-approve.png"), full_page=True
    )

    for row in urgent:
        row.refresh_from_db()
        assert row.status == RefundRequest.Status.PROCESSED
        listed = requests.get(
            f"{localstripe}/v1/refunds",
            params={"payment_intent": row.payment.stripe_payment_intent_id},
            auth=("sk_test_localstripe", ""),
            timeout=5,
        ).json()["data"]
        assert [r["amount"] for r in listed] == [row.amount]
    assert RefundRequest.objects.filter(status=RefundRequest.Status.PENDING).count() == 2
