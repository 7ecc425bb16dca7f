from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

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
    help = "Load staff groups and create the demo logins (idempotent). Never use in production."

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
