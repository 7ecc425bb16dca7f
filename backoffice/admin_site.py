"""The admin site (admin.site, through backoffice.apps.BackofficeAdminConfig) and the header's
environment label.

The site is Unfold's with our sign-in: the login form asks for the second factor
(backoffice/sign_in.py), and where TWO_FACTOR_REQUIRED is on only a session verified by a code
may use the admin. A staff member without a second factor yet reaches only the enrolment pages
(backoffice/two_factor_views.py), mounted here because they serve sessions the admin's own
pages refuse.

Bad input never answers 500 (see NOTES in backoffice/changelist.py's docstring): every admin
registered here gets a changelist whose date hierarchy turns a year past the calendar into
Django's "invalid lookup" redirect, and every model page taking an object id in its path
(change, history, delete, unfold's row and detail actions, our own views) answers an id the
primary key cannot hold with Django's "doesn't exist" redirect and message, before the view
runs a query with it.
"""

from functools import wraps

from django.apps import apps
from django.conf import settings
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import connection
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

    def register(self, model_or_iterable, admin_class=None, **options):
        from django.contrib.admin import ModelAdmin

        from .changelist import CheckedChangelistAdmin

        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, CheckedChangelistAdmin):
            # The libraries' admins (auth, axes, django-otp, post_office, django-q2) too.
            admin_class = type(
                admin_class.__name__,
                (CheckedChangelistAdmin, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
            )
        return super().register(model_or_iterable, admin_class, **options)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def checked(request, *args, **kwargs):
            if "object_id" in kwargs:
                # An `<int:object_id>` route (the coupon edit page) passes an int; Django's
                # unquote() takes only strings.
                object_id = str(kwargs["object_id"])
                model_admin = self._model_admin_of(request)
                if model_admin is not None and not _holds_pk(model_admin, object_id):
                    return model_admin._get_obj_does_not_exist_redirect(
                        request, model_admin.opts, object_id
                    )
            return inner(request, *args, **kwargs)

        return checked

    def _model_admin_of(self, request):
        """The ModelAdmin whose URLs (admin/<app_label>/<model_name>/...) served `request`."""
        match = getattr(request, "resolver_match", None)
        parts = (match.route if match else "").split("/")
        if len(parts) < 3:
            return None
        try:
            model = apps.get_model(parts[1], parts[2])
        except (LookupError, ValueError):
            return None
        return self._registry.get(model)

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


def _holds_pk(model_admin, object_id) -> bool:
    """Whether `object_id` (as quoted in an admin URL) is a value the model's primary key can
    hold: it parses, and an integer key is within its column's range."""
    pk = model_admin.opts.pk
    try:
        value = pk.to_python(unquote(object_id))
    except (ValidationError, ValueError, TypeError):
        return False
    if isinstance(value, str) and "\x00" in value:
        return False  # PostgreSQL refuses NUL in a string
    if isinstance(value, int):
        low, high = connection.ops.integer_field_range(pk.get_internal_type())
        return (low is None or value >= low) and (high is None or value <= high)
    return True
