"""The fraud review workflow: assign, investigate, resolve; only forward, each step audited,
a step already done is a no-op; every admin step is a POST checked on the server."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.models import FraudAlert
from payments.services import fraud_alert as service
from payments.services.fraud_alert import (
    ERR_ALREADY_RESOLVED,
    ERR_BAD_OUTCOME,
    ERR_NOT_ALLOWED,
    ERR_NOTE_REQUIRED,
    ERR_TRANSITION,
    MSG_ALREADY_ASSIGNED,
    MSG_ALREADY_INVESTIGATING,
    MSG_ALREADY_RESOLVED_SAME,
    MSG_ASSIGNED,
    MSG_REASSIGNED,
    FraudReviewError,
    fraud_alert_assign,
    fraud_alert_resolve,
    fraud_alert_start_investigating,
)
from payments.signals import fraud_alert_confirmed
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db


def reviewer_user(username="reviewer", *extra):
    user = UserFactory(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["review_fraudalert", "view_fraudalert", "view_customer", *extra]
        )
    )
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def reviewer(db):
    return reviewer_user("reviewer", "block_customer")


@pytest.fixture
def colleague(db):
    return reviewer_user("colleague")


@pytest.fixture
def auditor(db):
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(username="auditor")
    user.groups.add(Group.objects.get(name="Read-only auditors"))
    return user


def make_alert(status=FraudAlert.Status.OPEN, **fields):
    return FraudAlert.objects.create(
        payment=PaymentFactory(),
        source=FraudAlert.Source.EARLY_FRAUD_WARNING,
        stripe_id=f"issfr_{FraudAlert.objects.count() + 1}",
        status=status,
        created=timezone.now(),
        **fields,
    )


def resolve(alert, user, outcome="confirmed", note="stolen card, confirmed by the bank"):
    return fraud_alert_resolve(alert=alert, outcome=outcome, note=note, acting_user=user)


def investigate(alert, user, **_):
    return fraud_alert_start_investigating(alert=alert, acting_user=user)


# --- transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "step", "outcome", "after"),
    [
        ("open", investigate, None, "investigating"),
        ("open", resolve, "confirmed", "confirmed"),
        ("open", resolve, "dismissed", "dismissed"),
        ("investigating", resolve, "confirmed", "confirmed"),
        ("investigating", resolve, "dismissed", "dismissed"),
    ],
)
def test_forward_transitions_are_applied_and_audited(reviewer, start, step, outcome, after):
    alert = make_alert(status=start)
    kwargs = {"outcome": outcome} if outcome else {}
    result = step(alert, reviewer, **kwargs)
    alert.refresh_from_db()
    assert result.changed and alert.status == after
    audit = AdminAction.objects.get(target_id=str(alert.pk))
    assert audit.actor == reviewer and audit.target_type == "payments.fraudalert"
    assert (
        audit.action
        == {
            "investigating": service.AUDIT_INVESTIGATE,
            "confirmed": "fraud_alert_confirmed",
            "dismissed": "fraud_alert_dismissed",
        }[after]
    )


@pytest.mark.parametrize(
    ("start", "step", "outcome", "error"),
    [
        ("confirmed", investigate, None, ERR_ALREADY_RESOLVED),
        ("dismissed", investigate, None, ERR_ALREADY_RESOLVED),
        ("confirmed", resolve, "dismissed", ERR_ALREADY_RESOLVED),
        ("dismissed", resolve, "confirmed", ERR_ALREADY_RESOLVED),
        ("confirmed", lambda a, u, **_: fraud_alert_assign(alert=a, acting_user=u), None, None),
    ],
)
def test_backward_or_sideways_transitions_are_refused(
    reviewer, colleague, start, step, outcome, error
):
    alert = make_alert(status=start, reviewed_by=colleague)
    kwargs = {"outcome": outcome} if outcome else {}
    with pytest.raises(FraudReviewError) as exc:
        step(alert, reviewer, **kwargs)
    status_label = FraudAlert.Status(start).label.lower()
    assert str(exc.value) == ERR_ALREADY_RESOLVED.format(
        pk=alert.pk, status=status_label, who="colleague"
    )
    alert.refresh_from_db()
    assert alert.status == start and not AdminAction.objects.exists()


def test_the_transition_message_names_both_statuses():
    alert = make_alert(status="investigating")
    error = service._refuse_transition(alert, FraudAlert.Status.INVESTIGATING)
    assert str(error) == ERR_TRANSITION.format(
        pk=alert.pk, status="investigating", target="investigating"
    )


def test_repeated_steps_are_no_ops_that_write_nothing(reviewer):
    alert = make_alert()
    fraud_alert_assign(alert=alert, acting_user=reviewer)
    again = fraud_alert_assign(alert=alert, acting_user=reviewer)
    assert not again.changed and again.message == MSG_ALREADY_ASSIGNED.format(pk=alert.pk)
    investigate(alert, reviewer)
    again = investigate(alert, reviewer)
    assert not again.changed
    assert again.message == MSG_ALREADY_INVESTIGATING.format(pk=alert.pk, who="reviewer")
    resolve(alert, reviewer)
    again = resolve(alert, reviewer)
    assert not again.changed
    assert again.message == MSG_ALREADY_RESOLVED_SAME.format(
        pk=alert.pk, status="resolved: confirmed fraud", who="reviewer"
    )
    assert list(AdminAction.objects.order_by("pk").values_list("action", flat=True)) == [
        service.AUDIT_ASSIGN,
        service.AUDIT_INVESTIGATE,
        "fraud_alert_confirmed",
    ]


def test_assign_to_me_takes_over_and_says_from_whom(reviewer, colleague):
    alert = make_alert()
    first = fraud_alert_assign(alert=alert, acting_user=colleague)
    assert first.message == MSG_ASSIGNED.format(pk=alert.pk)
    taken = fraud_alert_assign(alert=alert, acting_user=reviewer)
    assert taken.changed and taken.alert.assigned_to == reviewer
    assert taken.message == MSG_REASSIGNED.format(pk=alert.pk, previous="colleague")
    audit = AdminAction.objects.filter(action=service.AUDIT_ASSIGN).latest("pk")
    assert audit.actor == reviewer and audit.details["previous_assignee"] == "colleague"


def test_investigating_assigns_an_unassigned_alert_but_keeps_an_assignee(reviewer, colleague):
    alert = make_alert()
    investigate(alert, reviewer)
    alert.refresh_from_db()
    assert alert.assigned_to == reviewer and alert.investigating_since is not None
    other = make_alert()
    fraud_alert_assign(alert=other, acting_user=colleague)
    investigate(other, reviewer)
    other.refresh_from_db()
    assert other.assigned_to == colleague


def test_resolving_checks_outcome_permission_and_note(reviewer):
    alert = make_alert()
    with pytest.raises(FraudReviewError, match=ERR_BAD_OUTCOME):
        resolve(alert, reviewer, outcome="investigating")
    with pytest.raises(FraudReviewError, match=ERR_NOT_ALLOWED):
        resolve(alert, UserFactory(username="nobody"))
    with pytest.raises(FraudReviewError, match=ERR_NOTE_REQUIRED):
        resolve(alert, reviewer, note="   ")
    for step in (fraud_alert_assign, fraud_alert_start_investigating):
        with pytest.raises(FraudReviewError, match=ERR_NOT_ALLOWED):
            step(alert=alert, acting_user=UserFactory())
    alert.refresh_from_db()
    assert alert.status == "open" and alert.assigned_to is None


def test_a_confirmation_is_announced_once_after_commit(
    reviewer, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, alert, **kwargs):
        received.append(alert.pk)

    fraud_alert_confirmed.connect(receiver)
    try:
        alert, dismissed = make_alert(), make_alert()
        with django_capture_on_commit_callbacks(execute=True):
            resolve(alert, reviewer)
            resolve(alert, reviewer)  # replayed: a no-op, no second signal
            resolve(dismissed, reviewer, outcome="dismissed")
    finally:
        fraud_alert_confirmed.disconnect(receiver)
    assert received == [alert.pk]


# --- the admin -------------------------------------------------------------------------------


def page_url(alert):
    return reverse("admin:payments_fraudalert_change", args=[alert.pk])


def step_url(alert, step):
    return reverse(f"admin:payments_fraudalert_{step}", args=[alert.pk])


def test_the_alert_page_offers_the_workflow_and_links_payment_and_customer(client, reviewer):
    alert = make_alert()
    client.force_login(reviewer)
    body = client.get(page_url(alert)).content.decode()
    assert "Assign to me" in body and "Start investigating" in body
    assert step_url(alert, "resolve") in body
    # The form states the choice to make; nothing says "dismissed" before it is made.
    assert "Choose an outcome to resolve" in body and "Resolve as confirmed fraud" in body
    assert "Dismissed" not in body
    assert reverse("admin:payments_payment_change", args=[alert.payment_id]) in body
    assert reverse("admin:payments_customer_change", args=[alert.payment.customer_id]) in body
    assert f"?q={alert.payment.customer.stripe_id}" in body
    assert "Block customer" in body


def test_a_resolved_alert_page_offers_no_steps(client, reviewer):
    alert = make_alert()
    resolve(alert, reviewer)
    client.force_login(reviewer)
    body = client.get(page_url(alert)).content.decode()
    assert "Start investigating" not in body and "Assign to me" not in body
    assert step_url(alert, "resolve") not in body
    assert "Resolved: confirmed fraud by reviewer" in body


def test_steps_through_the_admin(client, reviewer):
    alert = make_alert()
    client.force_login(reviewer)
    assert client.post(step_url(alert, "assign")).status_code == 302
    assert client.post(step_url(alert, "investigate")).status_code == 302
    alert.refresh_from_db()
    assert alert.status == "investigating" and alert.assigned_to == reviewer
    response = client.post(step_url(alert, "resolve"), {"outcome": "dismissed", "note": ""})
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert ERR_NOTE_REQUIRED in messages
    client.post(step_url(alert, "resolve"), {"outcome": "dismissed", "note": "bought it himself"})
    alert.refresh_from_db()
    assert alert.status == "dismissed" and alert.review_note == "bought it himself"


@pytest.mark.parametrize("step", ["assign", "investigate", "resolve"])
def test_steps_are_post_only(client, reviewer, step):
    alert = make_alert()
    client.force_login(reviewer)
    assert client.get(step_url(alert, step)).status_code == 405


@pytest.mark.parametrize("step", ["assign", "investigate", "resolve"])
def test_an_auditor_gets_403_and_changes_nothing(client, auditor, step):
    alert = make_alert()
    client.force_login(auditor)
    response = client.post(step_url(alert, step), {"outcome": "confirmed", "note": "x"})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open" and alert.assigned_to is None
    assert not AdminAction.objects.exists()


def test_an_auditor_sees_the_alert_but_no_actions(client, auditor):
    alert = make_alert()
    client.force_login(auditor)
    page = client.get(page_url(alert))
    assert page.status_code == 200
    body = page.content.decode()
    for offer in ("Assign to me", "Start investigating", "Block customer", "Unblock customer"):
        assert offer not in body
    assert step_url(alert, "resolve") not in body
    changelist = client.get(reverse("admin:payments_fraudalert_changelist"))
    assert "resolve_selected" not in changelist.content.decode()


def test_the_worklist_shows_unresolved_alerts_first(admin_client, reviewer):
    done = make_alert()
    resolve(done, reviewer)
    waiting = make_alert()
    busy = make_alert()
    investigate(busy, reviewer)
    response = admin_client.get(reverse("admin:payments_fraudalert_changelist"))
    shown = [alert.pk for alert in response.context["cl"].result_list]
    assert shown == [busy.pk, waiting.pk, done.pk]


def test_the_roles_that_review_fraud_may_block_customers():
    call_command("demo_staff", verbosity=0)
    from django.contrib.auth import get_user_model

    users = {u.username: u for u in get_user_model().objects.all()}
    assert users["senior"].has_perm("payments.review_fraudalert")
    assert users["senior"].has_perm("payments.block_customer")
    assert not users["analyst"].has_perm("payments.block_customer")
    assert not users["auditor"].has_perm("payments.block_customer")
