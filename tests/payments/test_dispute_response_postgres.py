"""Dispute responses under real row locks: many staff confirming "Submit evidence" (or
"Accept") on one dispute at the same moment make exactly one call to Stripe, and so do many
resumes of one unanswered submit. The gateway is faked at its boundary (slow, so the clicks
overlap)."""

import threading
import time

import pytest
from django.contrib.auth.models import Permission

from backoffice.models import AdminAction
from payments.models import Dispute, DisputeResponse
from payments.services.dispute_response import (
    ERROR_CLOSED,
    ERROR_IN_FLIGHT,
    ERROR_SUBMITTED,
    DisputeResponseNotAllowed,
    dispute_accept,
    dispute_evidence_submit,
)
from tests.factories import DisputeFactory, UserFactory
from tests.payments.test_dispute_response import FakeStripe
from tests.payments.test_payment_retry_postgres import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20
REFUSALS = {
    ERROR_IN_FLIGHT,
    ERROR_SUBMITTED.format(status="under review"),
    ERROR_CLOSED.format(status="lost"),
}


class SlowStripe(FakeStripe):
    """Stripe thinking for a while: the other clicks arrive meanwhile."""

    def __init__(self, dispute):
        super().__init__(dispute)
        self.lock = threading.Lock()

    def update(self, **kwargs):
        with self.lock:
            answer = super().update(**kwargs)
        time.sleep(0.2)
        return answer

    def close(self, **kwargs):
        with self.lock:
            answer = super().close(**kwargs)
        time.sleep(0.2)
        return answer


@pytest.fixture
def setup(monkeypatch):
    dispute = DisputeFactory(stripe_id="dp_race", evidence={"uncategorized_text": "ours"})
    staff = UserFactory(username="senior")
    staff.user_permissions.add(Permission.objects.get(codename="respond_dispute"))
    fake = SlowStripe(dispute).install(monkeypatch)
    return dispute, staff, fake


def check_refusals(errors):
    assert all(isinstance(e, DisputeResponseNotAllowed) for e in errors), errors
    assert {e.message for e in errors} <= REFUSALS


def test_concurrent_submits_make_one_call(setup):
    dispute, staff, fake = setup
    results, errors = run_concurrently(
        lambda: dispute_evidence_submit(dispute=dispute, acting_user=staff), THREADS
    )
    check_refusals(errors)
    assert len(results) == 1 and results[0].succeeded
    assert len(fake.updates) == 1 and fake.updates[0]["submit"] is True
    assert DisputeResponse.objects.get().status == DisputeResponse.Status.SUCCEEDED
    assert AdminAction.objects.filter(action="dispute.evidence_submit").count() == 1
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.UNDER_REVIEW


def test_concurrent_accepts_close_once(setup):
    dispute, staff, fake = setup
    results, errors = run_concurrently(
        lambda: dispute_accept(dispute=dispute, acting_user=staff), THREADS
    )
    check_refusals(errors)
    assert len(results) == 1 and len(fake.closes) == 1
    assert AdminAction.objects.filter(action="dispute.accept").count() == 1


def test_concurrent_resumes_of_an_unanswered_submit_send_its_key_once(setup):
    dispute, staff, fake = setup
    response = DisputeResponse.objects.create(
        dispute=dispute,
        kind=DisputeResponse.Kind.SUBMIT,
        status=DisputeResponse.Status.UNKNOWN,
        idempotency_key="dispute_response:unanswered",
        evidence={"uncategorized_text": "ours"},
        files_uploaded=True,
        attempts=1,
        last_attempt_at=None,  # long gone
    )
    results, errors = run_concurrently(
        lambda: dispute_evidence_submit(dispute=dispute, acting_user=staff), THREADS
    )
    check_refusals(errors)
    assert [r.response_id for r in results] == [response.pk]
    assert [u["key"] for u in fake.updates] == ["dispute_response:unanswered"]
    response.refresh_from_db()
    assert (response.status, response.attempts) == (DisputeResponse.Status.SUCCEEDED, 2)


def test_an_answer_landing_while_a_webhook_lands_the_same_dispute_waits_instead_of_deadlocking(
    setup,
):
    """A webhook's upsert locks the payment, then the dispute. Recording Stripe's answer
    takes the same locks in the same order, so the two wait for each other in turn; taken
    the other way round PostgreSQL would abort one of them as a deadlock."""
    from django.db import connection, transaction

    from payments.models import Payment

    dispute, staff, _fake = setup
    payment_locked, errors = threading.Event(), []

    def webhook_upsert():
        try:
            with transaction.atomic():
                Payment.objects.select_for_update().get(pk=dispute.payment_id)
                payment_locked.set()
                time.sleep(1.0)  # the answer comes back from Stripe meanwhile
                Dispute.objects.select_for_update().get(pk=dispute.pk)
        except Exception as exc:  # the deadlock, if any, is the finding
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=webhook_upsert)
    thread.start()
    payment_locked.wait(5)
    result = dispute_evidence_submit(dispute=dispute, acting_user=staff)
    thread.join()
    assert errors == []
    assert result.succeeded
    assert DisputeResponse.objects.get().status == DisputeResponse.Status.SUCCEEDED
