"""The staff groups fixture loads on a migrated database and grants what each role needs."""

import pytest
from django.core.management import call_command

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_demo_staff_roles():
    call_command("demo_staff", verbosity=0)
    call_command("demo_staff", verbosity=0)  # idempotent
    from django.contrib.auth import get_user_model

    users = {u.username: u for u in get_user_model().objects.all()}
    analyst, senior, auditor = users["analyst"], users["senior"], users["auditor"]
    assert analyst.has_perm("refunds.approve_refundrequest")
    assert not analyst.has_perm("refunds.approve_large_refundrequest")
    assert senior.has_perm("refunds.approve_large_refundrequest")
    assert senior.has_perm("payments.retry_payment")
    assert auditor.has_perm("payments.view_payment")
    assert not auditor.has_perm("reports.export_payments")
    assert not auditor.has_perm("refunds.add_refundrequest")


def test_auditor_reads_payments_but_cannot_export(client):
    call_command("loaddata", "groups", verbosity=0)
    from django.contrib.auth.models import Group

    user = UserFactory(username="reader")
    user.groups.add(Group.objects.get(name="Read-only auditors"))
    client.force_login(user)
    assert client.get("/admin/payments/payment/").status_code == 200
    assert client.get("/admin/refunds/refundrequest/").status_code == 200
