"""Staff sign-in: password, then the second factor, on one form.

- A staff member with a confirmed device (an authenticator app, backup codes) gives a code
  with the password: 6 digits from the app, or one backup code (used up by signing in). This
  holds whatever TWO_FACTOR_REQUIRED says: an account that has a second factor always uses it.
- With TWO_FACTOR_REQUIRED on, a staff member with no device yet signs in with the password
  alone and reaches only the enrolment page (backoffice/two_factor_views.py); the admin's
  pages need a verified session (BackofficeAdminSite.has_permission).
- A wrong password counts towards the lockout (django-axes, through Django's
  user_login_failed signal); so does a wrong code after the right password, so guessing
  codes with a stolen password locks the account too. django-otp also slows each device down
  after wrong codes.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django_otp import user_has_device
from unfold.forms import AuthenticationForm
from unfold.widgets import BASE_INPUT_CLASSES

from .second_factor import match_code

ERR_CODE_REQUIRED = (
    "Enter the 6-digit code from your authenticator app (or one of your backup codes)."
)
ERR_CODE_INVALID = (
    "That code is not valid, or was used already. Enter the current code from your "
    "authenticator app, or an unused backup code."
)
CODE_HELP = (
    "6 digits from your authenticator app, or a backup code. Leave it empty if you have not "
    "set one up yet."
)


def needs_enrolment(user) -> bool:
    """An active staff member who must have a second factor (TWO_FACTOR_REQUIRED) and has no
    confirmed device yet: they may reach only the enrolment page."""
    return bool(
        settings.TWO_FACTOR_REQUIRED
        and user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and not user_has_device(user, confirmed=True)
    )


class StaffLoginForm(AuthenticationForm):
    """The admin's login form (Unfold's look) with the code field; see the module docstring.

    On success `get_user().otp_device` is the device that accepted the code (None when the
    account has none): BackofficeAdminSite.login records it with mark_verified()."""

    otp_token = forms.CharField(
        label="Code",
        required=False,
        max_length=32,
        help_text=CODE_HELP,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "text",
                "class": " ".join(BASE_INPUT_CLASSES),
            }
        ),
    )

    def clean(self):
        cleaned = super().clean()  # the password (and axes' lockout, and is_staff)
        user = self.get_user()
        if user is None:
            return cleaned
        user.otp_device = None
        if not user_has_device(user, confirmed=True):
            return cleaned  # no second factor yet: the site decides what this session may do
        code = (cleaned.get("otp_token") or "").strip().lower()
        if not code:
            # Counted too: "code required" says the password was right, so without the count
            # passwords could be tried this way with no lockout.
            self._count_failure(user)
            raise forms.ValidationError(ERR_CODE_REQUIRED, code="code_required")
        device = match_code(user, code)
        if device is None:
            self._count_failure(user)
            raise forms.ValidationError(ERR_CODE_INVALID, code="code_invalid")
        user.otp_device = device
        return cleaned

    def _count_failure(self, user) -> None:
        """A missing or wrong code counts like a wrong password (django-axes listens to this
        signal): the lockout covers the second step of the sign-in too."""
        user_login_failed.send(
            sender=__name__,
            credentials={"username": user.get_username()},
            request=self.request,
        )
