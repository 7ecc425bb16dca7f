"""The instructor's monthly statement: opening + the month's entries = closing, checked against
the ledger itself (a brute-force sum of the entries and payments' earning_balances), months
in the site time zone, every entry kind in one group, and the PDF that prints it."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry
from reports.statement_pdf import (
    EMPTY_MONTH_TEXT,
    NEGATIVE_BALANCE_TEXT,
    instructor_statement_pdf,
    statement_filename,
)
from reports.statements import (
    ERR_BAD_MONTH,
    OTHER_SECTION,
    SECTIONS,
    instructor_statement,
    month_bounds,
    months_between,
    parse_month,
    statement_periods,
)
from tests.factories import InstructorFactory, PaymentFactory
from tests.reports.helpers import earning_entry as entry
from tests.reports.helpers import pdf_text

pytestmark = pytest.mark.django_db
Kind = EarningEntry.Kind
NOV = date(2026, 11, 1)
NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


def flat_pdf_text(content: bytes) -> str:
    """The PDF's text on one line: table cells come out one per line."""
    return " ".join(pdf_text(content).split())


def at(day: int, month: int = 11, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def test_every_entry_kind_is_in_exactly_one_group():
    grouped = [kind for _, _, kinds in SECTIONS for kind in kinds]
    assert sorted(grouped) == sorted(Kind.values)
    assert len(grouped) == len(set(grouped))


def test_opening_plus_the_months_entries_is_the_closing_balance_and_next_months_opening():
    instructor = InstructorFactory()
    payment = PaymentFactory(instructor=instructor, stripe_payment_intent_id="pi_nov1")
    entry(instructor, 4000, when=at(20, 10))  # October: the opening balance
    entry(instructor, -4000, Kind.PAYOUT, when=at(28, 10))
    entry(instructor, 3710, when=at(3), payment=payment, available=at(10))
    entry(instructor, -1855, Kind.REFUND, when=at(5), payment=payment, available=at(10))
    entry(instructor, 2500, Kind.ADJUSTMENT, when=at(7))
    entry(instructor, 1200, currency="eur", when=at(8))  # another currency: not in USD
    entry(instructor, 999, when=at(2, 12))  # December

    november = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    december = instructor_statement(
        instructor=instructor, currency="usd", month=date(2026, 12, 1), now=NOW
    )

    assert november.opening_balance == 0
    assert [s.key for s in november.sections] == ["earnings", "refunds", "adjustments"]
    assert [s.total for s in november.sections] == [3710, -1855, 2500]
    assert november.closing_balance == 4355 == november.opening_balance + november.movements
    assert november.is_complete
    assert december.opening_balance == november.closing_balance
    assert december.closing_balance == 4355 + 999
    assert not december.is_complete  # NOW is mid-December
    # The last statement up to now is the instructor's balance as the ledger's selector sums it.
    balance = earning_balances(instructor_ids=[instructor.pk], currency="usd", now=NOW)
    assert december.closing_balance == balance[(instructor.pk, "usd")].balance
    assert december.closing_available == balance[(instructor.pk, "usd")].available


def test_closing_on_hold_is_what_was_still_in_the_hold_period_at_the_months_end():
    instructor = InstructorFactory()
    entry(instructor, 1000, when=at(10), available=at(17))  # released inside November
    entry(instructor, 2000, when=at(28), available=at(5, 12))  # still held on Nov 30
    entry(instructor, -300, Kind.REFUND, when=at(29), available=at(5, 12))
    statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    assert statement.closing_balance == 2700
    assert statement.closing_on_hold == 1700
    assert statement.closing_available == 1000
    at_close = earning_balances(instructor_ids=[instructor.pk], currency="usd", now=statement.end)[
        (instructor.pk, "usd")
    ]
    assert (statement.closing_available, statement.closing_on_hold) == (
        at_close.available,
        at_close.on_hold,
    )


def test_a_clawback_shows_a_negative_closing_balance_in_the_pdf():
    instructor = InstructorFactory(name="Ada Negative")
    payment = PaymentFactory(instructor=instructor, stripe_payment_intent_id="pi_clawback")
    entry(instructor, 3710, when=at(2, 10), payment=payment)
    entry(instructor, -3710, Kind.PAYOUT, when=at(20, 10))
    entry(instructor, -3710, Kind.DISPUTE_LOST, when=at(4), payment=payment)
    statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    assert statement.closing_balance == -3710
    text = flat_pdf_text(instructor_statement_pdf(statement))
    negative = NEGATIVE_BALANCE_TEXT.format(amount="$37.10", company="Tutoring Marketplace Ltd")
    assert negative in text
    assert "Closing balance on 2026-11-30 -$37.10" in text
    assert "Disputes (1 entry) -$37.10" in text


def test_months_are_calendar_months_of_the_site_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    instructor = InstructorFactory()
    # 2026-11-01 02:00 UTC is still October 31st in New York.
    entry(instructor, 500, when=datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    entry(instructor, 700, when=datetime(2026, 11, 1, 5, 0, tzinfo=UTC))  # 00:00 in New York
    october = instructor_statement(
        instructor=instructor, currency="usd", month=date(2026, 10, 1), now=NOW
    )
    november = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    assert october.movements == 500
    assert (november.opening_balance, november.movements) == (500, 700)
    start, end = month_bounds(NOV)
    assert start == datetime(2026, 11, 1, tzinfo=ZoneInfo("America/New_York"))
    assert end == datetime(2026, 12, 1, tzinfo=ZoneInfo("America/New_York"))
    assert november.last_day == date(2026, 11, 30)


def test_groups_follow_the_fixed_order_and_a_bad_stored_kind_still_counts():
    instructor = InstructorFactory()
    entry(instructor, -1000, Kind.PAYOUT, when=at(1))
    entry(instructor, 1000, Kind.PAYOUT_RETURNED, when=at(2))
    entry(instructor, 50, Kind.CORRECTION, when=at(3))
    entry(instructor, 400, Kind.DISPUTE_WON, when=at(4))
    entry(instructor, 3000, when=at(5))
    entry(instructor, 7, "legacy_kind", when=at(6))
    statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    assert [s.key for s in statement.sections] == [
        "earnings",
        "disputes",
        "corrections",
        "payouts",
        OTHER_SECTION[0],
    ]
    assert statement.closing_balance == 3457
    assert statement.entry_count == 6


def test_the_month_lists_each_entry_once_with_its_payment():
    instructor = InstructorFactory()
    payment = PaymentFactory(
        instructor=instructor, stripe_payment_intent_id="pi_listed", product_name="Piano I"
    )
    entry(instructor, 3710, when=at(3), payment=payment, reference="payment:pi_listed:earning")
    statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    (line,) = statement.sections[0].lines
    assert (line.payment_intent_id, line.payment_amount, line.description) == (
        "pi_listed",
        5000,
        "Piano I",
    )
    assert line.reference == "payment:pi_listed:earning"


def test_the_statement_reads_in_a_constant_number_of_queries(django_assert_num_queries):
    instructor = InstructorFactory()
    for day in range(1, 29):
        payment = PaymentFactory(instructor=instructor)
        entry(instructor, 100 * day, when=at(day), payment=payment)
    with django_assert_num_queries(2):
        statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
        assert statement.entry_count == 28


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-50_000, max_value=50_000).filter(bool),
            st.sampled_from(Kind.values),
            st.integers(min_value=0, max_value=120 * 24),  # hours after 2026-09-15
            st.integers(min_value=0, max_value=10 * 24),  # hold, hours
            st.sampled_from(["usd", "jpy"]),
        ),
        max_size=30,
    )
)
def test_statements_match_a_brute_force_sum_of_the_ledger(rows):
    """Whatever the entries: every month's opening and closing equal the sum of the entries
    dated before its start and end, each entry of a month is listed exactly once, and each
    month opens with the previous month's closing."""
    EarningEntry.objects.all().delete()
    instructor = InstructorFactory()
    origin = datetime(2026, 9, 15, tzinfo=UTC)
    stored = []
    for i, (amount, kind, hours, hold, currency) in enumerate(rows):
        when = origin + timedelta(hours=hours)
        stored.append(
            entry(
                instructor,
                amount,
                kind,
                when=when,
                currency=currency,
                available=when + timedelta(hours=hold),
                reference=f"h:{i}",
            )
        )
    for currency in ("usd", "jpy"):
        mine = [e for e in stored if e.currency == currency]
        previous_closing = None
        for month in (date(2026, 9, 1), date(2026, 10, 1), NOV, date(2026, 12, 1)):
            statement = instructor_statement(
                instructor=instructor, currency=currency, month=month, now=NOW
            )
            start, end = month_bounds(month)
            as_of = min(end, NOW)
            assert statement.opening_balance == sum(e.amount for e in mine if e.occurred_at < start)
            assert statement.closing_balance == sum(e.amount for e in mine if e.occurred_at < end)
            assert statement.closing_on_hold == sum(
                e.amount for e in mine if e.occurred_at < end and e.available_at > as_of
            )
            listed = sorted(line.entry_id for s in statement.sections for line in s.lines)
            assert listed == sorted(e.pk for e in mine if start <= e.occurred_at < end)
            if previous_closing is not None:
                assert statement.opening_balance == previous_closing
            previous_closing = statement.closing_balance


