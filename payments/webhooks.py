"""Stripe webhooks: verify the signature, store the event once, acknowledge, process later.

The endpoint does the least it safely can inside Stripe's timeout: check `Stripe-Signature`
against every configured secret (rotation), insert the event unique by its Stripe id (a
duplicate delivery, even ten at once, inserts nothing) and enqueue one django-q2 task (in the
same transaction with the ORM broker, after commit otherwise). The task runs the handler for
the event's type, with retries; staff can replay any event from the admin.

Handlers converge whatever order events arrive in: they ignore the event's snapshot and
re-read the object's current state through the gateway (payment intents with their charge,
refunds, customers, payment methods, disputes, transfers, subscriptions: an invoice's event
re-reads the subscription it bills). Everything lands through payments.sync's upserts, the
same path as the scheduled sync, so the two can never disagree; for disputes the upsert
keeps the latest status in the dispute's life whatever order re-reads and sync pages land
in (payments.sync.dispute_snapshot_applies), and a canceled subscription stays canceled.

An object that fails the boundary checks (payments/validation.py: id prefix, currency,
amounts) fails its event at once with the reason (ERROR_INVALID_OBJECT), with no retry, and
is not written. Checks that need no other row run before anything is written (a refused
payment intent leaves its customer unmirrored too); a refund or dispute above its payment is
refused in the upsert, after its payment (a valid object of its own) may have been mirrored.
Radar's early fraud warnings, which the gateway does not re-read, are checked from the
payload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.db.models import Q
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import customer_privacy, gateway, sync
from payments.coupon_mirror import COUPON_HANDLERS
from payments.exceptions import ResourceMissing, WebhookSignatureError
from payments.models import Customer, Payment, PaymentMethod, WebhookEvent
from payments.services.fraud_alert import UnknownPayment, fraud_alert_open_from_warning
from payments.sync import UpsertResult
from payments.validation import (
    InvalidStripeObject,
    customer_problem,
    dispute_problem,
    early_fraud_warning_problem,
    id_problem,
    payment_intent_problem,
    payment_method_problem,
    refund_problem,
    subscription_problem,
    transfer_problem,
)

logger = logging.getLogger(__name__)

# Answers to the sender (Stripe reads them in its dashboard's delivery log).
ERROR_NO_SECRETS = "Webhook secrets are not configured."
ERROR_BAD_SIGNATURE = "Invalid Stripe-Signature."
ERROR_MALFORMED_EVENT = "Not a Stripe event."
# Recorded on the event when its payment is unknown to us and to Stripe's answer.
ERROR_MISSING_PARENT = "No local payment for {ids}; will retry after the next sync."
# Recorded on an event whose object fails the boundary checks; `error` says what is wrong.
ERROR_INVALID_OBJECT = "Refused, not retried: {error}"

# Retry policy for a failing handler: attempt n (1-based) that fails is tried again after
# RETRY_DELAYS[n - 1]; after MAX_ATTEMPTS attempts the event is `failed` until replayed.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A `processing` claim older than this belongs to a worker that died; it may be taken over.
STALE_PROCESSING = timedelta(minutes=10)

TASK_PATH = "payments.tasks.webhook_event_process_task"


# --- The endpoint -------------------------------------------------------------------------


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """POST /stripe/webhook/: 400 and nothing stored unless the signature verifies."""
    secrets = [s for s in settings.STRIPE_WEBHOOK_SECRETS if s]
    if not secrets:
        logger.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRETS is empty")
        return HttpResponseBadRequest(ERROR_NO_SECRETS)
    try:
        event = gateway.webhook_event_construct(
            payload=request.body,
            sig_header=request.headers.get("Stripe-Signature", ""),
            secrets=secrets,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except WebhookSignatureError:
        return HttpResponseBadRequest(ERROR_BAD_SIGNATURE)
    try:
        _, created = webhook_event_record(event=event)
    except ValueError:
        return HttpResponseBadRequest(ERROR_MALFORMED_EVENT)
    return JsonResponse({"received": True, "duplicate": not created})


def _event_fields(event: dict) -> dict:
    """Columns of a WebhookEvent from a verified Stripe event (a plain dict). Raises
    ValueError for anything that is not shaped like a Stripe event."""
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise ValueError(ERROR_MALFORMED_EVENT)
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(ERROR_MALFORMED_EVENT)
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    if not isinstance(data_object, dict):
        data_object = {}
    try:
        created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        created = timezone.now()
    return {
        "stripe_id": event_id,
        "type": event_type[:100],
        "api_version": str(event.get("api_version") or "")[:32],
        "livemode": event.get("livemode") is True,
        "object_id": str(data_object.get("id") or "")[:255],
        "created": created,
        "payload": event,
    }


def webhook_event_record(*, event: dict) -> tuple[WebhookEvent | None, bool]:
    """Store a verified event once and enqueue its processing (see _enqueue_with).

    Returns (event row, True) when this call inserted it, (None, False) for a duplicate. The
    unique index on stripe_id decides between concurrent deliveries: on PostgreSQL the second
    INSERT waits for the first to commit and then fails, so exactly one caller enqueues.
    """
    fields = _event_fields(event)
    try:
        with transaction.atomic():
            row = WebhookEvent.objects.create(**fields)
            _enqueue_with(row)
    except IntegrityError:
        if not WebhookEvent.objects.filter(stripe_id=fields["stripe_id"]).exists():
            raise  # some other constraint: a real error, not a duplicate
        return None, False
    return row, True


def _enqueue_with(row: WebhookEvent) -> None:
    """Enqueue inside the caller's transaction when that is safe, else after commit.

    With django-q2's ORM broker on our own database the queued task is one more row in the
    event's transaction: both commit or neither (an outbox), and the broker, which closes
    connections when called in autocommit, keeps the request's connection. With Redis (or
    inline tasks) the task goes after commit, so a worker never looks for an uncommitted
    event."""
    from django_q.conf import Conf

    if not Conf.SYNC and Conf.ORM and router.db_for_write(WebhookEvent) == Conf.ORM:
        webhook_event_enqueue(event=row)
    else:
        transaction.on_commit(lambda: webhook_event_enqueue(event=row))


def webhook_event_enqueue(*, event: WebhookEvent) -> None:
    """Hand the event to a django-q2 worker (inline when Q_CLUSTER['sync'] is on)."""
    from django_q.tasks import async_task

    async_task(TASK_PATH, event.pk, task_name=f"webhook {event.stripe_id}"[:100])


def _schedule_retry(*, event: WebhookEvent, when: datetime) -> None:
    from django_q.models import Schedule
    from django_q.tasks import schedule

    # Named after the event, like the first attempt's task (not django-q2's random name).
    schedule(
        TASK_PATH,
        event.pk,
        schedule_type=Schedule.ONCE,
        next_run=when,
        repeats=1,
        q_options={"task_name": f"webhook retry {event.stripe_id}"[:100]},
    )


# --- Processing ---------------------------------------------------------------------------


def _claim(event_pk: int) -> WebhookEvent | None:
    """Mark the event `processing` under a row lock; None if there is nothing to do (done
    already, or another worker holds a fresh claim)."""
    now = timezone.now()
    Status = WebhookEvent.Status
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_pk).first()
        # FAILED waits for a replay (which resets it to RECEIVED): a leftover scheduled retry
        # must not run it again.
        if event is None or event.status in (*WebhookEvent.DONE_STATUSES, Status.FAILED):
            return None
        if (
            event.status == WebhookEvent.Status.PROCESSING
            and event.processing_started_at
            and event.processing_started_at > now - STALE_PROCESSING
        ):
            return None
        event.status = WebhookEvent.Status.PROCESSING
        event.attempts += 1
        event.processing_started_at = now
        event.next_attempt_at = None
        event.save(update_fields=["status", "attempts", "processing_started_at", "next_attempt_at"])
    return event


def _finish(event: WebhookEvent, *, status: str, started: float, error: str = "") -> None:
    event.status = status
    event.error = error
    event.processed_at = timezone.now()
    event.processing_ms = round((time.perf_counter() - started) * 1000)
    if status == WebhookEvent.Status.RETRYING:
        event.next_attempt_at = event.processed_at + RETRY_DELAYS[event.attempts - 1]
    fields = ["status", "error", "processed_at", "processing_ms", "next_attempt_at"]
    # Stripe keeps sending an erased customer's personal data (GDPR erasure pseudonymises our
    # copy only): events about them are kept masked once handled.
    masked = customer_privacy.webhook_payload_for(event)
    if masked is not None and masked != event.payload:
        event.payload = masked
        fields.append("payload")
    event.save(update_fields=fields)


def webhook_event_process(*, event_pk: int) -> str | None:
    """Run the handler for one stored event; record the outcome. Never raises: a failure is
    recorded on the row (error, attempts) and retried by the policy above. Returns the new
    status, or None when there was nothing to do."""
    event = _claim(event_pk)
    if event is None:
        return None
    started = time.perf_counter()
    handler = HANDLERS.get(event.type)
    if handler is None:
        # Stripe sends many types we have no use for: keep them, visibly not failures.
        _finish(event, status=WebhookEvent.Status.IGNORED, started=started)
        return event.status
    try:
        handler(event)
    except InvalidStripeObject as exc:
        # The same object would be refused on every attempt: fail now, visibly. A replay
        # (after Stripe or a person has corrected it) runs the handler again.
        logger.warning("Stripe webhook %s (%s) refused: %s", event.stripe_id, event.type, exc)
        error = ERROR_INVALID_OBJECT.format(error=exc.error)[:5000]
        _finish(event, status=WebhookEvent.Status.FAILED, started=started, error=error)
        return event.status
    except Exception as exc:
        logger.exception("Stripe webhook %s (%s) failed", event.stripe_id, event.type)
        error = f"{type(exc).__name__}: {exc}"[:5000]
        if event.attempts < MAX_ATTEMPTS:
            _finish(event, status=WebhookEvent.Status.RETRYING, started=started, error=error)
            _schedule_retry(event=event, when=event.next_attempt_at)
        else:
            _finish(event, status=WebhookEvent.Status.FAILED, started=started, error=error)
        return event.status
    _finish(event, status=WebhookEvent.Status.PROCESSED, started=started)
    return event.status


def webhook_events_requeue_stale(*, now: datetime | None = None) -> dict:
    """Enqueue events nobody is working on: `received` for over STALE_PROCESSING (the task
    was lost, e.g. the broker was down at commit), `processing` claims older than that (the
    worker died), and `retrying` events past their next_attempt_at. Idempotent: a second
    worker on the same event finds it claimed or done."""
    now = now or timezone.now()
    cutoff = now - STALE_PROCESSING
    Status = WebhookEvent.Status
    stale = (
        WebhookEvent.objects.filter(
            Q(status=Status.RECEIVED, received_at__lt=cutoff)
            | Q(status=Status.PROCESSING, processing_started_at__lt=cutoff)
            | Q(status=Status.RETRYING, next_attempt_at__lte=now)
        )
        .order_by("received_at", "id")
        .values_list("pk", flat=True)
    )
    pks = list(stale[:1000])
    for pk in pks:
        webhook_event_enqueue(event=WebhookEvent(pk=pk, stripe_id=str(pk)))
    return {"requeued": len(pks)}


def webhook_event_replay(*, event: WebhookEvent, acting_user, client=None) -> bool:
    """Run a stored event's handler again (staff action): reset it to `received`, audit, and
    enqueue. Safe on processed events too: handlers are idempotent. Returns False (and does
    nothing) while a worker is processing the event right now. `client`: a
    backoffice.audit.ClientInfo for the audit row."""
    from backoffice.audit import audit_record

    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if (
            locked.status == WebhookEvent.Status.PROCESSING
            and locked.processing_started_at
            and locked.processing_started_at > timezone.now() - STALE_PROCESSING
        ):
            return False
        previous = locked.status
        locked.status = WebhookEvent.Status.RECEIVED
        locked.next_attempt_at = None
        locked.processing_started_at = None
        locked.save(update_fields=["status", "next_attempt_at", "processing_started_at"])
        _enqueue_with(locked)
        audit_record(
            acting_user=acting_user,
            action="webhook_event_replay",
            target=locked,
            details={"stripe_id": locked.stripe_id, "previous_status": previous},
            client=client,
        )
    return True


# --- Handlers -----------------------------------------------------------------------------


def _object(event: WebhookEvent) -> dict:
    return (event.payload.get("data") or {}).get("object") or {}


def _id_of(value) -> str | None:
    """An id from a field Stripe sends either as an id string or as an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _refuse(object_id, problem: str | None) -> None:
    """Raise InvalidStripeObject when a boundary check found a problem."""
    if problem:
        raise InvalidStripeObject(str(object_id or ""), problem)


