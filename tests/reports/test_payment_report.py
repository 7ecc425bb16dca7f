"""The payment report: computed from the rollups, written as JSON, CSV and PDF."""

import csv
import io
import json
from datetime import date, datetime, time, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from payments.models import Payment
from reports.models import DailyRollup
from reports.payment_report_files import ERR_PDF_NEEDS_OUTPUT
from reports.rollups import generate_analytics
from reports.selectors import ERR_UNKNOWN_PERIOD, payment_report, period_range
from tests.factories import DisputeFactory, PaymentFactory, RefundFactory
from tests.reports.helpers import pdf_text

pytestmark = pytest.mark.django_db
END = date(2026, 5, 10)


def at(day: date, hour: int = 12):
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.fixture
def week():
    """A week of mixed payments in two currencies, rolled up."""
    for offset in range(7):
        day = END - timedelta(days=offset)
        PaymentFactory.create_batch(3, created=at(day), amount=1000 + offset)
        PaymentFactory(created=at(day), currency="eur", amount=2000, payment_method_type="wallet")
        PaymentFactory(failed=True, created=at(day), decline_code="expired_card")
        if offset % 2:
            PaymentFactory(failed=True, created=at(day), currency="eur", decline_code="")
        PaymentFactory(status=Payment.Status.CANCELED, created=at(day), stripe_fee=0)
    RefundFactory(amount=300, created=at(END), payment=PaymentFactory(created=at(END)))
    DisputeFactory(created=at(END - timedelta(days=1)))
    PaymentFactory(created=at(END + timedelta(days=1)))  # outside the period
    generate_analytics(start=END - timedelta(days=10), end=END + timedelta(days=1))


def test_periods_end_yesterday_by_default_and_reject_unknown_names():
    yesterday = timezone.localdate() - timedelta(days=1)
    assert period_range(period="daily") == (yesterday, yesterday)
    assert period_range(period="weekly", end=END) == (END - timedelta(days=6), END)
    assert period_range(period="monthly", end=END) == (END - timedelta(days=29), END)
    with pytest.raises(ValueError) as exc:
        period_range(period="hourly")
    assert str(exc.value) == ERR_UNKNOWN_PERIOD.format(period="hourly")


def test_json_report_matches_the_rollups(week):
    report = payment_report(period="weekly", end=END)
    rows = DailyRollup.objects.filter(day__gte=END - timedelta(days=6), day__lte=END)
    assert set(report["currencies"]) == {"usd", "eur"}
    for code, data in report["currencies"].items():
        mine = rows.filter(currency=code)
        total = sum(r.attempted_count for r in mine)
        succeeded = sum(r.succeeded_count for r in mine)
        failed = sum(r.failed_count for r in mine)
        gross = sum(r.gross_amount for r in mine)
        assert data["total_transactions"] == total
        assert data["total_revenue"] == gross
        assert data["success_rate"] == round(100 * succeeded / (succeeded + failed), 2)
        assert data["avg_transaction_amount"] == round(gross / succeeded)
        assert data["fees"]["stripe"] == sum(r.stripe_fee_amount for r in mine)
        assert data["fees"]["platform"] == sum(r.platform_fee_amount for r in mine)
        assert data["refunds"]["amount"] == sum(r.refunded_amount for r in mine)
        assert data["disputes_opened"] == sum(r.disputes_opened for r in mine)
        methods = {}
        for r in mine:
            for method, figures in r.payment_methods.items():
                methods[method] = methods.get(method, 0) + figures["attempted"]
        assert data["payment_method_breakdown"] == {
            m: round(100 * n / total, 2) for m, n in methods.items()
        }
        assert sum(data["failure_reasons"].values()) == pytest.approx(100, abs=0.05)
        assert len(data["daily"]) == 7


