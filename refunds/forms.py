"""Forms for refund decisions and requests. Amounts are typed in major units and parsed with
payments.money.parse_money, which refuses more decimals than the currency has."""

from django import forms
from unfold.widgets import (
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from payments.models import Payment
from payments.money import MoneyError, decimal_places, is_known_currency, parse_money

from .models import RefundRequest
from .services import ERR_REJECTION_REASON_REQUIRED


def _textarea(rows: int = 3):
    return UnfoldAdminTextareaWidget(attrs={"rows": rows})


class ApproveForm(forms.Form):
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=2000,
        widget=_textarea(),
        help_text="Kept on the request and in the audit trail.",
    )


class BulkApproveForm(forms.Form):
    note = forms.CharField(
        label="Note",
        max_length=2000,
        widget=_textarea(),
        help_text="Required: why these refunds are approved (audit trail).",
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label="Rejection reason",
        max_length=2000,
        widget=_textarea(),
        error_messages={"required": ERR_REJECTION_REASON_REQUIRED},
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(ERR_REJECTION_REASON_REQUIRED)
        return reason


class RefundRequestCreateForm(forms.Form):
    """Request a (partial) refund of one payment. The amount is in the payment's currency."""

    amount = forms.CharField(
        label="Amount",
        max_length=32,
        widget=UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    currency = forms.CharField(
        label="Currency",
        max_length=3,
        required=False,
        widget=UnfoldAdminTextInputWidget(),
        help_text="Optional; must be the payment's currency.",
    )
    reason = forms.ChoiceField(
        choices=RefundRequest.Reason.choices,
        initial=RefundRequest.Reason.REQUESTED_BY_CUSTOMER,
        widget=UnfoldAdminSelectWidget(),
    )
    internal_reason = forms.ChoiceField(
        label="Internal reason",
        choices=RefundRequest.InternalReason.choices,
        required=False,
        widget=UnfoldAdminSelectWidget(),
    )
    customer_note = forms.CharField(
        label="Customer's words", required=False, max_length=2000, widget=_textarea()
    )
    admin_notes = forms.CharField(
        label="Notes for approvers", required=False, max_length=2000, widget=_textarea()
    )
    notify_customer = forms.BooleanField(
        label="E-mail the customer when refunded",
        required=False,
        initial=True,
        widget=UnfoldBooleanSwitchWidget(),
    )

    def __init__(self, *args, payment: Payment, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment = payment
        # A payment in a currency we do not know (a bad stored row) still shows the form;
        # clean_amount refuses it with parse_money's "Unknown currency" error.
        places = decimal_places(payment.currency) if is_known_currency(payment.currency) else 0
        self.fields[
            "amount"
        ].help_text = (
            f"In {payment.currency.upper()}, up to {places} decimal places; partial allowed."
        )
        self.fields["currency"].initial = payment.currency.upper()

    def clean_amount(self):
        try:
            return parse_money(self.cleaned_data["amount"], self.payment.currency)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").strip().lower() or None
