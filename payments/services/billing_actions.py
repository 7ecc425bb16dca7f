"""Staff changes to a customer's billing at Stripe: cancel a subscription at the end of its
period, resume it (undo that), cancel it now; make a saved payment method the customer's
default, detach one.

Rules (the pages ask `*_refusal` to offer or disable a button; the service asks again under
the row lock):
- Subscriptions need payments.manage_subscription. Cancel at period end: the subscription is
  not canceled (or expired) and not already set to end; a reason. Resume: it is set to end at
  the period's end and not canceled yet. Cancel now: not canceled; a reason. The reason goes
  to Stripe too (cancellation_details.comment).
- Saved payment methods need payments.manage_saved_payment_method. Make default: attached to
  a customer, not the default already, not an expired card. Detach: attached; a reason.

Flow, exactly once (DESIGN.md, "Out to Stripe"):
1. Under the target's row lock (the Subscription or PaymentMethod row): check the rules,
   insert the BillingAction (`processing`, idempotency key `billing_action:<pk>`) and the
   audit row; commit.
2. Outside any transaction: the gateway call with that key.
3. Mirror Stripe's answer through payments.sync's upserts (the path of the webhooks and the
   sync) and record the outcome on the action.

At most one action per Stripe object is open (`processing`, or `unknown` after a timeout or
a 5xx): a database constraint. While the open one is younger than IN_FLIGHT_WINDOW a new
request is refused (a double submit, or Stripe still thinking). After that, the next request
first reads the object back from Stripe (and mirrors it) and settles the open action by what
it sees: its effect there -> succeeded, not there -> failed. The key is never sent again with
other parameters, and a crash between steps 2 and 3 heals the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.timesince import timesince

from backoffice.audit import ClientInfo, audit_record
from backoffice.formats import format_datetime
from payments import gateway, sync
from payments.card_expiry import EXPIRED, card_expiry_state
from payments.exceptions import (
    GatewayError,
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
)
from payments.models import BillingAction, PaymentMethod, PaymentMethodType, Subscription

PERM_SUBSCRIPTION = "payments.manage_subscription"
PERM_PAYMENT_METHOD = "payments.manage_saved_payment_method"

Kind = BillingAction.Kind

ERR_NO_PERMISSION_SUBSCRIPTION = "You may not cancel or resume subscriptions."
ERR_NO_PERMISSION_PAYMENT_METHOD = "You may not change customers' saved payment methods."
ERR_REASON_REQUIRED = "Give a reason: the audit trail keeps it."
ERR_FINAL = "This subscription is {status}: Stripe cannot change it any more."
ERR_NO_CUSTOMER = (
    "This subscription's customer is not in our records yet: run the Stripe sync (or wait "
    "for its webhook), then try again."
)
ERR_ALREADY_ENDING = "This subscription already ends with its current period, on {when}."
ERR_NOT_ENDING = "This subscription is not set to end; there is nothing to resume."
ERR_DETACHED = "This payment method is not attached to a customer any more."
ERR_ALREADY_DEFAULT = "This is the customer's default payment method already."
ERR_EXPIRED = "This card expired at the end of {month:02d}/{year}: it cannot be the default."
ERR_IN_FLIGHT = (
    "A change to {target} was sent {ago} ago and Stripe has not answered yet; reload this "
    "page in a moment."
)
ERR_CANNOT_SETTLE = (
    "An earlier change to {target} has no known outcome and Stripe cannot be asked now "
    "({error}); try again later."
)
ERR_NO_EFFECT = "Stripe gave no answer, and reading {target} back later showed no change."
MSG_STRIPE_REFUSED = "Stripe refused the change: {error}"
MSG_UNKNOWN = (
    "Stripe gave no clear answer; the change may have been made. The next request reads "
    "{target} back from Stripe first, so nothing is sent twice."
)
MESSAGES = {
    Kind.CANCEL_AT_PERIOD_END: "{target} will end on {when}; it will not renew.",
    Kind.RESUME: "{target} will renew again on {when}.",
    Kind.CANCEL_NOW: "{target} is canceled.",
    Kind.SET_DEFAULT: "{target} is now the default payment method of {customer}.",
    Kind.DETACH: "{target} is detached from {customer}; it can no longer be charged.",
}
AUDIT_ACTIONS = {
    Kind.CANCEL_AT_PERIOD_END: "subscription_cancel_at_period_end",
    Kind.RESUME: "subscription_resume",
    Kind.CANCEL_NOW: "subscription_cancel_now",
    Kind.SET_DEFAULT: "payment_method_set_default",
    Kind.DETACH: "payment_method_detach",
}
REASON_REQUIRED = {Kind.CANCEL_AT_PERIOD_END, Kind.CANCEL_NOW, Kind.DETACH}

# An open action whose last attempt is younger than this is in flight (a double submit, or
# Stripe still answering); an older one is settled by reading the object back.
IN_FLIGHT_WINDOW = timedelta(minutes=2)


class BillingActionNotAllowed(Exception):
    """The change may not be made now; the message is safe to show to staff."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class BillingActionResult:
    action: BillingAction
    succeeded: bool
    message: str


