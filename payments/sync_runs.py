"""Stripe sync runs: gateway pages -> payments.sync upserts, one object type at a time.

Per object type a watermark (SyncState, payments/models/sync_run.py): a run lists objects
created after watermark - STRIPE_SYNC_OVERLAP_SECONDS, 100 per page, upserts each page in
one bulk statement set, and moves the watermark only when the pass is complete. After every
page it records the page's cursor, so a run that fails mid-way (429/5xx past our retries, a
crash) resumes after the last committed page: no gap, and no duplicate (rows are unique by
Stripe id and compared before writing). `full=True` re-reads everything; `since=date`
re-reads objects created since that day. A lease (JobLock) keeps two runs from overlapping,
and every run leaves a SyncRun row.

One object type failing (Stripe unreachable for it, a 400 on its list call) does not stop the
others: each pass is attempted, its outcome recorded in SyncRun.outcomes, and the run is
marked failed at the end if any pass failed. Passes run parents first; a child pass whose
parent pass failed still runs but keeps its watermark, so the next run reads its window again
and links the parents it could not see. A lost lease stops the run at once: without it
another run may be writing the same watermarks.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from payments import gateway, sync
from payments.coupon_mirror import upsert_promotion_codes
from payments.exceptions import GatewayError, InvalidRequest, ResourceMissing
from payments.models import JobLock, SyncObjectType, SyncRun, SyncState, sync_run_lock_ttl

logger = logging.getLogger(__name__)

LOCK_NAME = "stripe-sync"
MSG_LOCKED = "Another Stripe sync is running; this run was skipped."
# Refused objects listed per object type in SyncRun.outcomes (the count is always exact).
MAX_INVALID_RECORDED = 100
MSG_ABANDONED = "Abandoned: the process running it stopped before it finished."
MSG_LOCK_LOST = "The sync lost its lock (another run took over after it expired)."
# At most this many missing parents (e.g. the payment of a refund older than our window)
# are fetched one by one per page; more means the window is wrong: run with --full.
MAX_PARENT_FETCHES_PER_PAGE = 100
# The event that names a transfer reversed after the sync's window (see
# _Run.sweep_transfer_reversals).
TRANSFER_REVERSED_EVENT = "transfer.reversed"

ProgressCallback = Callable[[str, int, int], None]  # (object type, objects so far, pages)

# A pass whose parent pass failed in the same run completes but keeps its watermark: payment
# intents read while customers could not be would stay unlinked from their customer.
PARENT_TYPES = {
    SyncObjectType.PAYMENT_INTENT: (SyncObjectType.CUSTOMER,),
    SyncObjectType.REFUND: (SyncObjectType.PAYMENT_INTENT,),
    SyncObjectType.DISPUTE: (SyncObjectType.PAYMENT_INTENT,),
    SyncObjectType.SUBSCRIPTION: (SyncObjectType.CUSTOMER,),
}


class SyncLockLost(Exception):
    pass


@dataclass
class SyncReport:
    run_id: int
    status: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per object type: {"status": "succeeded" | "failed", "error": "..."} (SyncRun.outcomes).
    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)
    api_calls: int = 0
    api_retries: int = 0
    pages: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def objects_changed(self) -> int:
        return sum(c["created"] + c["updated"] for c in self.counts.values())

    def as_dict(self) -> dict:
        return {
            "run": self.run_id,
            "status": self.status,
            "counts": self.counts,
            "outcomes": self.outcomes,
            "objects_changed": self.objects_changed,
            "api_calls": self.api_calls,
            "api_retries": self.api_retries,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }

    def summary(self) -> str:
        parts = []
        for object_type, c in self.counts.items():
            parts.append(
                f"{object_type}: +{c['created']} ~{c['updated']} ={c['unchanged']}"
                + (f" skipped {c['skipped']}" if c.get("skipped") else "")
            )
        text = (
            f"Stripe sync #{self.run_id} {self.status} in {self.seconds:.1f}s, "
            f"{self.api_calls} API calls ({self.api_retries} retries), {self.pages} pages; "
            + ("; ".join(parts) or "nothing to do")
        )
        if self.error:
            text += f". Error: {self.error}"
        return text


class _Run:
    def __init__(
        self,
        *,
        run: SyncRun,
        token: str,
        full: bool,
        since: date | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.run = run
        self.token = token
        self.full = full
        self.since = since
        self.progress = progress
        self.results: dict[str, sync.UpsertResult] = {
            t.value: sync.UpsertResult() for t in SyncObjectType
        }
        self.outcomes: dict[str, dict[str, str]] = {}
        self.pages = 0
        self.transfers_seen: set[str] = set()
        self.subscriptions_seen: set[str] = set()
        self.client = gateway.StripeClient.from_settings()
        self.overlap = timedelta(seconds=int(settings.STRIPE_SYNC_OVERLAP_SECONDS))

    # -- bookkeeping -----------------------------------------------------------------------

    def _renew(self) -> None:
        if not JobLock.objects.renew(LOCK_NAME, self.token, ttl=sync_run_lock_ttl()):
            raise SyncLockLost(MSG_LOCK_LOST)

    def _page_done(self, object_type: str, state: SyncState, page, floor, high) -> None:
        self.pages += 1
        state.cursor = page.last_id
        state.pass_floor = floor
        state.pass_high_water = high
        state.save(update_fields=["cursor", "pass_floor", "pass_high_water", "updated_at"])
        self._renew()
        if self.progress:
            r = self.results[object_type]
            self.progress(object_type, r.created + r.updated + r.unchanged + r.skipped, self.pages)

    def _send_signals(self, state: SyncState) -> bool:
        # Backfills re-read history: receipts for last year's payments would be spam.
        return not self.full and state.watermark is not None

    # -- one object type -------------------------------------------------------------------

    def sync_type(self, object_type: str, lister, upsert, *, hold_watermark: bool = False) -> None:
        """One pass over `object_type`. `hold_watermark`: complete the pass but leave the
        watermark where it was, so that the next run reads this window again (used when a
        parent pass failed: rows upserted without their parent get linked on the re-read)."""
        state, _ = SyncState.objects.get_or_create(object_type=object_type)
        send_signals = self._send_signals(state)
        if self.full:
            floor, cursor, high = None, None, None
        elif self.since is not None:
            floor = datetime.combine(self.since, datetime.min.time(), tzinfo=UTC) - timedelta(
                seconds=1
            )
            cursor, high = None, None
        elif state.cursor:
            floor, cursor, high = state.pass_floor, state.cursor, state.pass_high_water
        else:
            floor = state.watermark - self.overlap if state.watermark else None
            cursor, high = None, None
        pages = None
        while True:
            try:
                if pages is None:
                    pages = iter(
                        lister(created_gt=floor, starting_after=cursor, client=self.client)
                    )
                page = next(pages)
            except StopIteration:
                break
            except InvalidRequest as exc:
                stale_cursor = isinstance(exc, ResourceMissing) or exc.param == "starting_after"
                if not (cursor and stale_cursor):
                    raise
                # The object we resume after is gone at Stripe: restart this pass from the
                # same floor (pages already upserted come back unchanged).
                cursor, pages = None, None
                continue
            upsert(page.items, send_signals)
            for item in page.items:
                if high is None or item.created > high:
                    high = item.created
            self._page_done(object_type, state, page, floor, high)
        if (
            not hold_watermark
            and high is not None
            and (state.watermark is None or high > state.watermark)
        ):
            state.watermark = high
        state.cursor = ""
        state.pass_floor = None
        state.pass_high_water = None
        state.save()

    # -- the upserts per type --------------------------------------------------------------

    def upsert_customers(self, items, send_signals) -> None:
        result = sync.upsert_customers(items)
        self.results[SyncObjectType.CUSTOMER] += result
        # Stripe lists payment methods per customer only (no created filter): new customers'
        # methods come here; later ones through webhooks and payment intent pages.
        methods = []
        for customer in items:
            if customer.deleted or customer.id in result.invalid:
                continue
            try:
                methods.extend(
                    gateway.stripe_payment_method_list_for_customer(
                        customer_id=customer.id, client=self.client
                    )
                )
            except ResourceMissing:
                logger.info("Stripe sync: customer %s was deleted meanwhile", customer.id)
        self.results[SyncObjectType.PAYMENT_METHOD] += sync.upsert_payment_methods(methods)
        # Defaults need the methods in place: apply them again now that they are.
        sync.apply_default_payment_methods(items)

    def upsert_payment_intents(self, items, send_signals) -> None:
        self.results[SyncObjectType.PAYMENT_INTENT] += sync.upsert_payment_intents(
            items, send_signals=send_signals
        )

    def _fetch_missing_payments(self, missing: set[str]) -> None:
        intents = []
        for pi_id in sorted(i for i in missing if i.startswith("pi_"))[
            :MAX_PARENT_FETCHES_PER_PAGE
        ]:
            try:
                intents.append(
                    gateway.stripe_payment_intent_retrieve(
                        payment_intent_id=pi_id, client=self.client
                    )
                )
            except ResourceMissing:
                logger.warning("Stripe sync: payment intent %s is gone", pi_id)
        if intents:
            sync.upsert_payment_intents(intents, send_signals=False)

    def upsert_refunds(self, items, send_signals) -> None:
        self._upsert_children(sync.upsert_refunds, items, SyncObjectType.REFUND)

    def upsert_disputes(self, items, send_signals) -> None:
        self._upsert_children(sync.upsert_disputes, items, SyncObjectType.DISPUTE)

    def upsert_transfers(self, items, send_signals) -> None:
        # Transfers need no parent of ours: one unknown to us is mirrored unlinked.
        self.results[SyncObjectType.TRANSFER] += sync.upsert_transfers(items)
        self.transfers_seen.update(item.id for item in items)

    def upsert_promotion_codes(self, items, send_signals) -> None:
        self.results[SyncObjectType.PROMOTION_CODE] += upsert_promotion_codes(items, snapshot=True)

    def upsert_subscriptions(self, items, send_signals) -> None:
        """Subscriptions of customers older than our window are skipped by the upsert:
        mirror those customers, then upsert the skipped subscriptions again."""
        result = sync.upsert_subscriptions(items)
        if result.missing_parents:
            customers = []
            for customer_id in sorted(result.missing_parents)[:MAX_PARENT_FETCHES_PER_PAGE]:
                try:
                    customer = gateway.stripe_customer_retrieve(
                        customer_id=customer_id, client=self.client
                    )
                    customers.append(customer)
                except ResourceMissing:
                    logger.warning("Stripe sync: customer %s is gone", customer_id)
            if customers:
                sync.upsert_customers(customers)
            retried = sync.upsert_subscriptions(
                [i for i in items if i.customer_id in result.missing_parents]
            )
            result.skipped -= retried.created + retried.updated + retried.unchanged
            result.created += retried.created
            result.updated += retried.updated
            result.unchanged += retried.unchanged
            result.missing_parents = retried.missing_parents
            result.invalid.update(retried.invalid)
        self.results[SyncObjectType.SUBSCRIPTION] += result
        self.subscriptions_seen.update(item.id for item in items)

    def sweep_subscription_changes(self, floor: datetime) -> None:
        """Stripe lists subscriptions by their creation, so a change to one created before
        the window (canceled, renewed, past due) never shows in the pass. Its events do
        (gateway.stripe_subscription_ids_changed; Stripe keeps them 30 days: a sync idle for
        longer needs --full): re-read each subscription they name that the pass did not
        already read, and land it like a page. A few list calls plus one call per changed
        subscription."""
        ids = gateway.stripe_subscription_ids_changed(created_gt=floor, client=self.client)
        subscriptions = []
        for subscription_id in sorted(set(ids) - self.subscriptions_seen):
            try:
                subscriptions.append(
                    gateway.stripe_subscription_retrieve(
                        subscription_id=subscription_id, client=self.client
                    )
                )
            except ResourceMissing:
                logger.warning("Stripe sync: subscription %s is gone", subscription_id)
        if subscriptions:
            self.upsert_subscriptions(subscriptions, False)

    def _sweep_floor(self, object_type: str) -> datetime | None:
        """Where a sweep of changes to older objects starts: this run's window (None: no
        sweep, the pass reads every object in its current state anyway)."""
        if self.full:
            return None
        if self.since is not None:
            return datetime.combine(self.since, datetime.min.time(), tzinfo=UTC)
        state = SyncState.objects.filter(object_type=object_type).first()
        if state is None or state.watermark is None:
            return None
        return state.watermark - self.overlap

    def sweep_transfer_reversals(self, floor: datetime) -> None:
        """Stripe lists transfers by their creation, so a reversal of a transfer made before
        the window never shows in the pass. Its `transfer.reversed` event does (Stripe keeps
        events 30 days: a sync idle for longer needs --full): re-read each such transfer the
        pass did not already read, and land it like a page. One list call per 100 events
        plus one call per reversed transfer (reversals are rare)."""
        ids = gateway.stripe_event_object_ids(
            event_type=TRANSFER_REVERSED_EVENT, created_gt=floor, client=self.client
        )
        transfers = []
        for transfer_id in sorted(set(ids) - self.transfers_seen):
            try:
                transfers.append(
                    gateway.stripe_transfer_retrieve(transfer_id=transfer_id, client=self.client)
                )
            except ResourceMissing:
                logger.warning("Stripe sync: transfer %s is gone", transfer_id)
        if transfers:
            self.upsert_transfers(transfers, False)

    def _upsert_children(self, upsert, items, object_type) -> None:
        """Refunds and disputes: those of payments older than our window are skipped by the
        upsert; mirror those payments, then upsert the skipped children again."""
        result = upsert(items)
        if result.missing_parents:
            self._fetch_missing_payments(result.missing_parents)
            retried = upsert(
                [i for i in items if (i.payment_intent_id or i.charge_id) in result.missing_parents]
            )
            result.skipped -= retried.created + retried.updated + retried.unchanged
            result.created += retried.created
            result.updated += retried.updated
            result.unchanged += retried.unchanged
            result.missing_parents = retried.missing_parents
            result.invalid.update(retried.invalid)  # refused against their payment
        self.results[object_type] += result

    def passes(self):
        """(object type, lister, upsert) in the order they run: parents first. The listers
        are looked up now, not at import, so that tests can stand in for the gateway."""
        return [
            (SyncObjectType.CUSTOMER, gateway.stripe_customer_list_pages, self.upsert_customers),
            (
                SyncObjectType.PAYMENT_INTENT,
                gateway.stripe_payment_intent_list_pages,
                self.upsert_payment_intents,
            ),
            (SyncObjectType.REFUND, gateway.stripe_refund_list_pages, self.upsert_refunds),
            (SyncObjectType.DISPUTE, gateway.stripe_dispute_list_pages, self.upsert_disputes),
            (SyncObjectType.TRANSFER, gateway.stripe_transfer_list_pages, self.upsert_transfers),
            # Every code each run (the lister ignores the watermark: codes change after
            # they are made, and there are few).
            (
                SyncObjectType.PROMOTION_CODE,
                gateway.stripe_promotion_code_list_pages,
                self.upsert_promotion_codes,
            ),
            (
                SyncObjectType.SUBSCRIPTION,
                gateway.stripe_subscription_list_pages,
                self.upsert_subscriptions,
            ),
        ]

    def _sweeps(self):
        """After its pass, an object type whose objects change after their creation reads
        the events that name changed ones older than the window."""
        return {
            SyncObjectType.TRANSFER: self.sweep_transfer_reversals,
            SyncObjectType.SUBSCRIPTION: self.sweep_subscription_changes,
        }

    def execute(self) -> None:
        """Attempt every pass; a GatewayError fails that pass only. A lost lease and any
        other exception (a bug) propagate and end the run."""
        for object_type, lister, upsert in self.passes():
            parent_failed = any(
                self.outcomes.get(parent, {}).get("status") == SyncRun.Status.FAILED
                for parent in PARENT_TYPES.get(object_type, ())
            )
            try:
                sweep = self._sweeps().get(object_type)
                sweep_floor = self._sweep_floor(object_type) if sweep else None
                self.sync_type(object_type, lister, upsert, hold_watermark=parent_failed)
                if sweep_floor is not None:
                    sweep(sweep_floor)
            except GatewayError as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("Stripe sync #%s: %s failed: %s", self.run.pk, object_type, error)
                self._record_outcome(object_type, SyncRun.Status.FAILED, error)
            except SyncLockLost as exc:
                self._record_outcome(
                    object_type, SyncRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
                )
                raise
            else:
                self._record_outcome(object_type, SyncRun.Status.SUCCEEDED, "")

    def _record_outcome(self, object_type: str, status: str, error: str) -> None:
        outcome: dict = {"status": str(status), "error": error}
        invalid = self.results[object_type].invalid
        if invalid:
            # Objects refused at the boundary (payments/validation.py): id -> why, so staff
            # can find them at Stripe. Capped: a run that refuses thousands says so.
            shown = dict(sorted(invalid.items())[:MAX_INVALID_RECORDED])
            outcome["invalid"] = shown
            outcome["invalid_count"] = len(invalid)
        self.outcomes[object_type] = outcome
        if object_type == SyncObjectType.CUSTOMER:
            # Payment methods are read per customer, inside the customers' pass.
            self._record_outcome(SyncObjectType.PAYMENT_METHOD, status, error)

    def failed(self) -> bool:
        return any(o["status"] == SyncRun.Status.FAILED for o in self.outcomes.values())

    def error(self) -> str:
        """Every failed pass's error once, with the types it hit (Stripe unreachable fails
        every pass with the same message: one line, not four)."""
        types_by_error: dict[str, list[str]] = {}
        for object_type, outcome in self.outcomes.items():
            if outcome["status"] == SyncRun.Status.FAILED:
                types_by_error.setdefault(outcome["error"], []).append(object_type)
        return "; ".join(f"{error} [{', '.join(types)}]" for error, types in types_by_error.items())

    def counts(self) -> dict[str, dict[str, int]]:
        return {key: result.as_dict() for key, result in self.results.items()}


def stripe_sync(
    *,
    full: bool = False,
    since: date | None = None,
    trigger: str = SyncRun.Trigger.COMMAND,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Run the Stripe sync once and record it; returns the report (also on failure, with
    status "failed" and the error: callers decide how loud to be). A run that finds another
    one holding the lock is recorded as "skipped" and does nothing."""
    if full and since is not None:
        raise ValueError("full and since are exclusive")
    mode = SyncRun.Mode.FULL if full else SyncRun.Mode.SINCE if since else SyncRun.Mode.INCREMENTAL
    run = SyncRun.objects.create(mode=mode, trigger=trigger, since=since)
    started = time.monotonic()
    token = JobLock.objects.acquire(LOCK_NAME, ttl=sync_run_lock_ttl())
    if token is None:
        run.status = SyncRun.Status.SKIPPED
        run.error = MSG_LOCKED
        run.finished_at = timezone.now()
        run.duration_ms = int((time.monotonic() - started) * 1000)
        run.save()
        return SyncReport(run_id=run.pk, status=run.status, error=MSG_LOCKED)

    # We hold the lock, so any other run still marked running died without finishing.
    SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exclude(pk=run.pk).update(
        status=SyncRun.Status.FAILED, error=MSG_ABANDONED, finished_at=timezone.now()
    )
    job = _Run(run=run, token=token, full=full, since=since, progress=progress)
    with gateway.count_api_calls() as calls:
        try:
            job.execute()
            error = job.error()
        except SyncLockLost:
            # Recorded as the outcome of the pass it stopped; later passes were not attempted.
            error = job.error()
            logger.warning("Stripe sync #%s stopped: %s", run.pk, error)
        except Exception as exc:  # recorded, then re-raised: a bug must not look like a run
            run.status = SyncRun.Status.FAILED
            run.error = "".join(traceback.format_exception_only(exc)).strip()
            _finish(run, job, calls, started)
            JobLock.objects.release(LOCK_NAME, token)
            raise
    status = SyncRun.Status.FAILED if job.failed() else SyncRun.Status.SUCCEEDED
    if status == SyncRun.Status.FAILED:
        logger.warning("Stripe sync #%s failed: %s", run.pk, error)
    run.status = status
    run.error = error
    _finish(run, job, calls, started)
    JobLock.objects.release(LOCK_NAME, token)
    return SyncReport(
        run_id=run.pk,
        status=status,
        counts=job.counts(),
        outcomes=job.outcomes,
        api_calls=calls.calls,
        api_retries=calls.retries,
        pages=job.pages,
        seconds=time.monotonic() - started,
        error=error,
    )


def _finish(run: SyncRun, job: _Run, calls: gateway.CallCounter, started: float) -> None:
    run.counts = job.counts()
    run.outcomes = job.outcomes
    run.objects_changed = sum(c["created"] + c["updated"] for c in run.counts.values())
    run.api_calls = calls.calls
    run.api_retries = calls.retries
    run.pages = job.pages
    run.finished_at = timezone.now()
    run.duration_ms = int((time.monotonic() - started) * 1000)
    run.save()
