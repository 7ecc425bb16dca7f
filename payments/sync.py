"""Stripe objects (gateway dataclasses) -> local rows. The scheduled sync and the webhook
handlers both end here, so they can never disagree about what a Stripe object means.

Each `upsert_*` takes a list (one page) and costs a fixed number of statements per call: one
SELECT of the existing rows (locked, so two writers cannot both see "not yet succeeded"),
one SELECT per foreign key to resolve Stripe ids, one bulk INSERT ... ON CONFLICT DO UPDATE
of only the rows that changed, and one bulk history insert. Rows are compared first, so a
re-run over the same objects writes nothing and reports them as unchanged.

Every object is checked at this boundary first (payments/validation.py): one with a wrong
id prefix, an unknown currency or an impossible amount is skipped, counted in `skipped` and
reported with its error in `UpsertResult.invalid`; the rest of the page lands.

Payments never regress: a snapshot that is older than what we hold (a non-final Stripe
status over a final one) does not overwrite it. Disputes never regress either: a snapshot
earlier in the dispute lifecycle than the stored one changes nothing (see upsert_disputes).
Status, refunded amount, fees and net are derived by payments/ledger.py from the snapshot
and our refund and dispute rows; the marketplace's fields (instructor, product, hours,
coupon, booking) come from the metadata contract (payments/metadata.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from payments import coupon_redemptions, earnings, fraud_rules, hours, ledger, validation
from payments.customer_privacy import erased_evidence, erased_payment_values
from payments.gateway import (
    StripeCustomer,
    StripeDispute,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
    StripeSubscription,
    StripeTransfer,
)
from payments.metadata import PaymentMetadata, parse_payment_metadata
from payments.models import (
    Customer,
    Dispute,
    EarningEntry,
    Instructor,
    Payment,
    PaymentMethod,
    PaymentMethodType,
    Payout,
    Refund,
    Subscription,
    Transfer,
    TransferReversal,
)
from payments.signals import payment_succeeded

HISTORY_REASON = "Stripe sync"

_METHOD_TYPES = {
    "card": PaymentMethodType.CARD,
    "sepa_debit": PaymentMethodType.SEPA_DEBIT,
    "link": PaymentMethodType.LINK,
    "customer_balance": PaymentMethodType.BANK_TRANSFER,
    "us_bank_account": PaymentMethodType.BANK_TRANSFER,
    "bacs_debit": PaymentMethodType.BANK_TRANSFER,
    "acss_debit": PaymentMethodType.BANK_TRANSFER,
    "au_becs_debit": PaymentMethodType.BANK_TRANSFER,
    "paypal": PaymentMethodType.WALLET,
    "cashapp": PaymentMethodType.WALLET,
    "amazon_pay": PaymentMethodType.WALLET,
    "revolut_pay": PaymentMethodType.WALLET,
}


@dataclass
class UpsertResult:
    """What one upsert did. `skipped` rows were not written: they had no local parent (e.g.
    a refund of a payment we do not hold yet; their parents' Stripe ids are in
    `missing_parents`), or failed the boundary checks (`invalid`: Stripe id -> error)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    missing_parents: set[str] = field(default_factory=set)
    invalid: dict[str, str] = field(default_factory=dict)

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.missing_parents |= other.missing_parents
        self.invalid.update(other.invalid)
        return self

    def refuse(self, object_id: str, error: str) -> None:
        self.skipped += 1
        self.invalid[object_id] = error

    @property
    def changed(self) -> int:
        return self.created + self.updated

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


def method_type(stripe_type: str) -> str:
    """Stripe's payment method type -> our PaymentMethodType value."""
    if not stripe_type:
        return PaymentMethodType.CARD
    return _METHOD_TYPES.get(stripe_type, PaymentMethodType.OTHER)


def _dedupe[T](rows: Iterable[T]) -> list[T]:
    # The last snapshot of an id wins (a page never repeats one, but callers may).
    by_id: dict[str, T] = {}
    for row in rows:
        by_id[row.id] = row
    return list(by_id.values())


def _checked[T](rows: Iterable[T], problem, result: UpsertResult) -> list[T]:
    """The rows (deduplicated) that pass `problem` (a payments.validation check); each other
    one is refused into `result` with its error, so a bad object never sinks its page."""
    good = []
    for row in _dedupe(rows):
        error = problem(row)
        if error:
            result.refuse(row.id, error)
        else:
            good.append(row)
    return good


def _differs(existing, values: dict) -> bool:
    return any(getattr(existing, name) != value for name, value in values.items())


def _bulk_upsert(model, objs: list, *, unique: str, update_fields: list[str]) -> list:
    if not objs:
        return []
    return model.objects.bulk_create(
        objs,
        update_conflicts=True,
        unique_fields=[unique],
        update_fields=[*update_fields, "updated_at"],
    )


def _history(model, *, created: Sequence, updated: Sequence, key: str) -> None:
    """History rows for what we just wrote: one bulk insert per kind of change. `updated`
    are the locked rows with the new values applied, so their snapshots are complete."""
    manager = getattr(model, "history", None)
    if manager is None:
        return
    if any(obj.pk is None for obj in created):
        # The backend did not return primary keys from the upsert: read them in one query.
        pks = dict(
            model.objects.filter(**{f"{key}__in": [getattr(o, key) for o in created]}).values_list(
                key, "pk"
            )
        )
        for obj in created:
            obj.pk = pks.get(getattr(obj, key))
    if created:
        manager.bulk_history_create(list(created), default_change_reason=HISTORY_REASON)
    if updated:
        manager.bulk_history_create(
            list(updated), update=True, default_change_reason=HISTORY_REASON
        )


