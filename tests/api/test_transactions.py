"""/api/v1/transactions/ and /api/v1/customers/: who reads them, the payments list's filters
and search, money and times in the API's shape, cursor pages that stay put while payments
arrive, the page's fee breakdown and timeline, and a constant number of queries per page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.ledger import payment_breakdown
from payments.models import Payment
from payments.selectors import payment_timeline
from tests.api.harness import FINANCE_VIEWERS, SchemaCheckedClient, assert_matrix, read_matrix
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    PaymentFactory,
    RefundFactory,
)

pytestmark = pytest.mark.django_db

LIST = "/api/v1/transactions/"
CUSTOMERS = "/api/v1/customers/"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def reader(api_roles) -> SchemaCheckedClient:
    return api_roles["auditor"]


# --- Permissions ---------------------------------------------------------------------------


def test_permission_matrix(api_roles):
    payment = PaymentFactory()
    customer = payment.customer
    for url in (LIST, f"{LIST}{payment.pk}/", CUSTOMERS, f"{CUSTOMERS}{customer.pk}/"):
        assert_matrix(api_roles, read_matrix(FINANCE_VIEWERS), lambda c, url=url: c.get(url))
    # No writes here at all: the method does not exist, for everybody who may read.
    assert api_roles["superuser"].post(LIST, {}, format="json").status_code == 405
    assert api_roles["finance"].delete(f"{LIST}{payment.pk}/").status_code == 405


def test_a_user_with_only_view_payment_reads_transactions_not_customers(api_roles):
    """The permission is the model's view_ permission, as in the admin (Refund requesters
    have payments.view_payment only)."""
    user = api_roles.users["staff"]
    user.groups.set(Group.objects.filter(name="Refund requesters"))
    PaymentFactory()
    assert api_roles["staff"].get(LIST).status_code == 200
    assert api_roles["staff"].get(CUSTOMERS).status_code == 403


# --- Shape ---------------------------------------------------------------------------------


def test_money_is_minor_units_with_currency_and_display_and_times_carry_their_offset(reader):
    payment = PaymentFactory(amount=2500, currency="usd", created=T0)
    yen = PaymentFactory(amount=1500, currency="jpy", created=T0 - timedelta(minutes=1))
    rows = reader.get(LIST).json()["results"]
    usd_row, yen_row = rows
    assert usd_row["amount"] == {"amount": 2500, "currency": "usd", "display": "$25.00"}
    assert usd_row["net"] == {
        "amount": payment.net,
        "currency": "usd",
        "display": f"${payment.net / 100:,.2f}",
    }
    assert yen_row["amount"] == {"amount": 1500, "currency": "jpy", "display": "¥1,500"}
    assert yen_row["id"] == yen.pk
    assert usd_row["created"] == "2026-11-02T12:00:00Z"
    assert datetime.fromisoformat(usd_row["created"]) == T0
    assert usd_row["customer"] == {
        "id": payment.customer.pk,
        "stripe_id": payment.customer.stripe_id,
        "email": payment.customer.email,
        "name": payment.customer.name,
    }


def test_the_detail_has_the_ledgers_breakdown_and_the_pages_timeline(reader):
    payment = PaymentFactory(amount=10000, amount_refunded=2500, status="partially_refunded")
    RefundFactory(payment=payment, amount=2500)
    body = reader.get(f"{LIST}{payment.pk}/").json()
    figures = payment_breakdown(payment=payment)
    breakdown = body["breakdown"]
    assert breakdown["captured"] is True
    for name in ("amount", "refunded", "stripe_fee", "platform_fee", "net_to_instructor"):
        assert breakdown[name]["amount"] == getattr(figures, name), name
        assert breakdown[name]["currency"] == "usd"
    # The breakdown adds up, as the page says it does.
    assert (
        breakdown["amount"]["amount"]
        - breakdown["refunded"]["amount"]
        - breakdown["stripe_fee"]["amount"]
        - breakdown["platform_fee"]["amount"]
        - breakdown["instructor_dispute_loss"]["amount"]
        == breakdown["net_to_instructor"]["amount"]
    )
    timeline = payment_timeline(payment=payment)
    assert [entry["title"] for entry in body["timeline"]] == [entry.title for entry in timeline]
    assert "Refund succeeded" in [entry["title"] for entry in body["timeline"]]


def test_a_failed_payment_has_a_zero_breakdown_and_its_decline(reader):
    payment = PaymentFactory(failed=True)
    body = reader.get(f"{LIST}{payment.pk}/").json()
    assert body["breakdown"]["captured"] is False
    assert body["breakdown"]["net_to_instructor"]["amount"] == 0
    assert body["decline_code"] == "insufficient_funds"
    assert body["timeline"][-1]["title"] == "Payment failed"


def test_a_customer_with_their_spending_per_currency(reader):
    customer = CustomerFactory(email="ada@example.com")
    PaymentFactory(customer=customer, amount=5000, currency="usd")
    PaymentFactory(customer=customer, amount=3000, currency="eur", amount_refunded=1000)
    PaymentFactory(customer=customer, failed=True)
    row = reader.get(CUSTOMERS).json()["results"][0]
    assert row["payment_count"] == 3 and row["blocked"] is False
    body = reader.get(f"{CUSTOMERS}{customer.pk}/").json()
    assert body["spent"] == [
        {"amount": 2000, "currency": "eur", "display": "€20.00"},
        {"amount": 5000, "currency": "usd", "display": "$50.00"},
    ]
    assert body["preferred_method"] == "Card"


# --- Filters and search --------------------------------------------------------------------


def test_filters_as_the_payments_list(reader):
    ok = PaymentFactory(created=T0, currency="usd", amount=1250)
    failed = PaymentFactory(failed=True, created=T0 - timedelta(days=1), currency="eur")
    yen = PaymentFactory(created=T0 - timedelta(days=2), currency="jpy", amount=1250)
    sepa = PaymentFactory(
        created=T0 - timedelta(days=3), payment_method_type="sepa_debit", amount=99999
    )
    assert ids(reader.get(LIST, {"status": "failed"})) == [failed.pk]
    assert ids(reader.get(LIST, {"status": ["failed", "succeeded"]})) == [
        ok.pk,
        failed.pk,
        yen.pk,
        sepa.pk,
    ]
    assert ids(reader.get(LIST, {"currency": "JPY"})) == [yen.pk]
    assert ids(reader.get(LIST, {"method": "sepa_debit"})) == [sepa.pk]
    assert ids(
        reader.get(LIST, {"created_after": "2026-10-31", "created_before": "2026-11-02"})
    ) == [failed.pk, yen.pk]
    assert ids(reader.get(LIST, {"created_after": "2026-11-02T12:00:00Z"})) == [ok.pk]
    # 12.50 in major units: 1250 cents, but 12 yen (1250 yen is out of range).
    assert ids(reader.get(LIST, {"amount_min": "12.50", "amount_max": "12.50"})) == [ok.pk]
    # 999 major units: 999.99 USD and 1250 JPY are above, 12.50 USD is not.
    assert ids(reader.get(LIST, {"amount_min": "999"})) == [yen.pk, sepa.pk]
    assert ids(reader.get(LIST, {"amount_min": "1000"})) == [yen.pk]
    assert ids(reader.get(LIST, {"amount_max": "13", "currency": "jpy"})) == []
    assert ids(reader.get(LIST, {"customer": ok.customer_id})) == [ok.pk]


def test_search_as_the_payments_list(reader):
    target = PaymentFactory(customer=CustomerFactory(email="grace.hopper@example.com"))
    PaymentFactory.create_batch(2)
    assert ids(reader.get(LIST, {"q": target.stripe_payment_intent_id.upper()})) == [target.pk]
    assert ids(reader.get(LIST, {"q": "HOPPER@"})) == [target.pk]
    assert ids(reader.get(LIST, {"q": target.customer.stripe_id})) == [target.pk]
    assert ids(reader.get(LIST, {"q": "pi_nothing_like_it"})) == []
    assert ids(reader.get(CUSTOMERS, {"q": "grace"})) == [target.customer.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"method": "cheque"}, "method"),
        ({"currency": "dollars"}, "currency"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"amount_min": "-1"}, "amount_min"),
        ({"amount_max": "lots"}, "amount_max"),
        ({"customer": "x"}, "customer"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "100000"}, "page_size"),
        ({"cursor": "a.bm90LWEtY3Vyc29y"}, "cursor"),
        ({"q": "x" * 300}, "q"),
    ],
)
def test_a_bad_filter_answers_400_naming_it(reader, params, field):
    response = reader.get(LIST, params)
    assert response.status_code == 400
    body = response.json()["error"]
    assert list(body["fields"]) == [field]
    assert body["code"] in {"invalid", "invalid_cursor"}


# --- Cursor pagination ---------------------------------------------------------------------


def walk(client, url, params=None) -> tuple[list[int], int]:
    seen, pages = [], 0
    response = client.get(url, params or {})
    while True:
        pages += 1
        seen += ids(response)
        next_url = response.json()["next"]
        if not next_url:
            return seen, pages
        response = client.get(next_url)


def test_pages_walk_every_row_once_newest_first_with_ties_split_by_id(reader):
    # Three share one `created`: the id splits them, across a page boundary too.
    payments = [PaymentFactory(created=T0 - timedelta(minutes=i // 3)) for i in range(11)]
    expected = [p.pk for p in sorted(payments, key=lambda p: (p.created, p.pk), reverse=True)]
    seen, pages = walk(reader, LIST, {"page_size": 4})
    assert seen == expected
    assert pages == 3


def test_pages_are_stable_while_payments_arrive(reader):
    old = [PaymentFactory(created=T0 - timedelta(minutes=i)) for i in range(6)]
    first = reader.get(LIST, {"page_size": 3}).json()
    assert [row["id"] for row in first["results"]] == [p.pk for p in old[:3]]
    assert first["previous"] is None
    # New payments arrive (newer than everything) while the client reads page 1.
    PaymentFactory.create_batch(5, created=T0 + timedelta(hours=1))
    second = reader.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [p.pk for p in old[3:]]
    assert second["next"] is None
    # Back from page 2: page 1 as it was, and then the new rows are before it.
    back = reader.get(second["previous"]).json()
    assert [row["id"] for row in back["results"]] == [p.pk for p in old[:3]]
    newer = reader.get(back["previous"]).json()
    assert len(newer["results"]) == 3 and newer["previous"] is not None


def test_filters_stay_on_the_next_link(reader):
    for i in range(5):
        PaymentFactory(created=T0 - timedelta(minutes=i), currency="eur")
        PaymentFactory(created=T0 - timedelta(minutes=i, seconds=30), currency="usd")
    seen, _ = walk(reader, LIST, {"currency": "eur", "page_size": 2})
    assert len(seen) == 5
    assert set(Payment.objects.filter(pk__in=seen).values_list("currency", flat=True)) == {"eur"}


def queries_for(client, url, params) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("url", [LIST, CUSTOMERS])
def test_a_page_costs_the_same_queries_for_10_and_100_rows_and_never_counts(reader, url):
    PaymentFactory.create_batch(105)
    reader.get(url)  # the token's last use is written now, not inside a measured request
    small = queries_for(reader, url, {"page_size": 10})
    large = queries_for(reader, url, {"page_size": 100})
    assert len(small) == len(large)
    cursor = reader.get(url, {"page_size": 10}).json()["next"]
    deep = queries_for(reader, cursor, {})
    assert len(deep) == len(small)
    # No COUNT over the list (the customers' per-row payment count is a correlated subquery).
    assert not [sql for sql in small + deep if sql.upper().startswith("SELECT COUNT(")]


def test_a_page_of_transactions_is_authentication_plus_one_query(reader):
    PaymentFactory.create_batch(30)
    reader.get(LIST)
    page = [sql for sql in queries_for(reader, LIST, {"page_size": 25}) if "payments_" in sql]
    assert len(page) == 1


def test_detail_of_a_disputed_payment(reader):
    dispute = DisputeFactory()
    body = reader.get(f"{LIST}{dispute.payment.pk}/").json()
    assert body["status"] == "disputed"
    assert any(entry["title"].startswith("Dispute opened") for entry in body["timeline"])
