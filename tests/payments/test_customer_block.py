"""Blocking a customer: who may, what it records, what it stops (retries), and the "Blocked"
badge wherever the customer appears."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway
from payments.models import Customer, FraudAlert, PaymentRetry
from payments.services.customer_block import (
    AUDIT_BLOCK,
    AUDIT_UNBLOCK,
    ERR_NOT_ALLOWED,
    ERR_NOTE_REQUIRED,
    ERR_REASON_REQUIRED,
    CustomerBlockError,
    customer_block,
    customer_unblock,
)
from payments.services.payment_retry import (
    ERROR_CUSTOMER_BLOCKED,
    PaymentRetryNotAllowed,
    payment_retry,
)
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    PaymentFactory,
    PaymentMethodFactory,
    RefundRequestFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def blocker(db):
    user = UserFactory(username="blocker")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "block_customer",
                "view_customer",
                "view_fraudalert",
                "review_fraudalert",
                "retry_payment",
                "view_payment",
            ]
        )
    )
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def auditor(db):
    call_command("loaddata", "groups", verbosity=0)
    user = UserFactory(username="auditor")
    user.groups.add(Group.objects.get(name="Read-only auditors"))
    return user


def blocked_customer(by, **fields):
    customer = CustomerFactory(**fields)
    customer_block(customer=customer, reason="stolen cards, alert #1", acting_user=by)
    customer.refresh_from_db()
    return customer


# --- the service ---------------------------------------------------------------------------


def test_block_and_unblock_need_permission_and_words(blocker):
    customer = CustomerFactory()
    with pytest.raises(CustomerBlockError, match=ERR_NOT_ALLOWED):
        customer_block(customer=customer, reason="x", acting_user=UserFactory())
    with pytest.raises(CustomerBlockError, match=ERR_REASON_REQUIRED):
        customer_block(customer=customer, reason="  ", acting_user=blocker)
    customer_block(customer=customer, reason="fraud", acting_user=blocker)
    with pytest.raises(CustomerBlockError, match=ERR_NOTE_REQUIRED):
        customer_unblock(customer=customer, note="", acting_user=blocker)
    with pytest.raises(CustomerBlockError, match=ERR_NOT_ALLOWED):
        customer_unblock(customer=customer, note="x", acting_user=UserFactory())
    customer.refresh_from_db()
    assert customer.is_blocked


def test_block_history_is_in_the_audit_trail(blocker):
    customer = CustomerFactory()
    first = customer_block(customer=customer, reason="stolen card", acting_user=blocker)
    assert first.changed and first.customer.blocked_by == blocker
    again = customer_block(customer=customer, reason="again", acting_user=blocker)
    assert not again.changed and "already blocked by blocker" in again.message
    lifted = customer_unblock(customer=customer, note="bank says it was him", acting_user=blocker)
    assert lifted.changed
    customer.refresh_from_db()
    assert (customer.blocked_at, customer.blocked_by, customer.block_reason) == (None, None, "")
    assert not customer_unblock(customer=customer, note="x", acting_user=blocker).changed
    rows = list(AdminAction.objects.order_by("pk"))
    assert [(r.action, r.reason) for r in rows] == [
        (AUDIT_BLOCK, "stolen card"),
        (AUDIT_UNBLOCK, "bank says it was him"),
    ]
    assert rows[1].details["block_reason"] == "stolen card"
    assert rows[1].details["blocked_by"] == "blocker"


# --- effects: retries ------------------------------------------------------------------------


def test_a_blocked_customers_payment_is_not_retried(blocker, monkeypatch):
    def no_stripe(**kwargs):
        raise AssertionError("Stripe must not be called")

    monkeypatch.setattr(gateway, "stripe_payment_intent_confirm", no_stripe)
    customer = blocked_customer(blocker)
    payment = PaymentFactory(failed=True, customer=customer)
    PaymentMethodFactory(customer=customer, is_default=True)
    with pytest.raises(PaymentRetryNotAllowed) as exc:
        payment_retry(payment=payment, reason="try again", acting_user=blocker)
    assert exc.value.message == ERROR_CUSTOMER_BLOCKED.format(reason="stolen cards, alert #1")
    assert not PaymentRetry.objects.exists()


def test_the_payment_page_disables_retry_and_says_why(client, blocker):
    customer = blocked_customer(blocker)
    payment = PaymentFactory(failed=True, customer=customer)
    client.force_login(blocker)
    body = client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content
    body = body.decode()
    assert 'data-testid="retry-disabled"' in body
    # The service's own refusal, shown before the click.
    assert ERROR_CUSTOMER_BLOCKED.format(reason="stolen cards, alert #1") in body
    assert reverse("admin:payments_payment_retry", args=[payment.pk]) not in body
    assert 'data-testid="payment-customer-blocked"' in body


def test_the_retry_button_stays_for_customers_not_blocked(client, blocker):
    payment = PaymentFactory(failed=True)
    client.force_login(blocker)
    body = client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content
    assert reverse("admin:payments_payment_retry", args=[payment.pk]).encode() in body
    assert b"customer-blocked" not in body


# --- the admin -------------------------------------------------------------------------------


def block_url(customer, step="block"):
    return reverse(f"admin:payments_customer_{step}", args=[customer.pk])


def test_block_and_unblock_from_the_customer_page(client, blocker):
    customer = CustomerFactory()
    page = reverse("admin:payments_customer_change", args=[customer.pk])
    client.force_login(blocker)
    assert "Block customer" in client.get(page).content.decode()
    response = client.post(block_url(customer), {"reason": "chargebacks on three cards"})
    assert response.status_code == 302 and response.url == page
    customer.refresh_from_db()
    assert customer.block_reason == "chargebacks on three cards"
    body = client.get(page).content.decode()
    assert "Unblock customer" in body and 'data-testid="customer-blocked"' in body
    client.post(block_url(customer, "unblock"), {"note": ""})
    customer.refresh_from_db()
    assert customer.is_blocked  # a note is required
    client.post(block_url(customer, "unblock"), {"note": "cleared by the bank"})
    customer.refresh_from_db()
    assert not customer.is_blocked


def test_block_from_a_fraud_alert_goes_back_to_it_and_names_it(client, blocker):
    payment = PaymentFactory()
    alert = FraudAlert.objects.create(
        payment=payment, source=FraudAlert.Source.STAFF, created=timezone.now()
    )
    client.force_login(blocker)
    response = client.post(
        block_url(payment.customer), {"reason": "fraud", "fraud_alert": alert.pk}
    )
    assert response.url == reverse("admin:payments_fraudalert_change", args=[alert.pk])
    assert AdminAction.objects.get(action=AUDIT_BLOCK).details == {"fraud_alert_id": alert.pk}
    body = client.get(response.url).content.decode()
    assert 'data-testid="customer-blocked"' in body and "Unblock customer" in body


@pytest.mark.parametrize("step", ["block", "unblock"])
def test_block_steps_are_post_only_and_need_the_permission(client, blocker, auditor, step):
    customer = CustomerFactory()
    client.force_login(blocker)
    assert client.get(block_url(customer, step)).status_code == 405
    client.force_login(auditor)
    response = client.post(block_url(customer, step), {"reason": "x", "note": "x"})
    assert response.status_code == 403
    customer.refresh_from_db()
    assert not customer.is_blocked and not AdminAction.objects.exists()
    page = client.get(reverse("admin:payments_customer_change", args=[customer.pk]))
    assert page.status_code == 200 and b"Block customer" not in page.content


# --- the badge ---------------------------------------------------------------------------------


BADGE = 'data-testid="customer-blocked"'


def test_the_blocked_badge_shows_wherever_the_customer_appears(admin_client, blocker):
    customer = blocked_customer(blocker, email="mallory@example.com")
    payment = PaymentFactory(customer=customer)
    dispute = DisputeFactory(payment=payment)
    alert = FraudAlert.objects.create(
        payment=payment, source=FraudAlert.Source.STAFF, created=timezone.now()
    )
    refund_request = RefundRequestFactory(payment=payment, amount=100)
    pages = {
        "payments": reverse("admin:payments_payment_changelist"),
        "payment": reverse("admin:payments_payment_change", args=[payment.pk]),
        "customers": reverse("admin:payments_customer_changelist"),
        "customer": reverse("admin:payments_customer_change", args=[customer.pk]),
        "disputes": reverse("admin:payments_dispute_changelist"),
        "dispute": reverse("admin:payments_dispute_change", args=[dispute.pk]),
        "fraud alerts": reverse("admin:payments_fraudalert_changelist"),
        "fraud alert": reverse("admin:payments_fraudalert_change", args=[alert.pk]),
        "refund queue": reverse("admin:refunds_refundrequest_changelist"),
        "refund request": reverse("admin:refunds_refundrequest_change", args=[refund_request.pk]),
        "approval page": reverse(
            "admin:refunds_refundrequest_approve_confirm", args=[refund_request.pk]
        ),
        "refund form": reverse("admin:refunds_payment_refund", args=[payment.pk]),
    }
    for name, url in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, name
        assert BADGE in response.content.decode(), name


def test_no_badge_for_customers_not_blocked(admin_client):
    PaymentFactory()
    CustomerFactory()
    for url in ("admin:payments_payment_changelist", "admin:payments_customer_changelist"):
        assert BADGE not in admin_client.get(reverse(url)).content.decode()


def test_customer_row_keeps_block_columns_through_a_sync_upsert(blocker):
    """The sync writes Stripe's fields only: a block survives the customer's next sync."""
    from payments import sync
    from payments.gateway import StripeCustomer

    customer = blocked_customer(blocker, stripe_id="cus_sync_block")
    sync.upsert_customers(
        [
            StripeCustomer(
                id="cus_sync_block",
                email="new@example.com",
                name="New",
                livemode=False,
                created=timezone.now(),
            )
        ]
    )
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.email == "new@example.com" and customer.is_blocked
