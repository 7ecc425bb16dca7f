"""The subscriptions list and page, the customer page's subscriptions and saved payment
methods, the payment methods list's expiry filter, the dashboard's past-due card, and the
confirmation pages of the billing actions: who sees which action, GET shows, POST acts,
403 without the permission."""

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments import card_expiry, sync
from payments.models import BillingAction, PaymentMethod, Subscription
from payments.services import billing_actions as service
from reports.dashboard import dashboard_context
from tests.factories import CustomerFactory, PaymentMethodFactory, UserFactory
from tests.payments.subscription_support import stripe_subscription

pytestmark = pytest.mark.django_db


def staff(*codenames, username="agent"):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def customer():
    return CustomerFactory(stripe_id="cus_test0001", email="ada@example.com", name="Ada")


def mirror(**overrides):
    result = sync.upsert_subscriptions([stripe_subscription(**overrides)])
    assert result.invalid == {} and result.skipped == 0, result
    return Subscription.objects.get(stripe_id=overrides.get("id", "sub_test0001"))


def test_the_list_shows_badges_and_filters_by_status(admin_client, customer):
    mirror(id="sub_active01")
    mirror(id="sub_pastdue1", status="past_due", latest_invoice_status="open")
    mirror(id="sub_ending01", cancel_at_period_end=True)
    mirror(id="sub_weird001", status="frozen_by_stripe")
    url = reverse("admin:payments_subscription_changelist")
    body = admin_client.get(url).content.decode()
    shown = ("Active", "Past due", "Ends 2026-12-20", "Unknown: frozen_by_stripe", "$49.00 / month")
    for text in shown:
        assert text in body, text
    past_due = admin_client.get(url, {"status__exact": "past_due"})
    assert [s.stripe_id for s in past_due.context["cl"].result_list] == ["sub_pastdue1"]
    ending = admin_client.get(url, {"cancel_at_period_end__exact": "1"})
    assert [s.stripe_id for s in ending.context["cl"].result_list] == ["sub_ending01"]
    unpaid = admin_client.get(url, {"latest_invoice": "open"})
    assert [s.stripe_id for s in unpaid.context["cl"].result_list] == ["sub_pastdue1"]
    found = admin_client.get(url, {"q": "SUB_PASTDUE1"})
    assert [s.stripe_id for s in found.context["cl"].result_list] == ["sub_pastdue1"]


def test_the_dashboard_counts_past_due_subscriptions_and_links_the_filtered_list(
    admin_client, customer
):
    mirror(id="sub_pastdue1", status="past_due")
    mirror(id="sub_pastdue2", status="past_due")
    mirror(id="sub_active01")
    card = {c.key: c for c in dashboard_context()["cards"]}["past_due_subscriptions"]
    assert (card.value, card.tone, card.figures) == ("2", "warning", {"past_due": 2})
    listed = admin_client.get(card.href)
    assert {s.stripe_id for s in listed.context["cl"].result_list} == {
        "sub_pastdue1",
        "sub_pastdue2",
    }


def test_the_customer_page_shows_subscriptions_and_saved_methods_with_their_actions(
    client, customer
):
    sub = mirror()
    mirror(id="sub_old00001", status="canceled", created=datetime(2025, 1, 1, tzinfo=UTC))
    card = PaymentMethodFactory(customer=customer, is_default=True)
    url = reverse("admin:payments_customer_change", args=[customer.pk])

    agent = staff(
        "view_customer",
        "view_subscription",
        "view_paymentmethod",
        "manage_subscription",
        "manage_saved_payment_method",
    )
    client.force_login(agent)
    body = client.get(url).content.decode()
    assert "sub_test0001" in body and "sub_old00001" in body
    assert reverse("admin:payments_subscription_cancel_now", args=[sub.pk]) in body
    assert reverse("admin:payments_paymentmethod_detach", args=[card.pk]) in body
    # The default card is not offered as the default again.
    assert reverse("admin:payments_paymentmethod_make_default", args=[card.pk]) not in body

    reader = staff("view_customer", "view_subscription", "view_paymentmethod", username="reader")
    client.force_login(reader)
    body = client.get(url).content.decode()
    assert "sub_test0001" in body
    assert 'data-testid="billing-action-link"' not in body


