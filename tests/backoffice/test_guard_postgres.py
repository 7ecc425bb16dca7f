"""The money-action guard's buckets on PostgreSQL: concurrent approvals by one staff member
(threads, each its own database connection, like requests on several servers) take exactly
what the bucket holds, never more, and a refusal takes nothing from the other buckets."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from backoffice import guard
from backoffice.api.tokens import api_token_create
from backoffice.guard import take_money_action_tokens
from backoffice.models import AdminAction, MoneyActionBucket
from payments import gateway
from refunds.models import RefundRequest
from tests.factories import RefundRequestFactory, UserFactory
from tests.refunds.conftest import FakeStripe

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 30


def run_concurrently(call, threads: int = THREADS) -> list:
    """`call` in `threads` threads released at one moment, each with its own connection."""
    barrier = threading.Barrier(threads)
    results, errors = [], []
    lock = threading.Lock()

    def runner():
        try:
            barrier.wait()
            result = call()
            with lock:
                results.append(result)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=runner) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=120)
    assert errors == []
    return results


@pytest.fixture
def frozen_clock(monkeypatch):
    # No refill while the threads run: the count is exact.
    monkeypatch.setattr(guard, "_now", lambda: 1_800_000_000.0)


def test_concurrent_approvals_take_exactly_the_actions_a_minute(settings, frozen_clock):
    settings.MONEY_ACTIONS_PER_MINUTE = 10
    user = UserFactory()
    results = run_concurrently(lambda: take_money_action_tokens(user, rows=1))
    assert sum(result.allowed for result in results) == 10
    assert {result.retry_after for result in results if not result.allowed} == {6}
    assert MoneyActionBucket.objects.get(key=f"money:{user.pk}:actions").tokens == 0


def test_concurrent_approvals_take_exactly_the_amount_an_hour_all_or_nothing(
    settings, frozen_clock
):
    settings.MONEY_ACTIONS_PER_MINUTE = 100
    settings.MONEY_ACTION_AMOUNT_PER_HOUR = {"usd": "100.00"}
    user = UserFactory()
    results = run_concurrently(lambda: take_money_action_tokens(user, amounts=[(1000, "usd")]))
    assert sum(result.allowed for result in results) == 10
    buckets = dict(MoneyActionBucket.objects.values_list("key", "tokens"))
    assert buckets[f"money:{user.pk}:amount:usd"] == 0
    # The refused twenty took no action token: 100 - 10.
    assert buckets[f"money:{user.pk}:actions"] == 90


def test_concurrent_api_approvals_by_one_user_approve_exactly_the_minutes_share(
    settings, frozen_clock, monkeypatch
):
    """Twelve approvals of twelve requests at once through the API (one token, twelve
    connections): five pass, seven get 429 with Retry-After, each refusal audited."""
    fake = FakeStripe()
    monkeypatch.setattr(gateway, "stripe_refund_create", fake.stripe_refund_create)
    monkeypatch.setattr(gateway, "stripe_refund_list", fake.stripe_refund_list)
    settings.TWO_FACTOR_REQUIRED = False
    settings.MONEY_ACTIONS_PER_MINUTE = 5
    approver = UserFactory(username="pg-approver", is_superuser=True)
    secret = api_token_create(
        user=approver,
        name="bot",
        expires_at=timezone.now() + timedelta(days=1),
        acting_user=approver,
    ).secret
    pending = [RefundRequestFactory() for _ in range(12)]
    queue = list(pending)
    lock = threading.Lock()

    def approve_one():
        with lock:
            row = queue.pop()
        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        response = client.post(
            f"/api/v1/refund-requests/{row.pk}/approve/", {}, content_type="application/json"
        )
        return response.status_code, response.get("Retry-After")

    results = run_concurrently(approve_one, threads=12)
    assert sorted(status for status, _ in results) == [200] * 5 + [429] * 7
    assert {wait for status, wait in results if status == 429} == {"12"}
    approved = RefundRequest.objects.exclude(status=RefundRequest.Status.PENDING).count()
    assert approved == 5
    assert AdminAction.objects.filter(result=AdminAction.Result.REFUSED).count() == 7
