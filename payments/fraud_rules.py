"""Our own fraud rules. Each rule is one small function: one set-based query over a time
window, no Python loop over payments; each hit becomes a FraudAlert with source "rule".

How a rule looks at time. A pass looks at the payments created in the last
FRAUD_LOOKBACK_HOURS (the *anchors*; an event's pass only those of the customers, cards and IPs
it touched). For each anchor the rule counts, in a correlated sub-query on an index
((customer, created), (card_fingerprint, created), (ip_address, created)), what happened in its
window ending at that anchor: a sliding window, so a burst is seen whatever hour the hourly
run falls on. SQL keeps only the anchors over the threshold (WHERE count >= N); Python then
keeps the latest hit per cause (hits, never payments).

The rules (settings in backoffice/settings/base.py, `FRAUD_*`; README lists defaults):
- failed_attempts: >= N failed payments of one customer within the window.
- rapid_attempts: >= N payments (any outcome) of one customer within a few minutes.
- unusual_amount: a payment above MULTIPLIER x the customer's average captured payment in the
  same currency over HISTORY_DAYS before it (with at least MIN_HISTORY of them: no history,
  no baseline), or above the absolute per-currency amount. Average, not median: both
  databases compute it in SQL, and the payment itself is left out of its own baseline.
- new_account_high_amount: a payment above the per-currency amount by a customer created less
  than DAYS before it.
- many_payment_methods: >= N payment methods added to one customer within the window ending
  at one of its payments (the alert needs a payment: it is where money is at stake).
- shared_card / shared_ip: one card fingerprint / one IP (metadata `client_ip`) paying for
  >= N distinct customers within the window.
Money thresholds are per currency (payments.money.threshold_minor); a currency with no
configured value is not checked by that threshold (an alert on every payment in it would be
noise, and another currency's number is never applied). Amounts are never added across
currencies: baselines and figures are always within one currency.

Alerts. One unresolved (open, investigating) alert per cause: `cause_key` names it
("customer:42", "card:<fingerprint>", "ip:<address>", "payment:7" for a guest), and a
partial unique index on (rule, cause_key) WHERE status IN (open, investigating) enforces it;
the INSERT skips conflicts (bulk_create ignore_conflicts: ON CONFLICT DO NOTHING on
PostgreSQL, INSERT OR IGNORE on SQLite), so two passes at once cannot duplicate. A hit whose
latest payment is not newer than the latest payment of an earlier alert of the same cause is
dropped: a dismissed alert is not reopened by the same evidence, but new payments of the
pattern open a new one.

Risk score (0-100) = the rule's weight x (observed / threshold), rounded, capped at 100; just
at the threshold a rule scores its weight. Severity from the score: >= 80 critical, >= 60
high, >= 40 medium, else low.

The alert's `payment` is the latest payment of the pattern; `payment_ids` (JSON, latest first,
at most MAX_LINKED) keeps all of them: a snapshot of the evidence written in the same INSERT
(a many-to-many would need the new alerts' ids, which ON CONFLICT DO NOTHING does not return
on PostgreSQL, and more queries on every changelist page).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Avg,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    StringAgg,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from payments.models import (
    FraudAlert,
    FraudRule,
    FraudRuleFailure,
    FraudSeverity,
    JobLock,
    Payment,
    PaymentMethod,
)
from payments.money import threshold_minor

logger = logging.getLogger(__name__)

LOCK_NAME = "fraud-detect"
LOCK_TTL = timedelta(minutes=30)
MSG_LOCKED = "Another fraud detection run is in progress; this run was skipped."
MAX_LINKED = 50  # payment ids kept on an alert
# The rule's risk-score weight: its score just at the threshold (see the module docstring).
WEIGHTS = {
    FraudRule.FAILED_ATTEMPTS: 40,
    FraudRule.RAPID_ATTEMPTS: 40,
    FraudRule.UNUSUAL_AMOUNT: 45,
    FraudRule.NEW_ACCOUNT_HIGH_AMOUNT: 50,
    FraudRule.MANY_PAYMENT_METHODS: 40,
    FraudRule.SHARED_CARD: 60,
    FraudRule.SHARED_IP: 35,
}
SEVERITY_BANDS = (
    (80, FraudSeverity.CRITICAL),
    (60, FraudSeverity.HIGH),
    (40, FraudSeverity.MEDIUM),
    (0, FraudSeverity.LOW),
)


def risk_score(rule: str, observed: float, threshold: float) -> int:
    """weight x observed / threshold, rounded, within 0..100."""
    if threshold <= 0:
        return 100
    return max(0, min(100, round(WEIGHTS[rule] * observed / threshold)))


def severity_for(score: int) -> str:
    return next(severity for floor, severity in SEVERITY_BANDS if score >= floor)


def money(amount: int | float, currency: str) -> dict:
    """A figure in the alert's `numbers`: minor units with their currency, never bare."""
    return {"amount": round(amount), "currency": currency}


