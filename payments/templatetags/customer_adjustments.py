"""`{% customer_adjustments_panel customer %}`: a customer's manual adjustments on the pages
that show the customer (the customer page, the hours balance page). Presentation only: the
history of the customer's adjustments, their Stripe credit balance, and the request form for
staff with payments.add_customeradjustment (posting to the adjustments' add view).

Three queries whatever the customer's history: the adjustments (newest first, at most
PANEL_ROWS, with their people), nothing per row."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.urls import reverse

from payments import customer_adjustment_rules as rules
from payments.models import Customer, CustomerAdjustment

register = template.Library()

# The panel shows the latest ones; the queue, filtered to the customer, has them all.
PANEL_ROWS = 20


@register.simple_tag(takes_context=True)
def customer_adjustments_panel(context, customer: Customer, units: str = ""):
    # Imported here: Django loads tag libraries while the admin modules are still being
    # registered, and these import the admin package.
    from payments.admin.customer_adjustment_forms import CustomerAdjustmentRequestForm
    from payments.admin.customer_adjustment_views import (
        change_url,
        signed_change,
        stripe_balance_text,
    )

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm(rules.PERM_VIEW):
        return ""
    adjustments = CustomerAdjustment.objects.filter(customer=customer).select_related(
        "requested_by", "decided_by"
    )
    if units:
        adjustments = adjustments.filter(unit=units)
    rows = list(adjustments.order_by("-created_at", "-id")[:PANEL_ROWS])
    form = None
    if user.has_perm(rules.PERM_REQUEST):
        form = CustomerAdjustmentRequestForm(
            balance_currency=customer.stripe_balance_currency,
            initial={"unit": units} if units else None,
        )
    return render_to_string(
        "payments/admin/customer_adjustments_panel.html",
        {
            "customer": customer,
            "rows": [(row, signed_change(row), change_url(row.pk)) for row in rows],
            "stripe_balance": stripe_balance_text(customer),
            "form": form,
            "list_url": (
                f"{reverse('admin:payments_customeradjustment_changelist')}?q={customer.stripe_id}"
            ),
        },
        request=request,
    )
