"""The customer adjustment screens in Chromium, as two finance analysts use them: one requests a
credit from the customer page's form, the other opens the queue from the sidebar (the
"Pending" tab), approves in bulk after a confirmation with totals per currency, and the money
lands once in the peer's customer balance; the customer page then shows the history and the
new Stripe credit balance. Screenshots go to artifacts/customer-adjustment-*.png (the queue is
the issue's)."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from payments import gateway
from payments.models import Customer, CustomerAdjustment
from payments.services.customer_adjustments import customer_adjustment_request
from payments.sync import upsert_customers
from tests.factories import UserFactory
from tests.management.stripe_peer import sdk

pytestmark = [pytest.mark.e2e, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1440, "height": 900}


def _customer(client, email, name):
    made = client.v1.customers.create(params={"email": email, "name": name})
    upsert_customers([gateway.stripe_customer_retrieve(customer_id=made.id)])
    return Customer.objects.get(stripe_id=made.id)


def _world(localstripe):
    client = sdk(localstripe)
    call_command("loaddata", "groups", verbosity=0)
    analysts = []
    for username in ("analyst.e2e", "analyst2.e2e", "clerk.e2e"):
        user = UserFactory(username=username)
        user.groups.add(Group.objects.get(name="Finance staff"))
        analysts.append(user)
    ada = _customer(client, "ada.lovelace@students.example", "Ada Lovelace")
    kenji = _customer(client, "kenji@students.example", "Kenji Watanabe")
    grace = _customer(client, "grace.hopper.long.address@students-example-domain.com", "Grace")
    for customer, values in (
        (kenji, {"unit": "money", "amount": 3000, "currency": "jpy", "direction": "credit"}),
        (grace, {"unit": "money", "amount": 1250, "currency": "usd", "direction": "debit"}),
        (grace, {"unit": "money", "amount": 25000, "currency": "usd", "direction": "credit"}),
        (ada, {"unit": "hours", "minutes": 90, "direction": "credit"}),
        (kenji, {"unit": "hours", "minutes": 60, "direction": "debit"}),
    ):
        customer_adjustment_request(
            customer=customer,
            reason="Lesson cancelled by the tutor"
            if values["direction"] == "credit"
            else ("Charged twice for one lesson"),
            acting_user=analysts[2],
            **values,
        )
    return {"ada": ada, "analysts": analysts}


def _login(page, base, username):
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def test_customer_adjustment_screens(live_server, browser, screenshot_dir, localstripe):
    world = _world(localstripe)
    base = live_server.url
    ada = world["ada"]

    # The second analyst requests a credit for Ada from her page.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, base, "analyst2.e2e")
    page.goto(f"{base}/admin/payments/customer/{ada.pk}/change/")
    panel = page.locator("[data-testid=customer-adjustments-panel]")
    assert "Stripe credit balance: None" in panel.inner_text()
    page.locator("[data-testid=adjustment-request-toggle]").click()
    form = page.locator("[data-testid=adjustment-request-form]")
    form.locator("input[name=unit][value=money]").check()
    form.locator("input[name=direction][value=credit]").check()
    form.locator("select[name=currency]").select_option("usd")
    form.locator("input[name=amount]").fill("45.00")
    form.locator("textarea[name=reason]").fill("Tutor did not show up on 28 November")
    page.screenshot(path=str(screenshot_dir / "customer-adjustment-request.png"), full_page=True)
    form.get_by_role("button", name="Request adjustment").click()
    page.wait_for_url("**/admin/payments/customeradjustment/*/change/")
    assert "is waiting for approval by someone else" in page.inner_text("body")
    # Its own requester is told why they cannot approve it.
    assert page.locator("[data-testid=approve-refusal]").count() == 1
    context.close()

    # The first analyst works the queue.
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, base, "analyst.e2e")
    page.locator("#nav-sidebar").get_by_role("link", name="Customer adjustments").click()
    page.wait_for_url("**/admin/payments/customeradjustment/?status__exact=pending")
    assert page.locator("#result_list tbody tr").count() == 6
    body = page.inner_text("#result_list")
    assert "¥3,000" in body and "-$12.50" in body and "1 h 30 min" in body
    assert "needs a senior approver" in body  # the $250.00 credit
    page.screenshot(path=str(screenshot_dir / "customer-adjustment-queue.png"), full_page=True)

    # Bulk approve the money ones: totals per currency first, refusals named.
    page.goto(f"{base}/admin/payments/customeradjustment/?status__exact=pending&unit__exact=money")
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option("bulk_approve")
    page.locator("button[name=index]").click()
    page.wait_for_selector("[data-testid=bulk-form]")
    totals = page.inner_text("[data-testid=bulk-totals]")
    # Net in the customers' favour: Ada's +$45.00 and Grace's -$12.50; Kenji's ¥3,000.
    assert "¥3,000 (1)" in totals and "$32.50 (2)" in totals
    refusals = page.locator("[data-testid=bulk-refusal]")
    assert refusals.count() == 1  # the $250.00 credit needs a senior
    page.fill("textarea[name=note]", "Checked against the lesson log")
    page.screenshot(
        path=str(screenshot_dir / "customer-adjustment-bulk-approve.png"), full_page=True
    )
    page.get_by_role("button", name="Approve 3 adjustment(s)").click()
    page.wait_for_url("**/admin/payments/customeradjustment/**")
    assert "Approved 3 adjustment(s)." in page.inner_text("body")
    applied = CustomerAdjustment.objects.filter(status=CustomerAdjustment.Status.APPLIED)
    assert applied.count() == 3
    # Each landed once in the peer (django-q runs tasks in-line in tests).
    for adjustment in applied:
        txns = gateway.stripe_customer_balance_transaction_list(
            customer_id=adjustment.customer.stripe_id
        )
        assert [t.id for t in txns] == [adjustment.stripe_balance_transaction_id]

    # The large credit's page says why this analyst may not approve it; rejecting is offered.
    large = CustomerAdjustment.objects.get(status="pending", amount=25000)
    page.goto(f"{base}/admin/payments/customeradjustment/{large.pk}/change/")
    assert "need a senior approver" in page.inner_text("[data-testid=approve-refusal]")
    assert page.locator("[data-testid=reject-form] textarea[name=note]").count() == 1
    page.screenshot(path=str(screenshot_dir / "customer-adjustment-page.png"), full_page=True)

    # Ada's page: the history and her new credit balance (the mirror read it back).
    page.goto(f"{base}/admin/payments/customer/{ada.pk}/change/")
    panel = page.locator("[data-testid=customer-adjustments-panel]")
    assert "Stripe credit balance: Credit of $45.00" in panel.inner_text()
    assert "Applied" in page.inner_text("[data-testid=adjustment-history]")
    page.screenshot(path=str(screenshot_dir / "customer-adjustment-customer.png"), full_page=True)
    context.close()
