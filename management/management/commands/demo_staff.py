from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from management.demo_two_factor import demo_second_factor

DEMO_USERS = [
    # username, password, superuser, groups
    ("demo", "demo-finance-2026", True, []),
    # Finance staff can request and approve, but never their own request (four-eyes): log in
    # as both to walk a refund through; only "senior" may approve large ones.
    ("analyst", "demo-analyst-2026", False, ["Finance staff"]),
    ("senior", "demo-senior-2026", False, ["Finance staff", "Senior approvers"]),
    ("auditor", "demo-auditor-2026", False, ["Read-only auditors"]),
]


class Command(BaseCommand):
    help = (
        "Load staff groups and create the demo logins (idempotent). With TWO_FACTOR_REQUIRED "
        "on, also their authenticator keys and backup codes. Never use in production."
    )

    def handle(self, *args, **options):
        call_command("loaddata", "groups", verbosity=0)
        User = get_user_model()
        for username, password, superuser, groups in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = True
            user.is_superuser = superuser
            user.email = f"{username}@backoffice.example.com"
            user.set_password(password)
            user.save()
            user.groups.set(Group.objects.filter(name__in=groups))
            self.stdout.write(f"  login: {username} / {password}")
            if settings.TWO_FACTOR_REQUIRED:
                factor = demo_second_factor(user)
                self.stdout.write(f"    authenticator key: {factor.key}  (code now: {factor.code})")
                self.stdout.write(f"    backup codes: {' '.join(factor.backup_codes)}")
        if settings.TWO_FACTOR_REQUIRED:
            self.stdout.write(
                "  Two-factor sign-in is on: add a key to an authenticator app, or print the "
                "current code with `.venv/bin/python manage.py demo_totp <login>`."
            )