# --- the rules ---------------------------------------------------------------------------------


def subscription_action_refusal(*, user, subscription: Subscription, kind: str) -> str:
    """Why `user` may not make `kind` (cancel at period end, resume, cancel now) of
    `subscription` now, or "" when they may (the reason is asked separately)."""
    if user is None or not user.has_perm(PERM_SUBSCRIPTION):
        return ERR_NO_PERMISSION_SUBSCRIPTION
    if subscription.customer_id is None:
        # Every action row names its customer; without one the insert would fail and be
        # misread as an action already in flight.
        return ERR_NO_CUSTOMER
    if subscription.is_final:
        return ERR_FINAL.format(status=subscription.get_status_display().lower())
    if kind == Kind.CANCEL_AT_PERIOD_END and subscription.cancel_at_period_end:
        when = subscription.cancel_at or subscription.current_period_end
        return ERR_ALREADY_ENDING.format(when=format_datetime(when))
    if kind == Kind.RESUME and not subscription.cancel_at_period_end:
        return ERR_NOT_ENDING
    return ""


def payment_method_action_refusal(
    *, user, method: PaymentMethod, kind: str, today: date | None = None
) -> str:
    """Why `user` may not make `kind` (make default, detach) of `method` now, or ""."""
    if user is None or not user.has_perm(PERM_PAYMENT_METHOD):
        return ERR_NO_PERMISSION_PAYMENT_METHOD
    if method.customer_id is None:
        return ERR_DETACHED
    if kind == Kind.SET_DEFAULT:
        if method.is_default:
            return ERR_ALREADY_DEFAULT
        state = card_expiry_state(method.card_exp_month, method.card_exp_year, today=today)
        if method.type == PaymentMethodType.CARD and state == EXPIRED:
            return ERR_EXPIRED.format(month=method.card_exp_month, year=method.card_exp_year)
    return ""


# --- one kind of action: what it targets, sends, mirrors and looks for --------------------------


@dataclass(frozen=True)
class _Spec:
    model: type
    refusal: Callable[..., str]
    # (target, action) -> Stripe's answer, sent with the action's idempotency key.
    send: Callable
    # Stripe's answer -> the mirror (a payments.sync upsert).
    mirror: Callable
    # (target, the open action) -> re-read from Stripe and mirrored (settling an action
    # with no answer).
    refresh: Callable
    # target (as mirrored) -> has the action's effect happened?
    effect_seen: Callable[..., bool]


def _mirror_subscription(answer) -> None:
    sync.upsert_subscriptions([answer])


def _refresh_subscription(subscription: Subscription, action: BillingAction) -> None:
    _mirror_subscription(
        gateway.stripe_subscription_retrieve(subscription_id=subscription.stripe_id)
    )


