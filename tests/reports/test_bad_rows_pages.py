"""One bad row never breaks a page (DESIGN decision 15). Rows the boundary checks would now
refuse may already be stored (written before the checks, by hand, by a migration): a
negative amount, a currency we do not know ("usx": three letters, as the column holds on
PostgreSQL; SQLite would keep the issue's "usdx" too), a dispute status we do not know.
Every admin page that lists or shows them answers 200, money in an unknown currency reads
raw with a warning badge, and an unknown status reads raw with an "unknown" badge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.admin.display import UNKNOWN_STATUS_LABEL, WARN_UNKNOWN_CURRENCY
from payments.models import Dispute, Payment
from reports.rollups import generate_analytics
from tests.factories import DisputeFactory, PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bad_rows():
    """Written straight to the database, around every check."""
    now = timezone.now()
    usx = PaymentFactory(
        stripe_payment_intent_id="pi_usx", amount=20300, currency="usx", created=now
    )
    # A payment's amount cannot go below 0 (a CHECK constraint); its fee and net can.
    negative = PaymentFactory(stripe_payment_intent_id="pi_negative", amount=500, created=now)
    Payment.objects.filter(pk=negative.pk).update(net=-900)
    disputed = PaymentFactory(stripe_payment_intent_id="pi_disputed", status="disputed")
    mystery = DisputeFactory(
        stripe_id="du_mystery", payment=disputed, status="escalated_to_arbitration"
    )
    broken = DisputeFactory(
        stripe_id="du_usx", payment=usx, amount=-100, currency="usx", status="lost"
    )
    RefundRequestFactory(payment=usx, amount=100, currency="usx")
    # The analytics read rollups: build them over the bad payments too.
    today = timezone.localdate()
    generate_analytics(start=today - timedelta(days=2), end=today)
    return {"usx": usx, "negative": negative, "mystery": mystery, "broken": broken}


def get(client, name, *args, query=""):
    response = client.get(reverse(name, args=args) + query)
    assert response.status_code == 200, (name, response.status_code)
    return response.content.decode()


def test_the_dashboard_answers(admin_client, bad_rows):
    page = get(admin_client, "admin:index")
    assert "20300 usx" in page


def test_the_disputes_list_and_pages_answer(admin_client, bad_rows):
    page = get(admin_client, "admin:payments_dispute_changelist")
    assert UNKNOWN_STATUS_LABEL.format(status="escalated_to_arbitration") in page
    assert "-100 usx" in page and WARN_UNKNOWN_CURRENCY in page
    page = get(admin_client, "admin:payments_dispute_change", bad_rows["mystery"].pk)
    assert UNKNOWN_STATUS_LABEL.format(status="escalated_to_arbitration") in page
    page = get(admin_client, "admin:payments_dispute_change", bad_rows["broken"].pk)
    assert "-100 usx" in page and WARN_UNKNOWN_CURRENCY in page
    get(admin_client, "admin:payments_dispute_changelist", query="?status__exact=lost")


def test_the_payments_list_and_pages_answer(admin_client, bad_rows):
    page = get(admin_client, "admin:payments_payment_changelist")
    assert "20300 usx" in page and WARN_UNKNOWN_CURRENCY in page
    get(admin_client, "admin:payments_payment_changelist", query="?currency=usx")
    for key in ("usx", "negative"):
        get(admin_client, "admin:payments_payment_change", bad_rows[key].pk)
    page = get(admin_client, "admin:payments_payment_change", bad_rows["mystery"].payment_id)
    assert UNKNOWN_STATUS_LABEL.format(status="escalated_to_arbitration") in page


def test_the_analytics_answer(admin_client, bad_rows):
    page = get(admin_client, "admin:reports_dailyrollup_changelist")
    assert "20300 usx" in page and WARN_UNKNOWN_CURRENCY in page
    get(admin_client, "admin:reports_dailyrollup_changelist", query="?currency=usx")


def test_other_pages_listing_the_rows_answer(admin_client, bad_rows):
    for name in (
        "admin:refunds_refundrequest_changelist",
        "admin:payments_customer_changelist",
        "admin:payments_fraudalert_changelist",
        "admin:reports_receipt_changelist",
    ):
        get(admin_client, name)
    get(admin_client, "admin:payments_customer_change", bad_rows["usx"].customer_id)


def test_the_ledger_counts_an_unknown_dispute_status_as_open(bad_rows):
    from payments import ledger

    payment = bad_rows["mystery"].payment
    facts = ledger.payment_facts([payment.pk])[payment.pk]
    assert facts.dispute_open
    assert not Dispute.objects.get(pk=bad_rows["mystery"].pk).status_known


def test_exports_and_the_payment_report_survive_the_rows(admin_client, bad_rows):
    """Exports read stored rows back too: an unknown currency's amount is written unscaled
    (its minor unit is unknown) beside its currency, instead of ending the download."""
    import csv
    import io

    from reports.pdf import payment_report_pdf
    from reports.selectors import payment_report

    response = admin_client.get(reverse("admin:payments_payment_export_csv_stream"))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    usx = next(r for r in rows if r["stripe_payment_intent_id"] == "pi_usx")
    assert (usx["amount"], usx["currency"]) == ("20300", "usx")
    report = payment_report(period="daily", end=timezone.localdate())
    assert report["currencies"]["usx"]["total_revenue_display"] == "20300 usx"
    assert payment_report_pdf(report).startswith(b"%PDF")


def test_refund_pages_of_a_bad_payment_answer_and_refuse_it(admin_client, bad_rows):
    from payments.money import ERR_UNKNOWN_CURRENCY

    usx = bad_rows["usx"]
    get(admin_client, "admin:refunds_payment_refund", usx.pk)
    request = usx.refund_requests.get()
    get(admin_client, "admin:refunds_refundrequest_change", request.pk)
    response = admin_client.post(
        reverse("admin:refunds_payment_refund", args=[usx.pk]),
        {"amount": "1", "reason": "requested_by_customer", "note": "try"},
    )
    assert response.status_code == 400  # the page's answer to a refused form
    assert response.context["form"].errors["amount"] == [
        ERR_UNKNOWN_CURRENCY.format(currency="usx")
    ]
    assert usx.refund_requests.count() == 1
