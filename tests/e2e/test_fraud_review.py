"""A fraud reviewer in a real browser: open an early fraud warning, assign it, investigate,
pick "Confirmed fraud" (only then does the button say what it will do), resolve with a note,
and block the customer from the same page."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from payments.models import Customer, FraudAlert
from tests.factories import CustomerFactory, PaymentFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_review_an_alert_and_block_the_customer(live_server, page, screenshot_dir):
    call_command("loaddata", "groups", verbosity=0)
    reviewer = UserFactory(username="senior")
    reviewer.groups.add(*Group.objects.filter(name__in=["Finance staff", "Senior approvers"]))
    customer = CustomerFactory(email="mallory@example.com", name="Mallory Card")
    payment = PaymentFactory(
        customer=customer, amount=18900, stripe_payment_intent_id="pi_e2e_fraud"
    )
    alert = FraudAlert.objects.create(
        payment=payment,
        source=FraudAlert.Source.EARLY_FRAUD_WARNING,
        stripe_id="issfr_e2e",
        fraud_type="made_with_stolen_card",
        created=timezone.now(),
    )

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "senior")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/admin/payments/fraudalert/{alert.pk}/change/")
    review = page.locator("[data-testid=fraud-review]")
    review.wait_for()
    assert "pi_e2e_fraud" in review.inner_text() and "mallory@example.com" in review.inner_text()
    button = page.locator("[data-testid=resolve-button]")
    # Nothing is decided yet: the button asks for a choice and cannot be pressed.
    assert button.inner_text().strip() == "Choose an outcome to resolve"
    assert button.is_disabled()
    # The viewport only: in a full-page shot Unfold's sticky "Close" bar lands mid-page.
    page.screenshot(path=str(screenshot_dir / "fraud-review-open.png"))

    page.get_by_role("button", name="Assign to me").click()
    page.wait_for_load_state("networkidle")
    assert "now assigned to you" in page.inner_text("body")
    page.get_by_role("button", name="Start investigating").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=alert-status]").inner_text().strip().lower() == (
        "investigating"
    )

    page.get_by_label("Confirmed fraud").check()
    assert button.inner_text().strip() == "Resolve as confirmed fraud"
    page.get_by_label("False positive (not fraud)").check()
    assert button.inner_text().strip() == "Resolve as false positive"
    page.get_by_label("Confirmed fraud").check()
    page.fill("#resolve-note", "Cardholder's bank confirmed the card was stolen.")
    page.screenshot(path=str(screenshot_dir / "fraud-review-investigating.png"))
    button.click()
    page.wait_for_load_state("networkidle")
    assert "Resolved: confirmed fraud by senior" in page.inner_text("body")

    page.get_by_role("button", name="Block customer").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=fraud-review] [data-testid=customer-blocked]").count() >= 1
    assert page.get_by_role("button", name="Unblock customer").is_visible()
    page.screenshot(path=str(screenshot_dir / "fraud-review-resolved-blocked.png"))

    alert.refresh_from_db()
    assert alert.status == FraudAlert.Status.CONFIRMED and alert.reviewed_by == reviewer
    blocked = Customer.objects.get(pk=customer.pk)
    assert blocked.is_blocked and blocked.block_reason.startswith(f"Fraud alert #{alert.pk}")