def _mirror_customer(answer) -> None:
    sync.upsert_customers([answer])


def _refresh_customer_of(method: PaymentMethod, action: BillingAction) -> None:
    # The action's customer: the method may have been detached since.
    _mirror_customer(gateway.stripe_customer_retrieve(customer_id=action.customer.stripe_id))


def _mirror_method(answer) -> None:
    sync.upsert_payment_methods([answer])


def _refresh_method(method: PaymentMethod, action: BillingAction) -> None:
    _mirror_method(gateway.stripe_payment_method_retrieve(payment_method_id=method.stripe_id))


SPECS: dict[str, _Spec] = {
    Kind.CANCEL_AT_PERIOD_END: _Spec(
        model=Subscription,
        refusal=subscription_action_refusal,
        send=lambda sub, action: gateway.stripe_subscription_cancel_at_period_end(
            subscription_id=sub.stripe_id,
            cancel=True,
            comment=action.reason,
            idempotency_key=action.idempotency_key,
        ),
        mirror=_mirror_subscription,
        refresh=_refresh_subscription,
        effect_seen=lambda sub: sub.cancel_at_period_end or sub.is_final,
    ),
    Kind.RESUME: _Spec(
        model=Subscription,
        refusal=subscription_action_refusal,
        send=lambda sub, action: gateway.stripe_subscription_cancel_at_period_end(
            subscription_id=sub.stripe_id, cancel=False, idempotency_key=action.idempotency_key
        ),
        mirror=_mirror_subscription,
        refresh=_refresh_subscription,
        effect_seen=lambda sub: not sub.cancel_at_period_end and not sub.is_final,
    ),
    Kind.CANCEL_NOW: _Spec(
        model=Subscription,
        refusal=subscription_action_refusal,
        send=lambda sub, action: gateway.stripe_subscription_cancel(
            subscription_id=sub.stripe_id,
            comment=action.reason,
            idempotency_key=action.idempotency_key,
        ),
        mirror=_mirror_subscription,
        refresh=_refresh_subscription,
        effect_seen=lambda sub: sub.status == Subscription.Status.CANCELED,
    ),
    Kind.SET_DEFAULT: _Spec(
        model=PaymentMethod,
        refusal=payment_method_action_refusal,
        send=lambda method, action: gateway.stripe_customer_default_payment_method_set(
            customer_id=action.customer.stripe_id,
            payment_method_id=method.stripe_id,
            idempotency_key=action.idempotency_key,
        ),
        mirror=_mirror_customer,
        refresh=_refresh_customer_of,
        effect_seen=lambda method: method.is_default,
    ),
    Kind.DETACH: _Spec(
        model=PaymentMethod,
        refusal=payment_method_action_refusal,
        send=lambda method, action: gateway.stripe_payment_method_detach(
            payment_method_id=method.stripe_id, idempotency_key=action.idempotency_key
        ),
        mirror=_mirror_method,
        refresh=_refresh_method,
        effect_seen=lambda method: method.customer_id is None,
    ),
}


def _refusal(spec: _Spec, *, user, target, kind: str) -> str:
    if spec.model is Subscription:
        return spec.refusal(user=user, subscription=target, kind=kind)
    return spec.refusal(user=user, method=target, kind=kind)


def _permission_refusal(spec: _Spec, user) -> str:
    permission = PERM_SUBSCRIPTION if spec.model is Subscription else PERM_PAYMENT_METHOD
    if user is None or not user.has_perm(permission):
        return (
            ERR_NO_PERMISSION_SUBSCRIPTION
            if spec.model is Subscription
            else ERR_NO_PERMISSION_PAYMENT_METHOD
        )
    return ""


# --- the flow ----------------------------------------------------------------------------------


def _target_label(target) -> str:
    if isinstance(target, Subscription):
        return f"Subscription {target.stripe_id}"
    return str(target)


