"""Dispute deadline alerts (7, 3 and 1 days before evidence_due_by): the e-mail to the finance
group goes once per dispute and threshold, just inside each boundary and not just outside,
never for closed, submitted or overdue disputes; the sidebar badge, the dashboard card, the
daily schedule and `manage_payments --dispute-alerts` show and send the same thing."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from management import jobs
from management.schedules import DISPUTE_ALERTS_SCHEDULE_FUNC, DISPUTE_ALERTS_SCHEDULE_NAME
from payments.models import Dispute, DisputeDeadlineAlert
from payments.selectors import dispute_deadline_badge, dispute_deadline_bands
from payments.services.dispute_alerts import (
    ERR_NO_RECIPIENTS,
    dispute_alert_recipients,
    dispute_deadline_alerts_send,
)
from reports.dashboard import dashboard_context
from tests.factories import DisputeFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
def finance(settings):
    settings.DISPUTE_ALERT_DAYS = [7, 3, 1]
    settings.DISPUTE_ALERT_GROUP = "Finance staff"
    settings.DISPUTE_ALERT_EMAILS = ["Disputes@Example.com"]
    group, _ = Group.objects.get_or_create(name="Finance staff")
    member = UserFactory(username="fiona", email="fiona@example.com")
    member.groups.add(group)
    inactive = UserFactory(username="gone", email="gone@example.com", is_active=False)
    inactive.groups.add(group)
    UserFactory(username="other", email="other@example.com")  # not in the group
    return ["disputes@example.com", "fiona@example.com"]


def due_in(left, **kwargs):
    return DisputeFactory(evidence_due_by=NOW + left, **kwargs)


@pytest.fixture
def frozen(monkeypatch):
    """The clock at NOW for code that reads timezone.now() itself (the badge, the card)."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def sent_pairs():
    return set(DisputeDeadlineAlert.objects.values_list("dispute__stripe_id", "threshold_days"))


def test_recipients_are_the_groups_active_members_and_the_configured_addresses(finance):
    assert dispute_alert_recipients() == finance


@pytest.mark.parametrize(
    ("left", "threshold"),
    [
        (timedelta(days=7) + SECOND, None),
        (timedelta(days=7), 7),
        (timedelta(days=7) - SECOND, 7),
        (timedelta(days=3) + SECOND, 7),
        (timedelta(days=3) - SECOND, 3),
        (timedelta(days=1) + SECOND, 3),
        (timedelta(days=1) - SECOND, 1),
        (SECOND, 1),
        (timedelta(0), None),  # the deadline is now: too late to respond
        (-timedelta(hours=2), None),
    ],
)
def test_each_boundary_from_just_outside_to_just_inside(finance, left, threshold):
    dispute = due_in(left)
    result = dispute_deadline_alerts_send(now=NOW)
    expected = set() if threshold is None else {(dispute.stripe_id, threshold)}
    assert sent_pairs() == expected
    assert result["sent"] == len(expected)
    assert len(mail.outbox) == (1 if expected else 0)


def test_each_threshold_is_sent_once_as_the_deadline_comes_closer(finance):
    dispute = due_in(timedelta(days=8))
    days = []
    for hours in range(0, 8 * 24 + 1, 6):  # a run every 6 hours until the deadline
        now = NOW + timedelta(hours=hours)
        if dispute_deadline_alerts_send(now=now)["sent"]:
            days.append((dispute.evidence_due_by - now) / timedelta(days=1))
    assert sent_pairs() == {(dispute.stripe_id, t) for t in (7, 3, 1)}
    assert days == [7.0, 3.0, 1.0]
    assert len(mail.outbox) == 3
    # Re-runs at any later time send nothing more.
    assert dispute_deadline_alerts_send(now=NOW + timedelta(days=7, hours=23))["sent"] == 0
    assert len(mail.outbox) == 3


def test_a_dispute_first_seen_late_gets_only_the_most_urgent_alert(finance):
    dispute = due_in(timedelta(days=2))
    dispute_deadline_alerts_send(now=NOW)
    dispute_deadline_alerts_send(now=NOW + timedelta(hours=1))
    assert sent_pairs() == {(dispute.stripe_id, 3)}


@pytest.mark.parametrize(
    "status",
    [
        Dispute.Status.UNDER_REVIEW,
        Dispute.Status.WARNING_UNDER_REVIEW,
        Dispute.Status.WON,
        Dispute.Status.LOST,
        Dispute.Status.WARNING_CLOSED,
    ],
)
def test_nothing_for_submitted_or_closed_disputes(finance, status):
    due_in(timedelta(hours=5), status=status)
    assert dispute_deadline_alerts_send(now=NOW) == {
        "due": 0,
        "sent": 0,
        "recipients": 2,
        "error": "",
    }
    assert mail.outbox == []
    assert dispute_deadline_bands(now=NOW) == {7: 0, 3: 0, 1: 0}


def test_one_digest_lists_every_new_alert_most_urgent_first(finance):
    inquiry = due_in(
        timedelta(hours=20), status=Dispute.Status.WARNING_NEEDS_RESPONSE, reason="general"
    )
    soon = due_in(timedelta(days=2, hours=1))
    later = due_in(timedelta(days=6))
    due_in(timedelta(days=9))  # outside every threshold
    assert dispute_deadline_alerts_send(now=NOW)["sent"] == 3
    (message,) = mail.outbox
    assert message.subject == "Dispute evidence due soon: 3 disputes need a response"
    assert sorted(message.to) == finance
    body = message.body
    assert body.index(inquiry.stripe_id) < body.index(soon.stripe_id) < body.index(later.stripe_id)
    assert f"within 1 day: {inquiry.stripe_id} (Warning: needs response)" in body
    assert "20 h 0 min left" in body
    assert "6 days 0 h left" in body
    assert (
        DisputeDeadlineAlert.objects.get(dispute=later).recipients
        == "disputes@example.com, fiona@example.com"
    )


