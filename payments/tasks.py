"""django-q2 task entry points for payments. Stable dotted paths (queued tasks and schedules
store them); the work lives in the modules they call."""

from __future__ import annotations


def webhook_event_process_task(event_pk: int) -> str | None:
    """Process one stored Stripe webhook event (see payments.webhooks)."""
    from payments.webhooks import webhook_event_process

    return webhook_event_process(event_pk=event_pk)


def webhook_events_requeue_stale() -> dict:
    """Safety net for a schedule (e.g. every 10 minutes): enqueue events left `received`
    or `processing` by a lost task or a dead worker, and `retrying` events whose time has
    come (their own ONCE schedule normally does that)."""
    from payments.webhooks import webhook_events_requeue_stale as requeue

    return requeue()


def payout_process_task(payout_id: int) -> str:
    """Send one approved Connect payout through Stripe (queued on approval); its status
    afterwards."""
    from payments.services.payouts import payout_process

    return payout_process(payout_id=payout_id).status


def customer_adjustment_apply_task(adjustment_id: int) -> str:
    """Apply one approved money adjustment to the customer's Stripe balance (queued on
    approval); its status afterwards."""
    from payments.services.customer_adjustments import customer_adjustment_apply

    return customer_adjustment_apply(adjustment_id=adjustment_id).status


def customer_adjustments_apply_approved_task() -> dict:
    """Safety net for a schedule: apply approved money adjustments whose task was lost and
    resume those left with an unknown Stripe outcome."""
    from payments.services.customer_adjustments import customer_adjustments_apply_approved

    return customer_adjustments_apply_approved()