def _apply(current, values: dict):
    for name, value in values.items():
        setattr(current, name, value)
    return current


# --- customers ---------------------------------------------------------------------------------

_CUSTOMER_FIELDS = [
    "email",
    "name",
    "livemode",
    "created",
    "stripe_balance",
    "stripe_balance_currency",
]


def upsert_customers(rows: Iterable[StripeCustomer]) -> UpsertResult:
    """Mirror customers; deleted ones are left as history (their payments point at them).
    Also marks each customer's default payment method (invoice_settings), when we hold it."""
    result = UpsertResult()
    rows = [r for r in _checked(rows, validation.customer_problem, result) if not r.deleted]
    if not rows:
        return result
    with transaction.atomic():
        existing = _lock_existing(Customer, rows)
        to_write, updated = [], []
        for row in rows:
            values = {
                "email": row.email[:254],
                "name": row.name[:255],
                "livemode": row.livemode,
                "created": row.created,
                # Stripe's customer balance (credit for the next invoices, Stripe's sign).
                "stripe_balance": row.balance,
                "stripe_balance_currency": row.currency,
            }
            current = existing.get(row.id)
            if current is not None and current.erased_at is not None:
                # GDPR erasure (payments/customer_privacy.py): Stripe still holds the personal
                # fields; the mirror never takes them back.
                values["email"], values["name"] = current.email, current.name
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
                updated.append(_apply(current, values))
            else:
                result.unchanged += 1
                continue
            to_write.append(Customer(stripe_id=row.id, **values))
        written = _bulk_upsert(
            Customer, to_write, unique="stripe_id", update_fields=_CUSTOMER_FIELDS
        )
        created = [c for c in written if c.stripe_id not in existing]
        _history(Customer, created=created, updated=updated, key="stripe_id")
        apply_default_payment_methods(rows)
    return result


def apply_default_payment_methods(rows: Sequence[StripeCustomer]) -> None:
    """Mark each customer's default payment method (invoice_settings) among the ones we
    hold. Two UPDATEs per page: clear stale defaults, then set the current ones (in that
    order: at most one default per customer is a database constraint)."""
    defaults = {r.default_payment_method_id for r in rows if r.default_payment_method_id}
    customer_ids = [r.id for r in rows]
    PaymentMethod.objects.filter(customer__stripe_id__in=customer_ids, is_default=True).exclude(
        stripe_id__in=defaults
    ).update(is_default=False)
    if defaults:
        PaymentMethod.objects.filter(
            stripe_id__in=defaults, customer__stripe_id__in=customer_ids, is_default=False
        ).update(is_default=True)


# --- payment methods ---------------------------------------------------------------------------

_PM_FIELDS = [
    "customer_id",
    "type",
    "card_brand",
    "card_last4",
    "card_fingerprint",
    "card_exp_month",
    "card_exp_year",
    "created",
]


def _customer_pks(stripe_ids: Iterable[str]) -> dict[str, int]:
    return _customers_and_erased(stripe_ids)[0]


def _customers_and_erased(stripe_ids: Iterable[str]) -> tuple[dict[str, int], set[int]]:
    """{stripe id: pk} of the customers we hold, and the pks of the erased ones (one query)."""
    ids = {i for i in stripe_ids if i}
    if not ids:
        return {}, set()
    rows = Customer.objects.filter(stripe_id__in=ids).values_list("stripe_id", "pk", "erased_at")
    pks, erased = {}, set()
    for stripe_id, pk, erased_at in rows:
        pks[stripe_id] = pk
        if erased_at is not None:
            erased.add(pk)
    return pks, erased


def upsert_payment_methods(rows: Iterable[StripePaymentMethod]) -> UpsertResult:
    """Mirror payment methods. A detached one keeps its row without a customer (payments
    may point at it) and loses any default flag."""
    result = UpsertResult()
    rows = _checked(rows, validation.payment_method_problem, result)
    if not rows:
        return result
    with transaction.atomic():
        customers = _customer_pks(r.customer_id for r in rows)
        existing = _lock_existing(PaymentMethod, rows)
        to_write, detached = [], []
        for row in rows:
            exp_month = row.card_exp_month if row.card_exp_month in range(1, 13) else None
            values = {
                "customer_id": customers.get(row.customer_id),
                "type": method_type(row.type),
                "card_brand": row.card_brand[:32],
                "card_last4": row.card_last4[:4],
                "card_fingerprint": row.card_fingerprint[:64],
                "card_exp_month": exp_month,
                "card_exp_year": row.card_exp_year,
                "created": row.created,
            }
            current = existing.get(row.id)
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
                if values["customer_id"] != current.customer_id and current.is_default:
                    detached.append(row.id)
            else:
                result.unchanged += 1
                continue
            to_write.append(PaymentMethod(stripe_id=row.id, **values))
        if detached:
            # Before the upsert: a default moving to another customer would break the
            # one-default-per-customer constraint there.
            PaymentMethod.objects.filter(stripe_id__in=detached).update(is_default=False)
        _bulk_upsert(PaymentMethod, to_write, unique="stripe_id", update_fields=_PM_FIELDS)
    return result


# --- payments ----------------------------------------------------------------------------------

_PAYMENT_FIELDS = [
    "stripe_charge_id",
    "customer_id",
    "payment_method_id",
    "instructor_id",
    "amount",
    "currency",
    "amount_refunded",
    "stripe_fee",
    "platform_fee",
    "net",
    "status",
    "stripe_amount_refunded",
    "charge_disputed",
    "stripe_status",
    "payment_method_type",
    "failure_code",
    "decline_code",
    "failure_message",
    "description",
    "product_kind",
    "product_id",
    "product_name",
    "package_minutes",
    "coupon_code",
    "booking_id",
    "metadata_problems",
    "billing_details",
    "metadata",
    "card_fingerprint",
    "ip_address",
    "livemode",
    "created",
    "succeeded_at",
    "failed_at",
    "canceled_at",
]


