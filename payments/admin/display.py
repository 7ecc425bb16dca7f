"""Small presentation helpers shared by the payments admin pages."""

from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backoffice.admin_cells import two_line
from payments.models import Payment
from payments.money import format_money, is_known_currency

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
    "leading-6 px-2 bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400"
)


def blocked_badge(customer, *, leading=False):
    """Unfold's red label "Blocked" when `customer` is blocked, else "". Reads the row's own
    columns only, so a changelist that selects the customer adds no query per row. After a
    text by default; leading=True when it starts a line."""
    if customer is None or customer.blocked_at is None:
        return ""
    return format_html(
        '<span class="{} {}" title="{}" data-testid="customer-blocked">Blocked</span>',
        BLOCKED_BADGE_CLASSES,
        "mr-1" if leading else "ml-1",
        customer.block_reason,
    )


def erased_badge(customer):
    """A grey "Erased" label when the customer's personal data was erased (GDPR), else ""."""
    if customer is None or customer.erased_at is None:
        return ""
    return format_html(
        '<span class="{}" data-testid="customer-erased-badge">Erased</span>',
        "inline-block font-semibold rounded-default text-[11px] uppercase whitespace-nowrap h-6 "
        "leading-6 px-2 ml-1 bg-base-100 text-base-700 dark:bg-base-800 dark:text-base-300",
    )


def customer_label(customer):
    """The customer's email (or Stripe id) followed by the Blocked badge when blocked and the
    Erased one when their personal data was erased."""
    if customer is None:
        return "—"
    return format_html(
        "{}{}{}",
        customer.email or customer.stripe_id,
        blocked_badge(customer),
        erased_badge(customer),
    )


def customer_two_line(customer):
    """A changelist's customer cell: the e-mail (or Stripe id) over the name, each cut at the
    column's width; the Blocked badge starts the second line, so a long e-mail never hides it."""
    if customer is None:
        return "—"
    return two_line(
        customer.email or customer.stripe_id,
        format_html("{}{}", blocked_badge(customer, leading=True), customer.name),
        clip=True,
    )


WARN_UNKNOWN_CURRENCY = "unknown currency"
# The text of a status badge for a status Stripe sent that we have no label for.
UNKNOWN_STATUS_LABEL = "Unknown: {status}"


def warning_badge(text: str, *, title: str = "") -> SafeString:
    """Unfold's own label markup, in the warning colour."""
    return render_to_string(
        "unfold/helpers/label.html",
        {"text": text, "type": "warning", "label_title": title},
    )


def money(amount, currency) -> str:
    """A money cell. A currency we do not know (a bad row already stored) renders raw,
    '20300 usdx', with a warning badge, instead of failing the whole page; such rows are
    listed by `manage_payments --fix-inconsistencies`."""
    if amount is not None and not is_known_currency((currency or "").lower()):
        return format_html(
            "{} {}",
            format_money(amount, currency),
            warning_badge(WARN_UNKNOWN_CURRENCY, title="Not an ISO currency we know"),
        )
    return format_money(amount, currency)


def status_text(obj):
    """A mirrored status by its label; one with no label (a status Stripe added, stored as
    sent) raw in a warning badge, where Django's own display would show an empty dash."""
    field = obj._meta.get_field("status")
    if obj.status in dict(field.flatchoices):
        return obj.get_status_display()
    return warning_badge(UNKNOWN_STATUS_LABEL.format(status=obj.status))


def external_link(url: str, text: str):
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer" class="text-primary-600 '
        'underline">{} ↗</a>',
        url,
        text,
    )
