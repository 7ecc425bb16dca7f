"""The coupon screens beyond the list (payments/admin/coupon.py mounts them):

- the coupon page (<pk>/change/): its statistics per currency (payments/coupon_stats.py
  defines each figure), terms, latest redemptions (flagged ones marked), its Stripe objects
  as mirrored, and the steps it allows now;
- the form to create (add/) or change (<pk>/edit/) a coupon, with a row per currency; it
  says that changing what Stripe holds makes a new Stripe coupon;
- POST <pk>/deactivate/ (a reason, audited) and POST <pk>/push/ ("Send to Stripe again");
  GET answers 405, staff without the permission get 403;
- GET <pk>/redemptions.csv: every redemption of the coupon, streamed (audited: it lists
  customers).
The rules live in payments.coupon_rules and payments.services.coupons.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View
from unfold.widgets import UnfoldAdminTextareaWidget

from backoffice.audit import audit_record, client_info_from_request
from backoffice.formats import format_datetime
from backoffice.spreadsheet import neutralise
from payments import coupon_rules
from payments.coupon_stats import (
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_INACTIVE,
    STATUS_LABELS,
    STATUS_SCHEDULED,
    STATUS_USED_UP,
    coupon_redemptions,
    coupon_statistics,
    coupon_status,
)
from payments.models import Coupon, CouponRedemption, Payment, PromotionCode
from payments.money import format_money, to_decimal_stored
from payments.services.coupons import (
    MSG_CREATED,
    MSG_DEACTIVATED,
    CouponError,
    CouponPermissionError,
    coupon_change,
    coupon_create,
    coupon_deactivate,
    coupon_push_again,
)

from .coupon_forms import (
    IMMUTABLE_NOTE,
    CouponCurrencyForm,
    CouponCurrencyFormSet,
    CouponForm,
    terms_from,
)

PERM_VIEW = "payments.view_coupon"
PERM_EXPORT = "payments.export_couponredemption"
AUDIT_EXPORT = "coupon_redemptions_export"
LATEST_REDEMPTIONS = 25

STATUS_COLOURS = {
    STATUS_ACTIVE: "success",
    STATUS_SCHEDULED: "info",
    STATUS_EXPIRED: "",
    STATUS_USED_UP: "warning",
    STATUS_INACTIVE: "",
}
STRIPE_COLOURS = {
    Coupon.StripeState.SYNCED: "success",
    Coupon.StripeState.PENDING: "warning",
    Coupon.StripeState.FAILED: "danger",
}

CSV_HEADER = [
    "redeemed_at",
    "code",
    "payment_intent",
    "payment_status",
    "customer_email",
    "customer_id",
    "currency",
    "order_amount",
    "discount_amount",
    "amount_paid",
    "amount_refunded",
    "discount_source",
    "terms_version",
    "flags",
]


def status_badge(coupon: Coupon, *, used: int) -> tuple[str, str]:
    """(label, Unfold colour) of where the coupon stands for a new order now."""
    status = coupon_status(coupon, used=used)
    return STATUS_LABELS[status], STATUS_COLOURS[status]


def percent_text(bps: int | None) -> str:
    if bps is None:
        return ""
    text = f"{bps / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text} %"


def terms_lines(coupon: Coupon, rows: Iterable) -> tuple[str, str]:
    """(what it takes off, the caps and minimums) in words, per currency."""
    rows = sorted(rows, key=lambda r: r.currency)
    if coupon.kind == Coupon.Kind.PERCENTAGE:
        head = f"{percent_text(coupon.percent_off_bps)} off"
    else:
        head = " · ".join(format_money(r.amount_off, r.currency) for r in rows if r.amount_off)
        head = f"{head} off" if head else "no amount"
    notes = []
    for row in rows:
        parts = []
        if row.max_discount:
            parts.append(f"max {format_money(row.max_discount, row.currency)}")
        if row.minimum_amount:
            parts.append(f"min {format_money(row.minimum_amount, row.currency)}")
        if parts:
            notes.append(", ".join(parts))
    return head, " · ".join(notes)


def window_text(coupon: Coupon) -> str:
    start = format_datetime(coupon.valid_from) if coupon.valid_from else ""
    end = format_datetime(coupon.valid_until) if coupon.valid_until else ""
    if start and end:
        return f"{start} to {end}"
    if start:
        return f"from {start}"
    if end:
        return f"until {end}"
    return "always"


class DeactivateForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        help_text="Why the coupon stops (audited). Its promotion code is switched off in Stripe.",
    )


# --- the form -----------------------------------------------------------------------------------


class CouponFormView(View):
    """GET/POST the coupon form: add/ (model_admin's add_view) or <pk>/edit/."""

    http_method_names = ["get", "post"]
    model_admin = None

    def _coupon(self, object_id) -> Coupon | None:
        if object_id is None:
            return None
        return get_object_or_404(Coupon, pk=object_id)

    def _allowed(self, request, coupon):
        refusal = (
            coupon_rules.create_refusal(user=request.user)
            if coupon is None
            else coupon_rules.edit_refusal(user=request.user, coupon=coupon)
        )
        if refusal is not None and refusal.permission:
            raise PermissionDenied
        return refusal

    def _render(self, request, coupon, form, formset, refusal=None, status=200):
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.opts,
            "title": "New coupon" if coupon is None else f"Change coupon {coupon.code}",
            "coupon": coupon,
            "form": form,
            "formset": formset,
            "refusal": refusal,
            "immutable_note": IMMUTABLE_NOTE,
            "back_url": reverse("admin:payments_coupon_changelist")
            if coupon is None
            else reverse("admin:payments_coupon_change", args=[coupon.pk]),
        }
        return TemplateResponse(request, "payments/admin/coupon_form.html", context, status=status)

    def get(self, request, object_id=None):
        coupon = self._coupon(object_id)
        refusal = self._allowed(request, coupon)
        if coupon is None:
            form = CouponForm()
            formset = CouponCurrencyFormSet(prefix="currencies")
        else:
            form = CouponForm(initial=CouponForm.initial_for(coupon), editing=True)
            formset = CouponCurrencyFormSet(
                prefix="currencies",
                initial=[CouponCurrencyForm.initial_for(r) for r in coupon.currencies.all()],
            )
        return self._render(request, coupon, form, formset, refusal)

    def post(self, request, object_id=None):
        coupon = self._coupon(object_id)
        refusal = self._allowed(request, coupon)
        form = CouponForm(request.POST, editing=coupon is not None)
        formset = CouponCurrencyFormSet(request.POST, prefix="currencies")
        terms = None if refusal else terms_from(form, formset)
        if terms is None:
            return self._render(request, coupon, form, formset, refusal, status=400)
        client = client_info_from_request(request)
        try:
            if coupon is None:
                coupon = coupon_create(
                    code=form.cleaned_data["code"],
                    terms=terms,
                    acting_user=request.user,
                    client=client,
                )
                message = MSG_CREATED.format(code=coupon.code)
            else:
                coupon, message = coupon_change(
                    coupon=coupon, terms=terms, acting_user=request.user, client=client
                )
        except CouponPermissionError as exc:
            raise PermissionDenied from exc
        except CouponError as exc:
            for field, text in exc.problems.items():
                form.add_error(field if field in form.fields else None, text)
            return self._render(request, coupon, form, formset, status=400)
        messages.success(request, message)
        if coupon.stripe_state == Coupon.StripeState.FAILED:
            messages.error(request, f"Stripe: {coupon.stripe_error}")
        return HttpResponseRedirect(reverse("admin:payments_coupon_change", args=[coupon.pk]))


