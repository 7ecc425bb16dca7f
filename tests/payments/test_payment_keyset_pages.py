"""The payments list's keyset pages (backoffice/pagination.py): the same rows as OFFSET pages
would give, none skipped or repeated, with filters, sorts and inserts between page loads, and
the same number of queries at any depth. Runs on SQLite and PostgreSQL alike."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.pagination import (
    CURSOR_VAR,
    KEYSET_MAX_OFFSET_PAGE,
    MSG_BAD_CURSOR,
    MSG_TOO_DEEP,
)
from payments.admin import PaymentAdmin
from payments.models import Payment
from tests.factories import CustomerFactory, PaymentFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:payments_payment_changelist")
PER_PAGE = 7
# The changelist's `o` index of the amount column (the action checkbox is column 0), so the
# test follows the column order the layout chooses.
AMOUNT = str(1 + PaymentAdmin.list_display.index("amount_cell"))


@pytest.fixture
def payments(monkeypatch):
    """45 payments; groups of 6 share the same `created` to the microsecond (ties split by
    id), some failed, some in EUR."""
    monkeypatch.setattr(PaymentAdmin, "list_per_page", PER_PAGE)
    base = timezone.now() - timedelta(days=3)
    customer = CustomerFactory(email="ada@example.com")
    for i in range(45):
        PaymentFactory(
            created=base - timedelta(minutes=i // 6),
            customer=customer if i % 4 == 0 else None,
            currency="eur" if i % 3 == 0 else "usd",
            amount=1000 + (i * 37) % 500,
            **({"failed": True} if i % 5 == 0 else {}),
        )


def pager_links(response) -> dict[str, str]:
    """{"next": url, ...} of the keyset pager on the page."""
    content = response.content.decode()
    found = {}
    for match in re.finditer(r'<a class="[^"]*" href="([^"]*)" data-testid="page-(\w+)"', content):
        found[match.group(2)] = html.unescape(match.group(1))
    return found


def walk(client, params: dict, *, direction="next"):
    """Every row id reached by following the pager from the first (or, backwards, the last)
    page; the list of pages' ids."""
    response = client.get(CHANGELIST, params)
    if direction == "previous":
        response = client.get(CHANGELIST + pager_links(response)["last"])
    pages = []
    while True:
        assert response.status_code == 200
        pages.append([p.pk for p in response.context["cl"].result_list])
        link = pager_links(response).get(direction)
        if not link:
            return pages
        response = client.get(CHANGELIST + link)


def expected_ids(queryset, ordering):
    return list(queryset.order_by(*ordering).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("params", "queryset", "ordering"),
    [
        ({}, lambda: Payment.objects.all(), ["-created", "-id"]),
        ({"status__exact": "failed"}, lambda: Payment.objects.filter(status="failed"), None),
        ({"currency": "eur"}, lambda: Payment.objects.filter(currency="eur"), None),
        (
            {"q": "ada@example.com"},
            lambda: Payment.objects.filter(customer__email="ada@example.com"),
            None,
        ),
        ({"o": "1"}, lambda: Payment.objects.all(), ["created", "id"]),
        ({"o": AMOUNT}, lambda: Payment.objects.all(), ["amount", "-created", "-id"]),
        ({"o": f"-{AMOUNT}"}, lambda: Payment.objects.all(), ["-amount", "-created", "-id"]),
    ],
    ids=["unfiltered", "status", "currency", "search", "oldest-first", "amount", "amount-desc"],
)
def test_pages_forward_and_back_hold_every_row_once(
    admin_client, payments, params, queryset, ordering
):
    want = expected_ids(queryset(), ordering or ["-created", "-id"])
    assert len(want) > PER_PAGE  # more than one page, or nothing is tested
    forward = walk(admin_client, params)
    assert [pk for page in forward for pk in page] == want
    # Page for page what OFFSET gives.
    assert forward == [want[i : i + PER_PAGE] for i in range(0, len(want), PER_PAGE)]
    backward = walk(admin_client, params, direction="previous")
    assert [pk for page in reversed(backward) for pk in page] == want


