"""Helpers shared by the reports tests."""

from io import BytesIO

from django.contrib.auth.models import Permission
from pypdf import PdfReader

from tests.factories import UserFactory


def staff_with(*perms: str, username: str = "clerk"):
    """A staff user holding exactly these permissions ("app_label.codename")."""
    user = UserFactory(username=username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def pdf_text(content: bytes) -> str:
    reader = PdfReader(BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def pdf_pages(content: bytes) -> int:
    return len(PdfReader(BytesIO(content)).pages)
