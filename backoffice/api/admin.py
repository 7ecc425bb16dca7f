"""API tokens in the admin (Back-office > API tokens).

Every staff member makes and revokes their own tokens; a superuser sees everyone's, may make
one for another staff member (a service login, e.g. "metabase") and revoke any. A token is
never edited (its rights are its user's): to change one, revoke it and make another.

- Add: name, read-only, expiry (default API_TOKEN_DEFAULT_DAYS); the next page shows the
  secret ONCE (not stored: only its SHA-256 is), with "no-store" so no cache keeps it.
- Step-up: a token is never stepped up itself (a program cannot type a code), so making one
  asks for a fresh second-factor code (backoffice/guard.py step_up_needed: everyone when
  TWO_FACTOR_REQUIRED, else users with a device): the add page sends a stale session to the
  step-up page first, and save_model asks again. Else a session left open or stolen would
  mint itself a credential that never meets the step-up.
- Revoke: a detail action opening a confirmation page whose form POSTs; audited.
Both go through backoffice/api/tokens.py, which writes the audit rows."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from backoffice.audit import client_info_from_request
from backoffice.changelist import ChangelistMixin
from backoffice.formats import format_datetime
from backoffice.guard import step_up_needed, step_up_redirect
from backoffice.models import ApiToken

from .tokens import ERR_EXPIRY_IN_PAST, ApiTokenError, api_token_create, api_token_revoke

ERR_STEP_UP_FOR_TOKEN = (
    "Making an API token needs a fresh second-factor code: enter one on the step-up page "
    "first. No token was made."
)
MSG_REVOKED = "Token {token} revoked: it no longer authenticates."
ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


def token_state(token: ApiToken, now=None) -> str:
    now = now or timezone.now()
    if token.revoked_at is not None:
        return REVOKED
    if token.expires_at <= now:
        return EXPIRED
    return ACTIVE


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "read_only", "expires_at"]

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(ERR_EXPIRY_IN_PAST)
        return value


class ApiTokenAdmin(ChangelistMixin, ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "user", "prefix", "state_badge", "read_only", "expires", "last_used"]
    list_filter = ["read_only"]
    list_select_related = ["user"]
    actions_detail = ["revoke_confirm"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "read_only",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "created_by",
        "created_at",
    ]

    # --- who sees what ------------------------------------------------------------------

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        if not (request.user.is_active and request.user.is_staff):
            return False
        return obj is None or request.user.is_superuser or obj.user_id == request.user.pk

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request, obj=None):
        return False  # a token is never edited: revoke it and make another

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay, for the audit trail's references

    def has_revoke_permission(self, request, obj=None):
        """Unfold asks with the page's object id (the button's visibility): the owner or a
        superuser; the revoke view asks again with the token itself."""
        if not (request.user.is_active and request.user.is_staff):
            return False
        if obj is not None and not isinstance(obj, ApiToken):
            obj = self.get_queryset(request).filter(pk=obj if str(obj).isdigit() else None).first()
            if obj is None:
                return False
            return obj.revoked_at is None
        return obj is None or request.user.is_superuser or obj.user_id == request.user.pk

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    # --- the add form --------------------------------------------------------------------

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.readonly_fields
        # Only a superuser makes a token for someone else (a token acts as its user).
        return (
            ["user", "name", "read_only", "expires_at"]
            if request.user.is_superuser
            else [
                "name",
                "read_only",
                "expires_at",
            ]
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True, is_staff=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request):
        return {
            "expires_at": timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS),
            "user": request.user.pk,
        }

    def add_view(self, request, form_url="", extra_context=None):
        # GET and POST alike: the code before the form, and no token without it.
        stale = step_up_redirect(request, next_url=reverse("admin:backoffice_apitoken_add"))
        if stale is not None:
            return stale
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if step_up_needed(request):
            raise PermissionDenied(ERR_STEP_UP_FOR_TOKEN)
        user = obj.user if request.user.is_superuser and obj.user_id else request.user
        try:
            issued = api_token_create(
                user=user,
                name=obj.name,
                expires_at=obj.expires_at,
                read_only=obj.read_only,
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except ApiTokenError as exc:
            raise PermissionDenied(str(exc)) from exc
        # The admin's log entry and the next page read the saved row.
        obj.__dict__.update(
            {k: v for k, v in issued.token.__dict__.items() if not k.startswith("_")}
        )
        obj._state.adding = False
        request._api_token_secret = issued.secret

    def response_add(self, request, obj, post_url_continue=None):
        response = TemplateResponse(
            request,
            "backoffice/api/token_secret.html",
            {
                **self.admin_site.each_context(request),
                "title": f"API token {obj.name}",
                "opts": self.model._meta,
                "token": obj,
                "secret": request._api_token_secret,
                "expires": format_datetime(obj.expires_at),
                "changelist_url": reverse("admin:backoffice_apitoken_changelist"),
            },
        )
        # The secret is on this page only: no browser or proxy cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    # --- the list ------------------------------------------------------------------------

    @display(
        description="State",
        label={ACTIVE: "success", EXPIRED: "warning", REVOKED: "danger"},
    )
    def state_badge(self, obj):
        state = token_state(obj)
        return state, state.capitalize()

    @display(description="Expires", ordering="expires_at")
    def expires(self, obj):
        return format_datetime(obj.expires_at)

    @display(description="Last used", ordering="last_used_at")
    def last_used(self, obj):
        return format_datetime(obj.last_used_at) if obj.last_used_at else "never"

    # --- revoke --------------------------------------------------------------------------

    @action(description="Revoke", icon="block", url_path="revoke", permissions=["revoke"])
    def revoke_confirm(self, request, object_id):
        """GET: the confirmation page; POST (its form): revoke."""
        token = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_revoke_permission(request, token):
            raise PermissionDenied
        change_url = reverse("admin:backoffice_apitoken_change", args=[token.pk])
        if request.method == "POST":
            try:
                api_token_revoke(
                    token=token,
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except ApiTokenError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, MSG_REVOKED.format(token=token), messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        return TemplateResponse(
            request,
            "backoffice/api/token_revoke.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Revoke API token {token}",
                "opts": self.model._meta,
                "original": token,
                "token": token,
                "state": token_state(token),
                "change_url": change_url,
            },
        )
