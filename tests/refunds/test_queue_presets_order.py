"""The queue's presets list the rows in the priority order of refunds.selectors, page for page,
through the admin (its paginator and its row renderer)."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from refunds.admin.queue import QUEUE_PRESETS, RefundRequestAdmin
from refunds.models import RefundRequest
from refunds.selectors import Priority, priority_q, refund_request_queue
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db
PER_PAGE = 9


@pytest.fixture
def queue(monkeypatch):
    monkeypatch.setattr(RefundRequestAdmin, "list_per_page", PER_PAGE)
    rng = random.Random(5)
    user = UserFactory()
    payment = PaymentFactory(amount=10**8)
    rows = RefundRequest.objects.bulk_create(
        [
            RefundRequest(
                payment=payment,
                amount=rng.choice([500, 9000, 90000]),
                currency="usd",
                status=rng.choice(["pending"] * 5 + ["approved", "failed"]),
                requested_by=user,
            )
            for _ in range(60)
        ]
    )
    now = timezone.now()
    for row in rows:
        RefundRequest.objects.filter(pk=row.pk).update(
            created_at=now - timedelta(hours=rng.randint(0, 24 * 6))
        )


def expected(query: str):
    queryset = refund_request_queue()
    params = dict(part.split("=", 1) for part in query.split("&") if part)
    if "status__exact" in params:
        queryset = queryset.filter(status=params["status__exact"])
    if params.get("priority") in Priority.RANK:
        queryset = queryset.filter(priority_q(params["priority"]))
    return list(queryset.values_list("pk", flat=True))


@pytest.mark.parametrize(("label", "query"), QUEUE_PRESETS)
def test_each_preset_pages_in_priority_order(admin_client, queue, label, query):
    want = expected(query)
    got = []
    page = 1
    while len(got) < len(want):
        response = admin_client.get(f"/admin/refunds/refundrequest/?{query}&p={page}")
        assert response.status_code == 200, label
        rows = [row.pk for row in response.context["cl"].result_list]
        assert rows, label
        got += rows
        page += 1
    assert got == want, label
