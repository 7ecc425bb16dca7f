"""Finance in a real browser: the dashboard and the analytics changelist, charts drawn."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reports.models import DailyRollup
from reports.rollups import generate_analytics
from tests.factories import DisputeFactory, PaymentFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _data():
    now = timezone.now()
    for days in range(20):
        created = now - timedelta(days=days, hours=1)
        PaymentFactory.create_batch(3, created=created, amount=2500 + 100 * days)
        PaymentFactory(created=created, currency="eur", amount=1900)
        if days % 4 == 0:
            PaymentFactory(failed=True, created=created)
    DisputeFactory()
    today = timezone.localdate()
    generate_analytics(start=today - timedelta(days=29), end=today)


def _login(page, live_server):
    UserFactory(username="finance", is_superuser=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "finance")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_dashboard_and_analytics_in_a_browser(live_server, page, screenshot_dir):
    _data()
    _login(page, live_server)
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=card-success_rate]").get_attribute("data-tone") == "danger"
    assert page.locator("[data-testid=card-disputes]").get_attribute("data-tone") == "warning"
    # Chart.js drew into the canvases (a blank canvas has no chart instance).
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('canvas.chart')].map(c => !!Chart.getChart(c))"
    )
    assert drawn and all(drawn)
    page.screenshot(path=str(screenshot_dir / "reports-dashboard.png"), full_page=True)

    page.locator("a[href='/admin/reports/dailyrollup/']").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=total-usd]").count() == 1
    assert page.locator("[data-testid=total-eur]").count() == 1
    # One row per day and currency (how many days 20 x 24 h spans depends on the hour).
    assert page.locator("#result_list tbody tr").count() == DailyRollup.objects.count()
    page.screenshot(path=str(screenshot_dir / "reports-analytics.png"), full_page=True)
