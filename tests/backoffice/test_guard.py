"""The money-action guard (backoffice/guard.py): step-up when the last code is stale, the bulk
maximum, and the per-user token buckets (actions a minute, amount an hour per currency),
shared through the database and audited when they refuse."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice import guard
from backoffice.guard import (
    ERR_AMOUNT_ABOVE_LIMIT,
    ERR_BULK_TOO_MANY,
    ERR_NO_AMOUNT_LIMIT,
    ERR_STEP_UP,
    GUARD_BULK,
    GUARD_RATE,
    GUARD_STEP_UP,
    guard_bulk_action,
    guard_money_action,
    money_action_give_back,
    step_up_needed,
)
from backoffice.models import AdminAction, ApiToken, MoneyActionBucket
from backoffice.second_factor import VERIFIED_AT_SESSION_KEY
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch):
    """The guard's clock, moved by hand: clock.now += 60."""

    class Clock:
        now = NOW

    clock = Clock()
    monkeypatch.setattr(guard, "_now", lambda: clock.now)
    return clock


@pytest.fixture
def limits(settings):
    settings.TWO_FACTOR_REQUIRED = False
    settings.MONEY_ACTIONS_PER_MINUTE = 3
    settings.MONEY_ACTION_AMOUNT_PER_HOUR = {"usd": "100.00", "eur": "50.00", "jpy": "10000"}
    settings.BULK_ACTION_MAX_ROWS = 5
    settings.STEP_UP_MINUTES = 15
    return settings


def make_request(user, *, verified_seconds_ago=None, auth=None):
    request = RequestFactory().post("/admin/x/", REMOTE_ADDR="10.0.0.7")
    request.user = user
    request.session = SessionStore()
    if verified_seconds_ago is not None:
        from django.utils import timezone

        request.session[VERIFIED_AT_SESSION_KEY] = timezone.now().timestamp() - verified_seconds_ago
    if auth is not None:
        request.auth = auth
    return request


def confirmed_device(user):
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


# --- step-up ------------------------------------------------------------------------------------


def test_step_up_asked_when_the_last_code_is_older_than_step_up_minutes(limits):
    user = UserFactory()
    confirmed_device(user)
    stale = make_request(user, verified_seconds_ago=16 * 60)
    result = guard_money_action(stale, action="refund_approve", back_url="/admin/back/")
    assert not result.allowed
    assert result.kind == GUARD_STEP_UP
    assert result.message == ERR_STEP_UP.format(minutes=15)
    assert result.step_up_url == "/admin/step-up/?next=%2Fadmin%2Fback%2F"
    # A prompt, not a refusal: no audit row, no token taken.
    assert not AdminAction.objects.exists()
    assert not MoneyActionBucket.objects.exists()


def test_step_up_not_asked_when_the_code_is_fresh(limits):
    user = UserFactory()
    confirmed_device(user)
    fresh = make_request(user, verified_seconds_ago=14 * 60)
    assert guard_money_action(fresh, action="refund_approve").allowed


def test_never_verified_session_of_a_user_with_a_device_is_asked(limits):
    user = UserFactory()
    confirmed_device(user)
    assert step_up_needed(make_request(user))


def test_who_is_asked(limits):
    """TWO_FACTOR_REQUIRED: everyone. Otherwise only users with a confirmed device. Never a
    token request."""
    without_device = UserFactory()
    unconfirmed = UserFactory()
    TOTPDevice.objects.create(user=unconfirmed, name="half", confirmed=False)
    assert not step_up_needed(make_request(without_device))
    assert not step_up_needed(make_request(unconfirmed))
    limits.TWO_FACTOR_REQUIRED = True
    assert step_up_needed(make_request(without_device))
    with_device = UserFactory()
    confirmed_device(with_device)
    token = ApiToken(user=with_device, name="bi")
    assert not step_up_needed(make_request(with_device, auth=token))


# --- bulk maximum -------------------------------------------------------------------------------


def test_bulk_over_the_maximum_is_refused_and_audited(limits):
    limits.MONEY_ACTIONS_PER_MINUTE = 10
    user = UserFactory()
    request = make_request(user)
    assert guard_money_action(request, action="payout_approve", rows=5).allowed
    result = guard_bulk_action(request, action="payout_cancel", rows=6)
    assert result.kind == GUARD_BULK
    assert result.message == ERR_BULK_TOO_MANY.format(rows=6, limit=5)
    assert result.retry_after is None
    row = AdminAction.objects.get()
    assert (row.action, row.result, row.actor) == ("payout_cancel", "refused", user)
    assert row.details["guard"] == GUARD_BULK
    assert row.ip_address == "10.0.0.7"


# --- rate limits --------------------------------------------------------------------------------


