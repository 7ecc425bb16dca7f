"""The customer page's "Personal data (GDPR)" section in Chromium, under the CSP: a senior
approver opens the erasure's confirmation, types the Stripe id, and the page shows the customer
as erased; an auditor sees a webhook payload with the personal data masked. Screenshots:
artifacts/gdpr-erase-confirm.png, artifacts/gdpr-customer-erased.png,
artifacts/webhook-payload-masked.png."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments.models import Customer, WebhookEvent
from tests.e2e.test_admin_crawl import log_in
from tests.e2e.test_csp_browser import ConsoleWatch
from tests.factories import CustomerFactory, PaymentFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL = "jane.doe@example.com"


@pytest.fixture
def jane():
    call_command("demo_staff", stdout=io.StringIO())
    customer = CustomerFactory(stripe_id="cus_e2ejane", email=EMAIL, name="Jane Doe")
    PaymentFactory(customer=customer, billing_details={"name": "Jane Doe", "email": EMAIL})
    event = WebhookEvent.objects.create(
        stripe_id="evt_e2ejane",
        type="customer.updated",
        object_id="cus_e2ejane",
        created=timezone.now(),
        status=WebhookEvent.Status.PROCESSED,
        payload={
            "id": "evt_e2ejane",
            "type": "customer.updated",
            "data": {
                "object": {
                    "id": "cus_e2ejane",
                    "object": "customer",
                    "email": EMAIL,
                    "name": "Jane Doe",
                    "address": {"line1": "1 Example Street", "city": "London", "country": "GB"},
                }
            },
        },
    )
    return customer, event


def test_erase_a_customer_and_read_masked_payloads(live_server, page, screenshot_dir, jane):
    customer, event = jane
    base = live_server.url
    watch = ConsoleWatch(page)
    problems: list[str] = []

    # The auditor reads the event with the personal data masked.
    log_in(page, base, "auditor", "demo-auditor-2026")
    watch.visit(f"{base}/admin/payments/webhookevent/{event.pk}/change/", problems)
    payload = page.locator("pre[data-payload-masked]").inner_text()
    assert "cus_e2ejane" in payload and '"GB"' in payload
    assert EMAIL not in payload and "Jane Doe" not in payload and "Example Street" not in payload
    page.screenshot(path=str(screenshot_dir / "webhook-payload-masked.png"), full_page=True)

    # A senior approver erases the customer.
    log_in(page, base, "senior", "demo-senior-2026")
    watch.visit(f"{base}/admin/payments/customer/{customer.pk}/change/", problems)
    panel = page.get_by_test_id("customer-privacy-panel")
    assert panel.is_visible()
    panel.get_by_test_id("erase-personal-data").click()
    page.wait_for_selector("[data-testid=privacy-confirm]")
    page.fill("textarea[name=reason]", "Ticket 4711: the customer asked on 2026-12-01")
    page.fill("input[name=confirmation]", "cus_e2ejane")
    page.screenshot(path=str(screenshot_dir / "gdpr-erase-confirm.png"), full_page=True)
    page.get_by_role("button", name="Erase personal data").click()
    page.wait_for_selector("[data-testid=customer-erased]")
    assert EMAIL not in page.content()
    page.screenshot(path=str(screenshot_dir / "gdpr-customer-erased.png"), full_page=True)
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.name == Customer.ERASED_NAME

    # The customers list marks them.
    watch.visit(f"{base}/admin/payments/customer/", problems)
    assert page.get_by_test_id("customer-erased-badge").count() == 1
    assert not problems, "\n".join(problems)
