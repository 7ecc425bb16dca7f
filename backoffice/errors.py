"""Error pages in the admin's look (Unfold's base template), never Django's plain or debug
pages: the project's handler403 / handler404 / handler500 (backoffice/urls.py), and the
favicon. A PermissionDenied raised in any admin view (a refused action, a page the user's
role may not open) ends here as the styled 403.

Staff see the page inside the admin (sidebar, header); anyone else sees the login page's
frame, so an error page never lists the admin's apps to a stranger. The 500 page must not fail
in its turn: it is rendered without touching the database when the full page cannot be built,
and as plain text if even that fails.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import cache_control

logger = logging.getLogger(__name__)

TEMPLATE = "backoffice/error.html"
FAVICON = Path(__file__).resolve().parent / "static" / "backoffice" / "favicon.ico"

# (title, what happened, what to do): shown as they are.
PAGES = {
    403: (
        "You may not do this",
        "Your role does not allow this page or action.",
        "If your work needs it, ask an administrator for the permission.",
    ),
    404: (
        "Page not found",
        "There is nothing at this address: the link may be old, or the record was removed.",
        "Go back, or start again from the dashboard.",
    ),
    500: (
        "Something went wrong on our side",
        "The page could not be built. Nothing you did caused it, and it has been logged.",
        "Try again in a moment; if it keeps happening, tell the on-call engineer.",
    ),
}
PLAIN_500 = "500: something went wrong on our side. It has been logged; try again in a moment."


def _stranger_context(request) -> dict:
    """The site's look (theme colours, our stylesheets) for the login page's frame, as an
    anonymous visitor gets it: no sidebar, no apps, no user read from the session (a
    middleware before the session may be the caller)."""
    stranger = copy.copy(request)
    stranger.user = AnonymousUser()
    return admin.site.each_context(stranger)


def _context(
    request,
    status: int,
    *,
    full: bool,
    page: tuple[str, str, str] | None = None,
    staff_frame: bool = True,
) -> dict:
    title, what, hint = page or PAGES[status]
    user = getattr(request, "user", None) if staff_frame else None
    # Staff who may use the admin (their second factor passed, where it is required).
    staff = full and user is not None and user.is_active and admin.site.has_permission(request)
    if staff:
        context = admin.site.each_context(request)
    else:
        context = _stranger_context(request) if full else {}
    unfold = getattr(settings, "UNFOLD", {})
    return {
        "site_title": unfold.get("SITE_TITLE", admin.site.site_title),
        "site_header": unfold.get("SITE_HEADER", admin.site.site_header),
        **context,
        "title": title,
        "status": status,
        "what": what,
        "hint": hint,
        # Staff get the admin's frame (sidebar); others the login page's.
        "base_template": (
            "admin/base_site.html" if staff else "unfold/layouts/unauthenticated.html"
        ),
        "is_nav_sidebar_enabled": staff,
        "back_url": reverse("admin:index"),
        "back_label": "Back to the dashboard",
    }


def _render(request, status: int, *, full=True, page=None, staff_frame=True, back=None):
    context = _context(request, status, full=full, page=page, staff_frame=staff_frame)
    if back is not None:
        context["back_url"], context["back_label"] = back
    body = render_to_string(TEMPLATE, context, request=request)
    return HttpResponse(body, status=status)


def render_error(
    request,
    status: int,
    *,
    title: str,
    what: str,
    hint: str,
    staff_frame: bool = True,
    back: tuple[str, str] | None = None,
) -> HttpResponse:
    """An error page with its own words (the allow-list's 403, the lockout's 429). Without
    `staff_frame` it never reads the user (a middleware before the session may call it) and
    shows the login page's frame. `back` is (url, label) of its button, or ("", "") for none
    (the dashboard by default)."""
    return _render(request, status, page=(title, what, hint), staff_frame=staff_frame, back=back)


def permission_denied(request, exception=None):
    return _render(request, 403)


def page_not_found(request, exception=None):
    return _render(request, 404)


def server_error(request):
    # The full page reads the database (sidebar badges, the user): when that is what broke,
    # fall back to the frame without it, and to plain text as the last resort.
    for full in (True, False):
        try:
            return _render(request, 500, full=full)
        except Exception:  # an error page must answer whatever broke
            logger.exception("the %s 500 page failed to render", "full" if full else "bare")
    return HttpResponse(PLAIN_500, status=500, content_type="text/plain; charset=utf-8")


@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico: browsers ask for it on every site whatever the page links."""
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
