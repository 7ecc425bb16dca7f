"""The migration that gives payment retries their own table carries over the retries whose
state lived in AdminAction rows: above all, an unfinished one keeps its idempotency key, so
the next click re-sends what Stripe saw instead of charging again under a new key."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from payments.models import PaymentRetry

pytestmark = pytest.mark.django_db(transaction=True)


def _migration_before(executor):
    """The payments migration just before the one creating PaymentRetry; found by name, so
    renumbering the migrations does not break this test."""
    nodes = [key for key in executor.loader.graph.nodes if key[0] == "payments"]
    (target,) = [key for key in nodes if key[1].endswith("_payment_retry")]
    migration = executor.loader.graph.nodes[target]
    (before,) = [dep for dep in migration.dependencies if dep[0] == "payments"]
    return before


def test_legacy_retries_become_payment_retry_rows():
    executor = MigrationExecutor(connection)
    before = _migration_before(executor)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    others = [leaf for leaf in leaves if leaf[0] in ("auth", "backoffice")]
    apps = executor.loader.project_state([before, *others]).apps
    Customer = apps.get_model("payments", "Customer")
    Payment = apps.get_model("payments", "Payment")
    AdminAction = apps.get_model("backoffice", "AdminAction")
    User = apps.get_model("auth", "User")
    user = User.objects.create(username="legacy")
    customer = Customer.objects.create(stripe_id="cus_legacy", created=timezone.now())

    def payment(intent):
        return Payment.objects.create(
            stripe_payment_intent_id=intent,
            customer=customer,
            amount=7000,
            currency="usd",
            status="failed",
            created=timezone.now(),
        )

    pending, done = payment("pi_pending"), payment("pi_done")

    def legacy(target, **details):
        AdminAction.objects.create(
            actor=user,
            action="payment_retry",
            target_type="payments.payment",
            target_id=str(target.pk),
            amount=7000,
            currency="usd",
            reason="legacy",
            details={"payment_method": "pm_1", **details},
        )

    key = f"payment:{pending.pk}:retry:1"
    legacy(pending, state="superseded", idempotency_key=key)
    legacy(pending, state="pending", idempotency_key=key)
    legacy(done, state="declined", idempotency_key=f"payment:{done.pk}:retry:1", code="x")
    legacy(done, state="succeeded", idempotency_key=f"payment:{done.pk}:retry:2")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(leaves)

    rows = {r.idempotency_key: r for r in PaymentRetry.objects.all()}
    assert set(rows) == {key, f"payment:{done.pk}:retry:1", f"payment:{done.pk}:retry:2"}
    open_retry = rows[key]
    assert (open_retry.status, open_retry.stripe_payment_method_id) == ("unknown", "pm_1")
    assert (open_retry.payment_id, open_retry.requested_by_id) == (pending.pk, user.pk)
    assert open_retry.last_attempt_at is not None and open_retry.finished_at is None
    assert rows[f"payment:{done.pk}:retry:1"].status == "declined"
    assert rows[f"payment:{done.pk}:retry:1"].decline_code == "x"
    assert rows[f"payment:{done.pk}:retry:2"].status == "succeeded"