def test_actions_per_minute_refuse_exactly_the_one_over(limits, clock):
    user = UserFactory()
    request = make_request(user)
    for _ in range(3):
        assert guard_money_action(request, action="refund_approve").allowed
    refused = guard_money_action(request, action="refund_approve")
    assert refused.kind == GUARD_RATE
    # 3 a minute: one token back every 20 seconds.
    assert refused.retry_after == 20
    assert "try again in 20 seconds" in refused.message
    audit = AdminAction.objects.get()
    assert audit.result == AdminAction.Result.REFUSED
    assert audit.details["retry_after_seconds"] == 20
    clock.now += 19
    assert not guard_money_action(request, action="refund_approve").allowed
    clock.now += 1
    assert guard_money_action(request, action="refund_approve").allowed


def test_a_bulk_takes_one_token_per_row(limits, clock):
    request = make_request(UserFactory())
    assert guard_money_action(request, action="refund_approve", rows=2).allowed
    refused = guard_money_action(request, action="refund_approve", rows=2)
    assert refused.retry_after == 20  # one token short
    assert guard_money_action(request, action="refund_approve", rows=1).allowed


def test_amount_per_hour_is_per_currency(limits, clock):
    request = make_request(UserFactory())
    limits.MONEY_ACTIONS_PER_MINUTE = 100
    assert guard_money_action(request, action="a", amounts=[(6000, "usd")]).allowed
    assert guard_money_action(request, action="a", amounts=[(4000, "USD")]).allowed
    refused = guard_money_action(request, action="a", amounts=[(3600, "usd")])
    assert refused.kind == GUARD_RATE
    assert "in USD" in refused.message
    # 100.00 an hour: 36.00 comes back in 36% of an hour.
    assert refused.retry_after == 1296
    assert "try again in 22 minutes (after 08:21:36 UTC)" in refused.message
    # Another currency's bucket is untouched by the dollars.
    assert guard_money_action(request, action="a", amounts=[(5000, "eur")]).allowed
    assert guard_money_action(request, action="a", amounts=[(10000, "jpy")]).allowed
    clock.now += 3600
    assert guard_money_action(request, action="a", amounts=[(10000, "usd")]).allowed


def test_a_refusal_takes_nothing_from_the_other_buckets(limits, clock):
    request = make_request(UserFactory())
    assert guard_money_action(request, action="a", amounts=[(10000, "usd")]).allowed
    before = dict(MoneyActionBucket.objects.values_list("key", "tokens"))
    refused = guard_money_action(request, action="a", amounts=[(100, "usd"), (100, "eur")])
    assert not refused.allowed
    assert dict(MoneyActionBucket.objects.values_list("key", "tokens")) == before


def test_debits_count_by_their_absolute_amount(limits, clock):
    request = make_request(UserFactory())
    assert guard_money_action(request, action="a", amounts=[(-10000, "usd")]).allowed
    assert not guard_money_action(request, action="a", amounts=[(1, "usd")]).allowed


def test_a_currency_without_a_limit_is_refused(limits, clock):
    result = guard_money_action(make_request(UserFactory()), action="a", amounts=[(1, "chf")])
    assert result.message == ERR_NO_AMOUNT_LIMIT.format(currency="CHF")
    assert result.retry_after is None


def test_an_amount_above_a_full_hour_can_never_pass(limits, clock):
    result = guard_money_action(make_request(UserFactory()), action="a", amounts=[(10001, "usd")])
    assert result.message == ERR_AMOUNT_ABOVE_LIMIT.format(
        amount="$100.01", currency="USD", limit="$100.00"
    )
    assert result.retry_after is None
    assert AdminAction.objects.get().result == "refused"


def test_users_have_their_own_buckets(limits, clock):
    first, second = make_request(UserFactory()), make_request(UserFactory())
    for _ in range(3):
        assert guard_money_action(first, action="a").allowed
    assert not guard_money_action(first, action="a").allowed
    assert guard_money_action(second, action="a").allowed


def test_give_back_returns_what_a_refused_row_took(limits, clock):
    request = make_request(UserFactory())
    result = guard_money_action(request, action="a", rows=3, amounts=[(10000, "usd")])
    assert result.allowed
    assert not guard_money_action(request, action="a").allowed
    money_action_give_back(request.user, result, rows=1, amounts=[(2500, "usd")])
    assert guard_money_action(request, action="a", amounts=[(2500, "usd")]).allowed
    assert not guard_money_action(request, action="a", amounts=[(1, "usd")]).allowed


def test_give_back_never_fills_a_bucket_past_its_limit(limits, clock):
    request = make_request(UserFactory())
    result = guard_money_action(request, action="a", rows=1)
    money_action_give_back(request.user, result, rows=5)
    assert MoneyActionBucket.objects.get().tokens == 3


def test_give_back_without_figures_returns_everything_taken(limits, clock):
    request = make_request(UserFactory())
    result = guard_money_action(request, action="a", rows=3, amounts=[(10000, "usd")])
    money_action_give_back(request.user, result)
    assert guard_money_action(request, action="a", rows=3, amounts=[(10000, "usd")]).allowed
