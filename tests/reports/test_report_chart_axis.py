"""The revenue charts. The daily PDF report's: a day without sales says so instead of drawing
an empty chart (reportlab's automatic axis went 0 to 0.01, a hundredth of a yen), and the
value axis ticks in whole minor units of the currency. The admin's (Chart.js): whole units."""

import json
from datetime import date

import pytest
from reportlab.graphics.charts.barcharts import VerticalBarChart

from payments.models import Payment
from reports.dashboard import REVENUE_CHART_OPTIONS
from reports.pdf import NO_REVENUE_TEXT, _axis_step, _revenue_chart, payment_report_pdf
from reports.rollups import generate_analytics
from reports.selectors import payment_report
from tests.factories import PaymentFactory
from tests.reports.helpers import pdf_text
from tests.reports.test_payment_report import at

DAY = date(2026, 5, 10)


def chart_of(drawing) -> VerticalBarChart | None:
    return next((c for c in drawing.contents if isinstance(c, VerticalBarChart)), None)


@pytest.mark.django_db
def test_a_jpy_day_without_sales_says_so_instead_of_a_chart():
    # Only a failed yen payment: the JPY rollup exists with no revenue.
    PaymentFactory(failed=True, currency="jpy", amount=5000, created=at(DAY))
    PaymentFactory(status=Payment.Status.SUCCEEDED, currency="usd", amount=1234, created=at(DAY))
    generate_analytics(start=DAY, end=DAY)
    text = pdf_text(payment_report_pdf(payment_report(period="daily", end=DAY)))
    jpy_page = text[text.index("Daily revenue (JPY)") :]
    assert NO_REVENUE_TEXT in jpy_page
    assert "0.01" not in jpy_page
    # The USD day with sales still has its chart, and no "no revenue" line.
    usd_page = text[: text.index("Daily revenue (JPY)")]
    assert NO_REVENUE_TEXT not in usd_page


def test_no_chart_is_drawn_without_revenue():
    drawing = _revenue_chart("jpy", [{"day": "2026-05-10", "total_revenue": 0}])
    assert chart_of(drawing) is None
    assert NO_REVENUE_TEXT in [getattr(item, "text", None) for item in drawing.contents]


@pytest.mark.parametrize(
    ("currency", "revenue", "step", "labels"),
    [
        # 3 yen: ticks every whole yen, never 0.5 or 0.01.
        ("jpy", [3, 0], 1, ["0", "1", "2", "3"]),
        ("jpy", [12_000, 4_500], 5_000, ["0", "5,000", "10,000", "15,000"]),
        # 3 cents: ticks in cents.
        ("usd", [3, 1], 0.01, ["0.00", "0.01", "0.02", "0.03"]),
        ("usd", [123_456], 500, ["0", "500", "1,000", "1,500"]),
    ],
)
def test_the_value_axis_ticks_in_whole_minor_units(currency, revenue, step, labels):
    daily = [{"day": f"2026-05-{10 + i}", "total_revenue": r} for i, r in enumerate(revenue)]
    axis = chart_of(_revenue_chart(currency, daily)).valueAxis
    assert axis.valueStep == pytest.approx(step)
    ticks = [axis.valueMin + i * axis.valueStep for i in range(len(labels))]
    assert [axis.labelTextFormat(t) for t in ticks] == labels
    assert axis.valueMax >= max(revenue) / (100 if currency == "usd" else 1)


def test_the_admin_revenue_charts_tick_in_whole_units_from_zero():
    y_axis = json.loads(REVENUE_CHART_OPTIONS)["scales"]["y"]
    assert y_axis["beginAtZero"] is True
    assert y_axis["ticks"]["precision"] == 0


def test_axis_steps_are_round_numbers():
    assert _axis_step(10, 1) == 2
    assert _axis_step(7, 1) == 2
    assert _axis_step(0.3, 1) == 1
    assert _axis_step(1234.56, 0.01) == 500
    assert _axis_step(0.04, 0.01) == 0.01
