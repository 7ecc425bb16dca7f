"""On PostgreSQL one outbox sender runs at a time: a second one, started while the first is
still sending, skips instead of sending the same queued e-mails again."""

import psycopg
import pytest
from django.core import mail
from django.db import connection, transaction
from post_office.models import STATUS, Email

from backoffice.models import CustomerEmail
from backoffice.outbox import OUTBOX_SEND_LOCK_KEY, outbox_send_queued, queue_customer_email
from tests.factories import PaymentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_second_sender_skips_while_the_first_holds_the_lock(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with transaction.atomic():
        queue_customer_email(
            to="student@example.com",
            subject="Receipt",
            body="Thanks",
            kind=CustomerEmail.Kind.RECEIPT,
            cause=PaymentFactory(),
        )
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    ) as first_sender:
        first_sender.execute("SELECT pg_advisory_lock(%s)", [OUTBOX_SEND_LOCK_KEY])
        assert outbox_send_queued() == {"skipped": "another outbox sender is running"}
        assert mail.outbox == []
        first_sender.execute("SELECT pg_advisory_unlock(%s)", [OUTBOX_SEND_LOCK_KEY])
    assert outbox_send_queued()["sent"] == 1
    assert Email.objects.get().status == STATUS.sent
