"""The queue's index-only paginator returns exactly the pages of the plain ORDER BY."""

import random
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice.pagination import KEYSET_MAX_OFFSET_PAGE, LAST
from refunds.admin.pagination import PriorityQueuePaginator
from refunds.models import RefundRequest
from refunds.selectors import refund_request_queue
from tests.factories import PaymentFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def queue_rows():
    rng = random.Random(3)
    user = UserFactory()
    payments = [PaymentFactory(amount=10**7, currency=c) for c in ("usd", "jpy", "kwd")]
    rows = RefundRequest.objects.bulk_create(
        [
            RefundRequest(
                payment=(payment := rng.choice(payments)),
                amount=rng.choice([40, 60, 4000, 6000, 40000, 60000]),
                currency=payment.currency,
                status=rng.choice(["pending"] * 4 + ["approved", "processed", "rejected"]),
                requested_by=user,
            )
            for _ in range(300)
        ]
    )
    now = timezone.now()
    for row in rows:
        RefundRequest.objects.filter(pk=row.pk).update(
            created_at=now - timedelta(hours=rng.randint(0, 24 * 6))
        )


@pytest.mark.parametrize("per_page", [7, 50, 200])
@pytest.mark.parametrize("status", [None, "pending"])
def test_pages_match_the_plain_order(queue_rows, per_page, status):
    queryset = refund_request_queue()
    if status:
        queryset = queryset.filter(status=status)
    plain, fast = Paginator(queryset, per_page), PriorityQueuePaginator(queryset, per_page)
    assert fast._fast_path()
    for number in plain.page_range[:KEYSET_MAX_OFFSET_PAGE]:
        assert [r.pk for r in fast.page(number).object_list] == [
            r.pk for r in plain.page(number).object_list
        ]
    want = [r.pk for r in queryset]
    # Next from the first page to the end, and Previous from the last page to the start.
    for start, link in (("", "next_cursor"), (LAST, "previous_cursor")):
        pages, cursor = [], start
        while True:
            page = PriorityQueuePaginator(queryset, per_page, cursor=cursor).page(1)
            pages.append([r.pk for r in page.object_list])
            cursor = getattr(page, link)
            if not cursor:
                break
        if start == LAST:
            pages.reverse()
        assert [pk for rows in pages for pk in rows] == want
        # Full pages, but for the one at the far end of the walk (the remainder).
        full = pages[1:] if start == LAST else pages[:-1]
        assert all(len(rows) == per_page for rows in full)


def test_a_page_is_one_query_whatever_its_size_and_depth(queue_rows):
    counts = []
    for per_page in (10, 100):
        first = PriorityQueuePaginator(refund_request_queue(), per_page).page(1)
        for cursor in ("", first.next_cursor, LAST):
            paginator = PriorityQueuePaginator(refund_request_queue(), per_page, cursor=cursor)
            paginator.count  # noqa: B018 - counted separately
            with CaptureQueriesContext(connection) as ctx:
                list(paginator.page(1).object_list)
            counts.append(len(ctx.captured_queries))
    assert counts == [1] * 6


def test_other_orders_page_the_ordinary_way(queue_rows):
    queryset = refund_request_queue().order_by("-amount", "id")
    assert not PriorityQueuePaginator(queryset, 10)._fast_path()


def test_the_admin_queue_uses_it_for_its_default_order(queue_rows, admin_client):
    response = admin_client.get("/admin/refunds/refundrequest/")
    cl = response.context["cl"]
    assert cl.paginator._fast_path()
    expected = list(refund_request_queue().values_list("pk", flat=True)[: cl.list_per_page])
    assert [row.pk for row in cl.result_list] == expected
    # The amount column's `o` index wherever the layout puts it (the checkbox is column 0).
    amount = 1 + admin.site._registry[RefundRequest].list_display.index("amount_cell")
    sorted_by_amount = admin_client.get(f"/admin/refunds/refundrequest/?o={amount}")
    assert not sorted_by_amount.context["cl"].paginator._fast_path()
