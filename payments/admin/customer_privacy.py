"""The customer page's "Personal data (GDPR)" section: export (JSON download) and erasure, each
behind its own permission and a confirmation page (GET shows it, POST acts; staff without the
permission get 403). The rules and the audit are in payments.services.customer_privacy.

Mounted on the customer admin as <pk>/personal-data/export/ and <pk>/personal-data/erase/."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from backoffice.audit import client_info_from_request
from payments.models import Customer
from payments.services.customer_privacy import (
    PERM_ERASE,
    PERM_EXPORT,
    CustomerPrivacyError,
    customer_data_export,
    customer_erase,
)

CONFIRM_TEMPLATE = "payments/admin/customer_privacy_confirm.html"


class CustomerEraseForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The request this answers (ticket number, date of the customer's e-mail).",
    )
    confirmation = forms.CharField(
        max_length=255, help_text="Type the customer's Stripe id to confirm."
    )


class CustomerPrivacyAdminMixin:
    """Export and erasure views on the customer admin, and the panel's context."""

    def has_export_data_permission(self, request, obj=None):
        return request.user.has_perm(PERM_EXPORT)

    def has_erase_permission(self, request, obj=None):
        return request.user.has_perm(PERM_ERASE)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/personal-data/export/",
                wrap(self.export_data_view),
                name="payments_customer_export_data",
            ),
            path(
                "<path:object_id>/personal-data/erase/",
                wrap(self.erase_view),
                name="payments_customer_erase",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_export_data": self.has_export_data_permission(request),
            "can_erase": self.has_erase_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _confirm_page(self, request, customer, *, kind, form=None):
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Export' if kind == 'export' else 'Erase'} personal data of {customer}",
            "opts": self.model._meta,
            "original": customer,
            "customer": customer,
            "kind": kind,
            "form": form,
            "change_url": reverse("admin:payments_customer_change", args=[customer.pk]),
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def export_data_view(self, request, object_id):
        if not self.has_export_data_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=object_id)
        if request.method != "POST":
            return self._confirm_page(request, customer, kind="export")
        try:
            document = customer_data_export(
                customer=customer,
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CustomerPrivacyError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:payments_customer_change", args=[customer.pk])
            )
        response = HttpResponse(
            json.dumps(document, indent=2, ensure_ascii=False),
            content_type="application/json; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="customer-{customer.stripe_id}-personal-data.json"'
        )
        response["Cache-Control"] = "no-store"
        return response

    def erase_view(self, request, object_id):
        if not self.has_erase_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=object_id)
        if request.method != "POST":
            return self._confirm_page(request, customer, kind="erase", form=CustomerEraseForm())
        form = CustomerEraseForm(request.POST)
        if not form.is_valid():
            return self._confirm_page(request, customer, kind="erase", form=form)
        try:
            result = customer_erase(
                customer=customer,
                reason=form.cleaned_data["reason"],
                confirmation=form.cleaned_data["confirmation"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CustomerPrivacyError as exc:
            form.add_error(None, str(exc))
            return self._confirm_page(request, customer, kind="erase", form=form)
        self.message_user(request, result.message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:payments_customer_change", args=[customer.pk]))
