"""The forms behind the payout screens. Amounts are typed in major units and become minor
units of the payout's currency here (payments.money.parse_money), so a view never does
arithmetic on money; every rule about whether the action may happen stays in the services."""

from __future__ import annotations

from django import forms
from unfold.widgets import (
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from payments.money import MoneyError, is_known_currency, parse_money

ERR_UNKNOWN_CURRENCY = "Not a currency we know: use a three-letter ISO code such as USD."
ERR_AMOUNT_NOT_POSITIVE = "Enter an amount above zero."


def _note_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=2000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text=help_text,
    )


class PayoutApproveForm(forms.Form):
    note = _note_field("Note", "Why these payouts may leave (kept on each payout and audited).")


class PayoutCancelForm(forms.Form):
    reason = _note_field(
        "Reason", "Why the payout is canceled; its amount returns to the instructor's balance."
    )


class PayoutMarkPaidForm(forms.Form):
    bank_reference = forms.CharField(
        label="Bank reference",
        max_length=255,
        widget=UnfoldAdminTextInputWidget(),
        help_text="The reference on the bank's confirmation of the transfer.",
    )


class _AmountInCurrencyMixin:
    """Cleans `amount` (major units, as typed) into minor units of `self.currency`."""

    currency: str = ""

    def clean_amount(self):
        raw = self.cleaned_data["amount"]
        try:
            amount = parse_money(raw, self.currency)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if amount <= 0:
            raise forms.ValidationError(ERR_AMOUNT_NOT_POSITIVE)
        return amount


class PayoutReverseForm(_AmountInCurrencyMixin, forms.Form):
    amount = forms.CharField(
        label="Amount to pull back",
        max_length=32,
        widget=UnfoldAdminTextInputWidget(),
        help_text="In the payout's currency (major units, e.g. 12.50). At most what is left.",
    )
    reason = _note_field("Reason", "Why the transfer is reversed (audited).")

    def __init__(self, *args, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency


class ManualPayoutForm(_AmountInCurrencyMixin, forms.Form):
    """A payout outside the runs. The instructor is chosen by the link that opened the form
    (?instructor=<id>); the currency is one of the instructor's balances or typed."""

    currency = forms.CharField(
        label="Currency",
        max_length=3,
        min_length=3,
        widget=UnfoldAdminSelectWidget(),
    )
    amount = forms.CharField(
        label="Amount",
        max_length=32,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Major units (e.g. 120.00); at most the instructor's available balance.",
    )
    note = _note_field("Note", "Why this payout is made by hand (a second person must approve it).")

    def __init__(self, *args, currencies: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        codes = currencies or ["usd"]
        self.fields["currency"].widget.choices = [(code, code.upper()) for code in codes]

    def clean_currency(self):
        currency = self.cleaned_data["currency"].lower()
        if not is_known_currency(currency):
            raise forms.ValidationError(ERR_UNKNOWN_CURRENCY)
        self.currency = currency
        return currency

    def clean_amount(self):
        if not self.currency:
            return None  # the currency's own error says why
        return super().clean_amount()
