"""The instructor's monthly statement as a printable A4 PDF (reportlab).

Page 1 carries who and when, then the summary that adds up (opening balance, one line per
group of entries, closing balance, and what of the closing balance is available or still on
hold); then one table per group with every entry of the month and its total. Every figure
comes from reports.statements.Statement, which reads the earnings ledger only.
"""

from __future__ import annotations

from html import escape
from io import BytesIO

from django.conf import settings
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from backoffice.formats import format_date, format_datetime

from .pdf import GRID, HEAD_BG, STYLES, _footer, _table
from .statements import Statement, month_label

NEGATIVE = colors.HexColor("#b91c1c")
NEGATIVE_BALANCE_TEXT = (
    "The balance is negative: {amount} is owed back to {company}. It is netted from the next "
    "payouts; nothing is paid out until the balance is positive again."
)
MONTH_TO_DATE_TEXT = "Month to date: the figures are those of {as_of}; the month is not over."
EMPTY_MONTH_TEXT = "No entries in this month."
SECTION_COUNT_NOUNS = {"earnings": "payment"}
# Groups holding several kinds name each line's kind (a payout, its return, a reversal).
MIXED_SECTIONS = frozenset({"disputes", "payouts", "other"})
WIDTH = 180 * mm
# Date, reference (a whole Stripe id on one line), description, amount: 180 mm.
SECTION_COLUMNS = [22 * mm, 50 * mm, 81 * mm, 27 * mm]


def statement_filename(statement: Statement) -> str:
    """statement-<instructor pk>-<yyyy-mm>-<currency>.pdf: sorts by month in a folder."""
    return f"statement-{statement.instructor.pk}-{statement.month:%Y-%m}-{statement.currency}.pdf"


def _count(key: str, n: int) -> str:
    noun = SECTION_COUNT_NOUNS.get(key, "entry")
    plural = noun if n == 1 else ("entries" if noun == "entry" else f"{noun}s")
    return f"{n:,} {plural}"


def _line_text(line, statement: Statement, *, show_kind: bool) -> str:
    """What a line says under 'Description': the course and the payment's amount for a
    payment's entries, the payout's number for a payout's."""
    parts = []
    if line.description:
        parts.append(escape(line.description))
    if line.payment_amount is not None:
        parts.append(f"payment of {escape(statement.money(line.payment_amount))}")
    if line.payout_id is not None and not line.description:
        parts.append(f"payout #{line.payout_id}")
    if show_kind:
        parts.insert(0, f"<i>{escape(line.kind_label)}</i>")
    return " · ".join(parts) or "—"


def _reference(line) -> str:
    """The payment for a payment's earning; the payment and the entry's own reference (the
    refund, the dispute, the correction) for its later entries; else the reference."""
    if line.payment_intent_id and line.kind != "earning":
        return f"{escape(line.payment_intent_id)}<br/>{escape(line.reference)}"
    return escape(line.payment_intent_id or line.reference)