@dataclass(frozen=True)
class Scope:
    """What a pass looks at: anchors created at or after `since`; when a set is given (the
    event hook), only those customers / cards / IPs / payment intents (None: all)."""

    since: datetime
    customer_ids: frozenset[int] | None = None
    fingerprints: frozenset[str] | None = None
    ips: frozenset[str] | None = None
    payment_intent_ids: frozenset[str] | None = None


@dataclass
class Hit:
    rule: str
    cause_key: str
    payment_id: int  # the latest payment of the pattern
    payment_created: datetime
    customer_id: int | None
    payment_ids: list[int]
    numbers: dict
    risk_score: int

    @property
    def severity(self) -> str:
        return severity_for(self.risk_score)


# --- building blocks ---------------------------------------------------------------------------


def _anchors(scope: Scope, *, by: str) -> QuerySet[Payment]:
    """Payments a rule evaluates, within the scope. `by`: what the rule groups on."""
    qs = Payment.objects.filter(created__gte=scope.since).order_by()
    if by == "customer":
        qs = qs.filter(customer__isnull=False)
        if scope.customer_ids is not None:
            qs = qs.filter(customer_id__in=scope.customer_ids)
    elif by == "card":
        qs = qs.exclude(card_fingerprint="")
        if scope.fingerprints is not None:
            qs = qs.filter(card_fingerprint__in=scope.fingerprints)
    elif by == "ip":
        qs = qs.filter(ip_address__isnull=False)
        if scope.ips is not None:
            qs = qs.filter(ip_address__in=scope.ips)
    elif by == "payment" and (
        scope.customer_ids is not None or scope.payment_intent_ids is not None
    ):  # the customers' payments, or the guest payment itself
        qs = qs.filter(
            Q(customer_id__in=scope.customer_ids or ())
            | Q(stripe_payment_intent_id__in=scope.payment_intent_ids or ())
        )
    if scope.payment_intent_ids is not None:
        # An event's pass: the windows end at the payments the event wrote, not at every
        # recent payment of their customers, cards and IPs. Otherwise each event would
        # re-count a customer's whole day (quadratic in a burst, the very pattern the rules
        # look for); a payment that arrives late, completing a window that ends at an older
        # anchor, is found by the hourly full pass.
        qs = qs.filter(stripe_payment_intent_id__in=scope.payment_intent_ids)
    return qs


def _window(qs: QuerySet, partition: str, window: timedelta) -> QuerySet:
    """Rows of `qs` in the anchor's partition whose `created` is in (anchor - window, anchor]."""
    return qs.filter(
        **{partition: OuterRef(partition)},
        created__gt=OuterRef("created") - window,
        created__lte=OuterRef("created"),
    ).order_by()


def _aggregate(qs: QuerySet, partition: str, aggregate) -> Subquery:
    """One aggregate over a correlated window (one group: the anchor's partition)."""
    return Subquery(qs.values(partition).annotate(value=aggregate).values("value")[:1])


