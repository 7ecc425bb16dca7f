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


BLOCKED_BADGE_CLASSES = (
    "inline-block font-semibold rounded-default text-[11px] uppercase whitespace-nowrap h-6 "
    "leading-6 px-2 ml-1 bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400"
)


def blocked_badge(customer):
    """Unfold's red label "Blocked" when `customer` is blocked, else "". Reads the row's own
    columns only, so a changelist that selects the customer adds no query per row."""
    if customer is None or customer.blocked_at is None:
        return ""
    return format_html(
        '<span class="{}" title="{}" data-testid="customer-blocked">Blocked</span>',
        BLOCKED_BADGE_CLASSES,
        customer.block_reason,
    )


def customer_label(customer):
    """The customer's email (or Stripe id) followed by the Blocked badge when blocked."""
    if customer is None:
        return "—"
    return format_html("{}{}", customer.email or customer.stripe_id, blocked_badge(customer))


def money(amount, currency) -> str:
    return format_money(amount, currency)


def external_link(url: str, text: str):
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer" class="text-primary-600 '
        'underline">{} ↗</a>',
        url,
        text,
    )