# --- the page -------------------------------------------------------------------------------------


def _redemption_row(redemption: CouponRedemption) -> dict:
    payment = redemption.payment
    customer = redemption.customer
    return {
        "redemption": redemption,
        "when": format_datetime(redemption.redeemed_at),
        "payment_url": reverse("admin:payments_payment_change", args=[payment.pk]),
        "payment": payment.stripe_payment_intent_id,
        "customer": (customer.email or customer.stripe_id) if customer else "—",
        "order": format_money(redemption.order_amount, redemption.currency),
        "discount": format_money(redemption.discount_amount, redemption.currency),
        "paid": format_money(payment.amount, payment.currency),
        "source": redemption.get_discount_source_display(),
        "flags": [flag.get("message", "") for flag in redemption.flags],
    }


def coupon_page_context(request, coupon: Coupon) -> dict:
    """What the coupon page shows (a fixed number of queries whatever the coupon's usage)."""
    rows = list(coupon.currencies.all())
    stats = coupon_statistics(coupon=coupon)
    used = sum(s.redemptions for s in stats)
    head, notes = terms_lines(coupon, rows)
    status = status_badge(coupon, used=used)
    user = request.user
    deactivate_refusal = coupon_rules.deactivate_refusal(user=user, coupon=coupon)
    edit_refusal = coupon_rules.edit_refusal(user=user, coupon=coupon)
    latest = list(coupon_redemptions(coupon=coupon)[:LATEST_REDEMPTIONS])
    return {
        "coupon": coupon,
        "status": status,
        "stripe_colour": STRIPE_COLOURS.get(coupon.stripe_state, ""),
        "terms_head": head,
        "terms_notes": notes,
        "window": window_text(coupon),
        "kinds": ", ".join(
            str(dict(Payment.ProductKind.choices).get(k, k)) for k in coupon.product_kinds
        )
        or "every kind",
        "products": ", ".join(coupon.product_ids) or "every product",
        "limits": {
            "total": coupon.max_redemptions,
            "per_customer": coupon.max_redemptions_per_customer,
            "used": used,
        },
        "stats": [
            {
                "currency": s.currency.upper(),
                "redemptions": s.redemptions,
                "flagged": s.flagged,
                "customers": s.customers,
                "discount": format_money(s.discount, s.currency),
                "revenue": format_money(s.revenue, s.currency),
                "order_value": format_money(s.order_value, s.currency),
                "attempts": s.attempts,
                "captured": s.captured,
                "conversion": f"{s.conversion * 100:.1f} %" if s.conversion is not None else "—",
            }
            for s in stats
        ],
        "redemptions": [_redemption_row(r) for r in latest],
        "redemptions_total": used,
        "stripe_codes": list(
            PromotionCode.objects.filter(coupon=coupon).order_by("-created", "-id")[:10]
        ),
        "can_edit": user.has_perm(coupon_rules.PERM_CHANGE),
        "edit_refusal": edit_refusal if edit_refusal and not edit_refusal.permission else None,
        "can_deactivate": user.has_perm(coupon_rules.PERM_DEACTIVATE),
        "deactivate_refusal": deactivate_refusal
        if deactivate_refusal and not deactivate_refusal.permission
        else None,
        "deactivate_form": DeactivateForm(),
        "can_export": user.has_perm(PERM_EXPORT),
        "urls": {
            "edit": reverse("admin:payments_coupon_edit", args=[coupon.pk]),
            "deactivate": reverse("admin:payments_coupon_deactivate", args=[coupon.pk]),
            "push": reverse("admin:payments_coupon_push", args=[coupon.pk]),
            "export": reverse("admin:payments_coupon_redemptions_csv", args=[coupon.pk]),
            "list": reverse("admin:payments_coupon_changelist"),
        },
        "deactivated_by": coupon.deactivated_by.get_username() if coupon.deactivated_by else "",
        "deactivated_at": format_datetime(coupon.deactivated_at) if coupon.deactivated_at else "",
        "stripe_synced_at": format_datetime(coupon.stripe_synced_at)
        if coupon.stripe_synced_at
        else "",
    }


