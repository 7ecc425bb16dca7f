"""The one gate every money-moving action passes (issue 12, items 1 and 5): approving refunds,
payouts and earning (or customer) adjustments, submitting dispute evidence, retrying payments,
in the admin and in the API. Call it after the permission check and before the service:

    result = guard_money_action(request, action="refund_approve", target=refund_request,
                                amounts=[(refund_request.amount, refund_request.currency)])
    if not result.allowed:
        return guard_admin_response(request, result, back_url=confirmation_page_url)  # admin
        raise_for_api(result)                                                           # API

It asks, in this order, and the first "no" wins:

1. Step-up: a session whose last second-factor code is older than STEP_UP_MINUTES must enter
   a fresh one at /admin/step-up/?next=... (backoffice/step_up.py) before money moves.
   Asked of everyone when TWO_FACTOR_REQUIRED, otherwise of users who have a confirmed device
   (a user without one has nothing to step up with; the login decides whether that is
   allowed). Never of an API token: a token is its own credential, made by a verified staff
   member, and a program cannot type a code. The guard refuses; it never replays the POST:
   the user confirms again, on a page showing the state as it is then.
2. Bulk size: more than BULK_ACTION_MAX_ROWS rows in one action is refused whole.
3. Rate limits per staff user, token buckets shared by every process: MONEY_ACTIONS_PER_MINUTE
   (one token per row) and MONEY_ACTION_AMOUNT_PER_HOUR per currency (one token per minor
   unit, absolute amounts; one currency's approvals never count against another's). All the
   buckets an action needs are taken in one transaction, or none is. A currency with no
   configured hourly amount is refused (fail closed, as every per-currency threshold here).

Refusals by size or rate are audited (AdminAction, result "refused") with the wait; the
step-up prompt is not a refusal (the step-up page audits codes, right or wrong).

Buckets live in the database by default (backoffice.MoneyActionBucket, one row per user and
limit, taken with one conditional UPDATE: `tokens = least(capacity, tokens + elapsed * rate)
- cost WHERE that >= cost`), so every process and server shares them with nothing to set up,
and the row lock orders concurrent takers on PostgreSQL (SQLite has one writer anyway).
Nothing is ever counted in process memory.

A service may still refuse a row the guard let through (four-eyes, a state that moved on):
`money_action_give_back` returns its tokens, so the limits count money that moved."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, models, transaction
from django.db.models import F, FloatField, Value
from django.db.models.functions import Greatest, Least
from django.db.models.lookups import GreaterThanOrEqual
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django_otp import user_has_device

from .api.errors import ApiError
from .audit import audit_record, client_info_from_request
from .models import AdminAction, ApiToken, MoneyActionBucket
from .refusals import Refusal
from .second_factor import verified_within

ERR_STEP_UP = (
    "This action moves money: enter a fresh code from your authenticator app first (your "
    "last one is more than {minutes} minutes old). Nothing was done; confirm again after "
    "the code."
)
ERR_BULK_TOO_MANY = (
    "{rows} rows selected: a bulk action takes at most {limit} (BULK_ACTION_MAX_ROWS). "
    "Nothing was done; select fewer rows (filter the list) and try again."
)
ERR_RATE_ACTIONS = (
    "Too many money-moving actions: you may do {limit} a minute, and {rows} more would go "
    "over. Nothing was done; try again in {wait} (after {at})."
)
ERR_RATE_AMOUNT = (
    "Too much approved in {currency}: you may approve up to {limit} an hour, and {amount} "
    "more would go over. Nothing was done; try again in {wait} (after {at})."
)
ERR_ACTIONS_ABOVE_LIMIT = (
    "{rows} money-moving actions at once are more than the {limit} a minute one person may "
    "do (MONEY_ACTIONS_PER_MINUTE). Nothing was done; select fewer rows."
)
ERR_AMOUNT_ABOVE_LIMIT = (
    "{amount} is more than one person may approve in an hour in {currency} ({limit}, "
    "MONEY_ACTION_AMOUNT_PER_HOUR): it cannot pass, now or later. Nothing was done; ask an "
    "administrator."
)
ERR_NO_AMOUNT_LIMIT = (
    "No hourly limit is set for {currency} (MONEY_ACTION_AMOUNT_PER_HOUR), so money in it "
    "cannot be approved until one is. Nothing was done; ask an administrator."
)

# Audit `details["guard"]`: which check refused.
GUARD_BULK = "bulk_max"
GUARD_RATE = "rate_limit"
GUARD_STEP_UP = "step_up"


@dataclass(frozen=True)
class GuardResult:
    """What the guard decided. `allowed`: go on to the service. Otherwise either
    `step_up_url` (a fresh code first; nothing was refused for good) or `refusal` (size or
    rate, already audited), with `retry_after` seconds when waiting helps (None: it never
    will, e.g. more rows than a bulk action takes)."""

    refusal: Refusal | None = None
    step_up_url: str = ""
    retry_after: int | None = None
    # Which check said no: GUARD_STEP_UP, GUARD_BULK or GUARD_RATE ("" when allowed).
    kind: str = ""
    # What was taken from the buckets, for money_action_give_back.
    taken: dict = field(default_factory=dict, compare=False)

    @property
    def allowed(self) -> bool:
        return self.refusal is None and not self.step_up_url

    @property
    def message(self) -> str:
        return str(self.refusal) if self.refusal else ""


ALLOWED = GuardResult()


# --- step-up ------------------------------------------------------------------------------------


def is_token_request(request) -> bool:
    """An API request authenticated by a token (DRF's request.auth), not by the session."""
    return isinstance(getattr(request, "auth", None), ApiToken)


def step_up_needed(request) -> bool:
    """True when this request must show a fresh second-factor code before money moves."""
    if is_token_request(request):
        return False
    user = request.user
    if not (settings.TWO_FACTOR_REQUIRED or user_has_device(user, confirmed=True)):
        return False
    return not verified_within(request, settings.STEP_UP_MINUTES)


def step_up_url(next_url: str) -> str:
    """The step-up page, coming back to `next_url` (a page the user can GET) after the code."""
    return f"{reverse('step_up')}?{urlencode({'next': next_url})}"


def step_up_redirect(request, *, next_url: str | None = None) -> HttpResponseRedirect | None:
    """For a page that leads to a money-moving POST (a confirmation page): send the user to
    the step-up page first when the POST would ask for it, so the code comes before the
    typing, not after. None when no code is needed. The POST's guard asks again."""
    if not step_up_needed(request):
        return None
    return HttpResponseRedirect(step_up_url(next_url or request.get_full_path()))


# --- the guard ----------------------------------------------------------------------------------


def guard_money_action(
    request,
    *,
    action: str,
    amounts: Iterable[tuple[int, str]] = (),
    rows: int = 1,
    target: models.Model | type[models.Model] | None = None,
    back_url: str = "",
) -> GuardResult:
    """May `request.user` do `action` now, over `rows` rows moving `amounts` ((minor units,
    currency) pairs, one per row)? Takes the rate-limit tokens when it says yes.

    `target` is what the audit row of a refusal is about (a row, or a model class for a bulk
    action; default: the acting user). `back_url` is the page (GET) the step-up returns to,
    where the user confirms again (default: the referring page, else the admin index)."""
    amounts = list(amounts)
    if step_up_needed(request):
        back = back_url or _safe_referer(request) or reverse("admin:index")
        return GuardResult(
            refusal=Refusal(ERR_STEP_UP.format(minutes=settings.STEP_UP_MINUTES)),
            step_up_url=step_up_url(back),
            kind=GUARD_STEP_UP,
        )
    bulk = bulk_refusal(rows)
    if bulk is not None:
        _audit_refusal(
            request,
            action=action,
            target=target,
            message=bulk.message,
            guard=GUARD_BULK,
            rows=rows,
            amounts=amounts,
        )
        return GuardResult(refusal=bulk, kind=GUARD_BULK)
    result = take_money_action_tokens(request.user, amounts=amounts, rows=rows)
    if result.refusal is not None:
        _audit_refusal(
            request,
            action=action,
            target=target,
            message=result.message,
            guard=GUARD_RATE,
            rows=rows,
            amounts=amounts,
            retry_after=result.retry_after,
        )
    return result


def guard_bulk_action(
    request, *, action: str, rows: int, target: models.Model | type[models.Model] | None = None
) -> GuardResult:
    """For a bulk action that moves no money (reject, cancel): only BULK_ACTION_MAX_ROWS."""
    bulk = bulk_refusal(rows)
    if bulk is None:
        return ALLOWED
    _audit_refusal(
        request, action=action, target=target, message=bulk.message, guard=GUARD_BULK, rows=rows
    )
    return GuardResult(refusal=bulk, kind=GUARD_BULK)


def bulk_refusal(rows: int) -> Refusal | None:
    """Why `rows` rows are too many for one bulk action, or None."""
    limit = settings.BULK_ACTION_MAX_ROWS
    if rows > limit:
        return Refusal(ERR_BULK_TOO_MANY.format(rows=rows, limit=limit))
    return None


# --- answers for the admin and the API ---------------------------------------------------------


def guard_admin_response(request, result: GuardResult, *, back_url: str) -> HttpResponseRedirect:
    """The admin's answer to a refusal: its message, then the step-up page (which comes back
    to `back_url`) or `back_url` itself. Nothing is replayed: the user confirms again."""
    messages.error(request, result.message)
    return HttpResponseRedirect(result.step_up_url or back_url)


def raise_for_api(result: GuardResult) -> None:
    """The API's answer to a refusal, raised as an ApiError: 403 `step_up_required` (a
    session: enter a code on the admin's step-up page, then retry), 429 `rate_limited` with
    Retry-After, 403 `over_limit` (waiting will not help) or 400 `too_many_rows`. None is
    stored for an Idempotency-Key: the request did nothing, so a retry with the key runs it."""
    if result.allowed:
        return
    if result.kind == GUARD_STEP_UP:
        message = f"{result.message} The code page: {result.step_up_url}"
        error = ApiError("step_up_required", message, 403)
    elif result.kind == GUARD_BULK:
        error = ApiError("too_many_rows", result.message, 400)
    elif result.retry_after is not None:
        error = ApiError("rate_limited", result.message, 429)
        error.wait = result.retry_after
    else:  # over a limit however long one waits
        error = ApiError("over_limit", result.message, 403)
    error.stored = False
    raise error


def guard_api_money_action(request, **kwargs) -> GuardResult:
    """guard_money_action for an API view: the GuardResult when allowed (for
    money_action_give_back), else raise_for_api's error."""
    result = guard_money_action(request, **kwargs)
    raise_for_api(result)
    return result


# --- token buckets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bucket:
    key: str
    capacity: float  # tokens when full
    rate: float  # tokens refilled per second
    cost: float  # tokens this action takes


class _Refused(Exception):
    def __init__(self, bucket: _Bucket, wait: int):
        self.bucket = bucket
        self.wait = wait


def _now() -> float:
    """Unix seconds (a function, so tests can move the clock)."""
    return time.time()


def _actions_key(user) -> str:
    return f"money:{user.pk}:actions"


def _amount_key(user, currency: str) -> str:
    return f"money:{user.pk}:amount:{currency}"


def _per_currency(amounts: Iterable[tuple[int, str]]) -> dict[str, int]:
    """Absolute amounts summed per lower-case currency (a debit moves money too)."""
    totals: dict[str, int] = {}
    for amount, currency in amounts:
        code = (currency or "").lower()
        totals[code] = totals.get(code, 0) + abs(int(amount))
    return {code: total for code, total in totals.items() if total}


def _amount_limit(currency: str) -> int:
    """MONEY_ACTION_AMOUNT_PER_HOUR for `currency`, in minor units (0: not configured)."""
    threshold_minor = import_string(settings.MONEY_THRESHOLD_MINOR)
    return threshold_minor(settings.MONEY_ACTION_AMOUNT_PER_HOUR, currency)


def _money(amount: int, currency: str) -> str:
    return import_string(settings.MONEY_FORMATTER)(int(amount), currency)


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def _at_text(now: float, seconds: int) -> str:
    return datetime.fromtimestamp(now + seconds, tz=UTC).strftime("%H:%M:%S UTC")


def take_money_action_tokens(user, *, amounts: Iterable[tuple[int, str]] = (), rows: int = 1):
    """Take `rows` action tokens and each currency's amount from `user`'s buckets, all or
    none. A GuardResult: allowed (with what it took), or refused with retry_after seconds
    (None when the action can never pass: larger than a full bucket, or no limit set)."""
    per_minute = settings.MONEY_ACTIONS_PER_MINUTE
    totals = _per_currency(amounts)
    if rows > per_minute:
        return GuardResult(
            refusal=Refusal(ERR_ACTIONS_ABOVE_LIMIT.format(rows=rows, limit=per_minute)),
            kind=GUARD_RATE,
        )
    buckets = [_Bucket(_actions_key(user), per_minute, per_minute / 60, rows)] if rows else []
    for currency, total in sorted(totals.items()):
        limit = _amount_limit(currency)
        if limit <= 0:
            return GuardResult(
                refusal=Refusal(ERR_NO_AMOUNT_LIMIT.format(currency=currency.upper())),
                kind=GUARD_RATE,
            )
        if total > limit:
            return GuardResult(
                refusal=Refusal(
                    ERR_AMOUNT_ABOVE_LIMIT.format(
                        amount=_money(total, currency),
                        currency=currency.upper(),
                        limit=_money(limit, currency),
                    )
                ),
                kind=GUARD_RATE,
            )
        buckets.append(_Bucket(_amount_key(user, currency), limit, limit / 3600, total))
    now = _now()
    try:
        _take_all(buckets, now)
    except _Refused as refused:
        return GuardResult(
            refusal=Refusal(_rate_message(refused, now, rows=rows)),
            retry_after=refused.wait,
            kind=GUARD_RATE,
        )
    return GuardResult(taken={"rows": rows, "amounts": totals})


def _rate_message(refused: _Refused, now: float, *, rows: int) -> str:
    bucket, wait = refused.bucket, refused.wait
    when = {"wait": _wait_text(wait), "at": _at_text(now, wait)}
    if bucket.key.endswith(":actions"):
        return ERR_RATE_ACTIONS.format(limit=int(bucket.capacity), rows=rows, **when)
    currency = bucket.key.rsplit(":", 1)[1]
    return ERR_RATE_AMOUNT.format(
        currency=currency.upper(),
        limit=_money(int(bucket.capacity), currency),
        amount=_money(int(bucket.cost), currency),
        **when,
    )


def _level(capacity: float, rate: float, now: float):
    """SQL: the bucket's tokens at `now`, refilled since its last take and capped when full.
    A clock behind the row's (another server) refills nothing rather than going negative."""
    elapsed = Greatest(Value(now) - F("refilled_at"), Value(0.0), output_field=FloatField())
    return Least(
        Value(float(capacity)),
        F("tokens") + elapsed * Value(float(rate)),
        output_field=FloatField(),
    )


def _take_all(buckets: list[_Bucket], now: float) -> None:
    """Take every bucket's cost in one transaction, in key order (two takers lock rows in the
    same order, so they queue instead of deadlocking), or raise _Refused and take none."""
    with transaction.atomic():
        for bucket in sorted(buckets, key=lambda b: b.key):
            if not _take_one(bucket, now):
                raise _Refused(bucket, _wait_for(bucket, now))


def _take_one(bucket: _Bucket, now: float) -> bool:
    rows = MoneyActionBucket.objects.filter(key=bucket.key)
    level = _level(bucket.capacity, bucket.rate, now)

    def update() -> bool:
        return bool(
            rows.filter(GreaterThanOrEqual(level, Value(float(bucket.cost)))).update(
                tokens=level - Value(float(bucket.cost)),
                refilled_at=Greatest(F("refilled_at"), Value(now), output_field=FloatField()),
            )
        )

    if update():
        return True
    if rows.exists():
        # Either it is short of tokens, or another process made the row after this UPDATE's
        # snapshot (READ COMMITTED): one more UPDATE, which sees it, decides.
        return update()
    # A user's first take: a full bucket minus the cost. A concurrent first take loses the
    # unique key (after the other commits) and takes from the row the other one made.
    try:
        with transaction.atomic():
            MoneyActionBucket.objects.create(
                key=bucket.key, tokens=bucket.capacity - bucket.cost, refilled_at=now
            )
        return True
    except IntegrityError:
        return update()


def _wait_for(bucket: _Bucket, now: float) -> int:
    """Seconds until `bucket` holds its cost again (at least 1)."""
    row = MoneyActionBucket.objects.filter(key=bucket.key).values("tokens", "refilled_at").first()
    level = bucket.capacity
    if row is not None:
        elapsed = max(0.0, now - row["refilled_at"])
        level = min(bucket.capacity, row["tokens"] + elapsed * bucket.rate)
    return max(1, math.ceil((bucket.cost - level) / bucket.rate))


def money_action_give_back(
    user, result: GuardResult, *, rows: int | None = None, amounts: Iterable | None = None
) -> None:
    """Return tokens the guard took for rows the service then refused (nothing moved): `rows`
    and `amounts` of them, or (None) everything `result` took. Never more than it took, and
    each bucket stays at most full."""
    taken = result.taken or {}
    taken_amounts = taken.get("amounts", {})
    rows = taken.get("rows", 0) if rows is None else min(rows, taken.get("rows", 0))
    back = dict(taken_amounts) if amounts is None else _per_currency(amounts)
    updates = []
    if rows:
        updates.append((_actions_key(user), settings.MONEY_ACTIONS_PER_MINUTE, rows))
    for currency, total in back.items():
        total = min(total, taken_amounts.get(currency, 0))
        if total:
            updates.append((_amount_key(user, currency), _amount_limit(currency), total))
    with transaction.atomic():
        for key, capacity, amount in sorted(updates):
            MoneyActionBucket.objects.filter(key=key).update(
                tokens=Least(
                    Value(float(capacity)),
                    F("tokens") + Value(float(amount)),
                    output_field=FloatField(),
                )
            )


# --- audit and helpers --------------------------------------------------------------------------


def _audit_refusal(
    request, *, action, target, message, guard, rows, amounts=(), retry_after=None
) -> None:
    totals = _per_currency(amounts)
    single = len(totals) == 1
    amount, currency = (next(iter(totals.values())), next(iter(totals))) if single else (None, "")
    if target is None:
        target = request.user
    audit_record(
        acting_user=request.user,
        action=action,
        target=target,
        target_id=None if not isinstance(target, type) else "bulk",
        amount=amount,
        currency=currency,
        reason=message,
        result=AdminAction.Result.REFUSED,
        details={
            "guard": guard,
            "rows": rows,
            "amounts": totals,
            "retry_after_seconds": retry_after,
        },
        client=client_info_from_request(request),
    )


def _safe_referer(request) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""
