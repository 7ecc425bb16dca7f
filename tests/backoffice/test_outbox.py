"""The customer e-mail outbox (backoffice/outbox.py): queued with its cause, sent by the
schedule's job, retried after a failing backend, resent from the admin with an audit row.

pytest-django forces the locmem backend; post_office sends through settings.EMAIL_BACKEND,
so the tests that want another one set it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from post_office.models import STATUS, Email, Log

from backoffice.admin_outbox import RESENT
from backoffice.models import AdminAction, CustomerEmail
from backoffice.outbox import (
    ACTION_RESEND,
    ERR_NOT_RESENDABLE,
    ERR_OUTSIDE_TRANSACTION,
    customer_email_resend,
    queue_customer_email,
)
from management import jobs
from management.schedules import OUTBOX_SCHEDULE_FUNC, OUTBOX_SCHEDULE_NAME, job_schedules
from reports.receipts import RECEIPT_EMAIL_SUBJECT, receipt_issue
from tests.factories import PaymentFactory, UserFactory

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
FAILING = "tests.backoffice.test_outbox.FailingBackend"


class FailingBackend(BaseEmailBackend):
    """An SMTP server that is down."""

    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server unreachable")


@pytest.fixture(autouse=True)
def backend(settings):
    settings.EMAIL_BACKEND = LOCMEM
    settings.POST_OFFICE = {**settings.POST_OFFICE, "MAX_RETRIES": 2}
    return settings


def _queue(cause, to="student@example.com"):
    return queue_customer_email(
        to=to,
        subject="Hello {% debug %}",
        body="Body {{ secret }}",
        kind=CustomerEmail.Kind.REFUND_CONFIRMATION,
        cause=cause,
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_after_commit_loses_nothing():
    """The receipt's transaction commits its e-mail; no process sends anything then. A worker
    killed at that moment leaves the row queued, and the next run of the job sends it."""
    payment = PaymentFactory()
    document = receipt_issue(payment=payment)  # commits: no outer transaction here
    assert mail.outbox == []  # nothing left the process with the commit
    (email,) = Email.objects.all()
    assert email.status == STATUS.queued
    assert email.to == [payment.customer.email]
    assert email.customer_email.kind == CustomerEmail.Kind.RECEIPT
    assert email.customer_email.target_id == str(document.pk)

    result = jobs.send_queued_emails()  # a new worker, later

    assert result == {"sent": 1, "failed": 0, "requeued": 0}
    (message,) = mail.outbox
    assert message.subject == RECEIPT_EMAIL_SUBJECT.format(number=document.number)
    ((filename, content, mimetype),) = message.attachments
    assert (filename, mimetype) == (f"{document.number}.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    assert Email.objects.get().status == STATUS.sent


@pytest.mark.django_db(transaction=True)
def test_queueing_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match=ERR_OUTSIDE_TRANSACTION):
        _queue(PaymentFactory())
    assert not Email.objects.exists()


@pytest.mark.django_db
def test_a_rollback_leaves_no_email():
    payment = PaymentFactory()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        _queue(payment)
        raise Boom
    assert not Email.objects.exists()
    assert not CustomerEmail.objects.exists()


@pytest.mark.django_db
def test_subject_and_body_are_sent_as_written_never_rendered_as_templates():
    with transaction.atomic():
        _queue(PaymentFactory())
    jobs.send_queued_emails()
    (message,) = mail.outbox
    assert (message.subject, message.body) == ("Hello {% debug %}", "Body {{ secret }}")


@pytest.mark.django_db
def test_a_failing_backend_is_retried_then_the_email_is_failed(settings):
    with transaction.atomic():
        email = _queue(PaymentFactory())
    settings.EMAIL_BACKEND = FAILING

    assert jobs.send_queued_emails() == {"sent": 0, "failed": 0, "requeued": 1}
    email.refresh_from_db()
    assert (email.status, email.number_of_retries) == (STATUS.requeued, 1)
    assert email.scheduled_time > timezone.now()  # RETRY_INTERVAL later
    assert jobs.send_queued_emails() == {"sent": 0, "failed": 0, "requeued": 0}  # not due yet

    for _ in range(2):  # the retries fall due, and the server is still down
        Email.objects.filter(pk=email.pk).update(scheduled_time=timezone.now() - timedelta(1))
        jobs.send_queued_emails()
    email.refresh_from_db()
    assert (email.status, email.number_of_retries) == (STATUS.failed, 2)
    assert Log.objects.filter(email=email, status=STATUS.failed).count() == 3
    assert mail.outbox == []

    settings.EMAIL_BACKEND = LOCMEM  # the server is back: a failed e-mail waits for a resend
    assert jobs.send_queued_emails() == {"sent": 0, "failed": 0, "requeued": 0}


@pytest.mark.django_db
def test_a_retry_that_succeeds_sends_once(settings):
    with transaction.atomic():
        email = _queue(PaymentFactory())
    settings.EMAIL_BACKEND = FAILING
    jobs.send_queued_emails()
    settings.EMAIL_BACKEND = LOCMEM
    Email.objects.filter(pk=email.pk).update(scheduled_time=timezone.now() - timedelta(1))
    assert jobs.send_queued_emails()["sent"] == 1
    assert jobs.send_queued_emails()["sent"] == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_resend_queues_a_sent_email_again_with_an_audit_row():
    with transaction.atomic():
        email = _queue(PaymentFactory())
    jobs.send_queued_emails()
    staff = UserFactory()
    customer_email_resend(email=email, acting_user=staff, reason="customer lost it")
    email.refresh_from_db()
    assert (email.status, email.number_of_retries) == (STATUS.queued, 0)
    row = AdminAction.objects.get(action=ACTION_RESEND)
    assert (row.actor, row.target_type, row.target_id) == (
        staff,
        "post_office.email",
        str(email.pk),
    )
    assert row.details["previous_status"] == "sent"
    jobs.send_queued_emails()
    assert len(mail.outbox) == 2

    customer_email_resend(email=email, acting_user=staff)
    with pytest.raises(ValueError, match=ERR_NOT_RESENDABLE.format(status="queued")):
        customer_email_resend(email=email, acting_user=staff)  # still waiting


def test_the_job_is_a_registered_schedule():
    (schedule,) = [s for s in job_schedules() if s.name == OUTBOX_SCHEDULE_NAME]
    assert schedule.func == OUTBOX_SCHEDULE_FUNC == "management.jobs.send_queued_emails"
    assert schedule.minutes == 1


# --- the admin's Outbox ----------------------------------------------------------------------


@pytest.fixture
def sent_and_failed(settings):
    payment = PaymentFactory()
    with transaction.atomic():
        sent = _queue(payment, to="sent@example.com")
    jobs.send_queued_emails()
    with transaction.atomic():
        failed = _queue(payment, to="failed@example.com")
    settings.POST_OFFICE = {**settings.POST_OFFICE, "MAX_RETRIES": 0}
    settings.EMAIL_BACKEND = FAILING
    jobs.send_queued_emails()
    settings.EMAIL_BACKEND = LOCMEM
    with transaction.atomic():
        queued = _queue(payment, to="queued@example.com")
    return sent, failed, queued


def _finance_user():
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Finance staff"))
    return user


@pytest.mark.django_db
def test_the_outbox_lists_status_recipient_and_cause(admin_client, sent_and_failed):
    sent, failed, queued = sent_and_failed
    url = reverse("admin:post_office_email_changelist")
    body = admin_client.get(url).content.decode()
    for email, status in ((sent, "Sent"), (failed, "Failed"), (queued, "Queued")):
        assert email.to[0] in body
        assert status.upper() in body.upper()
    cause = reverse("admin:payments_payment_change", args=[sent.customer_email.target_id])
    assert f'href="{cause}"' in body
    only_failed = admin_client.get(url, {"status__exact": STATUS.failed}).content.decode()
    assert "failed@example.com" in only_failed and "sent@example.com" not in only_failed
    page = admin_client.get(reverse("admin:post_office_email_change", args=[failed.pk]))
    assert page.status_code == 200
    assert "SMTP server unreachable" in page.content.decode()  # the attempt's log


@pytest.mark.django_db
def test_resend_from_the_admin_is_post_only_permission_checked_and_audited(client, sent_and_failed):
    _, failed, _ = sent_and_failed
    user = _finance_user()
    client.force_login(user)
    resend = reverse("admin:post_office_email_resend", args=[failed.pk])
    assert client.get(resend).status_code == 405
    response = client.post(resend, follow=True)
    assert RESENT.format(count=1) in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == STATUS.queued
    assert AdminAction.objects.filter(action=ACTION_RESEND, actor=user).count() == 1

    user.groups.clear()
    user.user_permissions.add(Permission.objects.get(codename="view_email"))
    user = type(user).objects.get(pk=user.pk)  # drop the permission cache
    client.force_login(user)
    assert client.post(resend).status_code == 403


@pytest.mark.django_db
def test_the_bulk_resend_action_resends_what_may_be_resent(admin_client, sent_and_failed):
    sent, failed, queued = sent_and_failed
    response = admin_client.post(
        reverse("admin:post_office_email_changelist"),
        {"action": "resend_selected", "_selected_action": [sent.pk, failed.pk, queued.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert RESENT.format(count=2) in body
    assert ERR_NOT_RESENDABLE.format(status="queued") in body
    assert AdminAction.objects.filter(action=ACTION_RESEND).count() == 2
    assert set(Email.objects.values_list("status", flat=True)) == {STATUS.queued}


@pytest.mark.django_db
def test_nobody_edits_or_deletes_an_email_from_the_admin(admin_client, sent_and_failed):
    sent, _, _ = sent_and_failed
    change = reverse("admin:post_office_email_change", args=[sent.pk])
    assert admin_client.post(change, {"subject": "forged"}).status_code == 403
    delete = reverse("admin:post_office_email_delete", args=[sent.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Email.objects.get(pk=sent.pk).subject == "Hello {% debug %}"
