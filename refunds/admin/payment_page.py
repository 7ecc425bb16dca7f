"""What refunds adds to the payment page: GET links to the eligibility page and the request
form (the request itself is a POST there). Added by refunds/admin/__init__.py through
backoffice.admin_extensions.admin_extend, so payments never imports refunds."""

from django.shortcuts import redirect
from django.urls import reverse
from unfold.decorators import action


class PaymentRefundLinksMixin:
    actions_detail = ["check_refund_eligibility", "request_refund"]

    @action(
        description="Check refund eligibility", icon="fact_check", url_path="refund-eligibility"
    )
    def check_refund_eligibility(self, request, object_id):
        return redirect(reverse("admin:refunds_payment_refund", args=[object_id]) + "?check=1")

    @action(description="Request refund", icon="currency_exchange", url_path="request-refund")
    def request_refund(self, request, object_id):
        return redirect(reverse("admin:refunds_payment_refund", args=[object_id]))
