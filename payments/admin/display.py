"""Small presentation helpers shared by the payments admin pages."""

from django.utils.html import format_html

from payments.models import Payment
from payments.money import format_money

# Unfold label colours per business status.
PAYMENT_STATUS_COLOURS = {
    Payment.Status.SUCCEEDED: "success",
    Payment.Status.PENDING: "info",
    Payment.Status.PROCESSING: "info",
    Payment.Status.REQUIRES_ACTION: "warning",
    Payment.Status.PARTIALLY_REFUNDED: "warning",
    Payment.Status.REFUNDED: "primary",
    Payment.Status.FAILED: "danger",
    Payment.Status.CANCELED: "danger",
    Payment.Status.DISPUTED: "danger",
}


def money(amount, currency) -> str:
    return format_money(amount, currency)


def external_link(url: str, text: str):
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer" class="text-primary-600 '
        'underline">{} ↗</a>',
        url,
        text,
    )
