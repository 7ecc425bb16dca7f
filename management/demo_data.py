"""Deterministic demo data: the same seed and `now` always give the same rows.

The generator writes what Stripe would send, not our rows: customers, payment methods,
payment intents (with the marketplace's metadata contract, payments/metadata.py), refunds and
disputes as the gateway's dataclasses, fed through the sync's upserts (payments/sync.py). So
the mirror's fields, the instructors and every derived figure (payments/ledger.py) come from
the same code as production, and a field only the generator filled cannot hide.

Small by default (a few thousand payments in seconds); the same code fills a million rows for
the benchmarks, streaming in batches so memory stays flat.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from payments import earnings, fraud_rules, hours, lessons, sync
from payments.gateway import (
    StripeCustomer,
    StripeDispute,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
)
from payments.models import FraudAlert, HourPackage, Lesson, Payment, StudentBalance
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
# Stripe payment method types (the mirror maps them to ours: paypal -> wallet, ...).
METHODS = [("card", 85), ("paypal", 8), ("us_bank_account", 4), ("sepa_debit", 3)]
CARD_BRANDS = [("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5)]
DISPUTE_REASONS = ["fraudulent", "product_not_received", "duplicate", "subscription_canceled"]
# Generated disputes are history, all closed: the demo's open ones (needing a response) are
# real disputes in localstripe (management/demo_disputes.py), so responding to them works. A
# lost one comes off the instructor's net; a won one or a closed inquiry gives the money back.
DISPUTE_STATUSES = [("lost", 55), ("won", 35), ("warning_closed", 10)]
COUPONS = ["WELCOME10", "SPRING25", "FRIENDS15"]
# A few payments from an older checkout that sent no marketplace metadata: the payment page
# and --fix-inconsistencies show the gap.
LEGACY_CHECKOUT_SHARE = 0.01
REFUND_REASONS = ["requested_by_customer", "duplicate", "fraudulent"]
# Hour packages: this share of them names an `expires_at` 30 days after the purchase (the
# older ones have expired by now: the expiry job takes their rest), and this share one a few
# days ahead (near expiry on the balance page); the others last HOUR_PACKAGE_VALID_DAYS.
PACKAGE_EXPIRES_AFTER_30_DAYS = 0.08
PACKAGE_EXPIRES_SOON = 0.06
# Lessons: each student uses one of these shares of their hours (60-minute lessons mostly).
LESSON_USE_SHARES = [0, 25, 50, 75, 100]
LESSON_MINUTES = [30, 45, 60, 60, 60, 90]
# Students with one package, fully used, whose package is then refunded: negative balances.
REFUNDS_OF_USED_PACKAGES = 3
# Demos of at least this many payments include a few fraud patterns (part of the count) that
# trip our own rules (payments/fraud_rules.py); the demo then runs detection once.
FRAUD_PATTERNS_FROM = 200


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


def _fingerprint(method_id: str) -> str:
    """A card fingerprint as Stripe gives one (16 characters), one per demo card."""
    return method_id[-16:]


def stripe_fee_for(amount: int, currency: str) -> int:
    bps, fixed = STRIPE_PRICING[currency]
    return percent_of(amount, bps) + fixed


class DemoGenerator:
    def __init__(
        self,
        *,
        seed: int = 42,
        now: datetime | None = None,
        stdout=None,
        connected_accounts: Callable[..., dict[str, str] | None] | None = None,
    ):
        """`connected_accounts(instructors, stdout=...)`: creates the instructors' Connect
        accounts in the peer and returns instructor_id -> account id (the others are paid by
        bank transfer); None keeps made-up account ids (offline, the benchmarks)."""
        self.connected_accounts = connected_accounts
        self.rng = random.Random(seed)
        # A stream of its own, so the hours' choices leave the payments' sequence unchanged.
        self.hours_rng = random.Random(seed * 7919 + 11)
        self.seed = seed
        self.now = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
        self.catalog = json.loads(CATALOG.read_text())
        self.stdout = stdout
        self.client_ips: dict[str, str] = {}

    def _log(self, message: str) -> None:
        if self.stdout is not None:
            self.stdout.write(message)

    def run(self, size: DemoSize) -> dict[str, int]:
        instructors = self._instructors(size.instructors)
        if self.connected_accounts is not None:
            accounts = self.connected_accounts(instructors, stdout=self.stdout)
            self._use_accounts(instructors, accounts)
        with transaction.atomic():
            customers, methods = self._customers(size.customers)
        patterns = (
            self._fraud_patterns(customers, instructors)
            if size.payments >= FRAUD_PATTERNS_FROM
            else None
        )
        regular = size.payments - (len(patterns[2]) if patterns else 0)
        counts = {
            "instructors": len(instructors),
            "customers": len(customers),
            "payment_methods": sum(len(m) for m in methods.values()),
            "payments": 0,
            "refunds": 0,
            "disputes": 0,
        }
        for intents, refunds, disputes in self._payment_batches(
            regular, customers, methods, instructors
        ):
            # The sync's own upserts, in its order: payments, then their refunds and disputes.
            # Fraud rules: one pass at the end instead of one per batch.
            # Earnings once per batch, with the refunds in place (payments.earnings).
            with transaction.atomic(), earnings.recording_deferred():
                sync.upsert_payment_intents(intents, send_signals=False, detect_fraud=False)
                sync.upsert_refunds(refunds)
                sync.upsert_disputes(disputes, now=self.now)
            counts["payments"] += len(intents)
            counts["refunds"] += len(refunds)
            counts["disputes"] += len(disputes)
            if size.payments >= 50_000:
                self._log(f"  {counts['payments']:,} / {size.payments:,} payments")
        if patterns:
            pattern_customers, pattern_methods, pattern_intents = patterns
            with transaction.atomic():
                sync.upsert_customers(pattern_customers)
                sync.upsert_payment_methods(pattern_methods)
                sync.upsert_payment_intents(pattern_intents, send_signals=False, detect_fraud=False)
            counts["customers"] += len(pattern_customers)
            counts["payment_methods"] += len(pattern_methods)
            counts["payments"] += len(pattern_intents)
        counts["student_balances"] = self._hours()
        counts["fraud_alerts"] = self._fraud_alerts()
        # Our own rules, once, over the last FRAUD_LOOKBACK_HOURS of the demo's clock (the same
        # pass as `manage_payments --detect-fraud`).
        detection = fraud_rules.fraud_detect(now=self.now, trigger="command")
        counts["fraud_rule_alerts"] = sum(detection.opened.values())
        return counts

    def _fraud_patterns(self, customers, instructors):
        """Stripe-shaped objects that trip our fraud rules, in the last hour before `now`:
        one card (one fingerprint) paying for three customers, a customer's five failed
        attempts within eight minutes, and a customer created two days ago paying for a
        large hour package. Returns (customers, payment methods, payment intents)."""
        rng, now = self.rng, self.now
        product = {
            "product_kind": "hour_package",
            "product_id": "hour_package_pattern",
            "product_name": "20 tutoring hours",
            "package_minutes": "1200",
        }
        new_customer = StripeCustomer(
            id=_stripe_id(rng, "cus_")[:18],
            email=f"new.account.{self.seed}@example.net",
            name="Fresh Account",
            livemode=False,
            created=now - timedelta(days=2),
        )
        sharers = rng.sample(customers, 3)
        shared_fingerprint = "fp_" + _stripe_id(rng, "")[:16]
        shared = [
            StripePaymentMethod(
                id=_stripe_id(rng, "pm_"),
                customer_id=customer.id,
                type="card",
                card_brand="visa",
                card_last4="0341",
                card_exp_month=4,
                card_exp_year=now.year + 2,
                livemode=False,
                created=now - timedelta(hours=3, minutes=index),
                card_fingerprint=shared_fingerprint,
            )
            for index, customer in enumerate(sharers)
        ]
        new_method = self._card(rng, new_customer.id, now - timedelta(days=2))

        def intent(customer_id, method, minutes_ago, amount, currency="usd", failed=False):
            pi = _stripe_id(rng, "pi_")
            created = now - timedelta(minutes=minutes_ago)
            row = {
                "id": pi,
                "amount": amount,
                "currency": currency,
                "status": "requires_payment_method" if failed else "succeeded",
                "created": created,
                "customer_id": customer_id,
                "payment_method_id": method.id,
                "payment_method_type": "card",
                "description": product["product_name"],
                "metadata": {**rng.choice(instructors), **product},
                "latest_charge_id": "ch_" + pi[3:],
                "charge_status": "failed" if failed else "succeeded",
                "charge_created": created + timedelta(seconds=3),
                "card_fingerprint": method.card_fingerprint,
            }
            if failed:
                row |= {
                    "failure_code": "card_declined",
                    "decline_code": "generic_decline",
                    "failure_message": "Your card was declined.",
                }
            else:
                row |= {
                    "stripe_fee": stripe_fee_for(amount, currency),
                    "amount_received": amount,
                }
            return StripePaymentIntent(**row)

        intents = [
            intent(customer.id, method, 50 - 10 * index, 3900)
            for index, (customer, method) in enumerate(zip(sharers, shared, strict=True))
        ]
        tester = rng.choice([c for c in customers if c not in sharers])
        tester_card = self._card(rng, tester.id, now - timedelta(minutes=30))
        intents += [
            intent(tester.id, tester_card, 20 - 2 * attempt, 1900, failed=True)
            for attempt in range(5)
        ]
        intents.append(intent(new_customer.id, new_method, 5, 59000))
        return [new_customer], [*shared, new_method, tester_card], intents

    @staticmethod
    def _card(rng, customer_id: str, created) -> StripePaymentMethod:
        method_id = _stripe_id(rng, "pm_")
        return StripePaymentMethod(
            id=method_id,
            customer_id=customer_id,
            type="card",
            card_brand="mastercard",
            card_last4=f"{rng.randint(0, 9999):04d}",
            card_exp_month=rng.randint(1, 12),
            card_exp_year=created.year + 3,
            livemode=False,
            created=created,
            card_fingerprint=_fingerprint(method_id),
        )

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

    def _package_expiry(self, created: datetime) -> dict[str, str]:
        """The metadata contract's `expires_at` for some hour packages (see the constants)."""
        roll = self.hours_rng.random()
        if roll < PACKAGE_EXPIRES_AFTER_30_DAYS:
            return {"expires_at": (created + timedelta(days=30)).date().isoformat()}
        if roll < PACKAGE_EXPIRES_AFTER_30_DAYS + PACKAGE_EXPIRES_SOON:
            days = self.hours_rng.randint(2, 10)
            return {"expires_at": (self.now + timedelta(days=days)).date().isoformat()}
        return {}

    def _hours(self) -> int:
        """Students' hours through the production paths: their hour-package payments were
        credited by the sync's upserts (payments.hours); here lessons come in through the
        import service (payments.lessons) as the booking system would send them, a few fully
        used packages are refunded (Stripe-shaped refunds through the sync: the balance goes
        negative, finance follows up), and the expiry job takes what expired packages have
        left. Returns the number of student balances."""
        rng, now = self.hours_rng, timezone.now()
        balances = list(StudentBalance.objects.select_related("customer").order_by("pk"))
        available = dict(
            HourPackage.objects.filter(remaining__gt=0, expires_at__gt=now)
            .order_by()
            .values("balance_id")
            .annotate(minutes=Sum("remaining"))
            .values_list("balance_id", "minutes")
        )
        rows: list[dict] = []
        n = 0
        for balance in balances:
            budget = available.get(balance.pk, 0) * rng.choice(LESSON_USE_SHARES) // 100
            customer = balance.customer
            student = (
                customer.email if customer.email and rng.random() < 0.5 else customer.stripe_id
            )
            day = self.now.date() - timedelta(days=rng.randint(20, 80))
            while budget >= min(LESSON_MINUTES):
                n += 1
                minutes = min(budget, rng.choice(LESSON_MINUTES))
                booking = f"bk_{self.seed}_lesson_{n}"
                day += timedelta(days=rng.randint(1, 4))
                roll = rng.random()
                if roll < 0.08:  # booked, then canceled: no hours
                    rows.append(self._lesson(student, booking, minutes, day, "reserved"))
                    rows.append(self._lesson(student, booking, minutes, day, "canceled"))
                    continue
                if day >= self.now.date() or roll < 0.15:  # still ahead: reserved
                    rows.append(self._lesson(student, booking, minutes, day, "reserved"))
                else:
                    if roll < 0.6:  # reserved first, then reported taken
                        rows.append(self._lesson(student, booking, minutes, day, "reserved"))
                    rows.append(self._lesson(student, booking, minutes, day, "consumed"))
                budget -= minutes
        result = lessons.lessons_import(rows, source=Lesson.Source.DEMO, file_name="demo")
        if not result.applied:
            raise RuntimeError(f"demo lessons refused: {result.errors[:5]}")
        self._refund_used_packages()
        hours.expire_packages()
        return len(balances)

    @staticmethod
    def _lesson(student: str, booking: str, minutes: int, day, status: str) -> dict:
        return {
            "student": student,
            "booking_id": booking,
            "minutes": str(minutes),
            "date": day.isoformat(),
            "status": status,
        }

    def _refund_used_packages(self) -> None:
        """Refund in full a few single, used-up packages (Stripe-shaped refunds, mirrored by
        the sync's upsert): payments.hours takes the package's minutes back, which the
        student no longer has, so their balance goes negative."""
        singles = (
            HourPackage.objects.filter(
                payment__status=Payment.Status.SUCCEEDED, remaining__lte=0, minutes__gt=0
            )
            .exclude(payment__isnull=True)
            .order_by("pk")
            .select_related("payment")
        )
        refunds = []
        for package in singles:
            if HourPackage.objects.filter(balance_id=package.balance_id).count() != 1:
                continue
            payment = package.payment
            refunds.append(
                StripeRefund(
                    id=_stripe_id(self.hours_rng, "re_"),
                    payment_intent_id=payment.stripe_payment_intent_id,
                    charge_id=payment.stripe_charge_id,
                    amount=payment.amount,
                    currency=payment.currency,
                    status="succeeded",
                    created=self.now - timedelta(hours=self.hours_rng.randint(1, 48)),
                    reason="requested_by_customer",
                )
            )
            if len(refunds) == REFUNDS_OF_USED_PACKAGES:
                break
        sync.upsert_refunds(refunds)

    def _instructors(self, n: int) -> list[dict[str, str]]:
        """The instructors' part of the metadata contract; the sync creates the rows."""
        names = self.catalog["instructors"]
        rows = []
        for i in range(n):
            name = names[i % len(names)] + ("" if i < len(names) else f" {i // len(names) + 1}")
            rows.append(
                {
                    "instructor_name": name,
                    "instructor_email": f"{name.lower().replace(' ', '.')}@instructors.example.com",
                    "instructor_account": _stripe_id(self.rng, "acct_")[:21],
                    "instructor_id": f"ins_{i + 1:04d}",
                }
            )
        return rows

    @staticmethod
    def _use_accounts(instructors: list[dict], accounts: dict[str, str] | None) -> None:
        """Put the peer's account ids in the instructors' metadata; one without an account
        (paid by bank transfer) names none. `None`: keep the made-up ids."""
        if accounts is None:
            return
        for meta in instructors:
            account = accounts.get(meta["instructor_id"])
            if account:
                meta["instructor_account"] = account
            else:
                del meta["instructor_account"]

    def _customers(self, n: int):
        """Stripe customers and their payment methods, mirrored through the sync."""
        first, last = self.catalog["first_names"], self.catalog["last_names"]
        domains = self.catalog["email_domains"]
        customers: list[StripeCustomer] = []
        methods: dict[str, list[StripePaymentMethod]] = {}
        start = self.now - timedelta(days=DAYS + 180)
        for i in range(n):
            given, family = self.rng.choice(first), self.rng.choice(last)
            email = f"{given}.{family}.{i}@{self.rng.choice(domains)}".lower()
            customer_id = _stripe_id(self.rng, "cus_")[:18]
            created = start + timedelta(minutes=self.rng.randint(0, (DAYS + 180) * 1440))
            owned = methods.setdefault(customer_id, [])
            for _ in range(1 if self.rng.random() < 0.7 else 2):
                kind = _pick(self.rng, METHODS)
                card = kind == "card"
                method_id = _stripe_id(self.rng, "pm_")
                owned.append(
                    StripePaymentMethod(
                        id=method_id,
                        customer_id=customer_id,
                        type=kind,
                        card_brand=_pick(self.rng, CARD_BRANDS) if card else "",
                        card_last4=f"{self.rng.randint(0, 9999):04d}" if card else "",
                        card_exp_month=self.rng.randint(1, 12) if card else None,
                        card_exp_year=self.now.year + self.rng.randint(0, 5) if card else None,
                        livemode=False,
                        created=created,
                        card_fingerprint=_fingerprint(method_id) if card else "",
                    )
                )
            # The IP the checkout saw: one per customer (the metadata contract's client_ip).
            n = i + 1
            self.client_ips[customer_id] = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            customers.append(
                StripeCustomer(
                    id=customer_id,
                    email=email,
                    name=f"{given} {family}",
                    livemode=False,
                    created=created,
                    default_payment_method_id=owned[0].id,
                )
            )
        for start_at in range(0, n, BATCH):
            page = customers[start_at : start_at + BATCH]
            sync.upsert_customers(page)
            sync.upsert_payment_methods([m for c in page for m in methods[c.id]])
            # Now that the methods exist: mark each customer's default.
            sync.apply_default_payment_methods(page)
        return customers, methods

    def _payment_batches(self, n, customers, methods, instructors) -> Iterator[tuple]:
        products = self.catalog["products"]
        kinds = list(products)
        kind_weights = [50, 15, 25, 10]
        span_minutes = DAYS * 24 * 60
        intents, refunds, disputes = [], [], []
        for i in range(n):
            rng = self.rng
            customer = rng.choice(customers)
            method = rng.choice(methods[customer.id])
            kind = rng.choices(kinds, weights=kind_weights, k=1)[0]
            currency = _pick(rng, CURRENCIES)
            status = _pick(rng, STATUS_MIX)
            amount = _amount(rng, products[kind]["usd_range"], currency)
            created = self.now - timedelta(
                minutes=rng.randint(1, span_minutes), seconds=rng.randint(0, 59)
            )
            pi = _stripe_id(rng, "pi_")
            title = rng.choice(products[kind]["titles"])
            metadata = {"order_id": f"ord_{self.seed}_{i}"}
            if rng.random() >= LEGACY_CHECKOUT_SHARE:
                metadata["client_ip"] = self.client_ips[customer.id]
                metadata |= rng.choice(instructors)
                metadata |= {
                    "product_kind": kind,
                    "product_id": f"{kind}_{products[kind]['titles'].index(title) + 1:03d}",
                    "product_name": title,
                }
                if kind == "hour_package":
                    # Hour-package titles start with the number of hours ("10 tutoring hours").
                    metadata["package_minutes"] = str(int(title.split()[0]) * 60)
                    metadata |= self._package_expiry(created)
                if kind == "event":
                    metadata["booking_id"] = f"bk_{self.seed}_{i}"
                if rng.random() < 0.08:
                    metadata["coupon_code"] = rng.choice(COUPONS)
            charge_created = created + timedelta(seconds=rng.randint(2, 40))
            intent = {
                "id": pi,
                "amount": amount,
                "currency": currency,
                "status": _stripe_status(status),
                "created": created,
                "customer_id": customer.id,
                "payment_method_id": method.id,
                "payment_method_type": method.type,
                "card_fingerprint": method.card_fingerprint,
                "description": title,
                "metadata": metadata,
                "billing_details": {
                    "name": customer.name,
                    "email": customer.email,
                    "address": {"country": rng.choice(["US", "DE", "FR", "JP", "GB", "ES"])},
                },
            }
            captured = status in Payment.CAPTURED_STATUSES
            if captured:
                intent |= {
                    "latest_charge_id": "ch_" + pi[3:],
                    "charge_status": "succeeded",
                    "charge_created": charge_created,
                    "stripe_fee": stripe_fee_for(amount, currency),
                    "amount_received": amount,
                }
                refund, dispute = self._refund_and_dispute(
                    pi, status, amount, currency, charge_created, rng
                )
                if refund is not None:
                    refunds.append(refund)
                    intent["amount_refunded"] = refund.amount
                if dispute is not None:
                    disputes.append(dispute)
                    intent["charge_disputed"] = True
            elif status == Payment.Status.FAILED:
                code, decline, message = _pick(rng, FAILURES)
                if method.type != "card":
                    code, decline, message = (
                        "payment_method_unactivated",
                        "",
                        "The payment method is not activated.",
                    )
                intent |= {
                    "latest_charge_id": "ch_" + pi[3:],
                    "charge_status": "failed",
                    "charge_created": charge_created,
                    "failure_code": code,
                    "decline_code": decline,
                    "failure_message": message,
                }
            elif status == Payment.Status.CANCELED:
                intent["canceled_at"] = created + timedelta(hours=rng.randint(1, 48))
            intents.append(StripePaymentIntent(**intent))
            if len(intents) == BATCH:
                yield intents, refunds, disputes
                intents, refunds, disputes = [], [], []
        if intents:
            yield intents, refunds, disputes

    def _refund_and_dispute(self, pi, status, amount, currency, charged_at, rng):
        when = charged_at + timedelta(hours=rng.randint(2, 24 * 20))
        when = min(when, self.now - timedelta(minutes=5))
        refund = dispute = None
        refunded = 0
        if status == Payment.Status.REFUNDED:
            refunded = amount
        elif status == Payment.Status.PARTIALLY_REFUNDED:
            refunded = max(1, amount * rng.choice([25, 40, 50]) // 100)
        if refunded:
            refund = StripeRefund(
                id=_stripe_id(rng, "re_"),
                payment_intent_id=pi,
                charge_id="ch_" + pi[3:],
                amount=refunded,
                currency=currency,
                status="succeeded",
                created=when,
                reason=rng.choice(REFUND_REASONS),
            )
        if status == Payment.Status.DISPUTED:
            dispute = StripeDispute(
                id=_stripe_id(rng, "dp_"),
                charge_id="ch_" + pi[3:],
                payment_intent_id=pi,
                amount=amount,
                currency=currency,
                status=_pick(rng, DISPUTE_STATUSES),
                created=when,
                reason=rng.choice(DISPUTE_REASONS),
                evidence_due_by=when + timedelta(days=7),
            )
        return refund, dispute


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