def test_confirmation_page_get_shows_post_acts_and_403_without_permission(
    client, customer, monkeypatch
):
    sub = mirror()
    url = reverse("admin:payments_subscription_cancel_at_period_end", args=[sub.pk])
    reader = staff("view_subscription", username="reader")
    client.force_login(reader)
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403

    sent = []

    def fake_send(**kwargs):
        sent.append(kwargs)
        return stripe_subscription(
            cancel_at_period_end=True,
            cancel_at=datetime(2026, 12, 20, 12, tzinfo=UTC),
            cancellation_reason="cancellation_requested",
            cancellation_comment=kwargs["comment"],
        )

    from payments import gateway

    monkeypatch.setattr(gateway, "stripe_subscription_cancel_at_period_end", fake_send)
    agent = staff("view_subscription", "view_customer", "manage_subscription")
    client.force_login(agent)
    page = client.get(url)
    assert page.status_code == 200 and sent == []
    assert "Cancel at period end" in page.content.decode()
    # No reason: the form says so, nothing is sent.
    again = client.post(url, {"reason": ""})
    assert again.status_code == 200 and sent == []
    done = client.post(f"{url}?back=customer", {"reason": "Moving abroad"})
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:payments_customer_change", args=[customer.pk])
    assert [s["comment"] for s in sent] == ["Moving abroad"]
    sub.refresh_from_db()
    assert sub.cancel_at_period_end
    assert AdminAction.objects.get().action == "subscription_cancel_at_period_end"
    # Now the page shows why it would be refused, and offers no form.
    refused = client.get(url).content.decode()
    assert 'data-testid="billing-action-refusal"' in refused
    assert "already ends" in refused
    # The subscription's page lists the change.
    page = client.get(reverse("admin:payments_subscription_change", args=[sub.pk]))
    assert "Moving abroad" in page.content.decode()
    assert BillingAction.objects.get().status == "succeeded"


def test_payment_methods_filter_by_expiry_against_the_site_date(admin_client, settings):
    today = timezone.localdate()
    last_month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    expired = PaymentMethodFactory(card_exp_year=last_month[0], card_exp_month=last_month[1])
    this_month = PaymentMethodFactory(card_exp_year=today.year, card_exp_month=today.month)
    later = PaymentMethodFactory(card_exp_year=today.year + 2, card_exp_month=1)
    url = reverse("admin:payments_paymentmethod_changelist")

    def listed(state):
        response = admin_client.get(url, {"expiry": state})
        return {m.pk for m in response.context["cl"].result_list}

    assert listed("expired") == {expired.pk}
    assert listed("this_month") == {this_month.pk}
    assert listed("valid") == {later.pk}
    body = admin_client.get(url).content.decode()
    assert "Expires this month" in body and "Expired" in body


@pytest.mark.parametrize(
    ("today", "month", "year", "state"),
    [
        (date(2026, 12, 31), 12, 2026, card_expiry.THIS_MONTH),
        (date(2027, 1, 1), 12, 2026, card_expiry.EXPIRED),
        (date(2026, 12, 1), 11, 2026, card_expiry.EXPIRED),
        (date(2026, 12, 1), 1, 2027, card_expiry.VALID),
        (date(2026, 12, 1), None, None, None),
    ],
)
def test_card_expiry_state_and_its_sql_twin_agree(today, month, year, state):
    assert card_expiry.card_expiry_state(month, year, today=today) == state
    method = PaymentMethodFactory(card_exp_month=month, card_exp_year=year)
    for candidate in card_expiry.STATES:
        matched = PaymentMethod.objects.filter(
            card_expiry.card_expiry_q(candidate, today=today), pk=method.pk
        ).exists()
        assert matched == (candidate == state), candidate


