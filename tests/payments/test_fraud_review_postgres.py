"""Fraud review under real row locks: reviewers resolving one alert at the same moment resolve
it once (one audit row, one confirmation signal, one refund proposal); the others find it
resolved (same outcome: a no-op; another outcome: refused)."""

import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from backoffice.models import AdminAction
from payments.models import FraudAlert
from payments.services import fraud_alert as service
from payments.services.fraud_alert import FraudReviewError, fraud_alert_resolve
from refunds.models import RefundRequest
from tests.factories import PaymentFactory, UserFactory
from tests.payments.test_payment_retry_postgres import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 12


@pytest.fixture
def reviewers(db):
    permission = Permission.objects.get(codename="review_fraudalert")
    users = []
    for i in range(THREADS):
        user = UserFactory(username=f"reviewer{i}")
        user.user_permissions.add(permission)
        users.append(type(user).objects.get(pk=user.pk))
    return users


@pytest.fixture
def alert(db):
    return FraudAlert.objects.create(
        payment=PaymentFactory(amount=5000),
        source=FraudAlert.Source.EARLY_FRAUD_WARNING,
        stripe_id="issfr_race",
        created=timezone.now(),
    )


@pytest.fixture
def slow_audit(monkeypatch):
    """Hold the lock a little longer, so the other reviewers really wait on it."""
    real = service.audit_record

    def slow(**kwargs):
        time.sleep(0.1)
        return real(**kwargs)

    monkeypatch.setattr(service, "audit_record", slow)


def test_concurrent_confirmations_resolve_once_and_propose_one_refund(
    alert, reviewers, slow_audit, settings
):
    settings.FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING = True
    users = iter(reviewers)
    lock = threading.Lock()

    def confirm():
        with lock:
            user = next(users)
        return fraud_alert_resolve(
            alert=alert, outcome="confirmed", note="stolen card", acting_user=user
        )

    results, errors = run_concurrently(confirm, THREADS)
    assert errors == []
    assert sum(result.changed for result in results) == 1
    assert AdminAction.objects.filter(action="fraud_alert_confirmed").count() == 1
    assert RefundRequest.objects.filter(fraud_alert=alert).count() == 1
    alert.refresh_from_db()
    winner = next(result for result in results if result.changed)
    assert alert.reviewed_by == winner.alert.reviewed_by


def test_concurrent_opposite_outcomes_apply_one_and_refuse_the_other(alert, reviewers, slow_audit):
    outcomes = iter(["confirmed", "dismissed"] * (THREADS // 2))
    users = iter(reviewers)
    lock = threading.Lock()

    def decide():
        with lock:
            outcome, user = next(outcomes), next(users)
        return fraud_alert_resolve(alert=alert, outcome=outcome, note="checked", acting_user=user)

    results, errors = run_concurrently(decide, THREADS)
    assert sum(result.changed for result in results) == 1
    alert.refresh_from_db()
    # Everyone who chose the other outcome was refused; the rest found it done (no-op).
    assert len(errors) == THREADS // 2
    assert all(isinstance(error, FraudReviewError) for error in errors)
    assert AdminAction.objects.filter(target_id=str(alert.pk)).count() == 1
    assert alert.status in ("confirmed", "dismissed")
    connection.close()
