"""The customer adjustment screens: the request form on the customer page, the queue with its
tabs and the bulk confirmation with totals per currency, each adjustment's page with POST-only
approve / reject (permission checked on the server), the history panels on the customer and
balance pages, the sidebar badge; with the roles of fixtures/groups.json. Stripe is the
recording fake of tests/payments/customer_adjustment_support.py."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from backoffice.settings.base import SIDEBAR_SECTIONS
from payments.admin.customer_adjustment import ADJUSTMENT_TABS, pending_adjustments_badge
from payments.admin.customer_adjustment_forms import ERR_HOURS_FORMAT, parse_hours
from payments.admin.customer_adjustment_views import MSG_BULK_DONE, MSG_PICK_CUSTOMER
from payments.customer_adjustment_rules import ERR_OWN_REQUEST, ERR_SENIOR
from payments.models import CustomerAdjustment, StudentBalance
from payments.services.customer_adjustments import (
    AUDIT_APPROVE,
    AUDIT_REJECT,
    AUDIT_REQUEST,
    ERR_REJECTION_NOTE_REQUIRED,
    customer_adjustment_request,
)
from tests.factories import CustomerFactory, UserFactory
from tests.payments.customer_adjustment_support import FakeCustomerBalance

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_customeradjustment_changelist")
ADD = reverse("admin:payments_customeradjustment_add")


def step_url(step: str, pk: int) -> str:
    return reverse(f"admin:payments_customeradjustment_{step}", args=[pk])


def change_url(pk: int) -> str:
    return reverse("admin:payments_customeradjustment_change", args=[pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def roles():
    """analyst, analyst2 (Finance staff: request and approve up to the senior limit), senior
    (+ Senior approvers), auditor (reads)."""
    call_command("loaddata", "groups", verbosity=0)
    users = {}
    for username, groups in (
        ("analyst", ["Finance staff"]),
        ("analyst2", ["Finance staff"]),
        ("senior", ["Finance staff", "Senior approvers"]),
        ("auditor", ["Read-only auditors"]),
    ):
        user = UserFactory(username=username)
        user.groups.set(Group.objects.filter(name__in=groups))
        users[username] = user
    return users


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def stripe_balance(monkeypatch):
    return FakeCustomerBalance().install(monkeypatch)


@pytest.fixture
def customer():
    return CustomerFactory(email="ada@example.com", name="Ada Student")


def request_money(customer, user, amount=2500, currency="usd", direction="credit"):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit="money",
        amount=amount,
        currency=currency,
        reason="Tutor no-show",
        acting_user=user,
    )


def request_hours(customer, user, minutes=90, direction="credit"):
    return customer_adjustment_request(
        customer=customer,
        direction=direction,
        unit="hours",
        minutes=minutes,
        reason="Make-up lesson",
        acting_user=user,
    )


# --- the request form ---------------------------------------------------------------------------


def test_the_customer_page_shows_the_panel_and_its_form_requests(roles, customer):
    analyst = as_user(roles["analyst"])
    page = analyst.get(reverse("admin:payments_customer_change", args=[customer.pk]))
    html = page.content.decode()
    assert 'data-testid="customer-adjustments-panel"' in html
    assert 'data-testid="adjustment-request-form"' in html
    assert "No adjustments yet." in html
    response = analyst.post(
        ADD,
        {
            "customer": customer.pk,
            "unit": "money",
            "direction": "credit",
            "currency": "eur",
            "amount": "12.50",
            "reason": "Tutor no-show",
        },
    )
    adjustment = CustomerAdjustment.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(adjustment.pk)
    assert (adjustment.unit, adjustment.amount, adjustment.currency, adjustment.status) == (
        "money",
        1250,
        "eur",
        "pending",
    )
    assert adjustment.requested_by == roles["analyst"]
    assert AdminAction.objects.get().action == AUDIT_REQUEST
    # The history on the customer page lists it.
    html = analyst.get(reverse("admin:payments_customer_change", args=[customer.pk])).content
    assert f"#{adjustment.pk}".encode() in html and b"+\xe2\x82\xac12.50" in html


def test_hours_are_typed_in_hours(roles, customer):
    response = as_user(roles["analyst"]).post(
        ADD,
        {
            "customer": customer.pk,
            "unit": "hours",
            "direction": "debit",
            "hours": "1.5",
            "reason": "Lesson not deducted",
        },
    )
    assert response.status_code == 302
    adjustment = CustomerAdjustment.objects.get()
    assert (adjustment.minutes, adjustment.signed_minutes, adjustment.currency) == (90, -90, "")
    assert parse_hours("2") == 120
    for bad in ("1.001", "abc", "-1", "0", "NaN"):
        with pytest.raises(ValueError):
            parse_hours(bad)


def test_a_bad_request_shows_the_form_again_with_the_error(roles, customer):
    response = as_user(roles["analyst"]).post(
        ADD,
        {
            "customer": customer.pk,
            "unit": "hours",
            "direction": "credit",
            "hours": "1.001",
            "reason": "x",
        },
    )
    assert response.status_code == 400
    assert ERR_HOURS_FORMAT in response.content.decode()
    assert not CustomerAdjustment.objects.exists()


def test_the_currency_is_the_stripe_balance_currency_once_it_has_one(roles, customer):
    customer.stripe_balance, customer.stripe_balance_currency = -500, "gbp"
    customer.save()
    page = as_user(roles["analyst"]).get(f"{ADD}?customer={customer.pk}")
    assert page.status_code == 200
    choices = page.context["form"].fields["currency"].choices
    assert choices == [("gbp", "GBP")]
    assert "Credit of £5.00" in page.content.decode()


def test_requesting_needs_the_permission(roles, customer):
    auditor = as_user(roles["auditor"])
    assert auditor.get(f"{ADD}?customer={customer.pk}").status_code == 403
    assert auditor.post(ADD, {"customer": customer.pk}).status_code == 403
    page = auditor.get(reverse("admin:payments_customer_change", args=[customer.pk]))
    html = page.content.decode()
    # The auditor sees the history, not the form.
    assert 'data-testid="customer-adjustments-panel"' in html
    assert 'data-testid="adjustment-request-form"' not in html


def test_the_add_page_without_a_customer_sends_to_the_customers(roles):
    response = as_user(roles["analyst"]).get(ADD, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:payments_customer_changelist")
    assert MSG_PICK_CUSTOMER in messages_of(response)


# --- one adjustment's page ------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["approve", "reject"])
def test_decisions_are_post_only_and_need_the_permission(roles, customer, step):
    adjustment = request_money(customer, roles["analyst"])
    assert as_user(roles["analyst2"]).get(step_url(step, adjustment.pk)).status_code == 405
    response = as_user(roles["auditor"]).post(step_url(step, adjustment.pk), {"note": "x"})
    assert response.status_code == 403
    adjustment.refresh_from_db()
    assert adjustment.status == "pending"


def test_approving_on_the_page_applies_the_money_once(
    roles, customer, stripe_balance, django_capture_on_commit_callbacks
):
    adjustment = request_money(customer, roles["analyst"])
    page = as_user(roles["analyst2"]).get(change_url(adjustment.pk))
    assert 'data-testid="approve-form"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(roles["analyst2"]).post(
            step_url("approve", adjustment.pk), {"note": "ok"}, follow=True
        )
    adjustment.refresh_from_db()
    assert adjustment.status == "applied"
    assert [c["amount"] for c in stripe_balance.create_calls] == [-2500]
    assert any(m.startswith(f"Approved {adjustment}") for m in messages_of(response))
    assert AdminAction.objects.filter(action=AUDIT_APPROVE, actor=roles["analyst2"]).count() == 1
    # Decided: no forms any more.
    html = as_user(roles["senior"]).get(change_url(adjustment.pk)).content.decode()
    assert 'data-testid="approve-form"' not in html
    assert adjustment.stripe_balance_transaction_id in html


def test_the_page_says_why_approving_is_refused(roles, customer):
    own = request_money(customer, roles["analyst"])
    html = as_user(roles["analyst"]).get(change_url(own.pk)).content.decode()
    assert 'data-testid="approve-refusal"' in html and ERR_OWN_REQUEST in html
    large = request_money(customer, roles["analyst"], 50000)
    html = as_user(roles["analyst2"]).get(change_url(large.pk)).content.decode()
    assert ERR_SENIOR.format(limit="$100.00") in html
    # Posting anyway changes nothing.
    response = as_user(roles["analyst2"]).post(step_url("approve", large.pk), follow=True)
    assert ERR_SENIOR.format(limit="$100.00") in messages_of(response)
    large.refresh_from_db()
    assert large.status == "pending"


def test_rejecting_needs_a_note(roles, customer):
    adjustment = request_hours(customer, roles["analyst"])
    response = as_user(roles["analyst2"]).post(step_url("reject", adjustment.pk), follow=True)
    assert ERR_REJECTION_NOTE_REQUIRED in messages_of(response)
    as_user(roles["analyst2"]).post(step_url("reject", adjustment.pk), {"note": "Not owed"})
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decision_note) == ("rejected", "Not owed")
    assert AdminAction.objects.filter(action=AUDIT_REJECT).count() == 1


# --- the queue ----------------------------------------------------------------------------------


def test_the_tabs_filter_the_queue(roles, customer, stripe_balance):
    pending = request_money(customer, roles["analyst"])
    rejected = request_money(customer, roles["analyst"], 100)
    rejected.status = "rejected"
    rejected.save()
    applied = request_money(customer, roles["analyst"], 200)
    applied.status = "applied"
    applied.save()
    client = as_user(roles["auditor"])
    seen = {}
    for label, query in ADJUSTMENT_TABS:
        response = client.get(f"{CHANGELIST}?{query}")
        assert response.status_code == 200
        seen[label] = {row.pk for row in response.context["cl"].result_list}
    assert seen["Pending"] == {pending.pk}
    assert seen["Approved"] == {applied.pk}
    assert seen["Rejected"] == {rejected.pk}
    assert seen["All"] == {pending.pk, rejected.pk, applied.pk}
    # The sidebar opens on the first tab.
    items = {item[2]: item for _, entries in SIDEBAR_SECTIONS for item in entries}
    assert items["payments.customeradjustment"][4] == ADJUSTMENT_TABS[0][1]


def test_bulk_approve_confirms_with_totals_per_currency_then_applies(
    roles, customer, stripe_balance, django_capture_on_commit_callbacks
):
    usd = request_money(customer, roles["analyst"], 2500)
    debit = request_money(CustomerFactory(), roles["analyst"], 1000, direction="debit")
    yen = request_money(CustomerFactory(), roles["analyst"], 1500, "jpy")
    hours = request_hours(customer, roles["analyst"], 120)
    own = request_money(customer, roles["analyst2"], 700)
    selected = [usd.pk, debit.pk, yen.pk, hours.pk, own.pk]
    client = as_user(roles["analyst2"])
    page = client.post(
        CHANGELIST,
        {"action": "bulk_approve", admin.helpers.ACTION_CHECKBOX_NAME: selected},
    )
    assert page.status_code == 200
    html = page.content.decode()
    # Net in the customers' favour per currency of the ones that would pass; hours apart.
    assert page.context["totals"] == ["+¥1,500 (1)", "+$15.00 (2)", "+2 h (1)"]
    assert page.context["accepted_count"] == 4
    assert ERR_OWN_REQUEST in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            CHANGELIST,
            {
                "action": "bulk_approve",
                "apply": "1",
                "note": "Checked",
                admin.helpers.ACTION_CHECKBOX_NAME: selected,
            },
            follow=True,
        )
    assert MSG_BULK_DONE["approve"].format(count=4) in messages_of(response)
    assert any(ERR_OWN_REQUEST in m for m in messages_of(response))
    statuses = dict(CustomerAdjustment.objects.values_list("pk", "status"))
    assert statuses == {
        usd.pk: "applied",
        debit.pk: "applied",
        yen.pk: "applied",
        hours.pk: "applied",
        own.pk: "pending",
    }
    hours.refresh_from_db()
    assert hours.balance_entry.reference == f"customer_adjustment:{hours.pk}"
    assert StudentBalance.objects.get(customer=customer).minutes == 120
    assert sorted(c["amount"] for c in stripe_balance.create_calls) == [-2500, -1500, 1000]


def test_bulk_reject_needs_a_note(roles, customer):
    adjustment = request_money(customer, roles["analyst"])
    client = as_user(roles["analyst2"])
    response = client.post(
        CHANGELIST,
        {
            "action": "bulk_reject",
            "apply": "1",
            "note": "",
            admin.helpers.ACTION_CHECKBOX_NAME: [adjustment.pk],
        },
    )
    assert response.status_code == 200 and ERR_REJECTION_NOTE_REQUIRED in response.content.decode()
    client.post(
        CHANGELIST,
        {
            "action": "bulk_reject",
            "apply": "1",
            "note": "Duplicate",
            admin.helpers.ACTION_CHECKBOX_NAME: [adjustment.pk],
        },
    )
    adjustment.refresh_from_db()
    assert adjustment.status == "rejected"


def test_the_auditor_has_no_bulk_actions(roles, customer):
    request_money(customer, roles["analyst"])
    response = as_user(roles["auditor"]).get(CHANGELIST)
    assert response.status_code == 200
    assert "bulk_approve" not in response.content.decode()


def test_the_queue_finds_by_customer_and_number(roles, customer):
    adjustment = request_money(customer, roles["analyst"])
    other = request_money(CustomerFactory(email="bob@example.com"), roles["analyst"])
    client = as_user(roles["auditor"])
    for term, expected in (
        (customer.stripe_id.upper(), {adjustment.pk}),
        ("ada@", {adjustment.pk}),
        (f"#{other.pk}", {other.pk}),
    ):
        response = client.get(CHANGELIST, {"q": term})
        assert {r.pk for r in response.context["cl"].result_list} == expected, term


def test_the_badge_counts_pending_for_those_who_may_see_them(roles, customer, rf):
    request_money(customer, roles["analyst"])
    request_hours(customer, roles["analyst"])
    request = rf.get("/")
    request.user = roles["auditor"]
    assert pending_adjustments_badge(request) == "2"
    request.user = UserFactory()
    assert pending_adjustments_badge(request) == ""


# --- the balance page ----------------------------------------------------------------------------


def test_the_balance_page_lists_the_students_hours_adjustments(roles, customer):
    balance = StudentBalance.objects.create(customer=customer, minutes=60)
    hours = request_hours(customer, roles["analyst"])
    money = request_money(customer, roles["analyst"])
    html = (
        as_user(roles["auditor"])
        .get(reverse("admin:payments_studentbalance_change", args=[balance.pk]))
        .content.decode()
    )
    assert 'data-testid="customer-adjustments-panel"' in html
    assert f">#{hours.pk}<" in html and f">#{money.pk}<" not in html


def test_a_blocked_customers_credit_is_marked_for_a_senior(roles, customer):
    customer.blocked_at = timezone.now()
    customer.save()
    request_money(customer, roles["analyst"], 100)
    html = as_user(roles["analyst2"]).get(f"{CHANGELIST}?status__exact=pending").content.decode()
    assert "needs a senior approver" in html
