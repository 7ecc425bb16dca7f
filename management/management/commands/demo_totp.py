from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from management.demo_two_factor import current_code
from management.management.commands.demo_staff import DEMO_USERS

ERR_NOT_DEMO = "{username!r} is not a demo login ({logins})."
ERR_NO_DEVICE = "{username!r} has no authenticator: run the demo with TWO_FACTOR_REQUIRED=1."


class Command(BaseCommand):
    help = "Print a demo login's current two-factor code (the demo logins only)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        logins = [name for name, *_ in DEMO_USERS]
        if username not in logins:
            raise CommandError(ERR_NOT_DEMO.format(username=username, logins=", ".join(logins)))
        device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
        if device is None:
            raise CommandError(ERR_NO_DEVICE.format(username=username))
        self.stdout.write(current_code(device))
