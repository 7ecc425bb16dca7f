"""PDF documents (reportlab): the payment report for the accountant, receipts, credit notes.

Built in memory and returned as bytes; everything shown comes from rows already stored, so
the same receipt always renders the same figures.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from io import BytesIO

from django.conf import settings
from django.utils import timezone
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from backoffice.formats import format_datetime
from payments.money import decimal_places, format_money, is_known_currency, to_decimal_stored

from .models import DocumentKind, Receipt

STYLES = getSampleStyleSheet()
# A heading never sits alone at the bottom of a page.
for _name in ("Heading2", "Heading3"):
    STYLES[_name].keepWithNext = 1
BRAND = colors.HexColor("#7e22ce")
GRID = colors.HexColor("#d4d4d8")
HEAD_BG = colors.HexColor("#f4f4f5")


def _table(rows, col_widths=None, *, align_right_from: int = 1, header: bool = True) -> Table:
    table = Table(rows, colWidths=col_widths, hAlign="LEFT", repeatRows=1 if header else 0)
    head = (
        [("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG)]
        if header
        else []
    )
    table.setStyle(
        TableStyle(
            [
                *head,
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
                ("ALIGN", (align_right_from, 0), (-1, -1), "RIGHT"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _footer(canvas, doc) -> None:
    canvas.saveState()
    canvas.setFont("Helvetica", 8)
    canvas.setFillColor(colors.grey)
    canvas.drawString(15 * mm, 10 * mm, settings.REPORTS_COMPANY_NAME)
    canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"Page {doc.page}")
    canvas.restoreState()


# What a day range with no captured payment shows instead of a chart: an empty chart would
# get reportlab's automatic axis, 0 to 0.01 (a hundredth of a yen).
NO_REVENUE_TEXT = "No captured payments in this period: no revenue to chart."


def _axis_step(top: float, smallest: float) -> float:
    """A round value-axis step (1, 2 or 5 times a power of ten) giving about five ticks up to
    `top`, never finer than the currency's minor unit `smallest` (1 for yen, 0.01 for USD)."""
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return max(step, smallest)


