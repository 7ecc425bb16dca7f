"""The sidebar shows each area to the staff who may view it, with live badges."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from refunds.admin.queue import QUEUE_PRESETS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LINKS = {
    "payments": reverse("admin:payments_payment_changelist"),
    # Opens on the "All pending" view.
    "refund queue": reverse("admin:refunds_refundrequest_changelist") + "?status__exact=pending",
    "analytics": reverse("admin:reports_dailyrollup_changelist"),
    "audit trail": reverse("admin:backoffice_adminaction_changelist"),
    "scheduled jobs": reverse("admin:django_q_schedule_changelist"),
    "api tokens": reverse("admin:backoffice_apitoken_changelist"),
}


def sidebar_links(client) -> set[str]:
    body = client.get(reverse("admin:payments_payment_changelist")).content.decode()
    return {name for name, url in LINKS.items() if f'href="{url}"' in body}


def test_superuser_sees_every_area(admin_client):
    assert sidebar_links(admin_client) == set(LINKS)


def test_auditor_sees_only_what_the_role_may_view(client):
    call_command("loaddata", "groups", verbosity=0)
    auditor = UserFactory(username="auditor1")
    auditor.groups.add(Group.objects.get(name="Read-only auditors"))
    client.force_login(auditor)
    assert sidebar_links(client) == {
        "payments",
        "refund queue",
        "analytics",
        "audit trail",
        "api tokens",
    }


def test_refund_queue_link_opens_on_the_all_pending_preset(admin_client):
    """The sidebar's link and the queue's "All pending" tab are one view (the tab is active)."""
    query = dict(QUEUE_PRESETS)["All pending"]
    body = admin_client.get(LINKS["payments"]).content.decode()
    assert f'href="{reverse("admin:refunds_refundrequest_changelist")}?{query}"' in body
    response = admin_client.get(LINKS["refund queue"])
    active = [label for label, _, is_active in response.context["queue_presets"] if is_active]
    assert active == ["All pending"]