def _refuse_rejected(result: UpsertResult) -> None:
    """An upsert refused an object (checked against its payment there): fail the event."""
    for object_id, error in sorted(result.invalid.items()):
        raise InvalidStripeObject(object_id, error)


def _event_object_id(event: WebhookEvent, kind: str) -> str:
    """The id of the event's object, checked before we ask Stripe about it."""
    object_id = _object(event).get("id")
    _refuse(object_id, id_problem(kind, object_id))
    return object_id


def _ensure_customer(customer_id: str) -> None:
    """Payments and payment methods point at a customer row: mirror it first if missing."""
    if customer_id and not Customer.objects.filter(stripe_id=customer_id).exists():
        _refresh_customer(customer_id)


def _refresh_customer(customer_id: str) -> None:
    """Re-read a customer. Also what marks its default payment method: upsert_customers sets
    the flag only on payment methods we already hold, so after creating a payment method row
    the customer is read again, whatever order the events came in."""
    try:
        customer = gateway.stripe_customer_retrieve(customer_id=customer_id)
    except ResourceMissing:
        return  # deleted at Stripe: our row (if any) stays as history
    _refuse(customer.id, customer_problem(customer))
    _refuse_rejected(sync.upsert_customers([customer]))


def _method_is_new(payment_method_id: str) -> bool:
    return bool(payment_method_id) and not (
        PaymentMethod.objects.filter(stripe_id=payment_method_id).exists()
    )


