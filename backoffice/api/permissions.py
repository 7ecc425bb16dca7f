"""Who may do what: the user's own Django permissions, the same ones the admin checks.

- Every endpoint needs an active staff member (the admin's own gate).
- A read (GET, HEAD, OPTIONS) needs `view_<model>` of the view's queryset model, or the
  view's `read_permissions` (a list of "app.codename") where it declares them.
- A write needs the permission the service checks, declared by the view: `write_permissions`
  is a list, or a dict {viewset action: list}. A write the view declares nothing for is
  refused (fail closed). The service checks again, under its lock; this check only answers
  early and keeps the schema honest.
- A read-only token never writes, whatever its user may do.

Named in settings.REST_FRAMEWORK, so this module imports no viewset (circular import)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from backoffice.models import ApiToken

ERR_NOT_STAFF = "The API is for active staff members."
ERR_SESSION_NOT_VERIFIED = "Finish signing in to the admin (second factor) first, or use a token."
ERR_NO_PERMISSION = "You do not have permission to perform this action."
ERR_READ_ONLY_TOKEN = "This token is read-only: it cannot make changes."


def is_read_only_token(request) -> bool:
    return isinstance(request.auth, ApiToken) and request.auth.read_only


class IsActiveStaff(BasePermission):
    """An authenticated, active staff member (anonymous: 401, other users: 403)."""

    message = ERR_NOT_STAFF

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        # A session must be as good as the admin's: where the admin requires a second factor
        # (TWO_FACTOR_REQUIRED), a session that passed only the password does not reach the
        # API either. A token was made by a signed-in staff member.
        is_verified = getattr(user, "is_verified", None)
        if (
            settings.TWO_FACTOR_REQUIRED
            and not isinstance(request.auth, ApiToken)
            and is_verified is not None
            and not is_verified()
        ):
            self.message = ERR_SESSION_NOT_VERIFIED
            return False
        return True


def view_model(view):
    queryset = getattr(view, "queryset", None)
    if queryset is None and hasattr(view, "get_queryset"):
        queryset = view.get_queryset()
    return None if queryset is None else queryset.model


def required_read_permissions(view) -> list[str]:
    declared = getattr(view, "read_permissions", None)
    if declared is not None:
        return list(declared)
    model = view_model(view)
    if model is None:
        # A read over no model must say what it needs; refuse rather than guess.
        return [_UNDECLARED]
    return [f"{model._meta.app_label}.view_{model._meta.model_name}"]


def required_write_permissions(view) -> list[str]:
    declared = getattr(view, "write_permissions", None)
    if isinstance(declared, dict):
        declared = declared.get(getattr(view, "action", None))
    if not declared:
        return [_UNDECLARED]
    return list(declared)


# A permission no user has (not even a superuser: has_perms() is True for superusers, so the
# undeclared case is refused separately below).
_UNDECLARED = "api.undeclared"


class StaffModelPermissions(IsActiveStaff):
    """The default permission of every endpoint (see the module docstring)."""

    def has_permission(self, request, view):
        self.message = ERR_NOT_STAFF
        if not super().has_permission(request, view):
            return False
        if request.method in SAFE_METHODS:
            perms = required_read_permissions(view)
        elif not hasattr(view, request.method.lower()):
            return True  # no such handler: DRF answers 405, which is the truth
        else:
            if is_read_only_token(request):
                raise exceptions.PermissionDenied(ERR_READ_ONLY_TOKEN, code="read_only_token")
            perms = required_write_permissions(view)
        if _UNDECLARED in perms:
            self.message = ERR_NO_PERMISSION
            return False
        self.message = ERR_NO_PERMISSION
        return request.user.has_perms(perms)