def test_offset_page_numbers_and_cursor_pages_agree(admin_client, payments):
    forward = walk(admin_client, {})
    for number in (1, 2, 3):
        response = admin_client.get(CHANGELIST, {"p": number})
        assert [p.pk for p in response.context["cl"].result_list] == forward[number - 1]
    # Next from an OFFSET page continues where it ended.
    response = admin_client.get(CHANGELIST, {"p": 2})
    response = admin_client.get(CHANGELIST + pager_links(response)["next"])
    assert [p.pk for p in response.context["cl"].result_list] == forward[2]


def test_a_cursor_page_is_stable_under_inserts(admin_client, payments):
    first = admin_client.get(CHANGELIST)
    second_link = pager_links(first)["next"]
    before = [p.pk for p in admin_client.get(CHANGELIST + second_link).context["cl"].result_list]
    # New payments arrive at the top, and one in the same microsecond as the boundary row.
    boundary = first.context["cl"].result_list[-1]
    PaymentFactory.create_batch(5, created=timezone.now())
    PaymentFactory(created=boundary.created)
    after = [p.pk for p in admin_client.get(CHANGELIST + second_link).context["cl"].result_list]
    assert after == before


def test_query_count_is_the_same_at_any_depth_and_page_size(admin_client, payments, monkeypatch):
    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(url)
        assert response.status_code == 200
        return len(ctx.captured_queries), response

    first, response = count(CHANGELIST)
    middle, response = count(CHANGELIST + pager_links(response)["next"])
    deeper, response = count(CHANGELIST + pager_links(response)["next"])
    last, response = count(CHANGELIST + pager_links(response)["last"])
    previous, _ = count(CHANGELIST + pager_links(response)["previous"])
    assert first == middle == deeper == last == previous
    monkeypatch.setattr(PaymentAdmin, "list_per_page", 20)
    assert count(CHANGELIST)[0] == first


def test_filter_and_sort_links_start_again_from_the_first_page(admin_client, payments):
    response = admin_client.get(CHANGELIST)
    response = admin_client.get(CHANGELIST + pager_links(response)["next"])
    cl = response.context["cl"]
    assert CURSOR_VAR in response.wsgi_request.GET
    assert CURSOR_VAR not in cl.get_query_string({"status__exact": "failed"})
    assert CURSOR_VAR not in cl.get_query_string({"o": AMOUNT})
    assert CURSOR_VAR in pager_links(response)["next"]


@pytest.mark.parametrize(
    "cursor", ["a.bm90IGpzb24", "a.", "z.abc", "a." + "x" * 5000, "a.eyJvIjpbIi1pZCJdLCJ2IjpbMV19"]
)
def test_a_bad_cursor_shows_the_first_page_with_a_message(admin_client, payments, cursor):
    response = admin_client.get(CHANGELIST, {CURSOR_VAR: cursor})
    assert response.status_code == 200
    assert MSG_BAD_CURSOR in [str(m) for m in response.context["messages"]]
    assert [p.pk for p in response.context["cl"].result_list] == walk(admin_client, {})[0]


def test_a_cursor_made_for_another_sort_is_refused(admin_client, payments):
    response = admin_client.get(CHANGELIST, {"o": AMOUNT})
    cursor = pager_links(response)["next"].split(f"{CURSOR_VAR}=")[1].split("&")[0]
    response = admin_client.get(CHANGELIST, {CURSOR_VAR: cursor})
    assert MSG_BAD_CURSOR in [str(m) for m in response.context["messages"]]


def test_page_numbers_stop_where_offset_stops_being_cheap(admin_client, payments):
    response = admin_client.get(CHANGELIST, {"p": KEYSET_MAX_OFFSET_PAGE + 1})
    assert response.status_code == 200
    assert MSG_TOO_DEEP.format(max=KEYSET_MAX_OFFSET_PAGE) in [
        str(m) for m in response.context["messages"]
    ]
    assert [p.pk for p in response.context["cl"].result_list] == walk(admin_client, {})[0]


def test_a_single_page_has_no_pager(admin_client, payments):
    response = admin_client.get(CHANGELIST, {"q": "pi_nothing_like_this"})
    assert response.status_code == 200
    assert pager_links(response) == {}