def test_an_expired_card_cannot_become_the_default(customer):
    agent = staff("manage_saved_payment_method")
    expired = PaymentMethodFactory(customer=customer, card_exp_month=1, card_exp_year=2020)
    refusal = service.payment_method_action_refusal(
        user=agent, method=expired, kind=BillingAction.Kind.SET_DEFAULT
    )
    assert refusal == service.ERR_EXPIRED.format(month=1, year=2020)
    assert not service.payment_method_action_refusal(
        user=agent, method=expired, kind=BillingAction.Kind.DETACH
    )


def test_demo_roles_finance_staff_manage_auditors_only_read():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("demo_staff", verbosity=0)
    users = {u.username: u for u in get_user_model().objects.all()}
    for name in ("analyst", "senior"):
        assert users[name].has_perm(service.PERM_SUBSCRIPTION)
        assert users[name].has_perm(service.PERM_PAYMENT_METHOD)
    auditor = users["auditor"]
    assert auditor.has_perm("payments.view_subscription")
    assert not auditor.has_perm(service.PERM_SUBSCRIPTION)
    assert not auditor.has_perm(service.PERM_PAYMENT_METHOD)


def test_detach_page_needs_the_permission_and_a_reason_then_mirrors_stripe_s_answer(
    client, customer, monkeypatch
):
    from payments import gateway
    from payments.gateway import StripePaymentMethod

    card = PaymentMethodFactory(customer=customer, stripe_id="pm_test_detach1")
    url = reverse("admin:payments_paymentmethod_detach", args=[card.pk])
    client.force_login(staff("view_paymentmethod", "manage_subscription", username="subs"))
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403

    sent = []

    def detach(**kwargs):
        sent.append(kwargs)
        return StripePaymentMethod(
            id=card.stripe_id,
            customer_id="",
            type="card",
            card_brand="visa",
            card_last4="4242",
            card_exp_month=12,
            card_exp_year=2030,
            livemode=False,
            created=card.created,
        )

    monkeypatch.setattr(gateway, "stripe_payment_method_detach", detach)
    agent = staff("view_paymentmethod", "view_customer", "manage_saved_payment_method")
    client.force_login(agent)
    assert "can no longer be charged" in client.get(url).content.decode()
    assert client.post(url, {"reason": " "}).status_code == 200 and sent == []
    done = client.post(url, {"reason": "Card reported stolen"})
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:payments_paymentmethod_change", args=[card.pk])
    assert [s["idempotency_key"] for s in sent] == [
        f"billing_action:{BillingAction.objects.get().pk}"
    ]
    card.refresh_from_db()
    assert card.customer_id is None
    audit = AdminAction.objects.get()
    assert (audit.action, audit.actor, audit.reason) == (
        "payment_method_detach",
        agent,
        "Card reported stolen",
    )
    page = client.get(reverse("admin:payments_paymentmethod_change", args=[card.pk]))
    assert "Card reported stolen" in page.content.decode()


def test_an_open_action_stripe_cannot_be_asked_about_keeps_blocking(customer, monkeypatch):
    from datetime import timedelta

    from payments import gateway
    from payments.exceptions import GatewayConnectionError

    sub = mirror()
    agent = staff("manage_subscription")
    stale = BillingAction.objects.create(
        kind=BillingAction.Kind.CANCEL_NOW,
        status=BillingAction.Status.UNKNOWN,
        customer=customer,
        subscription=sub,
        target_stripe_id=sub.stripe_id,
        idempotency_key="billing_action:earlier",
        last_attempt_at=timezone.now() - timedelta(hours=1),
    )

    def unreachable(**kwargs):
        raise GatewayConnectionError()

    monkeypatch.setattr(gateway, "stripe_subscription_retrieve", unreachable)
    monkeypatch.setattr(gateway, "stripe_subscription_cancel", lambda **kw: pytest.fail("sent"))
    with pytest.raises(service.BillingActionNotAllowed) as refused:
        service.subscription_cancel_now(subscription=sub, reason="Fraud", acting_user=agent)
    assert refused.value.message.startswith("An earlier change to Subscription sub_test0001")
    stale.refresh_from_db()
    assert stale.status == "unknown"
    assert BillingAction.objects.count() == 1