def _count(qs: QuerySet, partition: str, *, distinct: str | None = None) -> Coalesce:
    what = Count(distinct, distinct=True) if distinct else Count("pk")
    return Coalesce(_aggregate(qs, partition, what), 0, output_field=IntegerField())


def _ids(qs: QuerySet, partition: str, *, column: str = "pk") -> Subquery:
    """The window's ids as "1,3,2,3" (neither ordered nor distinct: Django offers neither
    inside STRING_AGG on SQLite; _split sorts and de-duplicates)."""
    return _aggregate(qs, partition, StringAgg(Cast(column, CharField()), Value(",")))


def _split(ids: str | None, *, first: int | None = None) -> list[int]:
    """ "1,3,2" -> [3, 2, 1] (`first` leading: the alert's own payment), at most MAX_LINKED."""
    values = sorted({int(i) for i in (ids or "").split(",") if i}, reverse=True)
    if first is not None:
        values = [first, *(v for v in values if v != first)]
    return values[:MAX_LINKED]


def _latest_per_cause(rows: Iterable[dict], cause: Callable[[dict], str]) -> dict[str, dict]:
    """Hits -> the latest hit of each cause (rows are hits over the threshold, few)."""
    best: dict[str, dict] = {}
    for row in rows:
        key = cause(row)
        held = best.get(key)
        if held is None or (row["created"], row["pk"]) > (held["created"], held["pk"]):
            best[key] = row
    return best


def _amount_above_q(thresholds) -> Q:
    """amount > the threshold of the row's own currency, for the configured currencies only
    (an empty Q matching nothing when none is configured)."""
    condition = Q(pk__in=[])
    for currency in sorted(thresholds):
        condition |= Q(currency=currency, amount__gt=threshold_minor(thresholds, currency))
    return condition


# --- the rules ---------------------------------------------------------------------------------


