"""The webhook log in the admin: badges, filters, payload, replay (POST, permission, audit)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.changelist import ERR_UNKNOWN_VALUE
from backoffice.models import AdminAction
from payments import webhooks
from payments.admin.webhook import MESSAGE_BUSY, MESSAGE_REPLAYED, WebhookEventAdmin
from payments.models import WebhookEvent
from payments.selectors import webhook_failed_badge, webhook_health
from tests.factories import UserFactory
from tests.payments.webhook_support import make_event

# transaction=True: the endpoint enqueues in on_commit, which a wrapping test transaction
# would never fire.
pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = reverse("admin:payments_webhookevent_changelist")


def stored(event_type="customer.created", status=WebhookEvent.Status.PROCESSED, **fields):
    event = make_event(event_type, {"id": fields.pop("object_id", "cus_x")})
    defaults = {
        "stripe_id": event["id"],
        "type": event_type,
        "object_id": event["data"]["object"]["id"],
        "created": timezone.now(),
        "payload": event,
        "status": status,
        "attempts": 1,
        "processing_ms": 12,
        "processed_at": timezone.now(),
    }
    defaults.update(fields)
    return WebhookEvent.objects.create(**defaults)


def replay_url(event):
    return reverse("admin:payments_webhookevent_replay", args=[event.pk])


@pytest.fixture
def viewer(db):
    """Staff who may read the log but not replay."""
    user = UserFactory(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    return user


@pytest.fixture
def replayer(db):
    user = UserFactory(username="replayer")
    user.user_permissions.add(
        Permission.objects.get(codename="view_webhookevent"),
        Permission.objects.get(codename="replay_webhookevent"),
    )
    return user


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setitem(webhooks.HANDLERS, "customer.created", lambda event: calls.append(event))
    return calls


def changelist_queries(client, monkeypatch, per_page):
    monkeypatch.setattr(WebhookEventAdmin, "list_per_page", per_page)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == per_page
    return len(ctx.captured_queries)


def test_changelist_query_count_is_the_same_for_10_and_100_rows(admin_client, monkeypatch):
    for i in range(110):
        stored(status=[WebhookEvent.Status.PROCESSED, WebhookEvent.Status.FAILED][i % 2])
    assert changelist_queries(admin_client, monkeypatch, 10) == changelist_queries(
        admin_client, monkeypatch, 100
    )


def test_changelist_shows_badges_time_attempts_and_error(admin_client):
    stored(status=WebhookEvent.Status.FAILED, error="ResourceMissing: no such pi", attempts=5)
    stored(event_type="invoice.paid", status=WebhookEvent.Status.IGNORED, processing_ms=3)
    body = admin_client.get(CHANGELIST).content.decode()
    assert "Failed" in body and "Ignored" in body
    assert "ResourceMissing: no such pi" in body
    assert "3 ms" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("attention=failed", {"failed"}),
        ("attention=failing", {"failed", "retrying"}),
        ("status=ignored", {"ignored"}),
        ("type=charge.refunded", {"processed-refund"}),
    ],
)
def test_filters(admin_client, query, expected):
    stored(status=WebhookEvent.Status.FAILED, object_id="failed")
    stored(status=WebhookEvent.Status.RETRYING, object_id="retrying")
    stored(status=WebhookEvent.Status.IGNORED, object_id="ignored")
    stored(event_type="charge.refunded", object_id="processed-refund")
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert {e.object_id for e in response.context["cl"].result_list} == expected


@pytest.mark.parametrize(
    "query",
    ["attention=nonsense", "status=nonsense", "type=" + "x" * 500, "q=" + "evt_" * 200, "p=abc"],
)
def test_bad_filter_values_never_500(admin_client, query):
    stored()
    assert admin_client.get(f"{CHANGELIST}?{query}").status_code in (200, 302)


def test_search_by_event_or_object_id(admin_client):
    first = stored(object_id="pi_wanted")
    stored(object_id="pi_other")
    for term in (first.stripe_id, "pi_wanted"):
        response = admin_client.get(CHANGELIST, {"q": term})
        assert [e.pk for e in response.context["cl"].result_list] == [first.pk]


def test_detail_page_shows_pretty_payload_and_replay_button(client, replayer):
    event = stored(object_id="cus_pretty")
    client.force_login(replayer)
    body = client.get(reverse("admin:payments_webhookevent_change", args=[event.pk])).content
    body = body.decode()
    assert "<pre" in body and "&quot;cus_pretty&quot;" in body
    assert replay_url(event) in body and "Replay this event" in body


def test_no_replay_button_without_the_permission(client, viewer):
    event = stored()
    client.force_login(viewer)
    response = client.get(reverse("admin:payments_webhookevent_change", args=[event.pk]))
    assert response.status_code == 200
    assert replay_url(event) not in response.content.decode()


def test_replay_get_is_405(client, replayer):
    client.force_login(replayer)
    assert client.get(replay_url(stored())).status_code == 405


def test_replay_without_permission_is_403_and_changes_nothing(client, viewer, recorded):
    event = stored(status=WebhookEvent.Status.FAILED)
    client.force_login(viewer)
    assert client.post(replay_url(event)).status_code == 403
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED
    assert not AdminAction.objects.exists()
    assert recorded == []


def test_replay_post_reruns_the_handler_and_is_audited(client, replayer, recorded):
    event = stored(status=WebhookEvent.Status.FAILED, attempts=5, error="boom")
    client.force_login(replayer)
    response = client.post(replay_url(event), REMOTE_ADDR="10.0.0.7")
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.error == ""
    assert event.attempts == 6
    assert [e.pk for e in recorded] == [event.pk]
    audit = AdminAction.objects.get()
    assert (audit.actor, audit.action, audit.target_id) == (
        replayer,
        "webhook_event_replay",
        str(event.pk),
    )
    assert audit.details["previous_status"] == "failed"
    assert audit.ip_address == "10.0.0.7"


def test_bulk_replay_action_needs_the_permission(client, viewer, replayer, recorded):
    events = [stored(status=WebhookEvent.Status.FAILED) for _ in range(2)]
    data = {"action": "replay_selected", "_selected_action": [e.pk for e in events]}
    client.force_login(viewer)
    client.post(CHANGELIST, data)
    assert recorded == []
    client.force_login(replayer)
    response = client.post(CHANGELIST, data, follow=True)
    assert MESSAGE_REPLAYED.format(count=2) in response.content.decode()
    assert len(recorded) == 2
    assert AdminAction.objects.filter(action="webhook_event_replay").count() == 2


def test_health_counts_failures_of_the_last_24h_and_average_time(db):
    now = timezone.now()
    stored(status=WebhookEvent.Status.FAILED)
    stored(status=WebhookEvent.Status.FAILED, received_at=now - timedelta(hours=30))
    stored(status=WebhookEvent.Status.RETRYING)
    stored(processing_ms=10)
    stored(processing_ms=31)
    stored(processing_ms=1000, processed_at=now - timedelta(hours=30))
    stored(status=WebhookEvent.Status.IGNORED, processing_ms=0)
    health = webhook_health(now=now)
    assert health["failed_24h"] == 1
    assert health["retrying"] == 1
    # processed in the window: the two failed/retrying rows have 12 ms, plus 10 and 31.
    assert health["avg_processing_ms"] == round((12 + 12 + 12 + 10 + 31) / 5)


def test_health_without_events(db):
    assert webhook_health() == {"failed_24h": 0, "retrying": 0, "avg_processing_ms": None}


def test_sidebar_badge_counts_failed_events(admin_client):
    assert webhook_failed_badge(None) == ""
    stored(status=WebhookEvent.Status.FAILED)
    stored(status=WebhookEvent.Status.FAILED)
    assert webhook_failed_badge(None) == "2"
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert "Stripe webhooks" in body


def test_a_payments_events_are_one_click_from_its_page(admin_client):
    from tests.factories import DisputeFactory, PaymentFactory, RefundFactory

    payment = PaymentFactory(stripe_payment_intent_id="pi_mine", stripe_charge_id="ch_mine")
    RefundFactory(payment=payment, stripe_id="re_mine")
    DisputeFactory(payment=payment, stripe_id="dp_mine")
    for object_id in ["pi_mine", "ch_mine", "re_mine", "dp_mine", "pi_other", "cus_x"]:
        stored(object_id=object_id)
    page = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))
    link = f"{CHANGELIST}?payment={payment.pk}"
    assert link in page.content.decode()
    shown = {e.object_id for e in admin_client.get(link).context["cl"].result_list}
    assert shown == {"pi_mine", "ch_mine", "re_mine", "dp_mine"}


def test_payment_filter_for_a_payment_with_no_events_shows_none(admin_client):
    stored(object_id="pi_mine")
    response = admin_client.get(f"{CHANGELIST}?payment=999999")
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("value", ["abc", "-1", "9" * 30])
def test_payment_filter_with_a_bad_value_says_so_and_shows_every_event(admin_client, value):
    stored(object_id="pi_mine")
    response = admin_client.get(f"{CHANGELIST}?payment={value}", follow=True)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 1
    shown = value if len(value) <= 40 else value[:39] + "…"
    assert ERR_UNKNOWN_VALUE.format(label="payment", value=shown, things="webhook events") in [
        str(m) for m in response.context["messages"]
    ]


def test_replay_waits_while_a_worker_is_processing_the_event(client, replayer, recorded):
    event = stored(status=WebhookEvent.Status.PROCESSING, processing_started_at=timezone.now())
    client.force_login(replayer)
    response = client.post(replay_url(event), follow=True)
    assert MESSAGE_BUSY.format(count=1) in response.content.decode()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSING
    assert recorded == []
    assert not AdminAction.objects.exists()
