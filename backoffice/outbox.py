"""Customer e-mails go through an outbox (django-post-office), never straight to SMTP.

`queue_customer_email` writes the message (and its attachments) as a queued
`post_office.Email` row inside the caller's transaction, beside a `CustomerEmail` naming its
cause. So the e-mail commits or rolls back with the change it announces: a refund that rolls
back sends nothing, and a worker killed right after the commit loses nothing (the row waits,
queued). The django-q2 schedule `outbox_send_queued` (management/jobs.py, every
OUTBOX_SEND_SCHEDULE_MINUTES) sends what is queued; a failed send is requeued after
POST_OFFICE["RETRY_INTERVAL"], up to POST_OFFICE["MAX_RETRIES"] times, then marked failed.
Staff see it in the admin's Outbox and may resend (`customer_email_resend`, audited).

Delivery is at least once: a sender killed after the SMTP server took a message but before
its status was written sends it again on the next run. Only one sender runs at a time on
PostgreSQL (an advisory lock), so two overlapping runs never send the same queued row twice.

Staff alerts (dispute deadlines) stay direct `send_mail`: they go to staff, are recomputed
and re-sent by their own job, and have no customer-facing promise to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import make_msgid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, models, transaction
from django.utils import timezone
from post_office.mail import send_queued
from post_office.models import PRIORITY, STATUS, Email
from post_office.utils import create_attachments

from .audit import ClientInfo, audit_record
from .models import CustomerEmail

ERR_OUTSIDE_TRANSACTION = (
    "A customer e-mail is queued inside the transaction of its cause: call "
    "queue_customer_email within transaction.atomic()."
)
ERR_NOT_RESENDABLE = "Only a sent or failed e-mail can be resent; this one is {status}."
ERR_NO_RECIPIENT = "A customer e-mail needs a recipient address."

ACTION_RESEND = "customer_email_resend"

# Any fixed 64-bit number: the session advisory lock one outbox sender holds on PostgreSQL.
OUTBOX_SEND_LOCK_KEY = 0x0B0C_5E4D


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/pdf"


def queue_customer_email(
    *,
    to: str,
    subject: str,
    body: str,
    kind: str,
    cause: models.Model,
    cause_repr: str = "",
    attachments: tuple[Attachment, ...] = (),
) -> Email:
    """Queue one e-mail to a customer, in the caller's transaction (RuntimeError outside
    one). `kind` is a CustomerEmail.Kind; `cause` is the row it is about. Returns the Email.

    The Email row is written directly, not through post_office.mail.send: that one renders
    subject and body as Django templates, and a customer's name containing `{%` or `{{`
    would be interpreted."""
    if not connection.in_atomic_block:
        raise RuntimeError(ERR_OUTSIDE_TRANSACTION)
    if not to:
        raise ValueError(ERR_NO_RECIPIENT)
    email = Email.objects.create(
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        subject=subject,
        message=body,
        status=STATUS.queued,
        priority=PRIORITY.medium,
        message_id=make_msgid(domain="backoffice"),
    )
    if attachments:
        email.attachments.add(
            *create_attachments(
                {
                    a.filename: {"file": ContentFile(a.content), "mimetype": a.mimetype}
                    for a in attachments
                }
            )
        )
    CustomerEmail.objects.create(
        email=email,
        kind=kind,
        target_type=cause._meta.label_lower,
        target_id=str(cause.pk),
        target_repr=(cause_repr or str(cause))[:255],
    )
    return email


def outbox_send_queued() -> dict:
    """Send the queued e-mails that are due (post_office.mail.send_queued, in this process).
    Skipped while another sender holds the lock (PostgreSQL)."""
    if connection.vendor != "postgresql":
        sent, failed, requeued = send_queued(processes=1)
        return {"sent": sent, "failed": failed, "requeued": requeued}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [OUTBOX_SEND_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return {"skipped": "another outbox sender is running"}
    try:
        sent, failed, requeued = send_queued(processes=1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [OUTBOX_SEND_LOCK_KEY])
    return {"sent": sent, "failed": failed, "requeued": requeued}


def customer_email_resend(
    *, email: Email, acting_user, client: ClientInfo | None = None, reason: str = ""
) -> Email:
    """Queue a sent or failed e-mail again, to be sent on the next run with its retries
    restored; audited. Raises ValueError for one still queued or requeued."""
    with transaction.atomic():
        locked = Email.objects.select_for_update().get(pk=email.pk)
        if locked.status not in (STATUS.sent, STATUS.failed):
            raise ValueError(ERR_NOT_RESENDABLE.format(status=locked.get_status_display()))
        previous = locked.get_status_display()
        locked.status = STATUS.queued
        locked.number_of_retries = 0
        locked.scheduled_time = None
        locked.last_updated = timezone.now()
        locked.save(update_fields=["status", "number_of_retries", "scheduled_time", "last_updated"])
        audit_record(
            acting_user=acting_user,
            action=ACTION_RESEND,
            target=locked,
            target_repr=f"E-mail #{locked.pk} to {', '.join(locked.to)}"[:255],
            reason=reason,
            client=client,
            details={"previous_status": previous, "subject": locked.subject},
        )
    return locked
