"""The step-up page, /admin/step-up/?next=...: a fresh second-factor code before a
money-moving action (backoffice/guard.py sends staff here when their last code is older than
STEP_UP_MINUTES).

A right code (TOTP, or a backup code, which is then used up) marks the session verified now
(second_factor.mark_verified) and goes back to `next`, a page of this site the user GETs:
the confirmation page of the action, where they confirm again. A POST is never replayed from
here (it would act on a page the user no longer sees). Codes right and wrong are audited;
django-otp slows a device down after wrong codes (match_code refuses while it waits)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp import user_has_device
from unfold.widgets import UnfoldAdminTextInputWidget

from .audit import audit_record, client_info_from_request
from .models import AdminAction
from .second_factor import mark_verified, match_code

ERR_WRONG_CODE = (
    "That code is not valid (or your authenticator is paused after wrong codes: wait a "
    "moment). Nothing was done."
)
MSG_NO_DEVICE = (
    "You have no authenticator app enrolled, so there is no code to enter: enrol one first "
    "(your account's two-factor page), or ask a superuser."
)
MSG_VERIFIED = "Code accepted: confirm the action again."

AUDIT_STEP_UP = "second_factor_step_up"


class StepUpForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=UnfoldAdminTextInputWidget(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "placeholder": "123456",
            }
        ),
        help_text="The 6 digits your authenticator app shows now, or one of your backup codes.",
    )


def _next_url(request) -> str:
    """`next` when it is a page of this site, else the admin index (no open redirect)."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("admin:index")


@never_cache
def step_up_view(request):
    next_url = _next_url(request)
    has_device = user_has_device(request.user, confirmed=True)
    form = StepUpForm(request.POST or None) if has_device else None
    status = 200
    if request.method == "POST" and form is not None:
        device = match_code(request.user, request.POST.get("code", "")) if form.is_valid() else None
        client = client_info_from_request(request)
        if device is not None:
            mark_verified(request, device)
            audit_record(
                acting_user=request.user,
                action=AUDIT_STEP_UP,
                target=request.user,
                details={"device": device.persistent_id},
                client=client,
            )
            messages.success(request, MSG_VERIFIED)
            return HttpResponseRedirect(next_url)
        audit_record(
            acting_user=request.user,
            action=AUDIT_STEP_UP,
            target=request.user,
            result=AdminAction.Result.FAILURE,
            reason=ERR_WRONG_CODE,
            client=client,
        )
        if form.is_valid():
            form.add_error("code", ERR_WRONG_CODE)
        status = 400
    context = {
        **admin.site.each_context(request),
        "title": "Confirm it is you",
        "form": form,
        "next_url": next_url,
        "has_device": has_device,
        "no_device_message": MSG_NO_DEVICE,
    }
    return TemplateResponse(request, "backoffice/step_up.html", context, status=status)
