"""The earnings pages: the read-only ledger, the adjustments queue (add form prefilled from the
instructor page's link, bulk approve / reject through an intermediate POST page)."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission

from backoffice.models import AdminAction
from payments.admin.earnings import parse_signed_money
from payments.earning_adjustment_rules import ERR_OWN_REQUEST
from payments.models import EarningAdjustment, EarningEntry
from payments.money import MoneyError
from payments.services.earning_adjustments import (
    AUDIT_REQUEST,
    ERR_AMOUNT_ZERO,
    ERR_REJECTION_NOTE_REQUIRED,
    earning_adjustment_request,
)
from tests.factories import InstructorFactory, PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db

ENTRIES = "/admin/payments/earningentry/"
ADJUSTMENTS = "/admin/payments/earningadjustment/"


def staff_client(client, *codenames):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client, user


def requester_user():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="add_earningadjustment"))
    return type(user).objects.get(pk=user.pk)


def _adjust(instructor, user, amount=2500, currency="usd"):
    return earning_adjustment_request(
        instructor=instructor, amount=amount, currency=currency, reason="Bonus", acting_user=user
    )


def test_the_ledger_lists_entries_read_only_filtered_by_instructor(admin_client):
    from payments import earnings

    mine, other = PaymentFactory(), PaymentFactory()
    earnings.record_payment_earnings([mine.pk, other.pk])
    page = admin_client.get(f"{ENTRIES}?instructor__id__exact={mine.instructor_id}&currency=usd")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"payment:{mine.stripe_payment_intent_id}:earning" in html
    assert other.stripe_payment_intent_id not in html
    assert "$38.25" in html and "on hold" in html
    assert admin_client.get(f"{ENTRIES}add/").status_code == 403
    entry = EarningEntry.objects.get(payment=mine)
    detail = admin_client.get(f"{ENTRIES}{entry.pk}/change/")
    assert detail.status_code == 200
    assert 'name="amount"' not in detail.content.decode()  # nothing to edit


def test_the_add_form_is_prefilled_from_the_instructor_link(admin_client):
    instructor = InstructorFactory()
    page = admin_client.get(f"{ADJUSTMENTS}add/?instructor={instructor.pk}&currency=eur")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert str(form.initial["instructor"]) == str(instructor.pk)
    assert form.initial["currency"] == "eur"


def test_requesting_an_adjustment_goes_through_the_service(client):
    client, user = staff_client(client, "add_earningadjustment", "view_earningadjustment")
    instructor = InstructorFactory()
    data = {"instructor": instructor.pk, "currency": "usd", "reason": "Duplicate payout"}
    refused = client.post(f"{ADJUSTMENTS}add/", {**data, "amount": "0"})
    assert refused.status_code == 200
    assert ERR_AMOUNT_ZERO in refused.content.decode()
    assert client.post(f"{ADJUSTMENTS}add/", {**data, "amount": "-12.50"}).status_code == 302
    adjustment = EarningAdjustment.objects.get()
    assert (adjustment.amount, adjustment.currency, adjustment.requested_by) == (-1250, "usd", user)
    assert adjustment.status == EarningAdjustment.Status.PENDING
    assert AdminAction.objects.filter(action=AUDIT_REQUEST, actor=user).exists()
    assert not EarningEntry.objects.exists()
    # Yen has no decimals.
    bad = client.post(f"{ADJUSTMENTS}add/", {**data, "currency": "jpy", "amount": "12.5"})
    assert bad.status_code == 200 and EarningAdjustment.objects.count() == 1


def test_bulk_approve_confirms_with_totals_per_currency_then_applies(client):
    requester = requester_user()
    client, approver = staff_client(
        client, "approve_earningadjustment", "view_earningadjustment", "add_earningadjustment"
    )
    instructor = InstructorFactory()
    usd = [_adjust(instructor, requester, 2500), _adjust(instructor, requester, -500)]
    yen = _adjust(instructor, requester, 1500, "jpy")
    own = _adjust(instructor, approver, 100)
    selected = [a.pk for a in (*usd, yen, own)]
    post = {"action": "bulk_approve", ACTION_CHECKBOX_NAME: selected}
    confirm = client.post(ADJUSTMENTS, post)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "in total ¥1,500 + $21.00" in html
    assert ERR_OWN_REQUEST in html
    assert EarningEntry.objects.count() == 0  # nothing until confirmed
    missing_note = client.post(ADJUSTMENTS, {**post, "apply": "1", "note": ""})
    assert missing_note.status_code == 200 and EarningEntry.objects.count() == 0
    done = client.post(ADJUSTMENTS, {**post, "apply": "1", "note": "Checked the bookings"})
    assert done.status_code == 302
    applied = EarningAdjustment.objects.filter(status="applied")
    assert sorted(applied.values_list("pk", flat=True)) == sorted(a.pk for a in (*usd, yen))
    assert EarningAdjustment.objects.get(pk=own.pk).status == "pending"  # four-eyes
    assert EarningEntry.objects.count() == 3
    assert set(applied.values_list("decision_note", flat=True)) == {"Checked the bookings"}


def test_bulk_reject_needs_a_note_and_the_permission(client):
    requester = requester_user()
    instructor = InstructorFactory()
    adjustment = _adjust(instructor, requester)
    viewer, _ = staff_client(client, "view_earningadjustment")
    post = {"action": "bulk_reject", ACTION_CHECKBOX_NAME: [adjustment.pk]}
    viewer.post(ADJUSTMENTS, {**post, "apply": "1", "note": "no"})
    assert EarningAdjustment.objects.get().status == "pending"  # the action is not offered
    viewer.logout()
    decider, _ = staff_client(viewer, "view_earningadjustment", "approve_earningadjustment")
    page = decider.post(ADJUSTMENTS, {**post, "apply": "1", "note": "  "})
    assert ERR_REJECTION_NOTE_REQUIRED in page.content.decode()
    decider.post(ADJUSTMENTS, {**post, "apply": "1", "note": "Not agreed"})
    assert EarningAdjustment.objects.get().status == "rejected"


def test_the_queue_opens_on_its_tabs(admin_client):
    _adjust(InstructorFactory(), requester_user())
    page = admin_client.get(f"{ADJUSTMENTS}?status__exact=pending")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="queue-presets"' in html and "To approve" in html


@pytest.mark.parametrize(
    ("text", "minor"), [("12.50", 1250), ("+12.50", 1250), ("-12.50", -1250), ("- 3", -300)]
)
def test_a_signed_amount_takes_one_sign(text, minor):
    assert parse_signed_money(text, "usd") == minor


@pytest.mark.parametrize("text", ["+-12.50", "-+12.50", "--12.50", "-", ""])
def test_a_signed_amount_with_two_signs_or_none_is_refused_never_turned_into_a_credit(text):
    with pytest.raises(MoneyError):
        parse_signed_money(text, "usd")
