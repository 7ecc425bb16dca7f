"""A staff member's own second factor, in the admin's look (admin.site mounts these).

- /admin/two-factor/: what is set up (authenticator, backup codes left), with "set up a new
  phone" and "make new backup codes". In the user menu ("Two-factor sign-in").
- /admin/two-factor/enrol/: the QR code (an SVG from enrol/qr-code/) and the secret as text,
  confirmed by a first code; then the backup codes page.
- /admin/two-factor/backup-codes/: shows freshly made codes once (they wait in the session
  for exactly one page view); its POST makes new ones.

Who may open them: a signed-in active staff member whose session passed their second factor,
or who has none yet. A session that signed in with the password alone while its user has a
device never reaches them (it is sent to the login page to give a code): otherwise a stolen
password could replace the victim's authenticator. Pages with a secret are never cached.

Replacing a confirmed authenticator or making new backup codes also needs a fresh code
(second_factor.verified_within(STEP_UP_MINUTES)), via the step-up page as before a money
action: else a session verified hours ago (left open, or stolen) could give itself new codes
and never be asked for the phone again. A first enrolment has no code to give and needs none.
"""

from __future__ import annotations

from base64 import b32encode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import user_has_device
from django_otp.qr import write_qrcode_image

from .audit import client_info_from_request
from .guard import step_up_url
from .second_factor import mark_verified, verified_within
from .sign_in import needs_enrolment
from .two_factor import (
    TwoFactorError,
    backup_codes_left,
    backup_codes_regenerate,
    has_authenticator,
    totp_enrol_confirm,
    totp_pending_device,
)

ADMIN_FRAME = "admin/base_site.html"
LOGIN_FRAME = "unfold/layouts/unauthenticated.html"
FRESH_CODES_SESSION_KEY = "backoffice_2fa_fresh_backup_codes"
ERR_WRONG_FIRST_CODE = (
    "That code did not match. Check that the app shows this account, that the phone's clock "
    "is right, and enter the code it shows now."
)
MSG_ENROLLED = "Two-factor sign-in is set up. Keep your backup codes somewhere safe."
MSG_CODES_MADE = "New backup codes made: the old ones no longer work."


def may_manage_own_factor(request) -> bool:
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified()) or not user_has_device(user, confirmed=True)


def step_up_for_own_factor(request, *, next_url: str) -> HttpResponse | None:
    """The step-up page (back to `next_url`) when the user already has a confirmed device and
    their last code is older than STEP_UP_MINUTES; None when they may go on."""
    if not user_has_device(request.user, confirmed=True):
        return None
    if verified_within(request, settings.STEP_UP_MINUTES):
        return None
    return redirect(step_up_url(next_url))


def _guarded(view):
    """Signed-in staff allowed by may_manage_own_factor, else the login page (and back)."""

    @never_cache
    @csrf_protect
    def wrapper(request, *args, site, **kwargs):
        if not may_manage_own_factor(request):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return view(request, *args, site=site, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _render(request, site, template: str, context: dict) -> TemplateResponse:
    in_admin = site.has_permission(request)
    response = TemplateResponse(
        request,
        template,
        {
            **site.each_context(request),
            # The admin's frame once the admin is open to this session; before that (a first
            # enrolment) the login page's, which lists nothing of the admin.
            "base_template": ADMIN_FRAME if in_admin else LOGIN_FRAME,
            "in_admin": in_admin,
            **context,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@_guarded
def overview(request, *, site):
    if needs_enrolment(request.user):
        return redirect("admin:two_factor_enrol")
    return _render(
        request,
        site,
        "backoffice/two_factor/overview.html",
        {
            "title": "Two-factor sign-in",
            "has_authenticator": has_authenticator(request.user),
            "backup_codes_left": backup_codes_left(request.user),
        },
    )


@_guarded
def enrol(request, *, site):
    """GET: the QR code and secret of the pending authenticator; POST: its first code."""
    user = request.user
    stale = step_up_for_own_factor(request, next_url=reverse("admin:two_factor_enrol"))
    if stale is not None:
        return stale
    device = totp_pending_device(user)
    error = ""
    if request.method == "POST":
        try:
            confirmed = totp_enrol_confirm(
                user=user,
                device=device,
                code=request.POST.get("code", ""),
                client=client_info_from_request(request),
            )
        except TwoFactorError as exc:
            error = str(exc)
        else:
            if confirmed:
                # The code just entered is a second factor: this session is verified now.
                mark_verified(request, device)
                if not backup_codes_left(user):
                    request.session[FRESH_CODES_SESSION_KEY] = backup_codes_regenerate(
                        user=user, acting_user=user, client=client_info_from_request(request)
                    )
                messages.success(request, MSG_ENROLLED)
                return redirect("admin:two_factor_backup_codes")
            error = ERR_WRONG_FIRST_CODE
    secret = b32encode(device.bin_key).decode()
    return _render(
        request,
        site,
        "backoffice/two_factor/enrol.html",
        {
            "title": "Set up two-factor sign-in",
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "replacing": has_authenticator(user),
            "error": error,
        },
    )


@_guarded
def enrol_qr_code(request, *, site):
    """The pending authenticator's QR code (SVG), for the enrolment page's <img>: a URL of
    our own, so a strict Content-Security-Policy (img-src 'self') shows it."""
    stale = step_up_for_own_factor(request, next_url=reverse("admin:two_factor_enrol"))
    if stale is not None:
        return stale
    device = totp_pending_device(request.user)
    response = HttpResponse(content_type="image/svg+xml")
    write_qrcode_image(device.config_url, response)
    return response


@_guarded
def backup_codes(request, *, site):
    """GET: the codes just made (once), or how many are left; POST: make new ones."""
    user = request.user
    if needs_enrolment(user):
        return redirect("admin:two_factor_enrol")
    if request.method == "POST":
        stale = step_up_for_own_factor(request, next_url=reverse("admin:two_factor_backup_codes"))
        if stale is not None:
            return stale
        request.session[FRESH_CODES_SESSION_KEY] = backup_codes_regenerate(
            user=user, acting_user=user, client=client_info_from_request(request)
        )
        messages.success(request, MSG_CODES_MADE)
        return redirect("admin:two_factor_backup_codes")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    codes = request.session.pop(FRESH_CODES_SESSION_KEY, None)
    return _render(
        request,
        site,
        "backoffice/two_factor/backup_codes.html",
        {
            "title": "Backup codes",
            "codes": codes,
            "backup_codes_left": backup_codes_left(user),
        },
    )