class CouponPageView(View):
    http_method_names = ["get"]
    model_admin = None

    def get(self, request, object_id):
        if not request.user.has_perm(PERM_VIEW):
            raise PermissionDenied
        if not str(object_id).isdigit():
            raise Http404
        coupon = get_object_or_404(
            Coupon.objects.select_related("deactivated_by", "created_by"), pk=object_id
        )
        context = {
            **self.model_admin.admin_site.each_context(request),
            "opts": self.model_admin.opts,
            "title": f"Coupon {coupon.code}",
            **coupon_page_context(request, coupon),
        }
        return TemplateResponse(request, "payments/admin/coupon_page.html", context)


# --- the steps (POST) -----------------------------------------------------------------------------


class CouponDeactivateView(View):
    http_method_names = ["post"]

    def post(self, request, pk):
        coupon = get_object_or_404(Coupon, pk=pk)
        if not request.user.has_perm(coupon_rules.PERM_DEACTIVATE):
            raise PermissionDenied
        form = DeactivateForm(request.POST)
        try:
            coupon = coupon_deactivate(
                coupon=coupon,
                reason=form.data.get("reason", ""),
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CouponPermissionError as exc:
            raise PermissionDenied from exc
        except CouponError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, MSG_DEACTIVATED.format(code=coupon.code))
            if coupon.stripe_state == Coupon.StripeState.FAILED:
                messages.error(request, f"Stripe: {coupon.stripe_error}")
        return HttpResponseRedirect(reverse("admin:payments_coupon_change", args=[pk]))