def _settle_open(spec: _Spec, target, *, now) -> None:
    """An earlier action on the same Stripe object with no known outcome: refuse while it
    may still be in flight; else read the object back from Stripe and settle it."""
    action = (
        BillingAction.objects.filter(
            target_stripe_id=target.stripe_id, status__in=BillingAction.OPEN_STATUSES
        )
        .select_related("customer")
        .first()
    )
    if action is None:
        return
    started = action.last_attempt_at or action.created_at
    if started > now - IN_FLIGHT_WINDOW:
        raise BillingActionNotAllowed(
            ERR_IN_FLIGHT.format(target=_target_label(target), ago=timesince(started, now))
        )
    earlier = SPECS[action.kind]
    try:
        earlier.refresh(target, action)
    except GatewayError as exc:
        # Unsettled, the open action keeps blocking: nothing is sent on a guess.
        raise BillingActionNotAllowed(
            ERR_CANNOT_SETTLE.format(target=_target_label(target), error=exc.message)
        ) from exc
    with transaction.atomic():
        locked = BillingAction.objects.select_for_update().get(pk=action.pk)
        if not locked.is_open:
            return  # another request settled it meanwhile
        mirrored = earlier.model.objects.select_related("customer").get(pk=target.pk)
        seen = earlier.effect_seen(mirrored)
        locked.status = BillingAction.Status.SUCCEEDED if seen else BillingAction.Status.FAILED
        locked.error = "" if seen else ERR_NO_EFFECT.format(target=_target_label(target))
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "error", "finished_at", "updated_at"])


def _start(spec: _Spec, *, kind: str, pk: int, reason: str, acting_user, client: ClientInfo | None):
    """Step 1: under the target's row lock, the rules, the action and its audit row,
    committed. Returns (target, action)."""
    with transaction.atomic():
        target = spec.model.objects.select_for_update(of=("self",)).select_related("customer")
        target = target.get(pk=pk)
        refusal = _refusal(spec, user=acting_user, target=target, kind=kind)
        if refusal:
            raise BillingActionNotAllowed(refusal)
        now = timezone.now()
        try:
            with transaction.atomic():
                action = BillingAction.objects.create(
                    kind=kind,
                    status=BillingAction.Status.PROCESSING,
                    customer=target.customer,
                    subscription=target if spec.model is Subscription else None,
                    payment_method=target if spec.model is PaymentMethod else None,
                    target_stripe_id=target.stripe_id,
                    reason=reason,
                    requested_by=acting_user if getattr(acting_user, "pk", None) else None,
                    attempts=1,
                    last_attempt_at=now,
                )
        except IntegrityError:
            # Another request opened one on this object after we looked (the constraint).
            raise BillingActionNotAllowed(
                ERR_IN_FLIGHT.format(target=_target_label(target), ago="a moment")
            ) from None
        # Derived from our row and committed before the Stripe call (DESIGN decision 3).
        action.idempotency_key = f"billing_action:{action.pk}"
        action.save(update_fields=["idempotency_key"])
        is_subscription = spec.model is Subscription
        audit_record(
            acting_user=acting_user,
            action=AUDIT_ACTIONS[kind],
            target=target,
            amount=target.amount if is_subscription else None,
            currency=target.currency if is_subscription else "",
            reason=reason,
            client=client,
            details={
                "billing_action_id": action.pk,
                "idempotency_key": action.idempotency_key,
                "stripe_id": target.stripe_id,
                "customer": target.customer.stripe_id if target.customer else None,
                "status": target.status if is_subscription else None,
            },
        )
    return target, action


def _finish(action: BillingAction, *, status: str, error: str = "") -> BillingAction:
    with transaction.atomic():
        locked = BillingAction.objects.select_for_update().get(pk=action.pk)
        if locked.is_open:
            locked.status = status
            locked.error = error
            if status not in BillingAction.OPEN_STATUSES:
                locked.finished_at = timezone.now()
            locked.save(update_fields=["status", "error", "finished_at", "updated_at"])
    return locked


