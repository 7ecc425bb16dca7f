"""The coupon form and its per-currency rows. Amounts are typed in major units of their row's
currency and become minor units here (payments.money.parse_money); a percentage is typed in
percent ("12.5") and becomes basis points (1250). Every rule about the terms is
payments.services.coupons.coupon_terms_problems, asked here so the page shows each problem
beside its field, and asked again by the service."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.utils import timezone
from unfold.widgets import (
    INPUT_CLASSES,
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from payments.models import Coupon, Payment
from payments.models.coupon import CODE_MAX_LENGTH, NAME_MAX_LENGTH
from payments.money import MoneyError, is_known_currency, parse_money
from payments.services.coupons import (
    CouponTerms,
    CurrencyTerms,
    coupon_terms_problems,
)

ERR_PERCENT_FORMAT = "Enter a percentage such as 12.5 (at most two decimals)."
ERR_CURRENCY = "Not a currency we know: use a three-letter ISO code such as USD."
ERR_AMOUNTS_WITHOUT_CURRENCY = "Say which currency these amounts are in."
# Which rule Stripe enforces and which only our quote endpoint does (README, coupons).
OURS_ONLY = "Only our quote endpoint enforces it, not Stripe's checkout."
HELP_VALID_FROM = (
    "Empty: from now. Time in {zone}. Only our quote endpoint enforces it: Stripe "
    "accepts the code as soon as it is pushed."
)
HELP_VALID_UNTIL = "Empty: no end. Time in {zone}; the instant itself counts. Stripe enforces it."
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

IMMUTABLE_NOTE = (
    "Stripe's coupons cannot be changed. Changing the name, the percentage or amounts, the "
    "minimum orders, the total limit or the end date makes a new Stripe coupon and promotion "
    "code for the same code, and deactivates the previous promotion code there. The other "
    "rules (per-customer limit, products, start date, the cap on a percentage) are ours only "
    "and change nothing at Stripe. Redemptions so far stay with the coupon."
)


class DateTimeLocalWidget(forms.DateTimeInput):
    """The browser's date-and-time picker, styled as Unfold's text inputs."""

    input_type = "datetime-local"

    def __init__(self):
        super().__init__(attrs={"class": " ".join(INPUT_CLASSES)}, format=DATETIME_FORMATS[0])


def _datetime_field(label: str, help_text: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=DATETIME_FORMATS,
        widget=DateTimeLocalWidget(),
        help_text=help_text,
    )


class CouponForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=CODE_MAX_LENGTH,
        widget=UnfoldAdminTextInputWidget(),
        help_text="What customers type: capital letters, digits and dashes (kept upper-case).",
    )
    name = forms.CharField(
        label="Name",
        max_length=NAME_MAX_LENGTH,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Shown to customers by Stripe (at most 40 characters).",
    )
    kind = forms.ChoiceField(
        label="Discount", choices=Coupon.Kind.choices, widget=UnfoldAdminSelectWidget()
    )
    percent_off = forms.CharField(
        label="Percent off",
        required=False,
        max_length=8,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Percentage coupons: e.g. 12.5 for 12.5 % (kept in basis points).",
    )
    max_redemptions = forms.IntegerField(
        label="Total redemptions limit",
        required=False,
        min_value=1,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Empty: no limit. Stripe enforces it.",
    )
    max_redemptions_per_customer = forms.IntegerField(
        label="Redemptions per customer",
        required=False,
        min_value=1,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Empty: no limit. The booking system must then say who the customer is. "
        + OURS_ONLY,
    )
    product_kinds = forms.MultipleChoiceField(
        label="Product kinds",
        required=False,
        choices=Payment.ProductKind.choices,
        widget=UnfoldAdminCheckboxSelectMultipleWidget(),
        help_text="None ticked: every kind. " + OURS_ONLY,
    )
    product_ids = forms.CharField(
        label="Product ids",
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="The marketplace's product ids, separated by commas or new lines. Empty: "
        "every product. " + OURS_ONLY,
    )
    valid_from = _datetime_field("Valid from", HELP_VALID_FROM)
    valid_until = _datetime_field("Valid until", HELP_VALID_UNTIL)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        # Typed times are read in the site's time zone (settings.TIME_ZONE), not UTC.
        zone = timezone.get_current_timezone_name()
        for name in ("valid_from", "valid_until"):
            self.fields[name].help_text = self.fields[name].help_text.format(zone=zone)
        if editing:
            # The code is the coupon's identity (redemptions are matched by it).
            del self.fields["code"]

    def clean_percent_off(self) -> int | None:
        raw = (self.cleaned_data.get("percent_off") or "").strip().rstrip("%").strip()
        if not raw:
            return None
        try:
            value = Decimal(raw) * 100
        except InvalidOperation as exc:
            raise forms.ValidationError(ERR_PERCENT_FORMAT) from exc
        if not value.is_finite() or value != value.to_integral_value():
            raise forms.ValidationError(ERR_PERCENT_FORMAT)
        return int(value)

    def clean_product_ids(self) -> list[str]:
        raw = self.cleaned_data.get("product_ids") or ""
        parts = [p.strip() for chunk in raw.splitlines() for p in chunk.split(",")]
        return list(dict.fromkeys(p for p in parts if p))

    @staticmethod
    def initial_for(coupon: Coupon) -> dict:
        percent = ""
        if coupon.percent_off_bps is not None:
            percent = f"{Decimal(coupon.percent_off_bps) / 100:f}".rstrip("0").rstrip(".")
        return {
            "name": coupon.name,
            "kind": coupon.kind,
            "percent_off": percent,
            "max_redemptions": coupon.max_redemptions,
            "max_redemptions_per_customer": coupon.max_redemptions_per_customer,
            "product_kinds": coupon.product_kinds,
            "product_ids": ", ".join(coupon.product_ids),
            "valid_from": coupon.valid_from,
            "valid_until": coupon.valid_until,
        }


class CouponCurrencyForm(forms.Form):
    """One currency's amounts, typed in its major units."""

    currency = forms.CharField(
        label="Currency",
        required=False,
        max_length=3,
        widget=UnfoldAdminTextInputWidget(attrs={"size": 4, "placeholder": "USD"}),
    )
    amount_off = forms.CharField(
        label="Amount off",
        required=False,
        max_length=32,
        widget=UnfoldAdminTextInputWidget(attrs={"placeholder": "fixed coupons"}),
    )
    max_discount = forms.CharField(
        label="Maximum discount",
        required=False,
        max_length=32,
        widget=UnfoldAdminTextInputWidget(attrs={"placeholder": "percentage coupons"}),
        help_text=OURS_ONLY,
    )
    minimum_amount = forms.CharField(
        label="Minimum order",
        required=False,
        max_length=32,
        widget=UnfoldAdminTextInputWidget(attrs={"placeholder": "none"}),
    )

    MONEY_FIELDS = ("amount_off", "max_discount", "minimum_amount")

    def clean(self):
        data = super().clean()
        currency = (data.get("currency") or "").strip().lower()
        amounts = {name: (data.get(name) or "").strip() for name in self.MONEY_FIELDS}
        if not currency:
            if any(amounts.values()):
                raise forms.ValidationError(ERR_AMOUNTS_WITHOUT_CURRENCY)
            data["terms"] = None
            return data
        if not is_known_currency(currency):
            self.add_error("currency", ERR_CURRENCY)
            return data
        parsed = {}
        for name, raw in amounts.items():
            if not raw:
                parsed[name] = None
                continue
            try:
                parsed[name] = parse_money(raw, currency)
            except MoneyError as exc:
                self.add_error(name, str(exc))
        if not self.errors:
            data["terms"] = CurrencyTerms(
                currency=currency,
                amount_off=parsed["amount_off"],
                max_discount=parsed["max_discount"],
                minimum_amount=parsed["minimum_amount"] or 0,
            )
        return data

    @staticmethod
    def initial_for(row) -> dict:
        from payments.money import to_decimal

        def text(amount):
            return "" if amount is None else str(to_decimal(amount, row.currency))

        return {
            "currency": row.currency.upper(),
            "amount_off": text(row.amount_off),
            "max_discount": text(row.max_discount),
            "minimum_amount": text(row.minimum_amount) if row.minimum_amount else "",
        }