def _instructor_pks(metas: Sequence[PaymentMetadata]) -> list[int | None]:
    """The instructor of each payment's metadata, matched by connected account id, then by
    e-mail, and created when new: a fixed number of statements per page. A match by e-mail
    learns the account id (and the marketplace id) when the instructor had none."""
    wanted = [m for m in metas if m.names_instructor]
    if not wanted:
        return [None] * len(metas)
    accounts = {m.instructor_account for m in wanted if m.instructor_account}
    emails = {m.instructor_email for m in wanted if m.instructor_email}

    def load() -> tuple[dict, dict]:
        found = Instructor.objects.filter(
            Q(stripe_account_id__in=accounts) | Q(email__in=emails)
        ).order_by("pk")
        by_account, by_email = {}, {}
        for instructor in found:
            if instructor.stripe_account_id:
                by_account[instructor.stripe_account_id] = instructor
            if instructor.email:
                by_email[instructor.email] = instructor
        return by_account, by_email

    def match(meta: PaymentMetadata, by_account: dict, by_email: dict) -> Instructor | None:
        return by_account.get(meta.instructor_account) or by_email.get(meta.instructor_email)

    by_account, by_email = load()
    new: dict[str, Instructor] = {}
    learned: dict[int, Instructor] = {}
    for meta in wanted:
        instructor = match(meta, by_account, by_email)
        if instructor is None:
            key = meta.instructor_account or meta.instructor_email
            new.setdefault(
                key,
                Instructor(
                    name=meta.instructor_name or meta.instructor_email or meta.instructor_account,
                    email=meta.instructor_email,
                    stripe_account_id=meta.instructor_account,
                    external_id=meta.instructor_id,
                ),
            )
        elif (meta.instructor_account and not instructor.stripe_account_id) or (
            meta.instructor_id and not instructor.external_id
        ):
            instructor.stripe_account_id = instructor.stripe_account_id or meta.instructor_account
            instructor.external_id = instructor.external_id or meta.instructor_id
            learned[instructor.pk] = instructor
    if learned:
        Instructor.objects.bulk_update(learned.values(), ["stripe_account_id", "external_id"])
    if new:
        # A concurrent sync or webhook may create the same instructor: skip the conflict and
        # read back whichever row won.
        Instructor.objects.bulk_create(new.values(), ignore_conflicts=True)
        by_account, by_email = load()
    result: list[int | None] = []
    for meta in metas:
        instructor = match(meta, by_account, by_email) if meta.names_instructor else None
        result.append(instructor.pk if instructor else None)
    return result


def _payment_values(
    row: StripePaymentIntent,
    current: Payment | None,
    *,
    customer_pk: int | None,
    method_pk: int | None,
    instructor_pk: int | None,
    meta: PaymentMetadata,
    facts: ledger.PaymentFacts,
) -> dict:
    stale = (
        current is not None
        and current.stripe_status in ledger.FINAL_STRIPE_STATUSES
        and row.status not in ledger.FINAL_STRIPE_STATUSES
    )
    stripe_status = current.stripe_status if stale else row.status
    failure_code = "" if stripe_status == "succeeded" else row.failure_code
    known_fee = row.stripe_fee
    if known_fee is None and current is not None:
        known_fee = current.stripe_fee  # the balance transaction is not ready yet: keep
    # An older snapshot never lowers what Stripe told us about refunds and disputes.
    stripe_refunded = row.amount_refunded
    charge_disputed = row.charge_disputed
    if stale:
        stripe_refunded = max(stripe_refunded, current.stripe_amount_refunded)
        charge_disputed = charge_disputed or current.charge_disputed
    derived = ledger.payment_derived_values(
        stripe_status=stripe_status,
        charge_status=row.charge_status,
        failure_code=failure_code,
        amount=row.amount,
        currency=row.currency,
        stripe_amount_refunded=stripe_refunded,
        stripe_fee=known_fee or 0,
        charge_disputed=charge_disputed,
        facts=facts,
    )
    status = derived["status"]
    event_time = row.charge_created or row.created
    values = {
        "stripe_charge_id": row.latest_charge_id or (current.stripe_charge_id if current else ""),
        "customer_id": customer_pk if customer_pk or current is None else current.customer_id,
        "payment_method_id": method_pk
        if method_pk or current is None
        else current.payment_method_id,
        # Metadata without an instructor keeps the one we have (set by hand or an older
        # snapshot); a payment's instructor is never removed by a sync.
        "instructor_id": instructor_pk or (current.instructor_id if current else None),
        "amount": row.amount,
        "currency": row.currency,
        "stripe_amount_refunded": stripe_refunded,
        "charge_disputed": charge_disputed,
        "stripe_status": stripe_status,
        "payment_method_type": method_type(row.payment_method_type),
        "failure_code": failure_code[:64],
        "decline_code": (row.decline_code if failure_code else "")[:64],
        "failure_message": row.failure_message if failure_code else "",
        "description": row.description[:500],
        "product_kind": meta.product_kind,
        "product_id": meta.product_id,
        "product_name": meta.product_name,
        "package_minutes": meta.package_minutes,
        "coupon_code": meta.coupon_code,
        "booking_id": meta.booking_id,
        "metadata_problems": list(meta.problems),
        "billing_details": row.billing_details or {},
        "metadata": row.metadata or {},
        # A later snapshot without the charge (or metadata) keeps what we learnt.
        "card_fingerprint": row.card_fingerprint[:64]
        or (current.card_fingerprint if current else ""),
        "ip_address": meta.client_ip or (current.ip_address if current else None),
        "livemode": row.livemode,
        "created": row.created,
        "succeeded_at": (current.succeeded_at if current else None)
        or (event_time if status in Payment.CAPTURED_STATUSES else None),
        "failed_at": (
            ((current.failed_at if current else None) or event_time)
            if status == Payment.Status.FAILED
            else None
        ),
        "canceled_at": (
            (row.canceled_at or (current.canceled_at if current else None) or row.created)
            if status == Payment.Status.CANCELED
            else None
        ),
        **derived,
    }
    if stale:
        # Keep what the newer state said about the charge; take only the derived fields.
        for name in ("stripe_charge_id", "failure_code", "decline_code", "failure_message"):
            values[name] = getattr(current, name)
    return values