def test_the_pdf_prints_the_summary_and_every_entry():
    instructor = InstructorFactory(name="Grace Hopper", email="grace@example.com")
    payment = PaymentFactory(
        instructor=instructor, stripe_payment_intent_id="pi_pdf1", description="Compilers"
    )
    entry(instructor, 4000, when=at(20, 10))
    entry(instructor, 3710, when=at(3), payment=payment)
    entry(instructor, -4000, Kind.PAYOUT, when=at(4), description="Payout #12")
    statement = instructor_statement(instructor=instructor, currency="usd", month=NOV, now=NOW)
    content = instructor_statement_pdf(statement)
    assert content.startswith(b"%PDF")
    text = flat_pdf_text(content)
    for expected in (
        "Earnings statement: November 2026",
        "Grace Hopper",
        "grace@example.com",
        "Paid by bank transfer",
        "2026-11-01 to 2026-11-30 (UTC)",
        "Opening balance on 2026-11-01 $40.00",
        "Earnings (1 payment) $37.10",
        "Payouts (1 entry) -$40.00",
        "Closing balance on 2026-11-30 $37.10",
        "pi_pdf1",
        "Compilers · payment of $50.00",
        "Total earnings $37.10",
        "Total payouts -$40.00",
    ):
        assert expected in text, expected
    assert statement_filename(statement) == f"statement-{instructor.pk}-2026-11-usd.pdf"


