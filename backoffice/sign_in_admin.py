"""Sign-in security in the admin: the user page's actions, the second-factor devices and the
lockout lists, all in Unfold's look.

- Users > a user > "Reset second factor" (superusers) and "Unlock sign-in" (UNLOCK_PERMISSION):
  a confirmation page whose form POSTs; the services (two_factor.second_factor_reset,
  lockout.sign_in_unlock) check the permission again and write the audit row.
- Sign-in lockouts (axes' access attempts): who failed, from where, how often; the bulk action
  "Unlock" (a POST) unlocks the selected rows' accounts and addresses.
- TOTP and backup-code devices, and axes' sign-in logs: superusers only, read-only (a device is
  removed by the audited reset, never deleted here).
"""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from .audit import client_info_from_request
from .lockout import UnlockNotAllowed, can_unlock, sign_in_unlock
from .two_factor import TwoFactorError, second_factor_reset

MSG_RESET = (
    "{user}'s second factor was reset ({count} device(s) removed): they set it up again at "
    "their next sign-in."
)
MSG_UNLOCKED = "Sign-in unlocked for {what} ({count} attempt record(s) removed)."
CONFIRM_TEMPLATE = "backoffice/two_factor/user_action_confirm.html"


class UserSignInActionsMixin:
    """For UserAdmin: the second-factor column and the two detail actions."""

    actions_detail = ["reset_second_factor", "unlock_sign_in"]

    def get_queryset(self, request):
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(has_authenticator=Exists(confirmed))

    def get_list_display(self, request):
        return [*super().get_list_display(request), "two_factor"]

    @display(description="Second factor", label={"yes": "success", "no": "warning"})
    def two_factor(self, obj):
        return ("yes", "Set up") if obj.has_authenticator else ("no", "Not set up")

    def has_reset_second_factor_permission(self, request, obj=None):
        # Never one's own (two_factor.ERR_RESET_OWN). Unfold passes the object id (a string)
        # for a detail action, the view passes the user.
        if obj is not None and str(getattr(obj, "pk", obj)) == str(request.user.pk):
            return False
        return request.user.is_active and request.user.is_superuser

    def has_unlock_sign_in_permission(self, request, obj=None):
        return can_unlock(request.user)

    def _confirm_page(self, request, user, *, title, text, button, with_reason=False):
        return TemplateResponse(
            request,
            CONFIRM_TEMPLATE,
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.model._meta,
                "original": user,
                "target_user": user,
                "text": text,
                "button": button,
                "with_reason": with_reason,
                "change_url": reverse("admin:auth_user_change", args=[user.pk]),
            },
        )

    @action(
        description="Reset second factor",
        icon="phonelink_erase",
        url_path="reset-second-factor",
        permissions=["reset_second_factor"],
    )
    def reset_second_factor(self, request, object_id):
        """GET: the confirmation page; POST (its form): remove the user's devices, audited."""
        user = get_object_or_404(get_user_model(), pk=object_id)
        if not self.has_reset_second_factor_permission(request, user):
            raise PermissionDenied
        if request.method == "POST":
            try:
                removed = second_factor_reset(
                    user=user,
                    acting_user=request.user,
                    reason=request.POST.get("reason", "").strip(),
                    client=client_info_from_request(request),
                )
            except TwoFactorError as exc:
                raise PermissionDenied(str(exc)) from exc
            self.message_user(request, MSG_RESET.format(user=user, count=removed), messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        return self._confirm_page(
            request,
            user,
            title=f"Reset {user}'s second factor",
            text=(
                "Their authenticator app and backup codes stop working. At their next sign-in "
                "they set up a new one with their password alone, so first make sure the "
                "request really comes from them (a lost or replaced phone)."
            ),
            button="Reset second factor",
            with_reason=True,
        )

    @action(
        description="Unlock sign-in",
        icon="lock_open",
        url_path="unlock-sign-in",
        permissions=["unlock_sign_in"],
    )
    def unlock_sign_in(self, request, object_id):
        """GET: the confirmation page; POST: clear the account's failed sign-ins, audited."""
        user = get_object_or_404(get_user_model(), pk=object_id)
        if not self.has_unlock_sign_in_permission(request, user):
            raise PermissionDenied
        if request.method == "POST":
            try:
                removed = sign_in_unlock(
                    acting_user=request.user,
                    username=user.get_username(),
                    client=client_info_from_request(request),
                )
            except UnlockNotAllowed as exc:
                raise PermissionDenied(str(exc)) from exc
            self.message_user(
                request,
                MSG_UNLOCKED.format(what=user.get_username(), count=removed),
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        failures = sum(
            AccessAttempt.objects.filter(username=user.get_username()).values_list(
                "failures_since_start", flat=True
            )
        )
        return self._confirm_page(
            request,
            user,
            title=f"Unlock sign-in for {user}",
            text=(
                f"{failures} failed sign-in(s) are on record for this account (the limit is "
                f"{settings.AXES_FAILURE_LIMIT}). Unlocking clears them, so they (or whoever "
                "was guessing) may try again at once. An address that is locked stays locked: "
                "unlock it under Sign-in lockouts."
            ),
            button="Unlock sign-in",
        )


# --- Lockouts (django-axes) ---------------------------------------------------------------------


class UnfoldAccessAttemptAdmin(AccessAttemptAdmin, ModelAdmin):
    """Failed sign-ins per account, address and browser; "Unlock" clears them."""

    list_display = [
        "attempt_time",
        "username",
        "ip_address",
        "failures_since_start",
        "locked",
        "user_agent",
    ]
    actions = ["unlock"]

    @display(description="Locked", label={"yes": "danger", "no": "info"})
    def locked(self, obj):
        if obj.failures_since_start >= settings.AXES_FAILURE_LIMIT:
            return "yes", "Locked"
        return "no", f"{settings.AXES_FAILURE_LIMIT - obj.failures_since_start} tries left"

    def has_unlock_permission(self, request, obj=None):
        return can_unlock(request.user)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a deletion would be an unaudited unlock: use "Unlock"

    @action(description="Unlock the selected accounts and addresses", permissions=["unlock"])
    def unlock(self, request, queryset):
        client = client_info_from_request(request)
        pairs = sorted(set(queryset.values_list("username", "ip_address")), key=str)
        removed = 0
        try:
            for username, ip_address in pairs:
                removed += sign_in_unlock(
                    acting_user=request.user,
                    username=username or None,
                    ip_address=ip_address or None,
                    client=client,
                )
        except UnlockNotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        what = ", ".join(" / ".join(filter(None, pair)) for pair in pairs)
        self.message_user(request, MSG_UNLOCKED.format(what=what, count=removed), messages.SUCCESS)


class UnfoldAccessLogAdmin(AccessLogAdmin, ModelAdmin):
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UnfoldAccessFailureLogAdmin(AccessFailureLogAdmin, ModelAdmin):
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Second-factor devices (django-otp) ---------------------------------------------------------


class SuperuserReadOnlyMixin:
    """Superusers see the devices; nobody adds, edits or deletes them here."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UnfoldTOTPDeviceAdmin(SuperuserReadOnlyMixin, TOTPDeviceAdmin, ModelAdmin):
    pass


class UnfoldStaticDeviceAdmin(SuperuserReadOnlyMixin, StaticDeviceAdmin, ModelAdmin):
    inlines = []  # the codes themselves are never shown again


def register(site) -> None:
    """Replace the plain admins django-otp and axes registered with these."""
    for model, model_admin in (
        (AccessAttempt, UnfoldAccessAttemptAdmin),
        (AccessLog, UnfoldAccessLogAdmin),
        (AccessFailureLog, UnfoldAccessFailureLogAdmin),
        (TOTPDevice, UnfoldTOTPDeviceAdmin),
        (StaticDevice, UnfoldStaticDeviceAdmin),
    ):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)


register(admin.site)
