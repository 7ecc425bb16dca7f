"""The statement page and its PDF on the instructor page: who may see them, the month and
currency picker (bad values replaced with a message), and a constant number of queries."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.models import EarningEntry
from reports.statement_admin import (
    ERR_BAD_MONTH_CHOICE,
    ERR_NO_STATEMENT_PERMISSION,
    WARN_UNKNOWN_STATEMENT_CURRENCY,
)
from reports.statements import current_month
from tests.factories import InstructorFactory, PaymentFactory
from tests.reports.helpers import earning_entry as entry
from tests.reports.helpers import pdf_text, staff_with

pytestmark = pytest.mark.django_db
Kind = EarningEntry.Kind


def statement_url(instructor, **query):
    url = reverse("admin:payments_instructor_statement", args=[instructor.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def pdf_url(instructor, **query):
    url = reverse("admin:payments_instructor_statement_pdf", args=[instructor.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def finance(client):
    client.force_login(
        staff_with(
            "payments.view_instructor",
            "payments.view_earningentry",
            "reports.export_payments",
            username="finance",
        )
    )
    return client


@pytest.fixture
def instructor():
    instructor = InstructorFactory(name="Marie Curie")
    payment = PaymentFactory(instructor=instructor, stripe_payment_intent_id="pi_page1")
    entry(instructor, 3710, when=datetime(2026, 10, 3, tzinfo=UTC), payment=payment)
    entry(instructor, -3710, Kind.PAYOUT, when=datetime(2026, 10, 20, tzinfo=UTC))
    entry(instructor, -1000, Kind.DISPUTE_LOST, when=datetime(2026, 11, 5, tzinfo=UTC))
    entry(instructor, 900, currency="eur", when=datetime(2026, 9, 5, tzinfo=UTC))
    return instructor


def test_the_instructor_page_has_a_statement_button_for_staff_who_may_see_it(
    finance, client, instructor
):
    change = reverse("admin:payments_instructor_change", args=[instructor.pk])
    assert statement_url(instructor) in finance.get(change).content.decode()
    client.force_login(staff_with("payments.view_instructor", username="nosy"))
    assert statement_url(instructor) not in client.get(change).content.decode()


def test_staff_without_the_ledger_permission_get_403(client, instructor):
    client.force_login(staff_with("payments.view_instructor", username="nosy"))
    for url in (statement_url(instructor), pdf_url(instructor)):
        response = client.get(url)
        assert response.status_code == 403
    assert ERR_NO_STATEMENT_PERMISSION == "You may not see instructors' statements."


def test_the_page_shows_the_chosen_month_with_a_red_negative_balance(finance, instructor):
    body = finance.get(statement_url(instructor, currency="usd", month="2026-11")).content.decode()
    assert "November 2026 · USD" in body
    assert 'data-testid="section-disputes"' in body
    assert "Closing balance on 2026-11-30" in body
    assert "money-negative" in body and "-$10.00" in body
    assert 'data-testid="statement-negative"' in body
    # The month picker offers the instructor's months up to now; the currency picker its two.
    assert '<option value="2026-10"' in body
    assert f'<option value="{current_month():%Y-%m}"' in body
    assert '<option value="eur">EUR</option>' in body
    # The PDF and the month's entries as CSV / JSON, for staff who may export.
    assert pdf_url(instructor, currency="usd", month="2026-11").replace("&", "&amp;") in body
    export = reverse("admin:payments_instructor_ledger_export")
    assert (
        f"{export}?instructor={instructor.pk}&amp;currency=usd&amp;date_from=2026-11-01"
        f"&amp;date_to=2026-11-30&amp;format=csv"
    ) in body


def test_without_parameters_the_page_opens_on_the_latest_month_with_entries(finance, instructor):
    body = finance.get(statement_url(instructor)).content.decode()
    assert "November 2026 · USD" in body


def test_bad_parameters_are_replaced_with_a_message(finance, instructor):
    response = finance.get(statement_url(instructor, currency="xyz", month="2026-99"), follow=True)
    body = response.content.decode()
    assert response.status_code == 200
    assert WARN_UNKNOWN_STATEMENT_CURRENCY.format(currency="'xyz'", shown="USD") in body.replace(
        "&#x27;", "'"
    )
    assert ERR_BAD_MONTH_CHOICE.format(value="2026-99") in body.replace("&#x27;", "'")
    assert "November 2026 · USD" in body
    # A month that has not begun is refused the same way; the picker stops at this month.
    body = finance.get(statement_url(instructor, month="2999-01")).content.decode()
    assert ERR_BAD_MONTH_CHOICE.format(value="2999-01") in body.replace("&#x27;", "'")
    assert '<option value="2999-01"' not in body


def test_a_path_that_is_no_id_is_answered_as_a_missing_instructor(finance):
    # The admin site checks object ids before any view runs (bad input never 500s): an id
    # the key cannot hold gets Django's "doesn't exist" redirect and message, like a change page.
    for path in (
        "/admin/payments/instructor/abc/statement/",
        "/admin/payments/instructor/abc/statement/pdf/",
    ):
        response = finance.get(path, follow=True)
        assert response.redirect_chain[0] == ("/admin/", 302)
        assert "doesn\u2019t exist" in response.content.decode()


def test_an_instructor_without_entries_has_no_statement(finance):
    lonely = InstructorFactory()
    body = finance.get(statement_url(lonely)).content.decode()
    assert 'data-testid="statement-empty"' in body
    response = finance.get(pdf_url(lonely, month="2026-11", currency="eur"))
    assert response.status_code == 200
    assert "No entries in this month." in pdf_text(response.content)


def test_the_pdf_download(finance, instructor):
    response = finance.get(pdf_url(instructor, currency="usd", month="2026-11"))
    assert response["Content-Type"] == "application/pdf"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="statement-{instructor.pk}-2026-11-usd.pdf"'
    )
    text = " ".join(pdf_text(response.content).split())
    assert "Marie Curie" in text
    assert "Closing balance on 2026-11-30 -$10.00" in text


def test_the_page_reads_in_the_same_number_of_queries_for_1_or_40_entries(finance):
    def queries_for(n):
        instructor = InstructorFactory()
        for day in range(n):
            payment = PaymentFactory(instructor=instructor)
            entry(
                instructor, 100, when=datetime(2026, 11, 1 + day % 28, tzinfo=UTC), payment=payment
            )
        with CaptureQueriesContext(connection) as queries:
            response = finance.get(statement_url(instructor, currency="usd", month="2026-11"))
        assert response.status_code == 200
        return len(queries)

    assert queries_for(1) == queries_for(40)


def test_a_month_before_the_first_entry_opens_with_zero(finance, instructor):
    body = finance.get(statement_url(instructor, currency="usd", month="2026-01")).content.decode()
    assert 'data-testid="statement-no-entries"' in body
    assert "January 2026 · USD" in body
    # The picker reaches back to the month asked for.
    assert '<option value="2026-01" selected' in body