def _customer_count_rule(
    scope: Scope, *, rule: str, counted: QuerySet, anchors: QuerySet, n: int, window: timedelta
) -> list[Hit]:
    """>= n rows of `counted` by one customer within `window` ending at an anchor."""
    in_window = _window(counted, "customer", window)
    rows = (
        anchors.annotate(hits=_count(in_window, "customer"))
        .filter(hits__gte=n)
        .annotate(ids=_ids(in_window, "customer"))
        .values("pk", "customer_id", "created", "hits", "ids")
    )
    minutes = int(window.total_seconds() // 60)
    return [
        Hit(
            rule=rule,
            cause_key=key,
            payment_id=row["pk"],
            payment_created=row["created"],
            customer_id=row["customer_id"],
            payment_ids=_split(row["ids"], first=row["pk"]),
            numbers={"count": row["hits"], "threshold": n, "window_minutes": minutes},
            risk_score=risk_score(rule, row["hits"], n),
        )
        for key, row in _latest_per_cause(rows, lambda r: f"customer:{r['customer_id']}").items()
    ]


def rule_failed_attempts(scope: Scope) -> list[Hit]:
    """>= FRAUD_FAILED_ATTEMPTS_COUNT failed payments of one customer within the window."""
    failed = Payment.objects.filter(status=Payment.Status.FAILED)
    return _customer_count_rule(
        scope,
        rule=FraudRule.FAILED_ATTEMPTS,
        counted=failed,
        anchors=_anchors(scope, by="customer").filter(status=Payment.Status.FAILED),
        n=settings.FRAUD_FAILED_ATTEMPTS_COUNT,
        window=timedelta(minutes=settings.FRAUD_FAILED_ATTEMPTS_WINDOW_MINUTES),
    )


def rule_rapid_attempts(scope: Scope) -> list[Hit]:
    """>= FRAUD_RAPID_ATTEMPTS_COUNT payments (any outcome) of one customer within minutes."""
    return _customer_count_rule(
        scope,
        rule=FraudRule.RAPID_ATTEMPTS,
        counted=Payment.objects.all(),
        anchors=_anchors(scope, by="customer"),
        n=settings.FRAUD_RAPID_ATTEMPTS_COUNT,
        window=timedelta(minutes=settings.FRAUD_RAPID_ATTEMPTS_WINDOW_MINUTES),
    )


def rule_unusual_amount(scope: Scope) -> list[Hit]:
    """A payment above MULTIPLIER x its customer's average captured payment in the same
    currency (HISTORY_DAYS before it, >= MIN_HISTORY payments), or above the absolute
    per-currency FRAUD_UNUSUAL_AMOUNT_ABOVE."""
    multiplier = float(settings.FRAUD_UNUSUAL_AMOUNT_MULTIPLIER)
    min_history = settings.FRAUD_UNUSUAL_AMOUNT_MIN_HISTORY
    absolute = settings.FRAUD_UNUSUAL_AMOUNT_ABOVE
    history = Payment.objects.filter(
        customer=OuterRef("customer"),
        currency=OuterRef("currency"),
        status__in=Payment.CAPTURED_STATUSES,
        created__lt=OuterRef("created"),
        created__gte=OuterRef("created")
        - timedelta(days=settings.FRAUD_UNUSUAL_AMOUNT_HISTORY_DAYS),
    ).order_by()
    rows = (
        _anchors(scope, by="payment")
        .annotate(
            history_count=_count(history, "customer"),
            history_avg=_aggregate(history, "customer", Avg("amount", output_field=FloatField())),
        )
        .filter(
            _amount_above_q(absolute)
            | Q(
                history_count__gte=min_history,
                amount__gt=ExpressionWrapper(
                    F("history_avg") * Value(multiplier), output_field=FloatField()
                ),
            )
        )
        .values(
            "pk", "customer_id", "created", "amount", "currency", "history_count", "history_avg"
        )
    )

    def cause(row: dict) -> str:
        if row["customer_id"] is None:
            return f"payment:{row['pk']}"
        return f"customer:{row['customer_id']}"

    hits = []
    for key, row in _latest_per_cause(rows, cause).items():
        amount, currency = row["amount"], row["currency"]
        numbers: dict = {"amount": money(amount, currency), "reasons": []}
        ratios = []
        if currency in absolute and amount > threshold_minor(absolute, currency):
            limit = threshold_minor(absolute, currency)
            numbers["reasons"].append("absolute")
            numbers["absolute_threshold"] = money(limit, currency)
            ratios.append(amount / limit if limit else float("inf"))
        average = row["history_avg"]
        if row["history_count"] >= min_history and average and amount > average * multiplier:
            numbers["reasons"].append("customer_average")
            numbers["customer_average"] = money(average, currency)
            numbers["history_count"] = row["history_count"]
            numbers["multiplier"] = settings.FRAUD_UNUSUAL_AMOUNT_MULTIPLIER
            ratios.append(amount / (average * multiplier))
        hits.append(
            Hit(
                rule=FraudRule.UNUSUAL_AMOUNT,
                cause_key=key,
                payment_id=row["pk"],
                payment_created=row["created"],
                customer_id=row["customer_id"],
                payment_ids=[row["pk"]],
                numbers=numbers,
                risk_score=risk_score(FraudRule.UNUSUAL_AMOUNT, max(ratios, default=1), 1),
            )
        )
    return hits


def rule_new_account_high_amount(scope: Scope) -> list[Hit]:
    """A payment above FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE in its currency by a customer created
    less than FRAUD_NEW_ACCOUNT_DAYS before the payment."""
    days = settings.FRAUD_NEW_ACCOUNT_DAYS
    thresholds = settings.FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE
    rows = (
        _anchors(scope, by="customer")
        .filter(_amount_above_q(thresholds))
        .filter(created__lt=F("customer__created") + timedelta(days=days))
        .values("pk", "customer_id", "created", "amount", "currency", "customer__created")
    )
    hits = []
    for key, row in _latest_per_cause(rows, lambda r: f"customer:{r['customer_id']}").items():
        limit = threshold_minor(thresholds, row["currency"])
        age = row["created"] - row["customer__created"]
        hits.append(
            Hit(
                rule=FraudRule.NEW_ACCOUNT_HIGH_AMOUNT,
                cause_key=key,
                payment_id=row["pk"],
                payment_created=row["created"],
                customer_id=row["customer_id"],
                payment_ids=[row["pk"]],
                numbers={
                    "amount": money(row["amount"], row["currency"]),
                    "threshold": money(limit, row["currency"]),
                    "account_age_hours": max(0, int(age.total_seconds() // 3600)),
                    "new_account_days": days,
                },
                risk_score=risk_score(
                    FraudRule.NEW_ACCOUNT_HIGH_AMOUNT, row["amount"], limit or row["amount"]
                ),
            )
        )
    return hits


def rule_many_payment_methods(scope: Scope) -> list[Hit]:
    """>= FRAUD_PAYMENT_METHODS_COUNT payment methods added to one customer within the window
    ending at one of its payments."""
    n = settings.FRAUD_PAYMENT_METHODS_COUNT
    window = timedelta(hours=settings.FRAUD_PAYMENT_METHODS_WINDOW_HOURS)
    methods = _window(PaymentMethod.objects.all(), "customer", window)
    rows = (
        _anchors(scope, by="customer")
        .annotate(methods=_count(methods, "customer"))
        .filter(methods__gte=n)
        .values("pk", "customer_id", "created", "methods")
    )
    return [
        Hit(
            rule=FraudRule.MANY_PAYMENT_METHODS,
            cause_key=key,
            payment_id=row["pk"],
            payment_created=row["created"],
            customer_id=row["customer_id"],
            payment_ids=[row["pk"]],
            numbers={
                "count": row["methods"],
                "threshold": n,
                "window_hours": settings.FRAUD_PAYMENT_METHODS_WINDOW_HOURS,
            },
            risk_score=risk_score(FraudRule.MANY_PAYMENT_METHODS, row["methods"], n),
        )
        for key, row in _latest_per_cause(rows, lambda r: f"customer:{r['customer_id']}").items()
    ]


def _shared_rule(scope: Scope, *, rule: str, by: str, column: str, n: int, hours: int):
    """One card / IP paying for >= n distinct customers within the window."""
    # The window's own "not empty" condition restates the partial index's predicate
    # (card_fingerprint <> '' / ip_address IS NOT NULL), so PostgreSQL can use that index.
    present = ~Q(card_fingerprint="") if by == "card" else Q(ip_address__isnull=False)
    in_window = _window(
        Payment.objects.filter(present, customer__isnull=False), column, timedelta(hours=hours)
    )
    rows = (
        _anchors(scope, by=by)
        .annotate(customers=_count(in_window, column, distinct="customer"))
        .filter(customers__gte=n)
        .annotate(
            ids=_ids(in_window, column),
            customer_list=_ids(in_window, column, column="customer_id"),
        )
        .values("pk", "customer_id", "created", column, "customers", "ids", "customer_list")
    )
    prefix = "card" if by == "card" else "ip"
    return [
        Hit(
            rule=rule,
            cause_key=key,
            payment_id=row["pk"],
            payment_created=row["created"],
            customer_id=row["customer_id"],
            payment_ids=_split(row["ids"], first=row["pk"]),
            numbers={
                "customers": row["customers"],
                "threshold": n,
                "window_hours": hours,
                "customer_ids": sorted(_split(row["customer_list"])),
                prefix: str(row[column]),
            },
            risk_score=risk_score(rule, row["customers"], n),
        )
        for key, row in _latest_per_cause(rows, lambda r: f"{prefix}:{r[column]}").items()
    ]


def rule_shared_card(scope: Scope) -> list[Hit]:
    """One card fingerprint on payments of >= FRAUD_SHARED_CARD_CUSTOMERS customers."""
    return _shared_rule(
        scope,
        rule=FraudRule.SHARED_CARD,
        by="card",
        column="card_fingerprint",
        n=settings.FRAUD_SHARED_CARD_CUSTOMERS,
        hours=settings.FRAUD_SHARED_CARD_WINDOW_HOURS,
    )


def rule_shared_ip(scope: Scope) -> list[Hit]:
    """One client IP on payments of >= FRAUD_SHARED_IP_CUSTOMERS customers."""
    return _shared_rule(
        scope,
        rule=FraudRule.SHARED_IP,
        by="ip",
        column="ip_address",
        n=settings.FRAUD_SHARED_IP_CUSTOMERS,
        hours=settings.FRAUD_SHARED_IP_WINDOW_HOURS,
    )


RULES: dict[str, Callable[[Scope], list[Hit]]] = {
    FraudRule.FAILED_ATTEMPTS.value: rule_failed_attempts,
    FraudRule.RAPID_ATTEMPTS.value: rule_rapid_attempts,
    FraudRule.UNUSUAL_AMOUNT.value: rule_unusual_amount,
    FraudRule.NEW_ACCOUNT_HIGH_AMOUNT.value: rule_new_account_high_amount,
    FraudRule.MANY_PAYMENT_METHODS.value: rule_many_payment_methods,
    FraudRule.SHARED_CARD.value: rule_shared_card,
    FraudRule.SHARED_IP.value: rule_shared_ip,
}


# --- opening alerts ----------------------------------------------------------------------------


def fraud_alerts_open(hits: list[Hit], *, now: datetime | None = None) -> dict[str, int]:
    """Open one alert per hit unless its cause already has an unresolved alert, or an earlier
    alert of that cause already covered its latest payment. Safe against concurrent passes
    (the partial unique index and ON CONFLICT DO NOTHING). Returns alerts opened per rule.
    A fixed number of statements whatever the number of hits."""
    if not hits:
        return {}
    now = now or timezone.now()
    covered = {
        (row["rule"], row["cause_key"]): row["last"]
        for row in FraudAlert.objects.filter(
            source=FraudAlert.Source.RULE,
            rule__in={h.rule for h in hits},
            cause_key__in={h.cause_key for h in hits},
        )
        .order_by()
        .values("rule", "cause_key")
        .annotate(last=Max("payment__created"))
    }
    fresh = [
        hit
        for hit in hits
        if covered.get((hit.rule, hit.cause_key)) is None
        or hit.payment_created > covered[(hit.rule, hit.cause_key)]
    ]
    if not fresh:
        return {}
    FraudAlert.objects.bulk_create(
        [
            FraudAlert(
                payment_id=hit.payment_id,
                customer_id=hit.customer_id,
                source=FraudAlert.Source.RULE,
                rule=hit.rule,
                severity=hit.severity,
                risk_score=hit.risk_score,
                numbers=hit.numbers,
                cause_key=hit.cause_key[:255],
                payment_ids=hit.payment_ids,
                created=now,
            )
            for hit in fresh
        ],
        ignore_conflicts=True,
    )
    # What this pass inserted (`created` is this pass's own timestamp): their history rows.
    opened = list(
        FraudAlert.objects.filter(
            status=FraudAlert.Status.OPEN, source=FraudAlert.Source.RULE, created=now
        )
    )
    if opened:
        FraudAlert.history.bulk_history_create(opened, default_change_reason="Fraud rule")
    counts: dict[str, int] = {}
    for alert in opened:
        counts[alert.rule] = counts.get(alert.rule, 0) + 1
    return counts


# --- passes ------------------------------------------------------------------------------------


@dataclass
class DetectionResult:
    status: str = "succeeded"  # succeeded | failed (a rule raised) | skipped (lock held)
    hits: dict[str, int] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    seconds: float = 0.0
    rule_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "hits": self.hits,
            "opened": self.opened,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rule_seconds": {name: round(s, 3) for name, s in self.rule_seconds.items()},
        }


def fraud_rules_run(*, scope: Scope, trigger: str, now: datetime | None = None) -> DetectionResult:
    """Every rule over `scope`, then the alerts. A rule that raises is logged, recorded as a
    FraudRuleFailure and skipped; the others still run and open their alerts."""
    started = time.perf_counter()
    result = DetectionResult(since=scope.since)
    hits: list[Hit] = []
    for name, rule in RULES.items():
        rule_started = time.perf_counter()
        try:
            # A savepoint: a failed query must not poison a caller's transaction.
            with transaction.atomic():
                found = rule(scope)
        except Exception as exc:
            logger.exception("Fraud rule %s failed (%s)", name, trigger)
            result.errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
            continue
        finally:
            result.rule_seconds[name] = time.perf_counter() - rule_started
        if found:
            result.hits[name] = len(found)
            hits.extend(found)
    try:
        with transaction.atomic():
            result.opened = fraud_alerts_open(hits, now=now)
    except Exception as exc:
        logger.exception("Opening fraud alerts failed (%s)", trigger)
        result.errors["alerts"] = f"{type(exc).__name__}: {exc}"[:2000]
    if result.errors:
        result.status = "failed"
        FraudRuleFailure.objects.bulk_create(
            [
                FraudRuleFailure(rule=name, trigger=trigger, error=error)
                for name, error in result.errors.items()
            ]
        )
    result.seconds = time.perf_counter() - started
    return result


def fraud_detect(
    *, since: datetime | None = None, trigger: str = "command", now: datetime | None = None
) -> DetectionResult:
    """The full pass (`manage_payments --detect-fraud`, hourly): every rule over the payments
    created since `since` (default: the last FRAUD_LOOKBACK_HOURS). Holds the `fraud-detect`
    lease so two full passes never overlap (status "skipped" when another holds it)."""
    now = now or timezone.now()
    since = since or now - timedelta(hours=settings.FRAUD_LOOKBACK_HOURS)
    token = JobLock.objects.acquire(LOCK_NAME, ttl=LOCK_TTL)
    if token is None:
        return DetectionResult(status="skipped", since=since, errors={"lock": MSG_LOCKED})
    try:
        return fraud_rules_run(scope=Scope(since=since), trigger=trigger, now=now)
    finally:
        JobLock.objects.release(LOCK_NAME, token)


def fraud_detect_touched(
    *,
    customer_ids: Iterable[int | None] = (),
    fingerprints: Iterable[str] = (),
    ips: Iterable[str | None] = (),
    payment_intent_ids: Iterable[str] = (),
) -> DetectionResult | None:
    """The event hook (payments.sync.upsert_payment_intents, after commit): every rule, scoped
    to the customers, cards, IPs and payment intents an upsert touched. Never raises: a
    payment event must not fail because of a fraud rule (errors are logged and recorded)."""
    if not settings.FRAUD_DETECT_ON_EVENTS:
        return None
    try:
        now = timezone.now()
        scope = Scope(
            since=now - timedelta(hours=settings.FRAUD_LOOKBACK_HOURS),
            customer_ids=frozenset(c for c in customer_ids if c),
            fingerprints=frozenset(f for f in fingerprints if f),
            ips=frozenset(str(i) for i in ips if i),
            payment_intent_ids=frozenset(payment_intent_ids),
        )
        return fraud_rules_run(scope=scope, trigger=FraudRuleFailure.Trigger.EVENT, now=now)
    except Exception:
        logger.exception("Fraud rules after a payment event failed")
        try:
            FraudRuleFailure.objects.create(
                rule="all", trigger=FraudRuleFailure.Trigger.EVENT, error="see the log"
            )
        except Exception:
            logger.exception("Recording the fraud rule failure failed")
        return None
