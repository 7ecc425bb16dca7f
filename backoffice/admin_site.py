"""The admin site (admin.site, through backoffice.apps.BackofficeAdminConfig) and the header's
environment label.

The site is Unfold's with our sign-in: the login form asks for the second factor
(backoffice/sign_in.py), and where TWO_FACTOR_REQUIRED is on only a session verified by a code
may use the admin. A staff member without a second factor yet reaches only the enrolment pages
(backoffice/two_factor_views.py), mounted here because they serve sessions the admin's own
pages refuse.
"""

from django.conf import settings
from django.shortcuts import redirect
from django.urls import path
from unfold.sites import UnfoldAdminSite


def environment_callback(request):
    """The coloured label in Unfold's header: staff must always see whether money is real."""
    if settings.STRIPE_LIVEMODE:
        return ["Live", "danger"]
    if settings.DEBUG:
        return ["Demo / test mode", "warning"]
    return ["Test mode", "info"]


class BackofficeAdminSite(UnfoldAdminSite):
    login_template = "backoffice/login.html"

    def __init__(self, name="admin"):
        from .sign_in import StaffLoginForm

        # Before Unfold's __init__, which keeps a login_form that is already set.
        self.login_form = StaffLoginForm
        super().__init__(name)

    def has_permission(self, request):
        """Active staff; and where TWO_FACTOR_REQUIRED is on, a session whose second factor
        was verified at sign-in (django-otp's user.is_verified())."""
        if not super().has_permission(request):
            return False
        if not settings.TWO_FACTOR_REQUIRED:
            return True
        is_verified = getattr(request.user, "is_verified", None)
        return bool(is_verified and is_verified())

    def login(self, request, extra_context=None):
        """Django's admin login, plus: a session that needs enrolment goes to the enrolment
        page, and a sign-in with a code records when it was verified (mark_verified: the
        step-up guard reads it)."""
        from .second_factor import mark_verified
        from .sign_in import needs_enrolment

        if request.method == "GET" and needs_enrolment(request.user):
            return redirect("admin:two_factor_enrol")
        response = super().login(request, extra_context)
        if request.method == "POST" and response.status_code == 302:
            device = getattr(request.user, "otp_device", None)
            if device is not None:
                mark_verified(request, device)
            elif needs_enrolment(request.user):
                return redirect("admin:two_factor_enrol")
        return response

    def get_urls(self):
        from . import two_factor_views as views

        urls = [
            path("two-factor/", views.overview, {"site": self}, name="two_factor"),
            path("two-factor/enrol/", views.enrol, {"site": self}, name="two_factor_enrol"),
            path(
                "two-factor/enrol/qr-code/",
                views.enrol_qr_code,
                {"site": self},
                name="two_factor_enrol_qr_code",
            ),
            path(
                "two-factor/backup-codes/",
                views.backup_codes,
                {"site": self},
                name="two_factor_backup_codes",
            ),
        ]
        return urls + super().get_urls()
