"""Payment retries under real row locks: many staff clicking "Retry" on one failed payment
at the same moment send exactly one confirm to Stripe, and so do many resumes of one
interrupted retry. The gateway is faked at its boundary (slow, so the clicks overlap)."""

import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from backoffice.models import AdminAction
from payments.models import Payment, PaymentRetry
from payments.services import payment_retry as service
from payments.services.payment_retry import (
    ERROR_IN_FLIGHT,
    ERROR_NOT_FAILED,
    PaymentRetryNotAllowed,
    payment_retry,
)
from tests.factories import PaymentFactory, PaymentMethodFactory, UserFactory
from tests.payments.test_payment_retry import intent_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20
REFUSALS = {ERROR_IN_FLIGHT, ERROR_NOT_FAILED.format(status="succeeded")}


def run_concurrently(function, times):
    """Call `function` in `times` threads released together; return (results, errors)."""
    barrier = threading.Barrier(times)
    results, errors, lock = [], [], threading.Lock()

    def runner():
        try:
            barrier.wait()
            value = function()
            with lock:
                results.append(value)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


@pytest.fixture
def setup(monkeypatch):
    payment = PaymentFactory(failed=True, amount=7000, stripe_payment_intent_id="pi_failed")
    PaymentMethodFactory(customer=payment.customer, stripe_id="pm_new", is_default=True)
    staff = UserFactory(username="finance")
    # A data migration made this permission; a transactional test's flush removed it, and
    # post_migrate only restores the models' own permissions.
    permission, _ = Permission.objects.get_or_create(
        codename="retry_payment",
        content_type=ContentType.objects.get_for_model(Payment),
        defaults={"name": "Can retry failed payments"},
    )
    staff.user_permissions.add(permission)
    confirms, lock = [], threading.Lock()

    def confirm(*, payment_intent_id, payment_method_id, idempotency_key):
        with lock:
            confirms.append(idempotency_key)
        time.sleep(0.2)  # Stripe thinking: the other clicks arrive meanwhile
        return intent_for(payment)

    monkeypatch.setattr(service.gateway, "stripe_payment_intent_confirm", confirm)
    return payment, staff, confirms


def test_concurrent_clicks_charge_once(setup):
    payment, staff, confirms = setup
    results, errors = run_concurrently(
        lambda: payment_retry(payment=payment, reason="click", acting_user=staff), THREADS
    )
    assert all(isinstance(e, PaymentRetryNotAllowed) for e in errors), errors
    assert {e.message for e in errors} <= REFUSALS
    assert len(results) == 1 and results[0].succeeded
    assert len(confirms) == 1
    assert PaymentRetry.objects.get().status == PaymentRetry.Status.SUCCEEDED
    assert AdminAction.objects.filter(action="payment_retry").count() == 1


def test_concurrent_resumes_of_an_interrupted_retry_send_its_key_once(setup):
    payment, staff, confirms = setup
    retry = PaymentRetry.objects.create(
        payment=payment,
        status=PaymentRetry.Status.UNKNOWN,
        idempotency_key="payment_retry:interrupted",
        amount=7000,
        currency="usd",
        stripe_payment_intent_id="pi_failed",
        stripe_payment_method_id="pm_new",
        attempts=1,
        last_attempt_at=None,  # long gone
    )
    results, errors = run_concurrently(
        lambda: payment_retry(payment=payment, reason="resume", acting_user=staff), THREADS
    )
    assert all(isinstance(e, PaymentRetryNotAllowed) for e in errors), errors
    assert {e.message for e in errors} <= REFUSALS
    assert [r.retry_id for r in results] == [retry.pk]
    assert confirms == ["payment_retry:interrupted"]
    retry.refresh_from_db()
    assert (retry.status, retry.attempts) == (PaymentRetry.Status.SUCCEEDED, 2)