def test_json_report_figures_for_a_known_week(week):
    usd = payment_report(period="weekly", end=END)["currencies"]["usd"]
    # 7 days x (3 succeeded + 1 failed + 1 canceled) + the refunded payment's own row.
    assert usd["total_transactions"] == 36
    assert usd["succeeded_transactions"] == 22
    assert usd["failed_transactions"] == 7
    assert usd["failure_reasons"] == {"expired_card": 100.0}
    assert usd["refunds"] == {"count": 1, "amount": 300, "amount_display": "$3.00"}
    eur = payment_report(period="weekly", end=END)["currencies"]["eur"]
    assert eur["payment_method_breakdown"] == {"wallet": 70.0, "card": 30.0}
    # failed EUR payments without a decline code fall back to the failure code
    assert eur["failure_reasons"] == {"card_declined": 100.0}


def test_command_prints_json_and_writes_csv_and_pdf(week, tmp_path, capsys):
    call_command("manage_payments", "--payment-report", "weekly", "--date", END.isoformat())
    printed = json.loads(capsys.readouterr().out)
    assert printed["currencies"]["usd"]["total_transactions"] == 36

    csv_path = tmp_path / "weekly.csv"
    call_command(
        "manage_payments",
        "--payment-report",
        "weekly",
        "--date",
        END.isoformat(),
        "--format",
        "csv",
        "--output",
        str(csv_path),
    )
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["currency"] for r in rows] == ["eur", "usd"]
    assert rows[1]["total_transactions"] == "36"

    pdf_path = tmp_path / "monthly.pdf"
    call_command(
        "manage_payments",
        "--payment-report",
        "monthly",
        "--date",
        END.isoformat(),
        "--format",
        "pdf",
        "--output",
        str(pdf_path),
    )
    text = pdf_text(pdf_path.read_bytes())
    report = payment_report(period="monthly", end=END)
    assert "Payment report (monthly)" in text
    assert "Daily revenue (USD)" in text
    assert report["currencies"]["usd"]["total_revenue_display"] in text
    assert report["currencies"]["eur"]["net_display"] in text
    assert "expired card" in text


def test_pdf_report_without_output_is_refused():
    with pytest.raises(CommandError) as exc:
        call_command("manage_payments", "--payment-report", "daily", "--format", "pdf")
    assert str(exc.value) == ERR_PDF_NEEDS_OUTPUT


def test_generate_analytics_command_range_and_errors(capsys):
    PaymentFactory(created=at(END))
    call_command(
        "manage_payments",
        "--generate-analytics",
        "--from",
        (END - timedelta(days=2)).isoformat(),
        "--to",
        END.isoformat(),
        "--json",
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["created"], result["start"], result["end"]) == (
        1,
        (END - timedelta(days=2)).isoformat(),
        END.isoformat(),
    )
    call_command("manage_payments", "--generate-analytics", "--date", END.isoformat(), "--json")
    assert json.loads(capsys.readouterr().out)["unchanged"] == 1
    with pytest.raises(CommandError, match="not both"):
        call_command(
            "manage_payments", "--generate-analytics", "--date", "2026-01-01", "--to", "2026-01-02"
        )
    with pytest.raises(CommandError, match="go together"):
        call_command("manage_payments", "--generate-analytics", "--from", "2026-01-01")
    with pytest.raises(CommandError, match="is after"):
        call_command(
            "manage_payments", "--generate-analytics", "--from", "2026-01-02", "--to", "2026-01-01"
        )


def test_pdf_report_page_renders_with_its_chart(week, tmp_path):
    """Rendered to pixels (pypdfium2), page 1 shows the chart's bars in the brand purple."""
    import pypdfium2

    from reports.pdf import payment_report_pdf

    pdf = pypdfium2.PdfDocument(payment_report_pdf(payment_report(period="weekly", end=END)))
    image = pdf[0].render(scale=1).to_pil().convert("RGB")
    image.save(tmp_path / "report-page-1.png")
    purple = sum(
        1
        for r, g, b in image.get_flattened_data()
        if abs(r - 0x7E) < 12 and g < 0x40 and abs(b - 0xCE) < 12
    )
    pages = len(pdf)
    pdf.close()
    assert purple > 500  # the bars; a page without a chart has none
    assert pages >= 2  # each currency starts on its own page