CouponCurrencyFormSet = forms.formset_factory(CouponCurrencyForm, extra=3, max_num=20)


def terms_from(form: CouponForm, formset) -> CouponTerms | None:
    """The CouponTerms the valid `form` and `formset` say, after asking the services' rules:
    their problems are added to the fields (per-currency ones above the rows). None when
    anything is wrong."""
    if not (form.is_valid() and formset.is_valid()):
        return None
    data = form.cleaned_data
    terms = CouponTerms(
        name=data["name"],
        kind=data["kind"],
        percent_off_bps=data["percent_off"],
        currencies=tuple(
            sorted(
                (f.cleaned_data["terms"] for f in formset if f.cleaned_data.get("terms")),
                key=lambda t: t.currency,
            )
        ),
        max_redemptions=data["max_redemptions"],
        max_redemptions_per_customer=data["max_redemptions_per_customer"],
        product_kinds=tuple(data["product_kinds"]),
        product_ids=tuple(data["product_ids"]),
        valid_from=data["valid_from"],
        valid_until=data["valid_until"],
    )
    problems = coupon_terms_problems(terms)
    for field, message in problems.items():
        target = "percent_off" if field == "percent_off_bps" else field
        if target in form.fields:
            form.add_error(target, message)
        else:
            form.add_error(None, message)
    return None if problems else terms
