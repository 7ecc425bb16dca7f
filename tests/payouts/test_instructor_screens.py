"""The instructor screens and the dashboard's payout cards: balances per currency from the
ledger (balance, available, on hold; a clawback in red), the buttons each role is offered, the
latest entries and payouts, one grouped query for a whole page of instructors, and the cards'
figures (never summed across currencies)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.admin.instructor import NO_BANK_ACCOUNT, mask_account
from payments.instructor_selectors import OwedTotal, owed_by_currency
from payments.models import EarningEntry, Payout
from reports.dashboard import FAILED_PAYOUT_DAYS, dashboard_context
from tests.factories import InstructorFactory, UserFactory
from tests.payments.payout_support import entry, payout

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_instructor_changelist")


def page_url(instructor) -> str:
    return reverse("admin:payments_instructor_change", args=[instructor.pk])


def role_client(group_names: list[str], username: str) -> Client:
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(username=username)
    user.groups.set(Group.objects.filter(name__in=group_names))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def grace():
    """Paid 150.00, then a 42.00 refund after the payout: -42.00 carried forward. 20.00 EUR
    still on hold."""
    instructor = InstructorFactory(name="Grace Hopper", bank_account="GB29 NWBK 6016 1331 9268 19")
    entry(instructor, 15000)
    payout(instructor, 15000, status=Payout.Status.PAID)
    entry(instructor, -4200, kind=EarningEntry.Kind.REFUND, occurred_days_ago=1)
    entry(instructor, 2000, "eur", on_hold=True)
    return instructor


def test_the_page_shows_each_currency_with_a_clawback_in_red(admin_client, grace):
    response = admin_client.get(page_url(grace))
    rows = {row["currency"]: row for row in response.context["balance_rows"]}
    assert list(rows) == ["EUR", "USD"]
    assert (rows["USD"]["balance"], rows["USD"]["available"], rows["USD"]["on_hold"]) == (
        '<span class="text-red-600" data-testid="negative">-$42.00</span>',
        '<span class="text-red-600" data-testid="negative">-$42.00</span>',
        "$0.00",
    )
    assert (rows["EUR"]["balance"], rows["EUR"]["available"], rows["EUR"]["on_hold"]) == (
        "€20.00",
        "€0.00",
        "€20.00",
    )
    # Nothing payable in either currency: no payout button, the adjustment stays.
    assert response.context["new_payout_url"] == ""
    assert [row["payout_url"] for row in rows.values()] == ["", ""]
    body = response.content.decode()
    assert 'data-testid="instructor-balances"' in body and 'data-testid="negative"' in body


def test_the_page_lists_the_latest_entries_and_payouts_with_links(admin_client, grace):
    response = admin_client.get(page_url(grace))
    kinds = [row["entry"].kind for row in response.context["entries"]]
    assert sorted(kinds) == sorted(["earning", "payout", "refund", "earning"])
    paid = Payout.objects.get(instructor=grace)
    (shown,) = response.context["payouts"]
    assert (shown["payout"], shown["amount"]) == (paid, "$150.00")
    assert response.context["all_payouts_url"] == (
        reverse("admin:payments_payout_changelist") + f"?instructor={grace.pk}"
    )
    # The list the link opens is that instructor's payouts.
    other = InstructorFactory()
    entry(other, 5000)
    payout(other, 5000)
    listed = admin_client.get(response.context["all_payouts_url"])
    assert [row.pk for row in listed.context["cl"].result_list] == [paid.pk]


def test_the_payout_button_opens_the_form_for_the_payable_currency(admin_client):
    maria = InstructorFactory(stripe_account_id="acct_maria")
    entry(maria, 30000)
    entry(maria, 5000, "eur", on_hold=True)
    context = admin_client.get(page_url(maria)).context
    add = reverse("admin:payments_payout_add")
    assert context["new_payout_url"] == f"{add}?instructor={maria.pk}&currency=usd"
    rows = {row["currency"]: row["payout_url"] for row in context["balance_rows"]}
    assert rows == {"EUR": "", "USD": f"{add}?instructor={maria.pk}&currency=usd"}
    assert admin_client.get(context["new_payout_url"]).status_code == 200


def test_the_auditor_reads_balances_but_is_offered_no_button(grace):
    entry(grace, 90000)  # something payable
    client = role_client(["Read-only auditors"], "auditor")
    response = client.get(page_url(grace))
    assert response.status_code == 200
    assert response.context["balance_rows"]
    assert response.context["new_payout_url"] == ""
    assert response.context["adjust_url"] == ""
    assert 'data-testid="new-payout"' not in response.content.decode()


def test_finance_staff_are_offered_a_payout(grace):
    entry(grace, 90000)
    client = role_client(["Finance staff"], "analyst")
    response = client.get(page_url(grace))
    assert 'data-testid="new-payout"' in response.content.decode()


def test_the_list_shows_balances_per_currency_and_how_each_is_paid(admin_client, grace):
    maria = InstructorFactory(name="Maria Lopez", stripe_account_id="acct_maria")
    entry(maria, 12345, "usd")
    nobody = InstructorFactory(name="Zed No Bank", bank_account="")
    body = admin_client.get(CHANGELIST).content.decode()
    assert "$123.45" in body and "available $123.45 · on hold $0.00" in body
    assert '<span class="text-red-600" data-testid="negative">-$42.00</span>' in body
    assert "€20.00" in body and "on hold €20.00" in body
    # The bank account is masked in the list (whole only on the instructor's page).
    assert mask_account(grace.bank_account) in body and grace.bank_account not in body
    assert "acct_maria" in body and NO_BANK_ACCOUNT in body
    assert nobody.name in body


def test_the_list_reads_the_balances_of_a_page_in_one_query(admin_client, monkeypatch):
    from django.contrib import admin

    from payments.models import Instructor

    for index in range(105):
        instructor = InstructorFactory()
        entry(instructor, 1000 + index)
        entry(instructor, 500, "eur", on_hold=True)
    model_admin = admin.site._registry[Instructor]
    counts = []
    for per_page in (10, 100):
        monkeypatch.setattr(model_admin, "list_per_page", per_page)
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(CHANGELIST)
        assert len(response.context["cl"].result_list) == per_page
        balance_queries = [q for q in ctx.captured_queries if "earningentry" in q["sql"]]
        assert len(balance_queries) == 1
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


# --- The dashboard --------------------------------------------------------------------------


def test_owed_totals_are_per_currency_with_clawbacks_apart(grace):
    maria = InstructorFactory()
    entry(maria, 30000)
    entry(maria, 150000, "jpy")
    assert owed_by_currency() == [
        OwedTotal(currency="eur", owed=2000, owed_back=0, instructors_owed=1),
        OwedTotal(currency="jpy", owed=150000, owed_back=0, instructors_owed=1),
        OwedTotal(currency="usd", owed=30000, owed_back=4200, instructors_owed=1),
    ]


def test_dashboard_cards_for_payouts(grace):
    maria = InstructorFactory()
    entry(maria, 90000)
    payout(maria, 30000)
    payout(maria, 10000)
    payout(maria, 5000, status=Payout.Status.FAILED, failed_at=timezone.now())
    # A failure older than the card's window is history, not work.
    payout(
        maria,
        5000,
        status=Payout.Status.FAILED,
        failed_at=timezone.now() - timedelta(days=FAILED_PAYOUT_DAYS + 1),
    )
    cards = {card.key: card for card in dashboard_context()["cards"]}
    assert (cards["payouts"].value, cards["payouts"].tone) == ("2", "warning")
    assert cards["payouts"].href.endswith("/payout/?status__exact=pending")
    assert (cards["payouts_failed"].value, cards["payouts_failed"].tone) == ("1", "danger")
    assert cards["owed"].value == "€20.00 · $500.00"
    assert cards["owed"].detail == "$42.00 owed back (clawbacks)"


def test_dashboard_payout_cards_are_calm_without_payouts():
    cards = {card.key: card for card in dashboard_context()["cards"]}
    assert (cards["payouts"].value, cards["payouts"].tone) == ("0", "success")
    assert (cards["payouts_failed"].tone, cards["owed"].value) == ("success", "—")


def test_the_adjust_and_ledger_links_open_for_this_instructor(grace):
    other = InstructorFactory()
    entry(other, 777)
    client = role_client(["Finance staff"], "analyst")
    context = client.get(page_url(grace)).context
    add = reverse("admin:payments_earningadjustment_add")
    assert context["adjust_url"] == f"{add}?instructor={grace.pk}&currency=eur"
    rows = {row["currency"]: row["adjust_url"] for row in context["balance_rows"]}
    assert rows["USD"] == f"{add}?instructor={grace.pk}&currency=usd"
    form = client.get(rows["USD"]).context["adminform"].form
    assert (str(form.initial["instructor"]), form.initial["currency"]) == (str(grace.pk), "usd")
    ledger = client.get(context["all_entries_url"])
    assert ledger.status_code == 200
    shown = {row.instructor_id for row in ledger.context["cl"].result_list}
    assert shown == {grace.pk}