def test_an_empty_month_and_a_zero_decimal_currency():
    instructor = InstructorFactory()
    entry(instructor, 1500, currency="jpy", when=at(3, 10))
    statement = instructor_statement(instructor=instructor, currency="jpy", month=NOV, now=NOW)
    assert statement.sections == []
    text = flat_pdf_text(instructor_statement_pdf(statement))
    assert EMPTY_MONTH_TEXT in text
    assert "Closing balance on 2026-11-30 ¥1,500" in text


def test_month_parsing_and_the_pickers_months():
    assert parse_month("2026-11") == NOV
    for bad in ("2026-13", "nov", "2026-1", "", "1969-12"):
        with pytest.raises(ValueError, match="Not a month"):
            parse_month(bad)
    assert ERR_BAD_MONTH.format(value="x") == "Not a month: 'x' (use YYYY-MM)."
    assert months_between(date(2026, 11, 1), date(2027, 1, 1)) == [
        date(2027, 1, 1),
        date(2026, 12, 1),
        date(2026, 11, 1),
    ]


def test_periods_per_currency_in_one_query(django_assert_num_queries):
    instructor = InstructorFactory()
    entry(instructor, 100, when=at(3, 9))
    entry(instructor, 100, when=at(3, 11))
    entry(instructor, 100, currency="eur", when=at(4, 10))
    with django_assert_num_queries(1):
        periods = statement_periods(instructor=instructor)
    assert [(p.currency, p.first_month, p.last_month) for p in periods] == [
        ("eur", date(2026, 10, 1), date(2026, 10, 1)),
        ("usd", date(2026, 9, 1), date(2026, 11, 1)),
    ]
