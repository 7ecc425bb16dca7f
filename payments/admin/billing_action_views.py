"""The confirmation pages of the billing actions (payments.services.billing_actions): cancel a
subscription at period end, resume it, cancel it now; make a saved payment method the
default, detach one.

Each action has its own address under the object's admin page (`<pk>/cancel-at-period-end/`
...). GET shows what will happen, the service's refusal if it would be refused, and the form
(a reason where one is asked); POST makes the change through the service, which asks the
rules again under the row lock. Staff without the permission get 403 on both. After the
change the browser goes back to the object's page, or to the customer's page when the
action was started there (`?back=customer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.audit import client_info_from_request
from payments.models import BillingAction, Subscription
from payments.services import billing_actions as service

Kind = BillingAction.Kind
NO_PERMISSION = (service.ERR_NO_PERMISSION_SUBSCRIPTION, service.ERR_NO_PERMISSION_PAYMENT_METHOD)


@dataclass(frozen=True)
class ActionPage:
    kind: str
    slug: str
    button: str
    danger: bool
    # What the person confirming must know, in one or two sentences.
    consequence: str
    reason_help: str = "Why (kept in the audit trail)."


SUBSCRIPTION_PAGES = [
    ActionPage(
        Kind.CANCEL_AT_PERIOD_END,
        "cancel-at-period-end",
        "Cancel at period end",
        danger=False,
        consequence=(
            "The subscription keeps running until its current period ends, then ends: no "
            "more renewals. It can be resumed until then."
        ),
        reason_help="Why it ends (kept in the audit trail and sent to Stripe as the comment).",
    ),
    ActionPage(
        Kind.RESUME,
        "resume",
        "Resume",
        danger=False,
        consequence=(
            "The scheduled cancellation is withdrawn: the subscription renews at the end of "
            "its period and the customer is charged as before."
        ),
        reason_help="Optional note (kept in the audit trail).",
    ),
    ActionPage(
        Kind.CANCEL_NOW,
        "cancel-now",
        "Cancel now",
        danger=True,
        consequence=(
            "The subscription ends at once and cannot be resumed: Stripe will not invoice it "
            "again. Nothing is refunded; refund a payment from its own page if needed."
        ),
        reason_help="Why it ends now (kept in the audit trail and sent to Stripe).",
    ),
]
PAYMENT_METHOD_PAGES = [
    ActionPage(
        Kind.SET_DEFAULT,
        "make-default",
        "Make default",
        danger=False,
        consequence=(
            "Stripe charges this method for the customer's invoices and subscription "
            "renewals from now on (the customer's invoice settings)."
        ),
        reason_help="Optional note (kept in the audit trail).",
    ),
    ActionPage(
        Kind.DETACH,
        "detach",
        "Detach",
        danger=True,
        consequence=(
            "The method is removed from the customer at Stripe and can no longer be charged. "
            "If it is their default, renewals fail until the customer has another one."
        ),
    ),
]


class BillingActionForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
    )

    def __init__(self, *args, required: bool, help_text: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        self.fields["reason"].help_text = help_text


def action_url(target, page: ActionPage, *, back: str = "") -> str:
    name = f"admin:payments_{target._meta.model_name}_{page.slug.replace('-', '_')}"
    url = reverse(name, args=[target.pk])
    return f"{url}?back={back}" if back else url


def offered_actions(request, target) -> list[dict]:
    """The actions this user may start on `target` now: each with its page's address, or the
    service's reason for refusing it (shown disabled)."""
    pages = SUBSCRIPTION_PAGES if isinstance(target, Subscription) else PAYMENT_METHOD_PAGES
    offered = []
    for page in pages:
        refusal = _refusal(request.user, target, page.kind)
        if refusal in NO_PERMISSION:
            continue  # not this user's to do: not offered at all
        offered.append({"page": page, "url": action_url(target, page), "refusal": refusal})
    return offered


def _refusal(user, target, kind: str) -> str:
    if isinstance(target, Subscription):
        return service.subscription_action_refusal(user=user, subscription=target, kind=kind)
    return service.payment_method_action_refusal(user=user, method=target, kind=kind)


class BillingActionAdminMixin:
    """Mounts the confirmation pages of `billing_action_pages` on a model admin."""

    billing_action_pages: list[ActionPage] = []
    billing_action_permission = ""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        model_name = self.model._meta.model_name
        return [
            *[
                path(
                    f"<path:object_id>/{page.slug}/",
                    wrap(self.billing_action_view),
                    {"page": page},
                    name=f"payments_{model_name}_{page.slug.replace('-', '_')}",
                )
                for page in self.billing_action_pages
            ],
            *super().get_urls(),
        ]

    def billing_action_view(self, request, object_id, page: ActionPage):
        if not request.user.has_perm(self.billing_action_permission):
            raise PermissionDenied
        target = get_object_or_404(self.model.objects.select_related("customer"), pk=object_id)
        change_url = reverse(
            f"admin:payments_{self.model._meta.model_name}_change", args=[target.pk]
        )
        back = change_url
        if request.GET.get("back") == "customer" and target.customer_id:
            back = reverse("admin:payments_customer_change", args=[target.customer_id])
        form = BillingActionForm(
            request.POST if request.method == "POST" else None,
            required=page.kind in service.REASON_REQUIRED,
            help_text=page.reason_help,
        )
        if request.method == "POST" and form.is_valid():
            try:
                result = service.billing_action_run(
                    kind=page.kind,
                    target=target,
                    reason=form.cleaned_data["reason"],
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except service.BillingActionNotAllowed as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                level = messages.SUCCESS if result.succeeded else messages.WARNING
                self.message_user(request, result.message, level)
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{page.button}: {target}",
            "opts": self.model._meta,
            "original": target,
            "target": target,
            "page": page,
            "facts": self.billing_action_facts(target),
            "refusal": _refusal(request.user, target, page.kind),
            "form": form,
            "back_url": back,
        }
        return TemplateResponse(request, "payments/admin/billing_action_confirm.html", context)

    def billing_action_facts(self, target) -> list[tuple[str, str]]:
        """(label, value) rows the confirmation page shows about `target`."""
        return []