def _send_succeeded(payment_intent_ids: list[str]) -> None:
    def send() -> None:
        payments = Payment.objects.filter(stripe_payment_intent_id__in=payment_intent_ids)
        for payment in payments.order_by("pk"):
            payment_succeeded.send(sender=Payment, payment=payment)

    transaction.on_commit(send)


def _detect_fraud_after_commit(written: Sequence[Payment]) -> None:
    """Run the fraud rules (payments/fraud_rules.py) over what this upsert touched, after
    commit: the rules see committed rows, hold no payment lock, and a rule error cannot
    roll the mirror back (the hook never raises)."""
    customers = {p.customer_id for p in written}
    fingerprints = {p.card_fingerprint for p in written}
    ips = {p.ip_address for p in written}
    intents = {p.stripe_payment_intent_id for p in written}
    transaction.on_commit(
        lambda: fraud_rules.fraud_detect_touched(
            customer_ids=customers, fingerprints=fingerprints, ips=ips, payment_intent_ids=intents
        )
    )


def upsert_payment_intents(
    rows: Iterable[StripePaymentIntent], *, send_signals: bool = True, detect_fraud: bool = True
) -> UpsertResult:
    """Mirror payment intents (with their latest charge, fee and net). Expanded payment
    methods on the rows are mirrored first so the foreign key resolves.

    When a payment becomes succeeded here (it was not captured before, or is new), sends
    payments.signals.payment_succeeded once, after commit; `send_signals=False` for
    backfills of old history. After commit, runs the fraud rules over the customers, cards
    and IPs of the rows it wrote (`detect_fraud=False`: a bulk load that runs one full
    detection pass at the end instead, as the demo does)."""
    rows = _dedupe(rows)
    result = UpsertResult()
    rows = _checked(rows, validation.payment_intent_problem, result)
    if not rows:
        return result
    with transaction.atomic():
        embedded = [r.payment_method for r in rows if r.payment_method is not None]
        if embedded:
            # Checked with their intents (validation.payment_intent_problem): all good here.
            upsert_payment_methods(embedded)
        existing = _lock_existing(Payment, rows, field="stripe_payment_intent_id")
        customers, erased_customers = _customers_and_erased(r.customer_id for r in rows)
        method_ids = {r.payment_method_id for r in rows if r.payment_method_id}
        methods = (
            dict(
                PaymentMethod.objects.filter(stripe_id__in=method_ids).values_list(
                    "stripe_id", "pk"
                )
            )
            if method_ids
            else {}
        )
        facts = ledger.payment_facts(p.pk for p in existing.values())
        metas = [parse_payment_metadata(r.metadata) for r in rows]
        instructors = _instructor_pks(metas)

        to_write, updated, newly_succeeded = [], [], []
        for row, meta, instructor_pk in zip(rows, metas, instructors, strict=True):
            current = existing.get(row.id)
            values = _payment_values(
                row,
                current,
                customer_pk=customers.get(row.customer_id),
                method_pk=methods.get(row.payment_method_id),
                instructor_pk=instructor_pk,
                meta=meta,
                facts=facts.get(current.pk if current else None, ledger.PaymentFacts()),
            )
            if values["customer_id"] in erased_customers:
                values = erased_payment_values(values)
            was_captured = current is not None and current.status in Payment.CAPTURED_STATUSES
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
                updated.append(_apply(current, values))
            else:
                result.unchanged += 1
                continue
            if values["status"] in Payment.CAPTURED_STATUSES and not was_captured:
                newly_succeeded.append(row.id)
            to_write.append(Payment(stripe_payment_intent_id=row.id, **values))
        written = _bulk_upsert(
            Payment, to_write, unique="stripe_payment_intent_id", update_fields=_PAYMENT_FIELDS
        )
        created = [p for p in written if p.stripe_payment_intent_id not in existing]
        _history(Payment, created=created, updated=updated, key="stripe_payment_intent_id")
        # The instructors' ledger follows the derived columns, in this transaction (the
        # payments are locked): an earning when one is captured, a correction when its net
        # moved without a refund or dispute row to explain it.
        earnings.record_payment_earnings([p.pk for p in created] + [p.pk for p in updated])
        # A captured payment's coupon redemption, once, in this transaction (payments locked;
        # payments/coupon_redemptions.py locks the coupons after them).
        coupon_redemptions.record_coupon_redemptions(
            p.stripe_payment_intent_id
            for p in to_write
            if p.coupon_code and p.status in Payment.CAPTURED_STATUSES
        )
        # Hour packages: credited once when succeeded, refunds taken back (payments.hours).
        hours.record_payment_hours([p.pk for p in created] + [p.pk for p in updated])
        if send_signals and newly_succeeded:
            _send_succeeded(newly_succeeded)
        if detect_fraud and to_write:
            _detect_fraud_after_commit(to_write)
    return result


