"""Webhook payloads show personal data (names, e-mails, addresses, phones, IPs) only to staff
with payments.view_webhook_payload (the senior approvers' group, not the auditors): the
admin's event page and the API's event detail mask it for everyone else."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backoffice.redaction import MASK
from payments.admin.webhook import PAYLOAD_MASKED_NOTE
from payments.models import WebhookEvent
from tests.api.harness import ROLES, make_api_roles

pytestmark = pytest.mark.django_db

PERSONAL = ("Jane Doe", "jane.doe@example.com", "+44 20 7946 0958", "1 Example Street")


def event_with_personal_data():
    return WebhookEvent.objects.create(
        stripe_id="evt_pii",
        type="customer.updated",
        object_id="cus_pii",
        created=timezone.now(),
        status=WebhookEvent.Status.PROCESSED,
        payload={
            "id": "evt_pii",
            "type": "customer.updated",
            "data": {
                "object": {
                    "id": "cus_pii",
                    "object": "customer",
                    "name": "Jane Doe",
                    "email": "jane.doe@example.com",
                    "phone": "+44 20 7946 0958",
                    "address": {"line1": "1 Example Street", "country": "GB"},
                }
            },
        },
    )


# Who sees the payload unmasked: the superuser and the senior approvers (and the superuser's
# read-only monitoring token, which reads as the superuser).
UNMASKED = {"superuser", "senior", "read_only"}
MASKED = {"finance", "auditor"}


def test_api_event_detail_masks_personal_data_without_the_permission():
    event = event_with_personal_data()
    roles = make_api_roles()
    seen = {}
    for role in ROLES:
        response = roles[role].get(f"/api/v1/webhook-events/{event.pk}/")
        if response.status_code == 200:
            seen[role] = response.json()
    assert set(seen) == UNMASKED | MASKED
    for role in UNMASKED:
        assert seen[role]["payload_masked"] is False, role
        assert seen[role]["payload"] == event.payload, role
    for role in MASKED:
        body = seen[role]
        assert body["payload_masked"] is True, role
        customer = body["payload"]["data"]["object"]
        assert customer["id"] == "cus_pii"
        assert customer["name"] == MASK
        assert customer["email"] == f"j{MASK}@example.com"
        assert customer["address"] == {"line1": MASK, "country": "GB"}
        assert not [value for value in PERSONAL if value in str(body)], role


def test_admin_event_page_masks_personal_data_for_auditors(client):
    call_command("demo_staff", verbosity=0)
    event = event_with_personal_data()
    url = reverse("admin:payments_webhookevent_change", args=[event.pk])
    users = get_user_model().objects
    for username in ("auditor", "analyst"):
        client.force_login(users.get(username=username))
        html = client.get(url).content.decode()
        assert "data-payload-masked" in html, username
        assert PAYLOAD_MASKED_NOTE in html
        assert not [value for value in PERSONAL if value in html], username
        assert "cus_pii" in html
    for username in ("senior", "demo"):
        client.force_login(users.get(username=username))
        html = client.get(url).content.decode()
        assert "data-payload-masked" not in html, username
        assert all(value in html for value in PERSONAL), username


def test_the_permission_goes_to_senior_approvers_and_not_to_auditors():
    call_command("demo_staff", verbosity=0)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert users["senior"].has_perm("payments.view_webhook_payload")
    assert not users["auditor"].has_perm("payments.view_webhook_payload")
    assert not users["analyst"].has_perm("payments.view_webhook_payload")