def instructor_statement_pdf(statement: Statement) -> bytes:
    """The statement as PDF bytes, built in memory."""
    buffer = BytesIO()
    instructor = statement.instructor
    period = month_label(statement.month)
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"Earnings statement {period} {statement.currency.upper()} - {instructor.name}",
        author=settings.REPORTS_COMPANY_NAME,
    )
    small = STYLES["Normal"].clone("statement_small", fontSize=8, leading=10)
    company = settings.REPORTS_COMPANY_NAME
    who = [f"<b>{escape(instructor.name)}</b>"]
    if instructor.email:
        who.append(escape(instructor.email))
    if instructor.external_id:
        who.append(f"Marketplace id {escape(instructor.external_id)}")
    who.append(
        f"Paid to Stripe account {escape(instructor.stripe_account_id)}"
        if instructor.stripe_account_id
        else "Paid by bank transfer"
    )
    parties = Table(
        [
            [
                Paragraph(
                    f"<b>{escape(company)}</b><br/>{escape(settings.REPORTS_COMPANY_ADDRESS)}",
                    STYLES["Normal"],
                ),
                Paragraph("<br/>".join(who), STYLES["Normal"]),
            ]
        ],
        colWidths=[90 * mm, 90 * mm],
        hAlign="LEFT",
        style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)],
    )
    first_day = format_date(statement.start)
    last_day = format_date(statement.last_day)
    facts = _table(
        [
            ["Period", f"{first_day} to {last_day} ({statement.start.tzname()})"],
            ["Currency", statement.currency.upper()],
            ["Generated", format_datetime(statement.generated_at)],
        ],
        [40 * mm, WIDTH - 40 * mm],
        align_right_from=2,
        header=False,
    )
    summary_rows = [
        ["Summary", statement.currency.upper()],
        [f"Opening balance on {first_day}", statement.money(statement.opening_balance)],
    ]
    for section in statement.sections:
        summary_rows.append(
            [
                f"{section.title} ({_count(section.key, len(section.lines))})",
                statement.money(section.total),
            ]
        )
    closing_at = last_day if statement.is_complete else format_datetime(statement.as_of)
    summary_rows += [
        [f"Closing balance on {closing_at}", statement.money(statement.closing_balance)],
        ["  of which available for payout", statement.money(statement.closing_available)],
        ["  of which still on hold", statement.money(statement.closing_on_hold)],
    ]
    summary = _table(summary_rows, [WIDTH - 45 * mm, 45 * mm])
    closing_row = len(summary_rows) - 3
    style = [("FONTNAME", (0, closing_row), (-1, closing_row), "Helvetica-Bold")]
    for offset, amount in enumerate(
        (statement.closing_balance, statement.closing_available, statement.closing_on_hold)
    ):
        if amount < 0:
            style.append(
                ("TEXTCOLOR", (1, closing_row + offset), (1, closing_row + offset), NEGATIVE)
            )
    summary.setStyle(TableStyle(style))

    story = [
        Paragraph(f"Earnings statement: {period}", STYLES["Title"]),
        parties,
        Spacer(0, 5 * mm),
        facts,
        Spacer(0, 6 * mm),
        summary,
    ]
    if not statement.is_complete:
        story += [
            Spacer(0, 2 * mm),
            Paragraph(MONTH_TO_DATE_TEXT.format(as_of=format_datetime(statement.as_of)), small),
        ]
    if statement.closing_balance < 0:
        warning = STYLES["Normal"].clone("statement_negative", textColor=NEGATIVE)
        story += [
            Spacer(0, 3 * mm),
            Paragraph(
                escape(
                    NEGATIVE_BALANCE_TEXT.format(
                        amount=statement.money(-statement.closing_balance), company=company
                    )
                ),
                warning,
            ),
        ]
    if not statement.sections:
        story += [Spacer(0, 6 * mm), Paragraph(EMPTY_MONTH_TEXT, STYLES["Normal"])]
    for section in statement.sections:
        story += [Spacer(0, 6 * mm), _section_table(section, statement, small)]
    story += [
        Spacer(0, 6 * mm),
        Paragraph(
            "Amounts are in "
            f"{statement.currency.upper()}; positive amounts are owed to you, negative ones "
            "reduce what you are owed. An earning is available for payout "
            f"{settings.PAYOUT_HOLD_DAYS} days after the payment; a refund or dispute of the "
            "same payment shares its date. Each entry has a unique reference.",
            small,
        ),
    ]
    footer = _statement_footer(statement)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _section_table(section, statement: Statement, small) -> Table:
    """One group's entries and total. Its title is the table's first row (repeated with the
    column headers on each page it spans), so a long group starts right under the summary
    instead of leaving page 1 half empty."""
    show_kind = section.key in MIXED_SECTIONS
    rows = [
        [section.title, "", "", ""],
        ["Date", "Reference", "Description", "Amount"],
    ]
    for line in section.lines:
        rows.append(
            [
                format_date(line.occurred_at),
                Paragraph(_reference(line), small),
                Paragraph(_line_text(line, statement, show_kind=show_kind), small),
                statement.money(line.amount),
            ]
        )
    rows.append(["", "", f"Total {section.title.lower()}", statement.money(section.total)])
    table = Table(rows, colWidths=SECTION_COLUMNS, hAlign="LEFT", repeatRows=2)
    style = [
        ("SPAN", (0, 0), (-1, 0)),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, 0), 11),
        ("BOTTOMPADDING", (0, 0), (-1, 0), 5),
        ("LEFTPADDING", (0, 0), (-1, 0), 0),
        ("FONTNAME", (0, 1), (-1, 1), "Helvetica-Bold"),
        ("BACKGROUND", (0, 1), (-1, 1), HEAD_BG),
        ("FONTSIZE", (0, 1), (-1, -1), 9),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, GRID),
        ("ALIGN", (3, 1), (3, -1), "RIGHT"),
        ("VALIGN", (0, 1), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 1), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 1), (-1, -1), 3),
        ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
    ]
    for index, line in enumerate(section.lines, start=2):
        if line.amount < 0:
            style.append(("TEXTCOLOR", (3, index), (3, index), NEGATIVE))
    table.setStyle(TableStyle(style))
    return table


def _statement_footer(statement: Statement):
    """The company and the page number (as on every document), plus whose statement this is,
    so that a loose page still says what it belongs to."""
    label = (
        f"{statement.instructor.name} · {month_label(statement.month)} · "
        f"{statement.currency.upper()}"
    )

    def footer(canvas, doc) -> None:
        _footer(canvas, doc)
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.grey)
        canvas.drawCentredString(A4[0] / 2, 10 * mm, label)
        canvas.restoreState()

    return footer
