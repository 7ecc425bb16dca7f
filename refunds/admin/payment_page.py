"""What refunds adds to the payment page: GET links to the eligibility page and the request
form (the request itself is a POST there). Added by refunds/admin/__init__.py through
backoffice.admin_extensions.admin_extend, so payments never imports refunds.

"Request refund" is offered only to staff who may request refunds AND on a payment that can
still be refunded (refunds.permissions.request_refusal, the service's own question): never on
a failed, canceled, disputed or fully refunded payment. "Check refund eligibility" stays for
every reader; its page says why a payment cannot be refunded."""

from django.shortcuts import redirect
from django.urls import reverse
from unfold.decorators import action

from payments.models import Payment
from refunds.permissions import PERM_REQUEST, request_refusal
from refunds.selectors import payment_refundability


def payment_request_refusal(request, object_id):
    """refunds.permissions.request_refusal for the payment `object_id` and the request's user,
    read once per request (the action buttons ask more than once while a page renders)."""
    cache = request.__dict__.setdefault("_refund_request_refusals", {})
    key = str(object_id)
    if key not in cache:
        payment = Payment.objects.filter(pk=object_id).first() if key.isdigit() else None
        if payment is None:
            cache[key] = None  # no such payment: the page itself answers 404
        else:
            cache[key] = request_refusal(
                user=request.user,
                payment=payment,
                refundable=payment_refundability(payment=payment).refundable,
            )
    return cache[key]


class PaymentRefundLinksMixin:
    actions_detail = ["check_refund_eligibility", "request_refund"]

    def has_request_refund_permission(self, request, obj=None):
        return request.user.has_perm(PERM_REQUEST)

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        if payment_request_refusal(request, object_id) is None:
            return actions
        return [item for item in actions if item.method.__name__ != "request_refund"]

    @action(
        description="Check refund eligibility", icon="fact_check", url_path="refund-eligibility"
    )
    def check_refund_eligibility(self, request, object_id):
        return redirect(reverse("admin:refunds_payment_refund", args=[object_id]) + "?check=1")

    @action(
        description="Request refund",
        icon="currency_exchange",
        url_path="request-refund",
        permissions=["request_refund"],
    )
    def request_refund(self, request, object_id):
        # A payment that cannot be refunded lands on its eligibility page, which says why.
        return redirect(reverse("admin:refunds_payment_refund", args=[object_id]))