@dataclass(frozen=True)
class PaymentChange:
    """One payment whose ledger columns refresh_payments rewrote: the old values."""

    payment: Payment
    old: dict


def refresh_payments(payment_pks: set[int], *, reason: str = HISTORY_REASON) -> list[PaymentChange]:
    """Re-derive the ledger's columns of these payments from their stored Stripe snapshot and
    local refunds and disputes (after refunds or disputes changed, or to repair them), and
    write the earnings entries they are missing (payments.earnings). Locks them in pk order;
    the caller's transaction holds the locks. Returns what changed."""
    if not payment_pks:
        return []
    payments = list(Payment.objects.select_for_update().filter(pk__in=payment_pks).order_by("pk"))
    facts = ledger.payment_facts(payment_pks)
    changes = []
    for payment in payments:
        values = ledger.payment_rederive(payment, facts.get(payment.pk, ledger.PaymentFacts()))
        if _differs(payment, values):
            old = {name: getattr(payment, name) for name in values}
            _apply(payment, values)
            payment.updated_at = timezone.now()
            changes.append(PaymentChange(payment, old))
    if changes:
        changed = [change.payment for change in changes]
        Payment.objects.bulk_update(changed, [*ledger.DERIVED_FIELDS, "updated_at"])
        Payment.history.bulk_history_create(changed, update=True, default_change_reason=reason)
    # Every payment asked about, changed or not: a refund or dispute row may need its entry
    # even when the net it explains was already known (from Stripe's refunded amount).
    earnings.record_payment_earnings(payment_pks)
    # The same for hour packages: a refund's minutes, whoever mirrored it (payments.hours).
    hours.record_payment_hours(payment_pks)
    return changes


def _lock_existing(model, rows, *, field: str = "stripe_id") -> dict:
    """Our rows for these Stripe objects, keyed by Stripe id and locked FOR UPDATE in pk
    order. Every writer (sync, webhooks, refunds) locks in pk order, so two of them never
    wait on each other in a cycle."""
    locked = model.objects.select_for_update().filter(**{f"{field}__in": [r.id for r in rows]})
    return {getattr(obj, field): obj for obj in locked.order_by("pk")}


def _payment_pks_for(pi_ids: set[str], charge_ids: set[str]) -> tuple[dict, dict, dict]:
    """(pk by payment intent id, pk by charge id, (amount, currency) by pk) of the payments
    these refunds or disputes belong to."""
    by_pi: dict[str, int] = {}
    by_charge: dict[str, int] = {}
    money: dict[int, tuple[int, str]] = {}
    query = Q()
    if pi_ids:
        query |= Q(stripe_payment_intent_id__in=pi_ids)
    if charge_ids:
        query |= Q(stripe_charge_id__in=charge_ids)
    if not query:
        return by_pi, by_charge, money
    # Locked, in pk order, BEFORE the refund/dispute rows: every path locks a payment before
    # its children (the refunds service does too), so two writers cannot deadlock.
    rows = (
        Payment.objects.select_for_update()
        .filter(query)
        .order_by("pk")
        .values_list("pk", "stripe_payment_intent_id", "stripe_charge_id", "amount", "currency")
    )
    for pk, pi_id, charge_id, amount, currency in rows:
        by_pi[pi_id] = pk
        if charge_id:
            by_charge[charge_id] = pk
        money[pk] = (amount, currency)
    return by_pi, by_charge, money


# --- refunds -----------------------------------------------------------------------------------

_REFUND_FIELDS = [
    "payment_id",
    "amount",
    "currency",
    "status",
    "reason",
    "failure_reason",
    "created",
]


def upsert_refunds(rows: Iterable[StripeRefund]) -> UpsertResult:
    """Mirror refunds, then re-derive their payments' amount_refunded and status. A refund
    of a payment we do not hold is skipped (its payment intent id is in
    `result.missing_parents`: mirror that payment, then call again). A refund status we do
    not know is stored as sent (the ledger counts it as committed)."""
    result = UpsertResult()
    rows = [r for r in _checked(rows, validation.refund_problem, result) if r.amount > 0]
    if not rows:
        return result
    with transaction.atomic():
        by_pi, by_charge, money = _payment_pks_for(
            {r.payment_intent_id for r in rows if r.payment_intent_id},
            {r.charge_id for r in rows if r.charge_id},
        )
        existing = _lock_existing(Refund, rows)
        to_write, touched = [], set()
        for row in rows:
            payment_pk = by_pi.get(row.payment_intent_id) or by_charge.get(row.charge_id)
            if payment_pk is None:
                result.skipped += 1
                result.missing_parents.add(row.payment_intent_id or row.charge_id)
                continue
            error = validation.refund_problem(row, payment=money[payment_pk])
            if error:
                result.refuse(row.id, error)
                continue
            values = {
                "payment_id": payment_pk,
                "amount": row.amount,
                "currency": row.currency,
                "status": row.status[:32],
                "reason": row.reason[:64],
                "failure_reason": row.failure_reason[:64],
                "created": row.created,
            }
            current = existing.get(row.id)
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            touched.add(payment_pk)
            to_write.append(Refund(stripe_id=row.id, **values))
        _bulk_upsert(Refund, to_write, unique="stripe_id", update_fields=_REFUND_FIELDS)
        refresh_payments(touched)
    return result


# --- disputes ----------------------------------------------------------------------------------

_DISPUTE_FIELDS = [
    "payment_id",
    "amount",
    "currency",
    "fee",
    "status",
    "reason",
    "evidence_due_by",
    "created",
    "closed_at",
    "evidence",
    "evidence_submission_count",
    "has_evidence",
]