class CouponPushView(View):
    http_method_names = ["post"]

    def post(self, request, pk):
        coupon = get_object_or_404(Coupon, pk=pk)
        if not request.user.has_perm(coupon_rules.PERM_CHANGE):
            raise PermissionDenied
        result = coupon_push_again(
            coupon=coupon, acting_user=request.user, client=client_info_from_request(request)
        )
        (messages.success if result.pushed else messages.error)(request, result.message)
        return HttpResponseRedirect(reverse("admin:payments_coupon_change", args=[pk]))


# --- the export ---------------------------------------------------------------------------------


class _Echo:
    def write(self, value):
        return value


def redemption_csv_rows(redemptions) -> Iterator[list]:
    """The CSV's rows (header first); amounts in major units of their row's currency."""
    yield CSV_HEADER
    for r in redemptions.iterator(chunk_size=2000):
        payment, customer = r.payment, r.customer
        yield [
            neutralise(value)
            for value in (
                r.redeemed_at.isoformat(),
                r.code,
                payment.stripe_payment_intent_id,
                payment.status,
                customer.email if customer else "",
                customer.stripe_id if customer else "",
                r.currency.upper(),
                to_decimal_stored(r.order_amount, r.currency),
                to_decimal_stored(r.discount_amount, r.currency),
                to_decimal_stored(payment.amount, payment.currency),
                to_decimal_stored(payment.amount_refunded, payment.currency),
                r.discount_source,
                r.terms_version if r.terms_version is not None else "",
                "; ".join(flag.get("rule", "") for flag in r.flags),
            )
        ]


class CouponRedemptionsCsvView(View):
    """Every redemption of the coupon as CSV, streamed; audited (it names customers)."""

    http_method_names = ["get"]

    def get(self, request, pk):
        if not request.user.has_perm(PERM_EXPORT):
            raise PermissionDenied
        coupon = get_object_or_404(Coupon, pk=pk)
        redemptions = coupon_redemptions(coupon=coupon)
        with transaction.atomic():
            audit_record(
                acting_user=request.user,
                action=AUDIT_EXPORT,
                target=coupon,
                client=client_info_from_request(request),
            )
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in redemption_csv_rows(redemptions)),
            content_type="text/csv",
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = (
            f'attachment; filename="coupon-{coupon.code}-redemptions-{stamp}.csv"'
        )
        return response
