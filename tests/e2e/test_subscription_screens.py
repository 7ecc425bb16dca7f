"""A finance agent in a real browser on a customer's page: their subscriptions (status badges,
price per interval, latest invoice) and saved cards (one expiring this month); "Cancel at
period end" opens its confirmation page, the reason is required, and after confirming the
customer page shows when the subscription ends, as Stripe (the peer) now holds it.
Screenshots: artifacts/customer-subscriptions.png, artifacts/subscription-cancel-confirm.png,
artifacts/customer-subscriptions-after-cancel.png, artifacts/subscription-page.png,
artifacts/subscriptions-past-due.png."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from payments import gateway, sync
from payments.models import Customer, Subscription
from tests.factories import UserFactory
from tests.payments.subscription_support import monthly_price, renew, subscribe

pytestmark = [pytest.mark.e2e, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


def test_cancel_a_subscription_at_period_end_from_the_customer_page(
    live_server, page, screenshot_dir, localstripe, settings
):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    call_command("loaddata", "groups", verbosity=0)
    agent = UserFactory(username="analyst")
    agent.groups.add(Group.objects.get(name="Finance staff"))

    monthly = monthly_price("monthly")
    yearly = gateway.stripe_price_create(
        product_name="Tutoring membership",
        nickname="Yearly tutoring",
        unit_amount=39000,
        currency="eur",
        interval="year",
        idempotency_key="yearly:price",
    )
    customer, card, active = subscribe(email="ada@example.com", price=monthly, key="ada")
    today = timezone.localdate()
    gateway.stripe_payment_method_card_expiry_update(
        payment_method_id=card.id, exp_month=today.month, exp_year=today.year, idempotency_key="x"
    )
    old = gateway.stripe_subscription_create(
        customer_id=customer.id, price_id=yearly.id, idempotency_key="ada:old"
    )
    gateway.stripe_subscription_cancel(
        subscription_id=old.id, comment="Switched to monthly", idempotency_key="ada:old:cancel"
    )
    late = gateway.stripe_subscription_create(
        customer_id=customer.id, price_id=monthly.id, idempotency_key="ada:late", quantity=2
    )
    declining = gateway.stripe_payment_method_attach(
        payment_method_id="pm_card_chargeCustomerFail",
        customer_id=customer.id,
        idempotency_key="ada:bad",
    )
    gateway.stripe_customer_default_payment_method_set(
        customer_id=customer.id, payment_method_id=declining.id, idempotency_key="ada:d2"
    )
    renew(late.id)
    # Mirrored as the sync mirrors: the customer, their cards, their subscriptions.
    sync.upsert_customers([gateway.stripe_customer_retrieve(customer_id=customer.id)])
    sync.upsert_payment_methods(
        gateway.stripe_payment_method_list_for_customer(customer_id=customer.id)
    )
    sync.upsert_customers([gateway.stripe_customer_retrieve(customer_id=customer.id)])
    for page_of in gateway.stripe_subscription_list_pages():
        sync.upsert_subscriptions(page_of.items)
    row = Customer.objects.get(stripe_id=customer.id)

    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "analyst")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/admin/payments/customer/{row.pk}/change/")
    page.screenshot(path=str(screenshot_dir / "customer-subscriptions.png"), full_page=True)
    # Badges are upper-cased by Unfold's CSS.
    body = page.inner_text("body").lower()
    for text in ("active", "past due", "canceled", "$49.00 / month", "€390.00 / year"):
        assert text in body, text
    assert "expires this month" in body

    target = Subscription.objects.get(stripe_id=active.id)
    page.locator(f"a[href*='/subscription/{target.pk}/cancel-at-period-end/']").first.click()
    page.wait_for_load_state("networkidle")
    assert "The subscription keeps running until its current period ends" in page.inner_text("body")
    page.get_by_role("button", name="Cancel at period end").click()
    # The reason is required: the browser keeps the form.
    assert "/cancel-at-period-end/" in page.url
    page.fill("textarea[name=reason]", "Student finishes the course this term")
    page.screenshot(path=str(screenshot_dir / "subscription-cancel-confirm.png"))
    page.get_by_role("button", name="Cancel at period end").click()
    page.wait_for_url(f"{live_server.url}/admin/payments/customer/{row.pk}/change/")
    assert "will end on" in page.inner_text("body")
    statuses = [
        c.inner_text().lower() for c in page.locator("[data-testid=subscription-status]").all()
    ]
    assert any("ends " in status for status in statuses), statuses
    page.screenshot(
        path=str(screenshot_dir / "customer-subscriptions-after-cancel.png"), full_page=True
    )
    assert gateway.stripe_subscription_retrieve(subscription_id=active.id).cancel_at_period_end

    # The subscription's own page: its state, Resume offered, and the change just made.
    page.goto(f"{live_server.url}/admin/payments/subscription/{target.pk}/change/")
    panel = page.locator("[data-testid=billing-actions-panel]")
    assert "Student finishes the course this term" in panel.inner_text()
    assert page.get_by_role("link", name="Resume").is_visible()
    page.screenshot(path=str(screenshot_dir / "subscription-page.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/payments/subscription/?status__exact=past_due")
    page.screenshot(path=str(screenshot_dir / "subscriptions-past-due.png"))
    assert late.id in page.inner_text("body")
