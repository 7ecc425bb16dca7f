"""The coupon form's percentage parsing and its help texts (no Stripe, no database)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from payments.admin.coupon_forms import ERR_PERCENT_FORMAT, OURS_ONLY, CouponForm


@pytest.mark.parametrize("raw", ["inf", "-inf", "Infinity", "nan", "sNaN"])
def test_a_percentage_that_is_not_a_finite_number_is_a_field_error(raw):
    form = CouponForm(data={"code": "X", "name": "X", "kind": "percentage", "percent_off": raw})
    assert not form.is_valid()
    assert form.errors["percent_off"] == [ERR_PERCENT_FORMAT]


@override_settings(TIME_ZONE="Europe/Berlin")
def test_validity_help_names_the_site_time_zone_and_who_enforces_each_rule():
    form = CouponForm()
    assert "Europe/Berlin" in form.fields["valid_from"].help_text
    assert "Europe/Berlin" in form.fields["valid_until"].help_text
    assert "UTC" not in form.fields["valid_from"].help_text
    for name in ("valid_from", "max_redemptions_per_customer", "product_kinds", "product_ids"):
        assert "Only our quote endpoint" in form.fields[name].help_text, name
    assert "Stripe enforces it" in form.fields["valid_until"].help_text
    assert OURS_ONLY in form.fields["product_ids"].help_text
