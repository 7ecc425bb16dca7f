"""The earnings ledger under real row locks (PostgreSQL): concurrent webhooks, syncs and
approvals write each effect once, and a payment's entries still add up to its net."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import close_old_connections, connection
from django.db.models import Sum
from django.utils import timezone

from backoffice.models import AdminAction
from payments import sync
from payments.models import EarningAdjustment, EarningEntry, Payment
from payments.services.earning_adjustments import (
    AUDIT_APPROVE,
    EarningAdjustmentError,
    earning_adjustment_approve,
    earning_adjustment_request,
)
from tests.factories import InstructorFactory, UserFactory
from tests.payments.test_earnings_ledger import PI, _dispute, _intent, _refund

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(targets):
    barrier = threading.Barrier(len(targets))
    errors = []

    def worker(target):
        try:
            barrier.wait()
            target()
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_concurrent_webhooks_and_syncs_write_each_effect_once():
    now = timezone.now()
    sync.upsert_payment_intents([_intent(now)])
    refunded = _intent(now, amount_refunded=2500)
    targets = []
    for _ in range(4):
        targets += [
            lambda: sync.upsert_payment_intents([refunded]),
            lambda: sync.upsert_refunds([_refund(now)]),
            lambda: sync.upsert_disputes([_dispute(now, "lost")]),
        ]
    assert run_in_threads(targets) == []
    payment = Payment.objects.get()
    kinds = list(payment.earning_entries.values_list("kind", flat=True))
    assert kinds.count("earning") == kinds.count("refund") == kinds.count("dispute_lost") == 1
    assert payment.earning_entries.aggregate(total=Sum("amount"))["total"] == payment.net
    assert payment.net == -1820
    references = list(payment.earning_entries.values_list("reference", flat=True))
    assert len(references) == len(set(references))
    assert EarningEntry.objects.filter(reference=f"payment:{PI}:earning").count() == 1


def test_twenty_concurrent_approvals_apply_an_adjustment_once():
    requester = UserFactory()
    requester.user_permissions.add(Permission.objects.get(codename="add_earningadjustment"))
    requester = type(requester).objects.get(pk=requester.pk)
    adjustment = earning_adjustment_request(
        instructor=InstructorFactory(),
        amount=2500,
        currency="usd",
        reason="Bonus",
        acting_user=requester,
    )
    approvers = []
    for _ in range(20):
        user = UserFactory()
        user.user_permissions.add(Permission.objects.get(codename="approve_earningadjustment"))
        approvers.append(type(user).objects.get(pk=user.pk))
    refused = []

    def approve(user):
        try:
            earning_adjustment_approve(adjustment=adjustment, acting_user=user)
        except EarningAdjustmentError as exc:
            refused.append(str(exc))

    assert run_in_threads([lambda u=u: approve(u) for u in approvers]) == []
    assert EarningEntry.objects.filter(adjustment=adjustment).count() == 1
    assert AdminAction.objects.filter(action=AUDIT_APPROVE).count() == 1
    assert len(refused) == 19
    assert EarningAdjustment.objects.get().status == EarningAdjustment.Status.APPLIED
    assert timedelta(0) <= timezone.now() - EarningEntry.objects.get().available_at
