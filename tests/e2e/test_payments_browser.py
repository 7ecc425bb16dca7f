"""A finance person in a real browser: log in, open payments, filter failed ones, open one."""

import pytest

from payments.models import Payment
from tests.factories import PaymentFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_finance_staff_find_a_failed_payment_and_read_why(live_server, page, screenshot_dir):
    UserFactory(username="finance", is_superuser=True)
    PaymentFactory.create_batch(5)
    PaymentFactory(
        failed=True,
        stripe_payment_intent_id="pi_e2e_failed",
        amount=4900,
        description="Intro to Machine Learning",
    )

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "finance")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    # The sidebar's "Payments" entry.
    page.locator("a[href='/admin/payments/payment/']").first.click()
    page.wait_for_url("**/admin/payments/payment/")
    assert page.locator("#result_list tbody tr").count() == 6

    # The filter sheet: choose status "Failed" and apply.
    page.locator("a.filter-open-button").click()
    page.locator("select[name=status__exact]").evaluate(
        "(el) => { el.value = 'failed'; el.dispatchEvent(new Event('change')); }"
    )
    page.get_by_role("button", name="Apply Filters").click()
    page.wait_for_url("**status__exact=failed**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "pi_e2e_failed" in rows.first.inner_text()
    page.screenshot(path=str(screenshot_dir / "payments-failed-filter.png"))

    page.get_by_role("link", name="pi_e2e_failed").click()
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "Payment failed" in body
    assert "insufficient_funds" in body
    assert "$49.00" in body
    page.screenshot(path=str(screenshot_dir / "payment-detail.png"), full_page=True)
    assert Payment.objects.get(stripe_payment_intent_id="pi_e2e_failed").status == "failed"
