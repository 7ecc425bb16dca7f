"""The forms behind the customer adjustment screens. Money is typed in major units and becomes
minor units of its currency here (payments.money.parse_money), hours become minutes; every
rule about whether the adjustment may be made or decided stays in
payments/customer_adjustment_rules.py and the services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from unfold.widgets import (
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from payments.admin.filters import FILTER_CURRENCIES
from payments.models import CustomerAdjustment
from payments.money import MoneyError, is_known_currency, parse_money
from payments.services.customer_adjustments import (
    ERR_AMOUNT_NOT_POSITIVE,
    ERR_REASON_REQUIRED,
    ERR_REJECTION_NOTE_REQUIRED,
    ERR_UNKNOWN_CURRENCY,
    MAX_MINUTES,
)

ERR_AMOUNT_REQUIRED = "Enter the amount of money."
ERR_HOURS_REQUIRED = "Enter the number of hours."
ERR_HOURS_FORMAT = "Enter hours such as 2 or 1.5 (a whole number of minutes)."
ERR_HOURS_RANGE = "Enter from 1 minute to {maximum} hours."

HELP_AMOUNT = "Major units of the currency (12.50; 1500 for yen). Money only."
HELP_HOURS = "Prepaid lesson hours, e.g. 2 or 1.5 (90 minutes). Hours only."


def _note_field(label: str, help_text: str, *, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=2000,
        required=required,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text=help_text,
    )


def parse_hours(text: str) -> int:
    """'1.5' -> 90 minutes; ValueError (with the message staff see) when not a positive whole
    number of minutes within MAX_MINUTES."""
    try:
        hours = Decimal((text or "").strip())
    except InvalidOperation as exc:
        raise ValueError(ERR_HOURS_FORMAT) from exc
    if not hours.is_finite():
        raise ValueError(ERR_HOURS_FORMAT)
    minutes = hours * 60
    if minutes != minutes.to_integral_value():
        raise ValueError(ERR_HOURS_FORMAT)
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(ERR_HOURS_RANGE.format(maximum=MAX_MINUTES // 60))
    return int(minutes)


class CustomerAdjustmentRequestForm(forms.Form):
    """Request a credit or a debit of money (the customer's Stripe balance) or hours."""

    unit = forms.ChoiceField(
        label="Adjust",
        choices=[
            (CustomerAdjustment.Unit.MONEY, "Money (Stripe credit balance)"),
            (CustomerAdjustment.Unit.HOURS, "Prepaid hours"),
        ],
        initial=CustomerAdjustment.Unit.MONEY,
        widget=UnfoldAdminRadioSelectWidget,
    )
    direction = forms.ChoiceField(
        label="Direction",
        choices=[
            (CustomerAdjustment.Direction.CREDIT, "Credit (in the customer's favour)"),
            (CustomerAdjustment.Direction.DEBIT, "Debit (the customer owes it)"),
        ],
        initial=CustomerAdjustment.Direction.CREDIT,
        widget=UnfoldAdminRadioSelectWidget,
    )
    currency = forms.ChoiceField(
        label="Currency",
        choices=[(code, code.upper()) for code in FILTER_CURRENCIES],
        required=False,
        widget=UnfoldAdminSelectWidget,
    )
    amount = forms.CharField(
        label="Amount",
        max_length=32,
        required=False,
        help_text=HELP_AMOUNT,
        widget=UnfoldAdminTextInputWidget,
    )
    hours = forms.CharField(
        label="Hours",
        max_length=16,
        required=False,
        help_text=HELP_HOURS,
        widget=UnfoldAdminTextInputWidget,
    )
    reason = _note_field("Reason", "Why (kept on the adjustment, sent to Stripe with it, audited).")

    def __init__(self, *args, balance_currency: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if balance_currency:
            # Stripe takes a customer's balance in one currency once it has one.
            self.fields["currency"].choices = [(balance_currency, balance_currency.upper())]
            self.fields["currency"].initial = balance_currency
        else:
            self.fields["currency"].initial = "usd"

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(ERR_REASON_REQUIRED)
        return reason

    def clean(self):
        cleaned = super().clean()
        unit = cleaned.get("unit")
        if unit == CustomerAdjustment.Unit.MONEY:
            currency = (cleaned.get("currency") or "").lower()
            if not is_known_currency(currency):
                self.add_error("currency", ERR_UNKNOWN_CURRENCY.format(currency=currency))
                return cleaned
            raw = (cleaned.get("amount") or "").strip()
            if not raw:
                self.add_error("amount", ERR_AMOUNT_REQUIRED)
                return cleaned
            try:
                amount = parse_money(raw, currency)
            except MoneyError as exc:
                self.add_error("amount", str(exc))
                return cleaned
            if amount <= 0:
                self.add_error("amount", ERR_AMOUNT_NOT_POSITIVE)
                return cleaned
            cleaned.update(amount=amount, currency=currency, minutes=0)
        elif unit == CustomerAdjustment.Unit.HOURS:
            raw = (cleaned.get("hours") or "").strip()
            if not raw:
                self.add_error("hours", ERR_HOURS_REQUIRED)
                return cleaned
            try:
                cleaned["minutes"] = parse_hours(raw)
            except ValueError as exc:
                self.add_error("hours", str(exc))
                return cleaned
            cleaned.update(amount=0, currency="")
        return cleaned


class CustomerAdjustmentApproveForm(forms.Form):
    note = _note_field("Note", "Optional: why it is approved (kept and audited).", required=False)


class CustomerAdjustmentRejectForm(forms.Form):
    note = forms.CharField(
        label="Note",
        max_length=2000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        error_messages={"required": ERR_REJECTION_NOTE_REQUIRED},
        help_text="Required: why it is rejected (kept and audited).",
    )

    def clean_note(self):
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(ERR_REJECTION_NOTE_REQUIRED)
        return note
