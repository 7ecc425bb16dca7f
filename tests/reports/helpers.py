"""Helpers shared by the reports tests."""

from io import BytesIO
from itertools import count

from django.contrib.auth.models import Permission
from pypdf import PdfReader

from payments.models import EarningEntry
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


_references = count(1)


def earning_entry(instructor, amount, kind=EarningEntry.Kind.EARNING, *, when, **fields):
    """An EarningEntry as the earnings ledger writes them, for the statement and export tests
    (the writers themselves are tested in tests/payments). `available` defaults to `when`
    (available at once), `currency` to usd, `reference` to a fresh unique one."""
    available = fields.pop("available", None) or when
    return EarningEntry.objects.create(
        instructor=instructor,
        currency=fields.pop("currency", "usd"),
        amount=amount,
        kind=kind,
        reference=fields.pop("reference", None) or f"test:{next(_references)}",
        occurred_at=when,
        available_at=available,
        **fields,
    )
