"""Deterministic demo data: the same seed and `now` always give the same rows.

Small by default (a few thousand payments in seconds); the same code fills a million rows for
the benchmarks, streaming in batches so memory stays flat.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.models import (
    BalanceEntry,
    Customer,
    Dispute,
    FraudAlert,
    Instructor,
    Payment,
    PaymentMethod,
    Refund,
    StudentBalance,
)
from payments.money import percent_of

CATALOG = Path(settings.BASE_DIR) / "fixtures" / "demo_catalog.json"
DAYS = 90
BATCH = 5000

# (status, weight). Roughly a healthy marketplace: ~87% captured.
STATUS_MIX = [
    (Payment.Status.SUCCEEDED, 780),
    (Payment.Status.FAILED, 90),
    (Payment.Status.CANCELED, 25),
    (Payment.Status.REQUIRES_ACTION, 20),
    (Payment.Status.PROCESSING, 10),
    (Payment.Status.PENDING, 10),
    (Payment.Status.PARTIALLY_REFUNDED, 20),
    (Payment.Status.REFUNDED, 35),
    (Payment.Status.DISPUTED, 10),
]
# (failure_code, decline_code, message, weight)
FAILURES = [
    ("card_declined", "insufficient_funds", "Your card has insufficient funds.", 35),
    ("card_declined", "generic_decline", "Your card was declined.", 20),
    ("expired_card", "expired_card", "Your card has expired.", 12),
    (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
        10,
    ),
    ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", 8),
    ("card_declined", "do_not_honor", "Your card was declined.", 7),
    ("card_declined", "fraudulent", "Your card was declined.", 4),
    ("processing_error", "", "An error occurred while processing your card. Try again.", 4),
]
CURRENCIES = [("usd", 75), ("eur", 18), ("jpy", 5), ("gbp", 2)]
# Amount multipliers from the USD cent ranges in the catalogue (minor units per USD cent).
CURRENCY_SCALE = {"usd": 1.0, "eur": 0.92, "gbp": 0.79, "jpy": 1.5}
# Stripe-like pricing: (basis points, fixed minor units).
STRIPE_PRICING = {"usd": (290, 30), "eur": (150, 25), "gbp": (150, 20), "jpy": (360, 0)}
METHODS = [("card", 85), ("wallet", 8), ("bank_transfer", 4), ("sepa_debit", 3)]
CARD_BRANDS = [("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5)]
DISPUTE_REASONS = ["fraudulent", "product_not_received", "duplicate", "subscription_canceled"]
REFUND_REASONS = ["requested_by_customer", "duplicate", "fraudulent"]


@dataclass
class DemoSize:
    payments: int
    customers: int
    instructors: int = 12


def _pick(rng: random.Random, weighted):
    items, weights = zip(
        *[(row[:-1] if len(row) > 2 else row[0], row[-1]) for row in weighted], strict=True
    )
    return rng.choices(items, weights=weights, k=1)[0]


def _stripe_id(rng: random.Random, prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(rng.choice(alphabet) for _ in range(24))


def _amount(rng: random.Random, usd_range, currency: str) -> int:
    cents = rng.randint(*usd_range)
    if currency == "jpy":
        # Whole yen, rounded to 10 like real price tags.
        return max(50, round(cents * CURRENCY_SCALE["jpy"] / 10) * 10)
    # Prices end in .00 or .99 most of the time.
    major = max(1, round(cents * CURRENCY_SCALE[currency] / 100))
    return major * 100 - (1 if rng.random() < 0.4 else 0)


def stripe_fee_for(amount: int, currency: str) -> int:
    bps, fixed = STRIPE_PRICING[currency]
    return percent_of(amount, bps) + fixed


class DemoGenerator:
    def __init__(self, *, seed: int = 42, now: datetime | None = None, stdout=None):
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
        self.catalog = json.loads(CATALOG.read_text())
        self.stdout = stdout

    def _log(self, message: str) -> None:
        if self.stdout is not None:
            self.stdout.write(message)

    def run(self, size: DemoSize) -> dict[str, int]:
        with transaction.atomic():
            instructors = self._instructors(size.instructors)
            customers, methods = self._customers(size.customers)
        counts = {
            "instructors": len(instructors),
            "customers": len(customers),
            "payment_methods": sum(len(m) for m in methods.values()),
            "payments": 0,
            "refunds": 0,
            "disputes": 0,
        }
        for batch in self._payment_batches(size.payments, customers, methods, instructors):
            with transaction.atomic():
                created = Payment.objects.bulk_create([payment for payment, _ in batch])
                refunds, disputes = [], []
                for payment, (_, extra) in zip(created, batch, strict=True):
                    for kind, row in extra:
                        row.payment_id = payment.pk
                        (refunds if kind == "refund" else disputes).append(row)
                Refund.objects.bulk_create(refunds)
                Dispute.objects.bulk_create(disputes)
            counts["payments"] += len(created)
            counts["refunds"] += len(refunds)
            counts["disputes"] += len(disputes)
            if size.payments >= 50_000:
                self._log(f"  {counts['payments']:,} / {size.payments:,} payments")
        counts["student_balances"] = self._balances()
        counts["fraud_alerts"] = self._fraud_alerts()
        return counts

    def _fraud_alerts(self) -> int:
        """Radar-style early fraud warnings on a few captured payments, still to review."""
        candidates = list(
            Payment.objects.filter(status__in=[Payment.Status.SUCCEEDED, Payment.Status.DISPUTED])
            .exclude(fraud_alerts__isnull=False)
            .order_by("-created", "id")
            .values_list("id", "created", "status")[:2000]
        )
        alerts = [
            FraudAlert(
                payment_id=payment_id,
                source=FraudAlert.Source.EARLY_FRAUD_WARNING,
                stripe_id=_stripe_id(self.rng, "issfr_"),
                fraud_type=self.rng.choice(["made_with_stolen_card", "unauthorized_use_of_card"]),
                created=created + timedelta(days=self.rng.randint(1, 10)),
            )
            for payment_id, created, status in candidates
            if status == Payment.Status.DISPUTED or self.rng.random() < 0.004
        ]
        now = self.now
        for alert in alerts:
            alert.created = min(alert.created, now)
        FraudAlert.objects.bulk_create(alerts, batch_size=BATCH)
        return len(alerts)

    def _balances(self) -> int:
        """Hour-package balances: minutes bought, minus lessons taken; a refunded package
        whose hours were partly used leaves the student negative (finance follows up)."""
        packages = (
            Payment.objects.filter(product_kind=Payment.ProductKind.HOUR_PACKAGE)
            .filter(status__in=Payment.CAPTURED_STATUSES)
            .exclude(customer__balance__isnull=False)
            .order_by("customer_id", "id")
            .values_list("id", "customer_id", "package_minutes", "status")
        )
        balances: dict[int, list[BalanceEntry]] = {}
        for payment_id, customer_id, minutes, status in packages.iterator(chunk_size=BATCH):
            entries = balances.setdefault(customer_id, [])
            entries.append(BalanceEntry(kind="purchase", minutes=minutes, payment_id=payment_id))
            used = minutes * self.rng.choice([0, 25, 50, 75, 100]) // 100
            if used:
                entries.append(BalanceEntry(kind="usage", minutes=-used, note="Lessons taken"))
            if status == Payment.Status.REFUNDED:
                entries.append(
                    BalanceEntry(
                        kind="refund",
                        minutes=-minutes,
                        payment_id=payment_id,
                        reference=f"demo-refund:{payment_id}",
                    )
                )
        with transaction.atomic():
            rows = StudentBalance.objects.bulk_create(
                [
                    StudentBalance(
                        customer_id=customer_id, minutes=sum(entry.minutes for entry in entries)
                    )
                    for customer_id, entries in balances.items()
                ],
                batch_size=BATCH,
            )
            for balance in rows:
                for entry in balances[balance.customer_id]:
                    entry.balance_id = balance.pk
            BalanceEntry.objects.bulk_create(
                [entry for entries in balances.values() for entry in entries], batch_size=BATCH
            )
        return len(rows)

    def _instructors(self, n: int) -> list[Instructor]:
        names = self.catalog["instructors"]
        rows = []
        for i in range(n):
            name = names[i % len(names)] + ("" if i < len(names) else f" {i // len(names) + 1}")
            email = f"{name.lower().replace(' ', '.')}@instructors.example.com"
            instructor, _ = Instructor.objects.get_or_create(
                email=email,
                defaults={"name": name, "stripe_account_id": _stripe_id(self.rng, "acct_")[:21]},
            )
            rows.append(instructor)
        return rows

    def _customers(self, n: int):
        first, last = self.catalog["first_names"], self.catalog["last_names"]
        domains = self.catalog["email_domains"]
        customers, methods = [], []
        start = self.now - timedelta(days=DAYS + 180)
        for i in range(n):
            given, family = self.rng.choice(first), self.rng.choice(last)
            email = f"{given}.{family}.{i}@{self.rng.choice(domains)}".lower()
            customers.append(
                Customer(
                    stripe_id=_stripe_id(self.rng, "cus_")[:18],
                    email=email,
                    name=f"{given} {family}",
                    created=start + timedelta(minutes=self.rng.randint(0, (DAYS + 180) * 1440)),
                )
            )
        customers = Customer.objects.bulk_create(customers, batch_size=BATCH)
        by_customer: dict[int, list[PaymentMethod]] = {}
        for customer in customers:
            for j in range(1 if self.rng.random() < 0.7 else 2):
                kind = _pick(self.rng, METHODS)
                pm = PaymentMethod(
                    stripe_id=_stripe_id(self.rng, "pm_"),
                    customer=customer,
                    type=kind,
                    is_default=(j == 0),
                    created=customer.created,
                )
                if kind == "card":
                    pm.card_brand = _pick(self.rng, CARD_BRANDS)
                    pm.card_last4 = f"{self.rng.randint(0, 9999):04d}"
                    pm.card_exp_month = self.rng.randint(1, 12)
                    pm.card_exp_year = self.now.year + self.rng.randint(0, 5)
                methods.append(pm)
        methods = PaymentMethod.objects.bulk_create(methods, batch_size=BATCH)
        for pm in methods:
            by_customer.setdefault(pm.customer_id, []).append(pm)
        return customers, by_customer

    def _payment_batches(self, n, customers, methods, instructors) -> Iterator[list]:
        products = self.catalog["products"]
        kinds = list(products)
        kind_weights = [50, 15, 25, 10]
        span_minutes = DAYS * 24 * 60
        batch = []
        for i in range(n):
            rng = self.rng
            customer = rng.choice(customers)
            method = rng.choice(methods[customer.pk])
            kind = rng.choices(kinds, weights=kind_weights, k=1)[0]
            currency = _pick(rng, CURRENCIES)
            status = _pick(rng, STATUS_MIX)
            amount = _amount(rng, products[kind]["usd_range"], currency)
            created = self.now - timedelta(
                minutes=rng.randint(1, span_minutes), seconds=rng.randint(0, 59)
            )
            pi = _stripe_id(rng, "pi_")
            payment = Payment(
                stripe_payment_intent_id=pi,
                customer_id=customer.pk,
                payment_method_id=method.pk,
                instructor=rng.choice(instructors),
                amount=amount,
                currency=currency,
                status=status,
                stripe_status=_stripe_status(status),
                payment_method_type=method.type,
                product_kind=kind,
                description=(title := rng.choice(products[kind]["titles"])),
                # Hour-package titles start with the number of hours ("10 tutoring hours").
                package_minutes=int(title.split()[0]) * 60 if kind == "hour_package" else None,
                billing_details={
                    "name": customer.name,
                    "email": customer.email,
                    "address": {"country": rng.choice(["US", "DE", "FR", "JP", "GB", "ES"])},
                },
                ip_address=f"203.0.113.{rng.randint(1, 254)}",
                metadata={"order_id": f"ord_{self.seed}_{i}"},
                livemode=False,
                created=created,
            )
            extra = []
            if status in Payment.CAPTURED_STATUSES:
                payment.stripe_charge_id = "ch_" + pi[3:]
                payment.succeeded_at = created + timedelta(seconds=rng.randint(2, 40))
                payment.stripe_fee = stripe_fee_for(amount, currency)
                payment.platform_fee = percent_of(amount, settings.PLATFORM_FEE_BPS)
                payment.net = amount - payment.stripe_fee - payment.platform_fee
                extra = self._refunds_and_disputes(payment, rng)
            elif status == Payment.Status.FAILED:
                code, decline, message = _pick(rng, FAILURES)
                if method.type != "card":
                    code, decline, message = (
                        "payment_method_unactivated",
                        "",
                        "The payment method is not activated.",
                    )
                payment.failure_code, payment.decline_code = code, decline
                payment.failure_message = message
                payment.failed_at = created + timedelta(seconds=rng.randint(2, 40))
                payment.stripe_charge_id = "ch_" + pi[3:]
            elif status == Payment.Status.CANCELED:
                payment.canceled_at = created + timedelta(hours=rng.randint(1, 48))
            batch.append((payment, extra))
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _refunds_and_disputes(self, payment: Payment, rng: random.Random):
        extra = []
        when = payment.succeeded_at + timedelta(hours=rng.randint(2, 24 * 20))
        when = min(when, self.now - timedelta(minutes=5))
        if payment.status == Payment.Status.REFUNDED:
            payment.amount_refunded = payment.amount
        elif payment.status == Payment.Status.PARTIALLY_REFUNDED:
            payment.amount_refunded = max(1, payment.amount * rng.choice([25, 40, 50]) // 100)
        if payment.amount_refunded:
            extra.append(
                (
                    "refund",
                    Refund(
                        stripe_id=_stripe_id(rng, "re_"),
                        amount=payment.amount_refunded,
                        currency=payment.currency,
                        status=Refund.Status.SUCCEEDED,
                        reason=rng.choice(REFUND_REASONS),
                        created=when,
                    ),
                )
            )
        if payment.status == Payment.Status.DISPUTED:
            extra.append(
                (
                    "dispute",
                    Dispute(
                        stripe_id=_stripe_id(rng, "dp_"),
                        amount=payment.amount,
                        currency=payment.currency,
                        status=rng.choice(
                            [Dispute.Status.NEEDS_RESPONSE, Dispute.Status.UNDER_REVIEW]
                        ),
                        reason=rng.choice(DISPUTE_REASONS),
                        created=when,
                        evidence_due_by=when + timedelta(days=7),
                    ),
                )
            )
        return extra


def _stripe_status(status: str) -> str:
    return {
        Payment.Status.PENDING: "requires_payment_method",
        Payment.Status.PROCESSING: "processing",
        Payment.Status.REQUIRES_ACTION: "requires_action",
        Payment.Status.FAILED: "requires_payment_method",
        Payment.Status.CANCELED: "canceled",
    }.get(status, "succeeded")


def demo_size(payments: int) -> DemoSize:
    return DemoSize(payments=payments, customers=max(50, payments // 8))