# Where each status stands in the dispute's life (Dispute.LIFECYCLE). A status we do not
# know ranks after every known open status and before every final one: it is stored and
# shown, a later known final status replaces it, and an older known open one does not.
_DISPUTE_RANK = {status: float(i) for i, status in enumerate(Dispute.LIFECYCLE)}
_UNKNOWN_DISPUTE_RANK = _DISPUTE_RANK[Dispute.Status.UNDER_REVIEW] + 0.5


def dispute_status_rank(status: str) -> float:
    return _DISPUTE_RANK.get(status, _UNKNOWN_DISPUTE_RANK)


def dispute_snapshot_applies(*, incoming: str, stored: str) -> bool:
    """May a snapshot with status `incoming` overwrite the row holding `stored`? Only if it
    is not earlier in the dispute's life. So a final status (won, lost, charge_refunded,
    prevented, warning_closed) is never replaced by a non-final one, and between two finals
    the later in Dispute.LIFECYCLE wins (lost -> won happens, won -> lost does not): the
    stored status is the maximum of every snapshot seen, whatever order the webhooks and the
    sync pages deliver them in. Same rank (the same status): the newer arrival wins."""
    return dispute_status_rank(incoming) >= dispute_status_rank(stored)


def upsert_disputes(rows: Iterable[StripeDispute], *, now: datetime | None = None) -> UpsertResult:
    """Mirror disputes, then re-derive their payments' ledger columns (disputed while a
    dispute is open or lost; a lost one comes off the net). Disputes of payments we do not
    hold are skipped (see upsert_refunds). A snapshot earlier in the dispute's life than the
    stored row changes nothing (dispute_snapshot_applies); a status we do not know is stored
    as sent."""
    result = UpsertResult()
    rows = _checked(rows, validation.dispute_problem, result)
    if not rows:
        return result
    now = now or timezone.now()
    with transaction.atomic():
        by_pi, by_charge, money = _payment_pks_for(
            {r.payment_intent_id for r in rows if r.payment_intent_id},
            {r.charge_id for r in rows if r.charge_id},
        )
        existing = _lock_existing(Dispute, rows)
        erased_payments = set(
            Payment.objects.filter(
                pk__in=set(by_pi.values()) | set(by_charge.values()),
                customer__erased_at__isnull=False,
            ).values_list("pk", flat=True)
        )
        to_write, touched = [], set()
        for row in rows:
            payment_pk = by_pi.get(row.payment_intent_id) or by_charge.get(row.charge_id)
            if payment_pk is None:
                result.skipped += 1
                result.missing_parents.add(row.payment_intent_id or row.charge_id)
                continue
            error = validation.dispute_problem(row, payment=money[payment_pk])
            if error:
                result.refuse(row.id, error)
                continue
            current = existing.get(row.id)
            if current is not None and not dispute_snapshot_applies(
                incoming=row.status, stored=current.status
            ):
                result.unchanged += 1  # an older snapshot: what we hold is newer
                continue
            closed = not ledger.dispute_is_open(row.status)
            values = {
                "payment_id": payment_pk,
                "amount": row.amount,
                "currency": row.currency,
                "fee": row.fee,
                "status": row.status[:32],
                "reason": row.reason[:64],
                "evidence_due_by": row.evidence_due_by,
                "created": row.created,
                # Stripe has no closing time: the first time we see it closed.
                "closed_at": ((current.closed_at if current else None) or now) if closed else None,
                # Only the fields Stripe holds a value for (it sends every field, most null).
                "evidence": {k: v for k, v in row.evidence.items() if v},
                "evidence_submission_count": row.evidence_submission_count,
                "has_evidence": row.has_evidence,
            }
            if payment_pk in erased_payments:
                values["evidence"] = erased_evidence(values["evidence"])
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            touched.add(payment_pk)
            to_write.append(Dispute(stripe_id=row.id, **values))
        _bulk_upsert(Dispute, to_write, unique="stripe_id", update_fields=_DISPUTE_FIELDS)
        refresh_payments(touched)
    return result


# --- Connect transfers and their reversals -----------------------------------------------------

_TRANSFER_FIELDS = [
    "payout_id",
    "instructor_id",
    "destination",
    "amount",
    "currency",
    "amount_reversed",
    "reversed",
    "transfer_group",
    "description",
    "metadata",
    "livemode",
    "created",
]
_REVERSAL_FIELDS = ["transfer_id", "amount", "currency", "metadata", "created"]
# Our payouts name themselves in the transfer: metadata `payout_id`, transfer_group
# `payout:<pk>` (payments/services/payouts.py sends both).
PAYOUT_METADATA_KEY = "payout_id"
PAYOUT_GROUP_PREFIX = "payout:"


def transfer_reversal_reference(reversal_id: str) -> str:
    """The EarningEntry reference of a transfer reversal (one entry per reversal, ever)."""
    return f"transfer_reversal:{reversal_id}"


def _payout_pk_named_by(row: StripeTransfer) -> int | None:
    raw = str(row.metadata.get(PAYOUT_METADATA_KEY) or "")
    if not raw and row.transfer_group.startswith(PAYOUT_GROUP_PREFIX):
        raw = row.transfer_group.removeprefix(PAYOUT_GROUP_PREFIX)
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _payouts_for(rows: Sequence[StripeTransfer]) -> dict[int, Payout]:
    """The payouts these transfers name, locked FOR UPDATE in pk order (a payout before its
    transfer, as payments/services/payouts.py locks it: no wait cycle). A payout is only
    taken for a transfer in its currency to its account: metadata alone (anyone with the
    dashboard can type it) must not move money between ledgers."""
    wanted = {pk for pk in map(_payout_pk_named_by, rows) if pk is not None}
    if not wanted:
        return {}
    locked = Payout.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
    return {payout.pk: payout for payout in locked}


