"""In a real browser: the line under the search box says what it searches, a lower-case part of
an e-mail and an upper-case Stripe id find the payment, and a hand-edited bad filter is reported
above the full list."""

import pytest

from backoffice.changelist import ERR_UNKNOWN_VALUE
from payments.selectors import PAYMENT_SEARCH
from tests.factories import CustomerFactory, PaymentFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_search_help_substring_any_case_and_a_bad_filter(live_server, page, screenshot_dir):
    UserFactory(username="finance", is_superuser=True)
    PaymentFactory.create_batch(4)
    PaymentFactory(
        stripe_payment_intent_id="pi_3MtwBwLkdIwHu7ix28a3tqPa",
        customer=CustomerFactory(name="Maria Lopez", email="maria.lopez@example.com"),
    )
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "finance")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/admin/payments/payment/")

    help_line = page.locator("#searchbar-help")
    assert help_line.is_visible()
    assert help_line.inner_text() == PAYMENT_SEARCH.help_text
    # Under the box, not beside it.
    box = page.locator("#searchbar").bounding_box()
    assert help_line.bounding_box()["y"] >= box["y"] + box["height"]

    for term in ("lopez@EXAM", "PI_3MTWBWLKDIWHU7IX28A3TQPA"):
        page.fill("#searchbar", term)
        page.press("#searchbar", "Enter")
        page.wait_for_load_state("networkidle")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 1, term
        assert "pi_3MtwBwLkdIwHu7ix28a3tqPa" in rows.first.inner_text()
    page.screenshot(path=str(screenshot_dir / "search-any-case.png"))

    page.goto(f"{live_server.url}/admin/payments/payment/?status__exact=bogus")
    page.wait_for_load_state("networkidle")
    assert ERR_UNKNOWN_VALUE.format(label="status", value="bogus", things="payments") in (
        page.inner_text("body")
    )
    assert page.locator("#result_list tbody tr").count() == 5
    page.screenshot(path=str(screenshot_dir / "search-bad-filter.png"))
