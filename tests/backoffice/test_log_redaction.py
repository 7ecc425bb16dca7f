"""Logs never carry card numbers, secrets or whole e-mail addresses: LOGGING runs
backoffice.redaction.RedactingFilter on its console handler, which rewrites each record in
place, so what the console prints and what later handlers (here pytest's caplog) receive is
redacted. Each test drives a real code path that logs customer or payment data."""

import io
import logging

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from backoffice.redaction import MASK, RedactingFilter
from payments import gateway, webhooks
from payments.exceptions import GatewayConnectionError
from payments.models import WebhookEvent
from refunds.services import refund_request_approve, refund_request_process
from tests.factories import RefundRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
STRIPE_KEY = "sk_live_51AbCdEfGhIjKlMnOp"


@pytest.fixture
def console():
    """What LOGGING's console handler prints during the test."""
    handler = next((h for h in logging.getLogger().handlers if h.name == "console"), None)
    assert handler is not None, "the root logger has no 'console' handler (LOGGING)"
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def assert_redacted(text: str) -> None:
    assert EMAIL not in text
    assert "4242 4242 4242 4242" not in text
    assert STRIPE_KEY not in text
    assert f"j{MASK}@example.com" in text


def test_a_failing_webhook_handler_logs_its_error_redacted(console, caplog, monkeypatch):
    def handler(event):
        raise ValueError(f"customer {EMAIL} paid with {CARD} using {STRIPE_KEY}")

    monkeypatch.setitem(webhooks.HANDLERS, "customer.updated", handler)
    event = WebhookEvent.objects.create(
        stripe_id="evt_log",
        type="customer.updated",
        created=timezone.now(),
        payload={"id": "evt_log", "data": {"object": {"id": "cus_log", "email": EMAIL}}},
    )
    webhooks.webhook_event_process(event_pk=event.pk)
    printed = console.getvalue()
    assert "Stripe webhook evt_log (customer.updated) failed" in printed
    assert "Traceback" in printed  # the traceback is printed, redacted
    assert_redacted(printed)
    assert f"{MASK}4242" in printed
    records = [r for r in caplog.records if r.name == "payments.webhooks"]
    assert records, "the code path logged nothing"
    assert_redacted(caplog.text)


def test_a_refund_gateway_error_logs_no_customer_data(console, caplog, monkeypatch):
    def refused(**kwargs):
        raise GatewayConnectionError(f"connection reset while refunding {EMAIL} card {CARD}")

    monkeypatch.setattr(gateway, "stripe_refund_create", refused)
    approver = UserFactory(username="approver")
    approver.user_permissions.set(
        Permission.objects.filter(codename__in=["approve_refundrequest", "view_refundrequest"])
    )
    approver = type(approver).objects.get(pk=approver.pk)
    row = RefundRequestFactory()
    refund_request_approve(refund_request=row, acting_user=approver)
    refund_request_process(refund_request=row)
    printed = console.getvalue()
    assert f"refund request {row.pk}: gateway error, will resume" in printed
    assert_redacted(printed)
    assert_redacted(caplog.text)


def test_a_not_found_url_with_an_email_is_logged_shortened(console, caplog, client):
    client.get(f"/no-such-page/{EMAIL}/")
    printed = console.getvalue()
    assert "Not Found: /no-such-page/" in printed
    assert EMAIL not in printed
    assert EMAIL not in caplog.text


def test_configured_secrets_never_reach_the_log(console, settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_test_primary"]
    logging.getLogger("payments.gateway").warning(
        "secret key %s, webhook %s, settings key %s",
        settings.STRIPE_SECRET_KEY,
        "whsec_test_primary",
        settings.SECRET_KEY,
    )
    printed = console.getvalue()
    assert settings.SECRET_KEY not in printed
    assert "whsec_test_primary" not in printed
    assert "secret key" in printed
