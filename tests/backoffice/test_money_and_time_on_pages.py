"""Money and time one way on every page: amounts through the money formatter (never minor
units beside a currency code), dates as `2026-12-01 13:47 UTC` in the site's time zone, Stripe
ids in titles as they are, and labels in words."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from backoffice.audit import audit_record
from backoffice.formats import format_date, format_datetime
from backoffice.models import AdminAction
from payments.models import BalanceEntry, Payment, PaymentRetry, WebhookEvent
from reports.models import DailyRollup, Receipt
from tests.factories import DisputeFactory, PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 1, 13, 47, 12, tzinfo=UTC)


def page_text(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


# --- Dates ----------------------------------------------------------------------------------


def test_format_datetime_names_the_site_time_zone(settings):
    assert format_datetime(AT) == "2026-12-01 13:47 UTC"
    assert format_datetime(None) == "—"
    settings.TIME_ZONE = "Europe/Berlin"
    assert format_datetime(AT) == "2026-12-01 14:47 CET"
    assert format_date(AT) == "2026-12-01"
    assert format_date(date(2026, 7, 4)) == "2026-07-04"


def test_django_and_unfold_cells_use_the_same_format(admin_client):
    """Read-only DateTimeFields and changelist date columns come from Django's formats
    (FORMAT_MODULE_PATH), not en's 'Dec. 1, 2026, 1:47 p.m.'."""
    payment = PaymentFactory(created=AT)
    body = page_text(admin_client, reverse("admin:payments_payment_change", args=[payment.pk]))
    assert "2026-12-01 13:47 UTC" in body
    assert "p.m." not in body and "Dec. 1, 2026" not in body
    changelist = page_text(admin_client, reverse("admin:payments_paymentmethod_changelist"))
    assert "p.m." not in changelist and "a.m." not in changelist


# --- Money ----------------------------------------------------------------------------------


def test_the_audit_trail_shows_amounts_formatted(admin_client, superuser):
    payment = PaymentFactory(amount=22300)
    audit_record(
        acting_user=superuser,
        action="refund_request.approve",
        target=payment,
        amount=22300,
        currency="usd",
    )
    audit_record(acting_user=superuser, action="note", target=payment)  # no amount
    listing = page_text(admin_client, reverse("admin:backoffice_adminaction_changelist"))
    assert "$223.00" in listing
    assert "22300" not in listing
    row = AdminAction.objects.get(action="refund_request.approve")
    detail = page_text(admin_client, reverse("admin:backoffice_adminaction_change", args=[row.pk]))
    assert "$223.00" in detail
    assert ">usd<" not in detail.replace(" ", "").replace("\n", "")
    assert "IP address" in detail


def test_a_receipt_page_shows_its_amount_formatted(admin_client):
    payment = PaymentFactory(amount=1500, currency="jpy")
    receipt = Receipt.objects.create(
        number="REC-2026-000001",
        year=2026,
        sequence=1,
        kind="receipt",
        payment=payment,
        amount=1500,
        currency="jpy",
        reference=f"payment:{payment.pk}",
        issued_at=AT,
    )
    body = page_text(admin_client, reverse("admin:reports_receipt_change", args=[receipt.pk]))
    assert "¥1,500" in body
    assert "2026-12-01 13:47 UTC" in body
    assert ">1500<" not in body.replace(" ", "").replace("\n", "")


def test_an_analytics_day_shows_money_and_breakdowns_in_words(admin_client):
    rollup = DailyRollup.objects.create(
        day=date(2026, 12, 1),
        currency="eur",
        attempted_count=3,
        succeeded_count=2,
        failed_count=1,
        success_rate=Decimal("66.67"),
        gross_amount=235798,
        stripe_fee_amount=3374,
        platform_fee_amount=40870,
        net_amount=191554,
        refunded_amount=6624,
        refunded_count=2,
        average_amount=117899,
        payment_methods={"card": {"attempted": 3, "succeeded": 2, "amount": 235798}},
        failure_reasons={"insufficient_funds": 1},
        computed_at=AT,
    )
    body = page_text(admin_client, reverse("admin:reports_dailyrollup_change", args=[rollup.pk]))
    for shown in ("€2,357.98", "€33.74", "€408.70", "€1,915.54", "€1,178.99", "€66.24 (2)"):
        assert shown in body
    assert "card: 3 attempted, 2 succeeded, €2,357.98 captured" in body
    assert "insufficient funds: 1" in body
    assert "66.67 %" in body  # the success rate, with its unit
    for raw in ("235798", "191554", '"amount"'):
        assert raw not in body


def test_a_webhook_event_shows_its_amount_formatted_above_the_raw_payload(admin_client):
    event = WebhookEvent.objects.create(
        stripe_id="evt_1",
        type="charge.refunded",
        created=AT,
        object_id="ch_1",
        payload={"data": {"object": {"id": "ch_1", "amount": 19900, "currency": "eur"}}},
    )
    body = page_text(admin_client, reverse("admin:payments_webhookevent_change", args=[event.pk]))
    assert "€199.00" in body
    # The payload stays as Stripe signed it, marked machine-readable (the e2e crawl skips it).
    assert "data-machine-readable" in body and "19900" in body


# --- Ids and labels -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["payment", "dispute", "refund"])
def test_titles_show_stripe_ids_as_they_are(admin_client, kind):
    if kind == "payment":
        obj = PaymentFactory(stripe_payment_intent_id="pi_gytS3abc")
        url = reverse("admin:payments_payment_change", args=[obj.pk])
        stripe_id = "pi_gytS3abc"
    elif kind == "dispute":
        obj = DisputeFactory(stripe_id="dp_4wBxyz")
        url = reverse("admin:payments_dispute_change", args=[obj.pk])
        stripe_id = "dp_4wBxyz"
    else:
        obj = RefundFactory(stripe_id="re_9kLmn")
        # Refunds have no page of their own: the payment page lists them; its title is the
        # payment's id.
        url = reverse("admin:payments_payment_change", args=[obj.payment.pk])
        stripe_id = obj.payment.stripe_payment_intent_id
    body = page_text(admin_client, url)
    header = body[body.index("<h1") : body.index("</h1>")]
    assert stripe_id in header
    assert stripe_id.capitalize() not in header
    # Section and model names keep their capital.
    assert "Payments" in header


def test_plural_labels_read_as_english(admin_client):
    assert BalanceEntry._meta.verbose_name_plural == "balance entries"
    assert PaymentRetry._meta.verbose_name_plural == "payment retries"
    body = page_text(admin_client, reverse("admin:index"))
    assert "retrys" not in body.lower() and "entrys" not in body.lower()


def test_scheduled_jobs_columns_are_in_words(admin_client):
    call_command("loaddata", "groups", verbosity=0)
    Schedule.objects.create(name="demo", func="management.jobs.stripe_sync_scheduled", minutes=15)
    body = page_text(admin_client, reverse("admin:django_q_schedule_changelist"))
    assert "Last run" in body
    assert "Last_run" not in body


def test_payment_list_created_column_names_the_time_zone(admin_client):
    PaymentFactory(created=timezone.make_aware(datetime(2026, 12, 1, 13, 47)))
    body = page_text(admin_client, reverse("admin:payments_payment_changelist"))
    assert "2026-12-01 13:47 UTC" in body
    assert Payment.objects.count() == 1