def _payout_matches(payout: Payout | None, row: StripeTransfer) -> bool:
    """The payout really is this transfer's: a Connect payout in its currency to its account
    (a bank-transfer payout has no account, and is never paid by a transfer)."""
    return (
        payout is not None
        and payout.method == Payout.Method.CONNECT
        and payout.currency == row.currency
        and payout.destination_account == row.destination
    )


def upsert_transfers(rows: Iterable[StripeTransfer]) -> UpsertResult:
    """Mirror Connect transfers and their reversals (the sync's pages, webhook re-reads and
    payments/services/payouts.py's reversals all land here). Counts are per transfer.

    Links each transfer to the payout its metadata `payout_id` (or transfer_group
    `payout:<pk>`) names, when that is a Connect payout in the transfer's currency to its
    account, and to the instructor (the payout's, else the one whose connected account is the
    destination); a link once made is kept. For each reversal of a transfer linked to a payout
    (only those were taken off the instructor's balance), writes the instructor's
    `transfer_reversal:<trr_id>` entry (kind payout_reversed, +amount, available at once) in
    the same transaction, exactly once (unique reference), and keeps the payout's
    `amount_reversed` equal to Stripe's. A fixed number of statements per page; a re-run over
    the same transfers writes nothing."""
    result = UpsertResult()
    rows = _checked(rows, validation.transfer_problem, result)
    if not rows:
        return result
    with transaction.atomic():
        payouts = _payouts_for(rows)
        destinations = {r.destination for r in rows}
        instructors = dict(
            Instructor.objects.filter(stripe_account_id__in=destinations).values_list(
                "stripe_account_id", "pk"
            )
        )
        existing = _lock_existing(Transfer, rows)
        to_write: list[Transfer] = []
        linked: dict[str, tuple[int, int | None]] = {}  # transfer id -> (instructor, payout)
        for row in rows:
            current = existing.get(row.id)
            payout = payouts.get(_payout_pk_named_by(row) or 0)
            if not _payout_matches(payout, row):
                payout = None
            payout_pk = payout.pk if payout else (current.payout_id if current else None)
            instructor_pk = (
                (payout.instructor_id if payout else None)
                or instructors.get(row.destination)
                or (current.instructor_id if current else None)
            )
            # Only a transfer one of our payouts made was taken off the instructor's balance
            # (its `payout:<pk>` entry), so only its reversals give money back. A transfer
            # made elsewhere (the dashboard) is mirrored and shown, but moves no ledger money.
            if instructor_pk is not None and payout_pk is not None:
                linked[row.id] = (instructor_pk, payout_pk)
            values = {
                "payout_id": payout_pk,
                "instructor_id": instructor_pk,
                "destination": row.destination[:255],
                "amount": row.amount,
                "currency": row.currency,
                "amount_reversed": row.amount_reversed,
                "reversed": row.reversed,
                "transfer_group": row.transfer_group[:255],
                "description": row.description[:500],
                "metadata": row.metadata,
                "livemode": row.livemode,
                "created": row.created,
            }
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            to_write.append(Transfer(stripe_id=row.id, **values))
        _bulk_upsert(Transfer, to_write, unique="stripe_id", update_fields=_TRANSFER_FIELDS)
        _upsert_transfer_reversals(rows)
        _write_reversal_entries(rows, linked)
        _follow_payout_reversals(rows, payouts)
    return result


def _upsert_transfer_reversals(rows: Sequence[StripeTransfer]) -> None:
    reversals = [(row, r) for row in rows for r in row.reversals]
    if not reversals:
        return
    transfer_pks = dict(
        Transfer.objects.filter(stripe_id__in=[row.id for row in rows]).values_list(
            "stripe_id", "pk"
        )
    )
    existing = _lock_existing(TransferReversal, [r for _, r in reversals])
    to_write = []
    for row, reversal in reversals:
        values = {
            "transfer_id": transfer_pks[row.id],
            "amount": reversal.amount,
            "currency": reversal.currency,
            "metadata": reversal.metadata,
            "created": reversal.created,
        }
        current = existing.get(reversal.id)
        if current is not None and not _differs(current, values):
            continue
        to_write.append(TransferReversal(stripe_id=reversal.id, **values))
    _bulk_upsert(TransferReversal, to_write, unique="stripe_id", update_fields=_REVERSAL_FIELDS)


def _write_reversal_entries(
    rows: Sequence[StripeTransfer], linked: dict[str, tuple[int, int | None]]
) -> None:
    """The instructor's `transfer_reversal:<trr_id>` entries its linked transfers' reversals
    still miss: one SELECT of those already written, one INSERT of the rest (a concurrent
    writer of the same entry loses on the unique reference, silently)."""
    wanted = {
        transfer_reversal_reference(reversal.id): (row, reversal)
        for row in rows
        if row.id in linked
        for reversal in row.reversals
        if reversal.amount > 0
    }
    if not wanted:
        return
    written = set(
        EarningEntry.objects.filter(reference__in=wanted).values_list("reference", flat=True)
    )
    entries = []
    for reference, (row, reversal) in wanted.items():
        if reference in written:
            continue
        instructor_pk, payout_pk = linked[row.id]
        entries.append(
            EarningEntry(
                instructor_id=instructor_pk,
                payout_id=payout_pk,
                currency=reversal.currency,
                amount=reversal.amount,
                kind=EarningEntry.Kind.PAYOUT_REVERSED,
                reference=reference,
                # Money pulled back from the instructor is owed to them again at once.
                occurred_at=reversal.created,
                available_at=reversal.created,
                description=f"Transfer {row.id} reversed"[:255],
            )
        )
    EarningEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _follow_payout_reversals(rows: Sequence[StripeTransfer], payouts: dict[int, Payout]) -> None:
    """A linked payout's amount_reversed is Stripe's figure for its transfer (capped at the
    payout's amount, a database constraint). Saved one by one for the payout's history: a
    reversal is rare."""
    for row in rows:
        payout = payouts.get(_payout_pk_named_by(row) or 0)
        if not _payout_matches(payout, row):
            continue
        reversed_amount = min(row.amount_reversed, payout.amount)
        if payout.amount_reversed != reversed_amount:
            payout.amount_reversed = reversed_amount
            payout._change_reason = HISTORY_REASON
            payout.save(update_fields=["amount_reversed", "updated_at"])


