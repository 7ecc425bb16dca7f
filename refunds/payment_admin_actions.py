"""Detail actions that PaymentAdmin borrows (payments/admin/payment.py assigns them). They are
GET links, so they only lead to the refund pages; the request itself is made by a POST there.
Kept outside refunds/admin/ so that importing them does not import the refunds admin."""

from django.shortcuts import redirect
from django.urls import reverse
from unfold.decorators import action


@action(description="Check refund eligibility", icon="fact_check", url_path="refund-eligibility")
def check_refund_eligibility(model_admin, request, object_id):
    return redirect(reverse("admin:refunds_payment_refund", args=[object_id]) + "?check=1")


@action(description="Request refund", icon="currency_exchange", url_path="request-refund")
def request_refund(model_admin, request, object_id):
    return redirect(reverse("admin:refunds_payment_refund", args=[object_id]))
