"""A finance senior in a real browser on a dispute page: the countdown badge, the evidence
packet and the pre-filled evidence form; a Word file renamed .pdf is refused on the form with
nothing sent; saving real evidence stages it. Screenshots go to artifacts/ (the
`screenshot_dir` fixture): dispute-page.png, dispute-evidence-errors.png, dispute-saved.png.

The gateway is faked at its boundary (the live server runs in this process), so the browser
test needs no localstripe; the same flow against localstripe is
tests/reports/test_dispute_respond_localstripe.py."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from payments.models import BalanceEntry, Dispute, Payment, StudentBalance
from tests.factories import DisputeFactory, PaymentFactory, RefundRequestFactory, UserFactory
from tests.payments.test_dispute_response import DOCX, FakeStripe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def full_page_screenshot(page, path):
    """The whole page in one viewport, so the sticky submit bar sits at the bottom instead
    of over the middle of a stitched full-page capture."""
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1440, "height": height})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})


@pytest.fixture
def dispute():
    payment = PaymentFactory(
        status=Payment.Status.DISPUTED,
        amount=18000,
        currency="eur",
        product_kind=Payment.ProductKind.HOUR_PACKAGE,
        product_name="10 hours of conversational Spanish",
        package_minutes=600,
        ip_address="203.0.113.9",
        billing_details={"address": {"line1": "12 Rue Mercière", "city": "Lyon", "country": "FR"}},
        stripe_payment_intent_id="pi_3PdisputedE2E",
        succeeded_at=timezone.now() - timedelta(days=40),
    )
    payment.customer.name = "Ana Lima"
    payment.customer.save()
    balance = StudentBalance.objects.create(customer=payment.customer, minutes=390)
    for note in ("Lesson 1 with Marta", "Lesson 2 with Marta", "Lesson 3 with Marta"):
        BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-70, note=note)
    RefundRequestFactory(
        payment=payment,
        amount=18000,
        status="rejected",
        customer_note="I changed my mind",
        rejection_reason="Three lessons were already taken.",
    )
    return DisputeFactory(
        stripe_id="dp_1QbrowserE2E",
        payment=payment,
        reason="product_not_received",
        evidence_due_by=timezone.now() + timedelta(days=2, hours=5),
    )


def test_dispute_page_countdown_form_errors_and_save(
    live_server, page, screenshot_dir, dispute, monkeypatch
):
    fake = FakeStripe(dispute).install(monkeypatch)
    senior = UserFactory(username="senior")
    senior.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_dispute", "respond_dispute", "view_payment", "view_customer"]
        )
    )
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "senior")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/admin/payments/dispute/{dispute.pk}/change/")

    body = page.inner_text("body")
    assert "Product not received" in body
    assert "€180.00" in body
    badge = page.locator("[data-testid=countdown] span").first
    assert "2 DAYS" in badge.inner_text().upper() and "LEFT" in badge.inner_text().upper()
    assert "bg-red-100" in (badge.get_attribute("class") or "")
    assert page.input_value("input[name=customer_name]") == "Ana Lima"
    assert "3.5 h" in page.input_value("textarea[name=access_activity_log]")
    full_page_screenshot(page, screenshot_dir / "dispute-page.png")

    # A Word document named .pdf: refused on the form, nothing sent.
    docx = screenshot_dir / "receipt.pdf"
    docx.write_bytes(DOCX)
    page.set_input_files("input[name=receipt]", str(docx))
    page.fill("textarea[name=uncategorized_text]", "winning_evidence")
    page.get_by_role("button", name="Save evidence (not submitted)").click()
    page.wait_for_load_state("networkidle")
    assert "is not a PDF, PNG or JPG file" in page.inner_text("body")
    assert fake.updates == [] and fake.files == []
    full_page_screenshot(page, screenshot_dir / "dispute-evidence-errors.png")

    # Without the bad file the evidence is staged.
    page.set_input_files("input[name=receipt]", [])
    page.get_by_role("button", name="Save evidence (not submitted)").click()
    page.wait_for_url(f"**/admin/payments/dispute/{dispute.pk}/change/")
    assert "Evidence saved in Stripe, not submitted" in page.inner_text("body")
    assert fake.updates[0]["evidence"]["uncategorized_text"] == "winning_evidence"
    assert fake.updates[0]["submit"] is False
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.NEEDS_RESPONSE and dispute.has_evidence
    full_page_screenshot(page, screenshot_dir / "dispute-saved.png")