def _message(kind: str, target) -> str:
    when = ""
    if isinstance(target, Subscription):
        when = format_datetime(target.cancel_at or target.current_period_end)
    customer = target.customer if target.customer_id else None
    return MESSAGES[kind].format(
        target=_target_label(target), when=when, customer=customer or "their customer"
    )


def billing_action_run(
    *, kind: str, target, reason: str = "", acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """Make the change `kind` (a BillingAction.Kind) to `target` (a Subscription or a
    PaymentMethod) at Stripe, exactly once whatever the clicks, crashes and timeouts (see
    the module docstring), and mirror Stripe's answer.

    Raises BillingActionNotAllowed (no permission, no reason where one is needed, the rules,
    an earlier change still in flight). Stripe refusing, or not answering, is not an
    exception: the result says so and the action records it."""
    spec = SPECS[kind]
    refusal = _permission_refusal(spec, acting_user)
    if refusal:
        raise BillingActionNotAllowed(refusal)
    reason = (reason or "").strip()
    if kind in REASON_REQUIRED and not reason:
        raise BillingActionNotAllowed(ERR_REASON_REQUIRED)
    _settle_open(spec, target, now=timezone.now())
    target, action = _start(
        spec, kind=kind, pk=target.pk, reason=reason, acting_user=acting_user, client=client
    )

    # Outside any transaction: no row lock is held while Stripe thinks.
    try:
        answer = spec.send(target, action)
    except (GatewayTimeout, GatewayServerError, IdempotencyConflict) as exc:
        action = _finish(action, status=BillingAction.Status.UNKNOWN, error=exc.message)
        return BillingActionResult(action, False, MSG_UNKNOWN.format(target=_target_label(target)))
    except GatewayError as exc:
        action = _finish(action, status=BillingAction.Status.FAILED, error=exc.message)
        return BillingActionResult(action, False, MSG_STRIPE_REFUSED.format(error=exc.message))
    with transaction.atomic():
        spec.mirror(answer)
        action = _finish(action, status=BillingAction.Status.SUCCEEDED)
    mirrored = spec.model.objects.select_related("customer").get(pk=target.pk)
    if kind == Kind.DETACH:
        mirrored.customer = target.customer  # for the message: it has none any more
    return BillingActionResult(action, True, _message(kind, mirrored))


def subscription_cancel_at_period_end(
    *, subscription: Subscription, reason: str, acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """No more renewals: the subscription ends with its current period. See
    billing_action_run for what it raises and returns."""
    return billing_action_run(
        kind=Kind.CANCEL_AT_PERIOD_END,
        target=subscription,
        reason=reason,
        acting_user=acting_user,
        client=client,
    )


def subscription_resume(
    *, subscription: Subscription, reason: str = "", acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """Undo a cancellation at period end: the subscription renews again."""
    return billing_action_run(
        kind=Kind.RESUME, target=subscription, reason=reason, acting_user=acting_user, client=client
    )


def subscription_cancel_now(
    *, subscription: Subscription, reason: str, acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """End the subscription at once (Stripe cannot undo it)."""
    return billing_action_run(
        kind=Kind.CANCEL_NOW,
        target=subscription,
        reason=reason,
        acting_user=acting_user,
        client=client,
    )


def payment_method_set_default(
    *, method: PaymentMethod, reason: str = "", acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """Make `method` its customer's default for invoices and subscription renewals."""
    return billing_action_run(
        kind=Kind.SET_DEFAULT, target=method, reason=reason, acting_user=acting_user, client=client
    )


def payment_method_detach(
    *, method: PaymentMethod, reason: str, acting_user, client: ClientInfo | None = None
) -> BillingActionResult:
    """Detach `method` from its customer: it can no longer be charged."""
    return billing_action_run(
        kind=Kind.DETACH, target=method, reason=reason, acting_user=acting_user, client=client
    )
