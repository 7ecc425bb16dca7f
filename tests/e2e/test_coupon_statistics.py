"""A coupon's statistics in Chromium, as finance staff read them: from the Coupons list (its
status badges and usage) to a coupon's page, with figures per currency, a flagged redemption
and the deactivate form. Screenshots: artifacts/coupons-list.png and
artifacts/coupon-statistics.png."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from payments.models import Coupon
from payments.sync import upsert_payment_intents
from tests.coupons.support import coupon_row, fixed_terms, intent, percent_terms
from tests.factories import CustomerFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _world():
    call_command("loaddata", "groups", verbosity=0)
    analyst = UserFactory(username="analyst.coupons")
    analyst.groups.add(Group.objects.get(name="Finance staff"))
    analyst.set_password("pw-coupons")
    analyst.save()
    now = timezone.now()
    spring = coupon_row(
        "SPRING25",
        percent_terms(
            2500,
            caps={"usd": 2500, "eur": 2200},
            minimums={"usd": 4000},
            max_redemptions=6,
            valid_until=now + timedelta(days=20),
            name="Spring sale",
        ),
        stripe_coupon_id="cpn-1-v1",
        stripe_promotion_code_id="promo_demo1",
    )
    coupon_row("FRIENDS15", fixed_terms({"usd": 1500, "eur": 1400, "jpy": 2000}, name="Friends"))
    coupon_row("NEWYEAR", percent_terms(1500, valid_from=now + timedelta(days=30), name="New year"))
    coupon_row("SUMMER", percent_terms(1000, name="Summer"), active=False)
    customers = [CustomerFactory(stripe_id=f"cus_e2e{i}") for i in range(4)]
    intents = []
    for i, (amount, discount) in enumerate(
        [(6000, 2000), (7500, 2500), (4500, 1500), (12000, 2500), (6750, 2250)]
    ):
        intents.append(
            intent(
                f"pi_e2e_usd{i}",
                amount=amount,
                discount=discount,
                code="SPRING25",
                customer=customers[i % 4].stripe_id,
                created=now - timedelta(days=i + 1),
            )
        )
    intents += [
        intent(
            "pi_e2e_eur0",
            amount=5400,
            discount=1800,
            currency="eur",
            code="SPRING25",
            created=now - timedelta(hours=20),
        ),
        # Beyond the total limit of 6: recorded and flagged.
        intent(
            "pi_e2e_eur1",
            amount=6000,
            discount=2000,
            currency="eur",
            code="SPRING25",
            created=now - timedelta(hours=2),
        ),
        intent(
            "pi_e2e_fail",
            amount=6000,
            discount=2000,
            code="SPRING25",
            status="requires_payment_method",
            created=now - timedelta(hours=5),
        ),
    ]
    upsert_payment_intents(intents)
    return spring


def test_a_coupons_statistics(live_server, page, screenshot_dir):
    spring = _world()
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", "analyst.coupons")
    page.fill("input[name=password]", "pw-coupons")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    page.get_by_role("link", name="Coupons").first.click()
    page.wait_for_url("**/admin/payments/coupon/")
    listing = page.locator("#result_list").inner_text().lower()  # badges are upper-cased
    for expected in ("spring25", "used up", "active", "scheduled", "inactive", "7 of 6"):
        assert expected in listing, expected
    assert "1 flagged" in listing
    page.screenshot(path=str(screenshot_dir / "coupons-list.png"), full_page=True)

    page.get_by_role("link", name="SPRING25").first.click()
    page.wait_for_url(f"**/admin/payments/coupon/{spring.pk}/change/")
    stats = page.get_by_test_id("coupon-statistics").inner_text()
    usd = page.get_by_test_id("stats-usd").inner_text()
    assert "$107.50" in usd  # discount given: 20 + 25 + 15 + 25 + 22.50
    assert "$367.50" in usd  # revenue
    assert "5 of 6" in usd and "83.3 %" in usd  # conversion: one payment failed
    assert "€38.00" in page.get_by_test_id("stats-eur").inner_text()
    assert "Conversion" in stats
    assert page.get_by_test_id("redemption-flagged").count() == 1
    assert page.get_by_test_id("deactivate-form").is_visible()
    assert Coupon.objects.get(pk=spring.pk).active
    page.screenshot(path=str(screenshot_dir / "coupon-statistics.png"), full_page=True)