def test_without_recipients_nothing_is_recorded_and_the_schedule_fails(settings, frozen):
    # `frozen`: the job and the command read the clock, and after 17:00 UTC the dispute would
    # be past its deadline (no alert due, so no failure to see).
    settings.DISPUTE_ALERT_DAYS = [7, 3, 1]
    settings.DISPUTE_ALERT_GROUP = "Nobody here"
    settings.DISPUTE_ALERT_EMAILS = []
    due_in(timedelta(hours=5))
    result = dispute_deadline_alerts_send(now=NOW)
    assert result["error"] == ERR_NO_RECIPIENTS.format(group="Nobody here")
    assert not DisputeDeadlineAlert.objects.exists()
    with pytest.raises(jobs.JobFailed):
        jobs.dispute_deadline_alerts_scheduled()
    with pytest.raises(CommandError) as info:
        call_command("manage_payments", "--dispute-alerts", stdout=io.StringIO())
    assert info.value.returncode == 1


def test_a_failing_mail_server_records_nothing_so_the_next_run_sends(finance, monkeypatch):
    dispute = due_in(timedelta(hours=5))

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("payments.services.dispute_alerts.send_mail", broken)
    with pytest.raises(ConnectionRefusedError):
        dispute_deadline_alerts_send(now=NOW)
    assert not DisputeDeadlineAlert.objects.exists()
    monkeypatch.undo()
    assert dispute_deadline_alerts_send(now=NOW)["sent"] == 1
    assert sent_pairs() == {(dispute.stripe_id, 1)}


def test_a_row_recorded_by_a_concurrent_run_is_not_mailed_again(finance, monkeypatch):
    """Two runs at once: both see the alert as due; the second's insert fails on the unique
    constraint (on PostgreSQL it waits for the first's commit), so it mails nothing."""
    first = due_in(timedelta(hours=5))
    second = due_in(timedelta(hours=6))
    from payments.services import dispute_alerts

    real_due = dispute_alerts.dispute_alerts_due

    def due_then_raced(*, now):
        due = real_due(now=now)
        # The other run commits its row for `first` between our read and our insert.
        DisputeDeadlineAlert.objects.create(
            dispute=first, threshold_days=1, evidence_due_by=first.evidence_due_by, sent_at=now
        )
        return due

    monkeypatch.setattr(dispute_alerts, "dispute_alerts_due", due_then_raced)
    result = dispute_deadline_alerts_send(now=NOW)
    assert (result["due"], result["sent"]) == (2, 1)
    (message,) = mail.outbox
    assert second.stripe_id in message.body
    assert first.stripe_id not in message.body


def test_the_unique_constraint_holds_in_the_database(finance):
    from django.db import IntegrityError, transaction

    dispute = due_in(timedelta(hours=5))
    DisputeDeadlineAlert.objects.create(
        dispute=dispute, threshold_days=1, evidence_due_by=dispute.evidence_due_by, sent_at=NOW
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        DisputeDeadlineAlert.objects.create(
            dispute=dispute, threshold_days=1, evidence_due_by=dispute.evidence_due_by, sent_at=NOW
        )


def test_badge_and_bands_count_disputes_needing_a_response_by_deadline(finance, rf, frozen):
    due_in(timedelta(hours=3))
    due_in(timedelta(hours=30), status=Dispute.Status.WARNING_NEEDS_RESPONSE)
    due_in(timedelta(days=2, hours=23))
    due_in(timedelta(days=5))
    due_in(timedelta(days=10))
    due_in(timedelta(hours=3), status=Dispute.Status.UNDER_REVIEW)
    due_in(-timedelta(hours=3))
    assert dispute_deadline_bands(now=NOW) == {1: 1, 3: 2, 7: 1}
    assert dispute_deadline_badge(rf.get("/")) == "4"


def test_the_badge_is_empty_without_deadlines_soon(finance, rf):
    due_in(timedelta(days=10))
    assert dispute_deadline_badge(rf.get("/")) == ""


def test_the_dashboard_card_shows_the_bands_and_turns_red_under_3_days(finance, frozen):
    due_in(timedelta(days=5))
    card = next(c for c in dashboard_context()["cards"] if c.key == "dispute_deadlines")
    assert (card.value, card.tone) == ("1", "warning")
    assert card.detail == "0 under 1 day · 0 in 1 to 3 days · 1 in 3 to 7 days"
    due_in(timedelta(days=2))
    card = next(c for c in dashboard_context()["cards"] if c.key == "dispute_deadlines")
    assert (card.value, card.tone) == ("2", "danger")


def test_the_daily_schedule_and_the_command_run_the_same_job(finance, frozen):
    from django_q.models import Schedule

    from management.schedules import ensure_job_schedules

    ensure_job_schedules()
    schedule = Schedule.objects.get(name=DISPUTE_ALERTS_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        DISPUTE_ALERTS_SCHEDULE_FUNC,
        Schedule.MINUTES,
        1440,
    )
    due_in(timedelta(hours=5))
    out = io.StringIO()
    call_command("manage_payments", "--dispute-alerts", "--json", stdout=out)
    assert '"sent": 1' in out.getvalue()
    assert jobs.dispute_deadline_alerts_scheduled()["sent"] == 0  # already sent
    assert len(mail.outbox) == 1