def sync_payment_intent(payment_intent_id: str) -> None:
    """Mirror a payment intent (with its latest charge, fee and net) as Stripe has it now."""
    _refuse(payment_intent_id, id_problem("payment_intent", payment_intent_id))
    intent = gateway.stripe_payment_intent_retrieve(payment_intent_id=payment_intent_id)
    # Checked before anything is written (the customer below included).
    _refuse(intent.id, payment_intent_problem(intent))
    new_method = _method_is_new(intent.payment_method_id)
    _ensure_customer(intent.customer_id)
    _refuse_rejected(sync.upsert_payment_intents([intent]))
    if new_method and intent.customer_id:
        _refresh_customer(intent.customer_id)


def handle_payment_intent(event: WebhookEvent) -> None:
    sync_payment_intent(_event_object_id(event, "payment_intent"))


def handle_charge(event: WebhookEvent) -> None:
    charge = _object(event)
    _event_object_id(event, "charge")
    payment_intent_id = _id_of(charge.get("payment_intent"))
    if not payment_intent_id:
        return  # a charge outside payment intents: nothing of ours to mirror
    if event.type != "charge.refunded":
        sync_payment_intent(payment_intent_id)
        return
    # Re-read every refund of the payment (the event's list may be truncated or stale), and
    # land them before the payment's new refunded amount when we hold the payment: the
    # instructor's ledger then records each refund as a refund, not first as a correction
    # for a refunded amount no row explains yet (payments.earnings).
    refunds = gateway.stripe_refund_list(payment_intent_id=payment_intent_id)
    for refund in refunds:
        _refuse(refund.id, refund_problem(refund))
    held = Payment.objects.filter(stripe_payment_intent_id=payment_intent_id).exists()
    if held:
        _refuse_rejected(sync.upsert_refunds(refunds))
    sync_payment_intent(payment_intent_id)
    if not held:
        _refuse_rejected(sync.upsert_refunds(refunds))