# --- subscriptions -----------------------------------------------------------------------------

_SUBSCRIPTION_FIELDS = [
    "customer_id",
    "status",
    "price_id",
    "product_id",
    "plan_name",
    "items_count",
    "quantity",
    "amount",
    "currency",
    "interval",
    "interval_count",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "cancellation_reason",
    "cancellation_comment",
    "cancellation_feedback",
    "default_payment_method_id",
    "latest_invoice_id",
    "latest_invoice_status",
    "latest_invoice_amount_due",
    "latest_invoice_amount_paid",
    "livemode",
    "created",
    "metadata",
]


def subscription_snapshot_applies(*, incoming: str, stored: str) -> bool:
    """May a snapshot with status `incoming` overwrite the row holding `stored`? Not when the
    row is final (canceled, incomplete_expired) and the snapshot is not the same status:
    Stripe never brings a subscription back from those, so such a snapshot is older than
    what we hold (a sync page read before the cancel, landing after its webhook). Between
    two other statuses the newer arrival wins: every webhook re-reads the subscription, so
    the last one to land carries Stripe's current state."""
    return stored not in Subscription.FINAL_STATUSES or incoming == stored


def _subscription_values(row: StripeSubscription, current, *, customer_pk: int) -> dict:
    invoice_known = bool(row.latest_invoice_status) or row.latest_invoice_id == ""
    keep_invoice = (
        not invoice_known
        and current is not None
        and current.latest_invoice_id == row.latest_invoice_id
    )
    return {
        "customer_id": customer_pk,
        "status": row.status[:32],
        "price_id": row.price_id[:255],
        "product_id": row.product_id[:255],
        "plan_name": row.plan_name[:255],
        "items_count": max(0, min(row.items_count, 32767)),
        "quantity": max(0, row.quantity),
        "amount": row.amount,
        "currency": row.currency,
        "interval": row.interval[:16],
        "interval_count": max(1, min(row.interval_count, 32767)),
        "current_period_start": row.current_period_start,
        "current_period_end": row.current_period_end,
        "trial_end": row.trial_end,
        "cancel_at_period_end": row.cancel_at_period_end,
        "cancel_at": row.cancel_at,
        "canceled_at": row.canceled_at,
        "ended_at": row.ended_at,
        "cancellation_reason": row.cancellation_reason[:64],
        "cancellation_comment": row.cancellation_comment,
        "cancellation_feedback": row.cancellation_feedback[:64],
        "default_payment_method_id": row.default_payment_method_id[:255],
        "latest_invoice_id": row.latest_invoice_id[:255],
        # A snapshot that names the same invoice without expanding it keeps what we know.
        "latest_invoice_status": (
            current.latest_invoice_status if keep_invoice else row.latest_invoice_status[:32]
        ),
        "latest_invoice_amount_due": (
            current.latest_invoice_amount_due if keep_invoice else row.latest_invoice_amount_due
        ),
        "latest_invoice_amount_paid": (
            current.latest_invoice_amount_paid if keep_invoice else row.latest_invoice_amount_paid
        ),
        "livemode": row.livemode,
        "created": row.created,
        "metadata": row.metadata or {},
    }


def upsert_subscriptions(rows: Iterable[StripeSubscription]) -> UpsertResult:
    """Mirror subscriptions (the sync's pages, the `customer.subscription.*` and `invoice.*`
    webhooks' re-reads and payments.services.billing_actions' answers all land here). A
    subscription of a customer we do not hold is skipped (the customer's id is in
    `result.missing_parents`: mirror the customer, then call again). A snapshot never takes a
    subscription out of a final status (subscription_snapshot_applies); a status we do not
    know is stored as sent. A fixed number of statements per page; a re-run writes nothing."""
    result = UpsertResult()
    rows = _checked(rows, validation.subscription_problem, result)
    if not rows:
        return result
    with transaction.atomic():
        customers = _customer_pks(r.customer_id for r in rows)
        existing = _lock_existing(Subscription, rows)
        to_write, updated = [], []
        for row in rows:
            customer_pk = customers.get(row.customer_id)
            if customer_pk is None:
                result.skipped += 1
                result.missing_parents.add(row.customer_id)
                continue
            current = existing.get(row.id)
            if current is not None and not subscription_snapshot_applies(
                incoming=row.status, stored=current.status
            ):
                result.unchanged += 1  # an older snapshot: what we hold is newer
                continue
            values = _subscription_values(row, current, customer_pk=customer_pk)
            if current is None:
                result.created += 1
            elif _differs(current, values):
                result.updated += 1
                updated.append(_apply(current, values))
            else:
                result.unchanged += 1
                continue
            to_write.append(Subscription(stripe_id=row.id, **values))
        written = _bulk_upsert(
            Subscription, to_write, unique="stripe_id", update_fields=_SUBSCRIPTION_FIELDS
        )
        created = [s for s in written if s.stripe_id not in existing]
        _history(Subscription, created=created, updated=updated, key="stripe_id")
    return result
