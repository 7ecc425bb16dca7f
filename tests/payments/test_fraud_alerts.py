"""Fraud alerts: opened once per Stripe early fraud warning, reviewed with a note by staff
allowed to, audited, never twice."""

import json
import time

import pytest
from django.urls import reverse

from backoffice.models import AdminAction
from payments import gateway
from payments.models import FraudAlert
from payments.services.fraud_alert import (
    ERR_NOT_ALLOWED,
    ERR_NOTE_REQUIRED,
    FraudReviewError,
    fraud_alert_open_from_warning,
    fraud_alert_resolve,
    fraud_alert_start_investigating,
)
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:payments_fraudalert_changelist")


def warning(payment, warning_id="issfr_1"):
    """A Stripe-shaped early fraud warning (localstripe has no Radar)."""
    return {
        "id": warning_id,
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": payment.stripe_charge_id,
        "payment_intent": None,
        "fraud_type": "made_with_stolen_card",
        "created": int(time.time()),
    }


@pytest.fixture
def reviewer(db):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="reviewer")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["review_fraudalert", "view_fraudalert"])
    )
    return user


def test_a_warning_opens_one_alert_however_often_it_arrives():
    payment = PaymentFactory()
    first, created = fraud_alert_open_from_warning(warning=warning(payment))
    again, created_again = fraud_alert_open_from_warning(warning=warning(payment))
    assert created and not created_again and first.pk == again.pk
    assert first.payment == payment and first.status == FraudAlert.Status.OPEN


def test_resolving_needs_permission_and_a_note_and_happens_once(reviewer):
    alert, _ = fraud_alert_open_from_warning(warning=warning(PaymentFactory()))
    with pytest.raises(FraudReviewError, match=ERR_NOT_ALLOWED):
        fraud_alert_resolve(
            alert=alert, outcome="dismissed", note="x", acting_user=UserFactory(username="nope")
        )
    with pytest.raises(FraudReviewError, match=ERR_NOTE_REQUIRED):
        fraud_alert_resolve(alert=alert, outcome="dismissed", note="  ", acting_user=reviewer)
    done = fraud_alert_resolve(
        alert=alert, outcome="confirmed", note="stolen card", acting_user=reviewer
    )
    assert done.changed and done.alert.status == "confirmed" and done.alert.reviewed_by == reviewer
    with pytest.raises(FraudReviewError, match="already resolved: confirmed fraud"):
        fraud_alert_resolve(alert=alert, outcome="dismissed", note="x", acting_user=reviewer)
    assert AdminAction.objects.filter(action="fraud_alert_confirmed").count() == 1


def test_bulk_resolve_asks_for_an_outcome_and_a_note_then_applies(client, reviewer):
    alerts = [
        fraud_alert_open_from_warning(warning=warning(PaymentFactory(), f"issfr_{i}"))[0]
        for i in range(2)
    ]
    client.force_login(reviewer)
    ids = [str(a.pk) for a in alerts]
    form = client.post(CHANGELIST, {"action": "resolve_selected", "_selected_action": ids})
    body = form.content.decode()
    assert form.status_code == 200 and "Note" in body
    # The page states the choice to make, not a decision already taken.
    assert "Resolve 2 fraud alerts" in body and "Dismissed" not in body
    assert FraudAlert.objects.filter(status="open").count() == 2
    client.post(
        CHANGELIST,
        {
            "action": "resolve_selected",
            "_selected_action": ids,
            "apply": "1",
            "outcome": "dismissed",
            "note": "customer confirmed the purchases",
        },
    )
    assert FraudAlert.objects.filter(status="dismissed").count() == 2


def test_staff_without_the_review_permission_cannot_act(client):
    from django.contrib.auth.models import Permission

    alert, _ = fraud_alert_open_from_warning(warning=warning(PaymentFactory()))
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_fraudalert"))
    client.force_login(viewer)
    client.post(
        CHANGELIST,
        {
            "action": "resolve_selected",
            "_selected_action": [alert.pk],
            "apply": "1",
            "outcome": "confirmed",
            "note": "x",
        },
    )
    alert.refresh_from_db()
    assert alert.status == "open"


# transaction=True: the endpoint enqueues its task on commit (as the webhook tests do).
@pytest.mark.django_db(transaction=True)
def test_early_fraud_warning_webhook_opens_an_alert(client, settings):
    payment = PaymentFactory()
    event = {
        "id": "evt_efw_1",
        "type": "radar.early_fraud_warning.created",
        "created": 1,
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": warning(payment, "issfr_wh")},
    }
    payload = json.dumps(event).encode()
    header = gateway.webhook_signature_header(
        payload=payload, secret=settings.STRIPE_WEBHOOK_SECRETS[0]
    )
    response = client.post(
        "/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200
    assert FraudAlert.objects.get(stripe_id="issfr_wh").payment == payment


def test_dashboard_counts_unresolved_alerts(admin_client, reviewer):
    from reports.dashboard import _fraud_card

    fraud_alert_open_from_warning(warning=warning(PaymentFactory()))
    busy, _ = fraud_alert_open_from_warning(warning=warning(PaymentFactory(), "issfr_busy"))
    done, _ = fraud_alert_open_from_warning(warning=warning(PaymentFactory(), "issfr_done"))
    fraud_alert_start_investigating(alert=busy, acting_user=reviewer)
    fraud_alert_resolve(alert=done, outcome="dismissed", note="fine", acting_user=reviewer)
    assert _fraud_card().value == "2"
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert "Unresolved fraud alerts" in body
    listed = admin_client.get(f"{CHANGELIST}?status__in=open,investigating")
    assert {alert.pk for alert in listed.context["cl"].result_list} == {busy.pk} | {
        a.pk for a in FraudAlert.objects.filter(status="open")
    }