class MissingParent(Exception):
    """The object belongs to a payment Stripe would not give us (yet): retry later."""


def _sync_refund(refund_id: str, *, payment_intent_id: str | None) -> None:
    refund = gateway.stripe_refund_retrieve(refund_id=refund_id)
    _refuse(refund.id, refund_problem(refund))
    payment_intent_id = payment_intent_id or refund.payment_intent_id
    if (
        payment_intent_id
        and not Payment.objects.filter(stripe_payment_intent_id=payment_intent_id).exists()
    ):
        sync_payment_intent(payment_intent_id)
    result = sync.upsert_refunds([refund])
    _refuse_rejected(result)
    if result.missing_parents:
        raise MissingParent(ERROR_MISSING_PARENT.format(ids=sorted(result.missing_parents)))


def handle_refund(event: WebhookEvent) -> None:
    refund = _object(event)
    refund_id = _event_object_id(event, "refund")
    payment_intent_id = _id_of(refund.get("payment_intent"))
    _refuse(refund_id, id_problem("payment_intent", payment_intent_id, field="payment_intent"))
    _sync_refund(refund_id, payment_intent_id=payment_intent_id)
    # The payment's amount_refunded and status follow its refunds: re-read it too.
    if payment_intent_id:
        sync_payment_intent(payment_intent_id)


def handle_dispute(event: WebhookEvent) -> None:
    """Re-read the dispute (as payment intents are re-read) and land it through the sync's
    upsert, which never moves a dispute back in its life (an older re-read or sync page
    changes nothing), so events and syncs converge in any order."""
    dispute = gateway.stripe_dispute_retrieve(dispute_id=_event_object_id(event, "dispute"))
    # Checked before its payment is mirrored; against that payment in the upsert.
    _refuse(dispute.id, dispute_problem(dispute))
    if (
        dispute.payment_intent_id
        and not Payment.objects.filter(stripe_payment_intent_id=dispute.payment_intent_id).exists()
    ):
        sync_payment_intent(dispute.payment_intent_id)
    result = sync.upsert_disputes([dispute])
    _refuse_rejected(result)
    if result.missing_parents:
        raise MissingParent(ERROR_MISSING_PARENT.format(ids=sorted(result.missing_parents)))