def _revenue_chart(currency: str, daily: list[dict]) -> Drawing:
    """Bar chart of daily revenue in major units of one currency; ticks in whole minor units
    (whole yen, cents), and a sentence instead of an empty chart when nothing was captured."""
    width, height = 170 * mm, 60 * mm
    drawing = Drawing(width, height)
    drawing.add(
        String(
            12 * mm,
            height - 6 * mm,
            f"Daily revenue ({currency.upper()})",
            fontName="Helvetica-Bold",
            fontSize=9,
        )
    )
    values = [float(to_decimal_stored(day["total_revenue"], currency)) for day in daily]
    if not any(values):
        drawing.height = 14 * mm
        drawing.contents[0].y = drawing.height - 6 * mm
        drawing.add(String(12 * mm, 2 * mm, NO_REVENUE_TEXT, fontName="Helvetica", fontSize=9))
        return drawing
    # A currency we do not know (a bad row) is charted unscaled, in whole units.
    places = decimal_places(currency) if is_known_currency(currency) else 0
    step = _axis_step(max(values), 10.0**-places)
    chart = VerticalBarChart()
    chart.x, chart.y = 12 * mm, 10 * mm
    chart.width, chart.height = width - 18 * mm, height - 20 * mm
    chart.data = [values]
    chart.bars[0].fillColor = BRAND
    chart.bars[0].strokeColor = None
    labels = [day["day"][5:] for day in daily]
    every = max(1, len(labels) // 10)
    chart.categoryAxis.categoryNames = [
        label if i % every == 0 else "" for i, label in enumerate(labels)
    ]
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueStep = step
    chart.valueAxis.valueMax = step * math.ceil(max(values) / step)
    shown = 0 if step >= 1 else places
    chart.valueAxis.labelTextFormat = lambda value: f"{value:,.{shown}f}"
    drawing.add(chart)
    return drawing


def _percent(value) -> str:
    return "—" if value is None else f"{value:.2f} %"


def payment_report_pdf(report: dict) -> bytes:
    """The report of reports.selectors.payment_report as a printable A4 document."""
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"Payment report {report['start']} to {report['end']}",
        author=settings.REPORTS_COMPANY_NAME,
    )
    story = [
        Paragraph(f"Payment report ({report['period']})", STYLES["Title"]),
        Paragraph(
            f"{report['start']} to {report['end']} &nbsp;·&nbsp; generated "
            f"{format_datetime(datetime.fromisoformat(report['generated_at']))} &nbsp;·&nbsp; "
            "amounts per currency, never converted",
            STYLES["Normal"],
        ),
        Spacer(0, 6 * mm),
    ]
    if not report["currencies"]:
        story.append(Paragraph("No payments in this period.", STYLES["Normal"]))
    for index, (code, data) in enumerate(report["currencies"].items()):
        if index:
            story.append(PageBreak())

        def money(amount, code=code):
            return format_money(amount, code)

        summary = [
            ["Figure", code.upper()],
            ["Transactions", f"{data['total_transactions']:,}"],
            ["Succeeded", f"{data['succeeded_transactions']:,}"],
            ["Failed", f"{data['failed_transactions']:,}"],
            ["Canceled", f"{data['canceled_transactions']:,}"],
            ["Success rate", _percent(data["success_rate"])],
            ["Revenue (gross)", money(data["total_revenue"])],
            ["Average transaction", money(data["avg_transaction_amount"])],
            ["Stripe fees", money(data["fees"]["stripe"])],
            ["Platform fees", money(data["fees"]["platform"])],
            ["Net to instructors", money(data["net"])],
            [f"Refunds ({data['refunds']['count']:,})", money(data["refunds"]["amount"])],
            ["Disputes opened", f"{data['disputes_opened']:,}"],
        ]
        methods = [["Payment method", "Share of transactions"]] + [
            [name.replace("_", " "), _percent(share)]
            for name, share in data["payment_method_breakdown"].items()
        ]
        reasons = [["Failure reason", "Share of failures"]] + [
            [name.replace("_", " "), _percent(share)]
            for name, share in data["failure_reasons"].items()
        ]
        if len(reasons) == 1:
            reasons.append(["No failed payments", ""])
        story += [
            Paragraph(f"{code.upper()}", STYLES["Heading2"]),
            _revenue_chart(code, data.get("daily", [])),
            Spacer(0, 4 * mm),
            KeepTogether([_table(summary, [70 * mm, 50 * mm])]),
            Spacer(0, 5 * mm),
            Table(
                [[_table(methods, [45 * mm, 35 * mm]), _table(reasons, [45 * mm, 35 * mm])]],
                hAlign="LEFT",
                style=[("VALIGN", (0, 0), (-1, -1), "TOP")],
            ),
        ]
        daily = data.get("daily", [])
        if len(daily) > 1:
            rows = [["Day", "Transactions", "Revenue", "Success rate"]] + [
                [
                    day["day"],
                    f"{day['total_transactions']:,}",
                    money(day["total_revenue"]),
                    _percent(day["success_rate"]),
                ]
                for day in daily
            ]
            story += [
                Spacer(0, 5 * mm),
                Paragraph("Per day", STYLES["Heading3"]),
                _table(rows, [35 * mm, 30 * mm, 40 * mm, 30 * mm]),
            ]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def receipt_pdf(document: Receipt) -> bytes:
    """A receipt (or credit note) a customer can keep: number, date, what, how much."""
    payment = document.payment
    customer = payment.customer
    is_credit = document.kind == DocumentKind.CREDIT_NOTE
    title = "Credit note" if is_credit else "Receipt"
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=f"{title} {document.number}",
        author=settings.REPORTS_COMPANY_NAME,
    )
    issued = timezone.localtime(document.issued_at).strftime("%d %B %Y")
    paid = timezone.localtime(payment.succeeded_at or payment.created).strftime("%d %B %Y")
    company = settings.REPORTS_COMPANY_NAME
    address = settings.REPORTS_COMPANY_ADDRESS
    billed_to = "<br/>".join(
        escape(part) for part in ((customer.name, customer.email) if customer else ("—",)) if part
    )
    parties = Table(
        [
            [
                Paragraph(f"<b>{escape(company)}</b><br/>{escape(address)}", STYLES["Normal"]),
                Paragraph(f"<b>Billed to</b><br/>{billed_to}", STYLES["Normal"]),
            ]
        ],
        colWidths=[85 * mm, 85 * mm],
        hAlign="LEFT",
        style=[("VALIGN", (0, 0), (-1, -1), "TOP")],
    )
    facts = [
        ["Number", document.number],
        ["Date issued", issued],
        ["Payment date", paid],
        ["Payment reference", payment.stripe_payment_intent_id],
        ["Payment method", payment.get_payment_method_type_display()],
    ]
    if is_credit:
        original = payment.receipts.filter(kind=DocumentKind.RECEIPT).first()
        facts.append(["Credits receipt", original.number if original else "—"])
        if document.stripe_refund_id:
            facts.append(["Refund reference", document.stripe_refund_id])
    amount = format_money(document.amount, document.currency, with_code=True)
    lines = [
        ["Description", "Amount"],
        [
            Paragraph(
                escape(payment.description or payment.get_product_kind_display()),
                STYLES["Normal"],
            ),
            f"-{amount}" if is_credit else amount,
        ],
        ["Total refunded" if is_credit else "Total paid", f"-{amount}" if is_credit else amount],
    ]
    items = _table(lines, [120 * mm, 50 * mm])
    items.setStyle(TableStyle([("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold")]))
    story = [
        Paragraph(f"{title} {document.number}", STYLES["Title"]),
        parties,
        Spacer(0, 8 * mm),
        _table(facts, [50 * mm, 120 * mm], align_right_from=2, header=False),
        Spacer(0, 8 * mm),
        items,
        Spacer(0, 10 * mm),
        Paragraph(
            "This credit note reverses the amount above of the receipt it names."
            if is_credit
            else "Paid in full. Thank you.",
            STYLES["Normal"],
        ),
    ]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def dispute_history_pdf(packet) -> bytes:
    """The account history attached to a dispute response: the purchase, hours used from the
    balance ledger, the customer's other payments, refunds and refund requests with their
    notes. `packet` is a reports.dispute_evidence.EvidencePacket."""
    payment = packet.payment
    customer = payment.customer
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=f"Account history for dispute {packet.dispute.stripe_id}",
        author=settings.REPORTS_COMPANY_NAME,
    )
    who = ", ".join(p for p in ((customer.name, customer.email) if customer else ()) if p)
    story = [
        Paragraph("Account history", STYLES["Title"]),
        Paragraph(
            f"{escape(settings.REPORTS_COMPANY_NAME)} · payment "
            f"{escape(payment.stripe_payment_intent_id)} · customer {escape(who or '—')}",
            STYLES["Normal"],
        ),
        Spacer(0, 6 * mm),
        Paragraph("The purchase", STYLES["Heading2"]),
        Paragraph(escape(packet.purchase), STYLES["Normal"]),
    ]
    if packet.hours is not None:
        hours = packet.hours
        story += [
            Paragraph("Hours used (balance ledger)", STYLES["Heading3"]),
            _table(
                [
                    ["Package bought", f"{hours.purchased / 60:g} h"],
                    ["Lessons taken since", f"{hours.used_since_purchase / 60:g} h"],
                    ["Used from this package", f"{hours.consumed_from_package / 60:g} h"],
                    [
                        "Hours left now",
                        "—" if hours.balance_now is None else f"{hours.balance_now / 60:g} h",
                    ],
                ],
                [70 * mm, 50 * mm],
                header=False,
            ),
        ]
        if hours.lessons:
            story.append(
                _table(
                    [["Lesson", "Minutes", "Note"]]
                    + [
                        [format_datetime(when), str(m), note or ""]
                        for when, m, note in hours.lessons
                    ],
                    [45 * mm, 25 * mm, 100 * mm],
                    align_right_from=1,
                )
            )
    story.append(Paragraph("Other payments by the customer", STYLES["Heading2"]))
    if packet.history:
        story.append(
            _table(
                [["Date", "Reference", "What", "Amount", "Status"]]
                + [
                    [
                        timezone.localtime(line.when).strftime("%Y-%m-%d"),
                        line.reference,
                        Paragraph(escape(line.description), STYLES["Normal"]),
                        line.amount,
                        line.status,
                    ]
                    for line in packet.history
                ],
                [22 * mm, 48 * mm, 50 * mm, 25 * mm, 25 * mm],
                align_right_from=3,
            )
        )
    else:
        story.append(Paragraph("None.", STYLES["Normal"]))
    for heading, lines in (
        ("Refunds of this payment", packet.refunds),
        ("Refund requests and messages", packet.messages),
    ):
        story.append(Paragraph(heading, STYLES["Heading2"]))
        story += [Paragraph(escape(line), STYLES["Normal"]) for line in lines] or [
            Paragraph("None.", STYLES["Normal"])
        ]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()
