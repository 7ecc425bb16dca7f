"""Block / unblock a customer from the customer page or a fraud alert's page: small POST forms
(a reason to block, a note to unblock) posting to <customer pk>/block/ and /unblock/ on the
customer admin. GET answers 405; staff without payments.block_customer get 403; the rules live
in payments.services.customer_block."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from backoffice.audit import client_info_from_request
from payments.models import Customer, FraudAlert
from payments.services.customer_block import (
    PERM_BLOCK,
    CustomerBlockError,
    customer_block,
    customer_unblock,
)


class CustomerBlockForm(forms.Form):
    reason = forms.CharField(max_length=2000)
    # Set when blocking from a fraud alert's page: the audit row names the alert and the
    # browser goes back there.
    fraud_alert = forms.IntegerField(required=False)


class CustomerUnblockForm(forms.Form):
    note = forms.CharField(max_length=2000)


class CustomerBlockAdminMixin:
    """Mounts <pk>/block/ and <pk>/unblock/ on the customer admin."""

    def has_block_permission(self, request, obj=None):
        return request.user.has_perm(PERM_BLOCK)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/block/",
                wrap(require_POST(self.block_view)),
                name="payments_customer_block",
            ),
            path(
                "<path:object_id>/unblock/",
                wrap(require_POST(self.unblock_view)),
                name="payments_customer_unblock",
            ),
            *super().get_urls(),
        ]

    def block_view(self, request, object_id):
        if not self.has_block_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=object_id)
        form = CustomerBlockForm(request.POST)
        alert = None
        if form.is_valid() and form.cleaned_data["fraud_alert"]:
            alert = FraudAlert.objects.filter(
                pk=form.cleaned_data["fraud_alert"], payment__customer=customer
            ).first()
        back = (
            reverse("admin:payments_fraudalert_change", args=[alert.pk])
            if alert is not None
            else reverse("admin:payments_customer_change", args=[customer.pk])
        )
        try:
            result = customer_block(
                customer=customer,
                reason=form.cleaned_data["reason"] if form.is_valid() else "",
                fraud_alert=alert,
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CustomerBlockError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            level = messages.SUCCESS if result.changed else messages.WARNING
            self.message_user(request, result.message, level)
        return HttpResponseRedirect(back)

    def unblock_view(self, request, object_id):
        if not self.has_block_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=object_id)
        form = CustomerUnblockForm(request.POST)
        try:
            result = customer_unblock(
                customer=customer,
                note=form.cleaned_data["note"] if form.is_valid() else "",
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CustomerBlockError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            level = messages.SUCCESS if result.changed else messages.WARNING
            self.message_user(request, result.message, level)
        return HttpResponseRedirect(reverse("admin:payments_customer_change", args=[customer.pk]))