def handle_transfer(event: WebhookEvent) -> None:
    """transfer.created / updated / reversed alike: re-read the transfer (with all its
    reversals) and land it through the sync's upsert, which links it to its payout and
    instructor and writes each reversal's entry once, whatever order events arrive in."""
    transfer = gateway.stripe_transfer_retrieve(transfer_id=_event_object_id(event, "transfer"))
    _refuse(transfer.id, transfer_problem(transfer))
    _refuse_rejected(sync.upsert_transfers([transfer]))


def handle_customer(event: WebhookEvent) -> None:
    """created / updated / deleted alike: mirror the customer as Stripe has it now (a deleted
    one stays here as history: its payments point at it)."""
    _refresh_customer(_event_object_id(event, "customer"))


def handle_payment_method(event: WebhookEvent) -> None:
    method_id = _event_object_id(event, "payment_method")
    method = gateway.stripe_payment_method_retrieve(payment_method_id=method_id)
    _refuse(method.id, payment_method_problem(method))
    new_method = _method_is_new(method.id)
    _ensure_customer(method.customer_id)
    _refuse_rejected(sync.upsert_payment_methods([method]))
    if new_method and method.customer_id:
        _refresh_customer(method.customer_id)


def sync_subscription(subscription_id: str) -> None:
    """Mirror a subscription as Stripe has it now, with its latest invoice's status (its
    customer first, when we do not hold them). Lands through the sync's upsert, which never
    takes a subscription out of canceled: events converge in any order."""
    _refuse(subscription_id, id_problem("subscription", subscription_id))
    subscription = gateway.stripe_subscription_retrieve(subscription_id=subscription_id)
    _refuse(subscription.id, subscription_problem(subscription))
    _ensure_customer(subscription.customer_id)
    result = sync.upsert_subscriptions([subscription])
    _refuse_rejected(result)
    if result.missing_parents:
        raise MissingParent(ERROR_MISSING_PARENT.format(ids=sorted(result.missing_parents)))


def handle_subscription(event: WebhookEvent) -> None:
    """customer.subscription.created / updated / deleted alike: re-read it."""
    sync_subscription(_event_object_id(event, "subscription"))


def handle_invoice(event: WebhookEvent) -> None:
    """invoice.paid / invoice.payment_failed: re-read the subscription the invoice bills (its
    status and latest invoice follow the payment). A one-off invoice changes nothing here."""
    _event_object_id(event, "invoice")
    subscription_id = gateway.invoice_subscription_id(_object(event))
    if subscription_id:
        sync_subscription(subscription_id)


def handle_early_fraud_warning(event: WebhookEvent) -> None:
    """Radar's early fraud warning: open one FraudAlert per warning (idempotent). Checked
    from the payload: the gateway does not re-read warnings."""
    warning = _object(event)
    _refuse(warning.get("id"), early_fraud_warning_problem(warning))
    try:
        fraud_alert_open_from_warning(warning=_object(event))
    except UnknownPayment as exc:
        # The payment is not mirrored yet: mirror it, then the retry finds it.
        intent_id = _id_of(_object(event).get("payment_intent"))
        if intent_id:
            sync_payment_intent(intent_id)
            fraud_alert_open_from_warning(warning=_object(event))
        else:
            raise MissingParent(str(exc)) from exc


HANDLERS: dict[str, Callable[[WebhookEvent], None]] = {
    **dict.fromkeys(
        [
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.processing",
            "payment_intent.canceled",
            "payment_intent.requires_action",
        ],
        handle_payment_intent,
    ),
    **dict.fromkeys(["charge.succeeded", "charge.failed", "charge.refunded"], handle_charge),
    **dict.fromkeys(
        ["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"],
        handle_refund,
    ),
    **dict.fromkeys(
        [
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ],
        handle_dispute,
    ),
    **dict.fromkeys(["transfer.created", "transfer.updated", "transfer.reversed"], handle_transfer),
    **dict.fromkeys(["customer.created", "customer.updated", "customer.deleted"], handle_customer),
    **dict.fromkeys(["payment_method.attached", "payment_method.detached"], handle_payment_method),
    **dict.fromkeys(
        [
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
        ],
        handle_subscription,
    ),
    **dict.fromkeys(["invoice.paid", "invoice.payment_failed"], handle_invoice),
    **dict.fromkeys(
        ["radar.early_fraud_warning.created", "radar.early_fraud_warning.updated"],
        handle_early_fraud_warning,
    ),
    # coupon.* and promotion_code.*: re-read and land through the sync's upsert.
    **COUPON_HANDLERS,
}
