"""The payout screens: who is offered what, every money-moving step POST-only with its
permission checked on the server, the bulk confirmation with its totals per currency, the
audit rows the steps leave, the bank-transfer file, the manual payout form and the tabs.
Stripe is the recording fake of tests/payouts/conftest.py."""

import csv
import io

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from backoffice.models import AdminAction
from backoffice.settings.base import SIDEBAR_SECTIONS
from payments.admin.payout import PAYOUT_TABS
from payments.admin.payout_views import (
    AUDIT_BANK_FILE,
    ERR_NO_INSTRUCTOR,
    MSG_APPROVED,
    MSG_CANCELED,
    MSG_NO_BANK_PAYOUTS,
    MSG_PICK_INSTRUCTOR,
    MSG_RUN_CREATED,
    MSG_RUN_EMPTY,
)
from payments.earnings_selectors import earning_balances
from payments.models import EarningEntry, Payout, PayoutRun
from payments.money import ERR_TOO_MANY_DECIMALS
from payments.payout_rules import ERR_OWN_PAYOUT, ERR_SENIOR_NEEDED
from payments.services.payouts import (
    AUDIT_APPROVE,
    AUDIT_CANCEL,
    AUDIT_MARK_PAID,
    AUDIT_REVERSE,
    AUDIT_RUN,
    BANK_FILE_HEADER,
    ERR_ABOVE_AVAILABLE,
    ERR_CURRENCY_NOT_CONFIGURED,
)
from tests.factories import InstructorFactory, UserFactory
from tests.payments.payout_support import entry, payout

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_payout_changelist")
STEPS = ["approve", "cancel", "mark_paid", "reverse"]


def step_url(name: str, pk: int) -> str:
    return reverse(f"admin:payments_payout_{name}", args=[pk])


def change_url(pk: int) -> str:
    return reverse("admin:payments_payout_change", args=[pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def roles():
    """The demo roles of fixtures/groups.json: analyst (Finance staff: approves payouts up to
    the senior limit), senior (+ Senior approvers: large payouts, mark paid, reverse), auditor
    (reads)."""
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


def client_for(user) -> Client:
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="pytest-browser")
    client.force_login(user)
    return client


@pytest.fixture
def maria():
    """Paid by Stripe Connect; 500.00 USD and 80.00 EUR available."""
    instructor = InstructorFactory(name="Maria Lopez", stripe_account_id="acct_maria")
    entry(instructor, 50000)
    entry(instructor, 8000, "eur")
    return instructor


@pytest.fixture
def kenji():
    """Paid by bank transfer; 60,000 JPY available."""
    instructor = InstructorFactory(name="Kenji Watanabe", bank_account="JP12 3456 7890")
    entry(instructor, 60000, "jpy")
    return instructor


# --- POST only, permission on the server --------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_every_step_answers_get_with_405(roles, maria, step):
    row = payout(maria, 10000)
    response = client_for(roles["senior"]).get(step_url(step, row.pk))
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("step", "role", "data"),
    [
        ("approve", "auditor", {"note": "ok"}),
        ("cancel", "auditor", {"reason": "duplicate"}),
        # Finance staff approve, but neither mark bank transfers paid nor reverse transfers.
        ("mark_paid", "analyst", {"bank_reference": "REF-1"}),
        ("reverse", "analyst", {"amount": "1.00", "reason": "refund"}),
    ],
)
def test_a_step_without_its_permission_is_403_and_changes_nothing(
    roles, maria, kenji, step, role, data
):
    status = Payout.Status.PENDING if step in ("approve", "cancel") else Payout.Status.APPROVED
    row = payout(
        kenji if step == "mark_paid" else maria,
        10000,
        "jpy" if step == "mark_paid" else "usd",
        status=status,
    )
    if step == "reverse":
        Payout.objects.filter(pk=row.pk).update(
            status=Payout.Status.PAID, stripe_transfer_id="tr_1"
        )
    before = (Payout.objects.get(pk=row.pk).status, EarningEntry.objects.count())
    response = client_for(roles[role]).post(step_url(step, row.pk), data)
    assert response.status_code == 403
    assert (Payout.objects.get(pk=row.pk).status, EarningEntry.objects.count()) == before
    assert not AdminAction.objects.exists()


def test_approve_from_the_page_is_audited_with_the_client(roles, kenji):
    row = payout(kenji, 45000, "jpy")
    response = client_for(roles["analyst"]).post(
        step_url("approve", row.pk), {"note": "Checked the statement"}, follow=True
    )
    assert response.redirect_chain[-1][0] == change_url(row.pk)
    assert f"Approved {row}." in messages_of(response)
    row.refresh_from_db()
    assert (row.status, row.approved_by, row.approval_note) == (
        Payout.Status.APPROVED,
        roles["analyst"],
        "Checked the statement",
    )
    action = AdminAction.objects.get(action=AUDIT_APPROVE)
    assert (action.actor, action.target_id, action.amount, action.currency) == (
        roles["analyst"],
        str(row.pk),
        45000,
        "jpy",
    )
    assert (action.ip_address, action.user_agent) == ("203.0.113.9", "pytest-browser")


def test_the_page_says_why_before_the_click_and_the_server_refuses_the_same(roles, kenji):
    own = payout(
        kenji,
        8000,
        "jpy",
        source=Payout.Source.MANUAL,
        requested_by=roles["analyst"],
        note="advance",
    )
    client = client_for(roles["analyst"])
    page = client.get(change_url(own.pk))
    assert page.context["approve_refusal"] == ERR_OWN_PAYOUT
    assert 'data-testid="approve-refusal"' in page.content.decode()
    response = client.post(step_url("approve", own.pk), {"note": "mine"}, follow=True)
    assert ERR_OWN_PAYOUT in messages_of(response)
    own.refresh_from_db()
    assert own.status == Payout.Status.PENDING
    assert not AdminAction.objects.filter(action=AUDIT_APPROVE).exists()


def test_a_step_without_its_note_changes_nothing(roles, kenji):
    row = payout(kenji, 45000, "jpy")
    response = client_for(roles["analyst"]).post(step_url("cancel", row.pk), {}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(row.pk)
    assert messages_of(response) == ["This field is required."]
    row.refresh_from_db()
    assert row.status == Payout.Status.PENDING


def test_cancel_returns_the_amount_to_the_balance(roles, kenji):
    row = payout(kenji, 45000, "jpy")
    assert earning_balances(instructor_ids=[kenji.pk])[(kenji.pk, "jpy")].available == 15000
    client_for(roles["analyst"]).post(step_url("cancel", row.pk), {"reason": "Duplicate"})
    row.refresh_from_db()
    assert (row.status, row.cancel_reason) == (Payout.Status.CANCELED, "Duplicate")
    assert earning_balances(instructor_ids=[kenji.pk])[(kenji.pk, "jpy")].available == 60000
    assert AdminAction.objects.filter(action=AUDIT_CANCEL, target_id=str(row.pk)).count() == 1


def test_a_senior_marks_a_bank_transfer_paid_with_its_reference(roles, kenji):
    row = payout(kenji, 45000, "jpy", status=Payout.Status.APPROVED)
    page = client_for(roles["senior"]).get(change_url(row.pk))
    assert 'data-testid="mark-paid-form"' in page.content.decode()
    response = client_for(roles["senior"]).post(
        step_url("mark_paid", row.pk), {"bank_reference": "MUFG-0042"}, follow=True
    )
    assert f"Marked {row} paid (bank reference MUFG-0042)." in messages_of(response)
    row.refresh_from_db()
    assert (row.status, row.bank_reference, row.paid_by) == (
        Payout.Status.PAID,
        "MUFG-0042",
        roles["senior"],
    )
    assert AdminAction.objects.get(action=AUDIT_MARK_PAID).actor == roles["senior"]


def test_a_senior_reverses_part_of_a_transfer_typed_in_major_units(
    roles, maria, connect, django_capture_on_commit_callbacks
):
    row = payout(maria, 8000, "eur")
    with django_capture_on_commit_callbacks(execute=True):
        client_for(roles["analyst"]).post(step_url("approve", row.pk), {"note": "ok"})
    row.refresh_from_db()
    assert row.status == Payout.Status.PAID  # queued on commit; django-q runs it in-line
    response = client_for(roles["senior"]).post(
        step_url("reverse", row.pk), {"amount": "20.00", "reason": "Lesson refunded"}, follow=True
    )
    assert "Reversed €20.00 of" in messages_of(response)[0]
    (call,) = [c for c in connect.transfers.values()]
    assert call.amount_reversed == 2000
    assert AdminAction.objects.get(action=AUDIT_REVERSE).details["amount"] == 2000


def test_a_reversal_amount_that_does_not_parse_is_refused_before_stripe(roles, maria, connect):
    row = payout(maria, 8000, "eur", status=Payout.Status.PAID, stripe_transfer_id="tr_x")
    response = client_for(roles["senior"]).post(
        step_url("reverse", row.pk), {"amount": "20.001", "reason": "x"}, follow=True
    )
    assert messages_of(response) == [ERR_TOO_MANY_DECIMALS.format(currency="EUR", places=2)]
    assert not connect.transfers


# --- The bulk actions ---------------------------------------------------------------------------


def _bulk(client, action, rows, **extra):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [row.pk for row in rows], **extra},
        follow=True,
    )


def test_the_confirmation_shows_totals_per_currency_of_what_would_pass(roles, maria, kenji):
    rows = [
        payout(maria, 30000),
        payout(maria, 5000, "eur"),
        payout(kenji, 45000, "jpy"),
        payout(
            kenji,
            8000,
            "jpy",
            source=Payout.Source.MANUAL,
            requested_by=roles["analyst"],
            note="advance",
        ),
    ]
    response = _bulk(client_for(roles["analyst"]), "bulk_approve", rows)
    assert response.templates[0].name == "payments/admin/payout_bulk.html"
    assert response.context["totals"] == ["€50.00 (1)", "¥45,000 (1)", "$300.00 (1)"]
    assert response.context["selected_totals"] == ["€50.00 (1)", "¥53,000 (2)", "$300.00 (1)"]
    refusals = [refusal for _, _, refusal in response.context["rows"]]
    assert refusals == ["", "", "", ERR_OWN_PAYOUT]
    # Nothing changes before the confirmation.
    assert set(Payout.objects.values_list("status", flat=True)) == {Payout.Status.PENDING}
    assert not AdminAction.objects.exists()


def test_bulk_approve_approves_what_passes_and_reports_the_rest(roles, kenji, connect):
    large = InstructorFactory(bank_account="DE89 3704")
    entry(large, 900000)
    rows = [payout(kenji, 45000, "jpy"), payout(large, 600000)]
    response = _bulk(
        client_for(roles["analyst"]), "bulk_approve", rows, apply="1", note="Weekly run"
    )
    shown = messages_of(response)
    assert MSG_APPROVED.format(count=1) in shown
    senior_needed = ERR_SENIOR_NEEDED.format(limit="$5,000.00", amount="$6,000.00")
    assert f"#{rows[1].pk}: {senior_needed}" in shown
    assert [Payout.objects.get(pk=row.pk).status for row in rows] == [
        Payout.Status.APPROVED,
        Payout.Status.PENDING,
    ]
    assert list(AdminAction.objects.values_list("action", "target_id")) == [
        (AUDIT_APPROVE, str(rows[0].pk))
    ]


def test_bulk_needs_its_note_and_changes_nothing_without_it(roles, kenji):
    row = payout(kenji, 45000, "jpy")
    response = _bulk(client_for(roles["analyst"]), "bulk_approve", [row], apply="1")
    assert response.templates[0].name == "payments/admin/payout_bulk.html"
    assert response.context["form"].errors == {"note": ["This field is required."]}
    assert Payout.objects.get(pk=row.pk).status == Payout.Status.PENDING


def test_bulk_cancel_returns_each_amount_once(roles, maria, kenji):
    rows = [payout(maria, 30000), payout(kenji, 45000, "jpy", status=Payout.Status.APPROVED)]
    response = _bulk(
        client_for(roles["analyst"]), "bulk_cancel", rows, apply="1", reason="Wrong run"
    )
    assert MSG_CANCELED.format(count=2) in messages_of(response)
    assert EarningEntry.objects.filter(kind=EarningEntry.Kind.PAYOUT_RETURNED).count() == 2
    assert AdminAction.objects.filter(action=AUDIT_CANCEL).count() == 2


def test_the_auditor_is_offered_no_action_and_posting_one_changes_nothing(roles, kenji):
    row = payout(kenji, 45000, "jpy")
    client = client_for(roles["auditor"])
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action the role may use
    assert 'data-testid="payout-tabs"' in page.content.decode()
    _bulk(client, "bulk_approve", [row], apply="1", note="sneaky")
    assert Payout.objects.get(pk=row.pk).status == Payout.Status.PENDING
    assert not AdminAction.objects.exists()


def test_finance_staff_are_not_offered_the_bank_file(roles):
    model_admin = admin.site._registry[Payout]
    request = type("R", (), {"user": roles["analyst"], "GET": {}, "POST": {}})()
    assert "download_bank_file" not in model_admin.get_actions(request)
    assert "bulk_approve" in model_admin.get_actions(request)


# --- The bank-transfer file -----------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_bank_file_lists_approved_bank_transfers_only_and_is_audited(roles, maria, kenji):
    approved = payout(kenji, 45000, "jpy", status=Payout.Status.APPROVED)
    pending = payout(kenji, 5000, "jpy")
    connect_payout = payout(maria, 30000, status=Payout.Status.APPROVED)
    response = client_for(roles["senior"]).post(
        CHANGELIST,
        {
            "action": "download_bank_file",
            "_selected_action": [approved.pk, pending.pk, connect_payout.pk],
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="payouts-selected-')
    assert _csv(response) == [
        BANK_FILE_HEADER,
        [f"payout:{approved.pk}", "Kenji Watanabe", kenji.email, "JP12 3456 7890", "45000", "JPY"],
    ]
    action = AdminAction.objects.get(action=AUDIT_BANK_FILE)
    assert action.actor == roles["senior"]
    assert action.details == {"payout_ids": [approved.pk], "totals": ["¥45,000 (1)"]}


def test_a_bank_file_of_nothing_payable_says_so(roles, kenji):
    pending = payout(kenji, 5000, "jpy")
    response = client_for(roles["senior"]).post(
        CHANGELIST, {"action": "download_bank_file", "_selected_action": [pending.pk]}, follow=True
    )
    assert MSG_NO_BANK_PAYOUTS in messages_of(response)
    assert not AdminAction.objects.exists()


def test_a_runs_bank_file_is_a_download_for_seniors_only(roles, kenji):
    run = PayoutRun.objects.create(trigger="command", payouts_created=1)
    row = payout(kenji, 45000, "jpy", status=Payout.Status.APPROVED, run=run)
    url = reverse("admin:payments_payoutrun_bank_file", args=[run.pk])
    assert client_for(roles["analyst"]).get(url).status_code == 403
    response = client_for(roles["senior"]).get(url)
    assert _csv(response)[1][0] == f"payout:{row.pk}"
    action = AdminAction.objects.get(action=AUDIT_BANK_FILE)
    assert (action.target_type, action.target_id) == ("payments.payoutrun", str(run.pk))
    runs = client_for(roles["senior"]).get(reverse("admin:payments_payoutrun_changelist"))
    assert url in runs.content.decode()


# --- The manual payout form ---------------------------------------------------------------------


def test_the_form_opens_for_the_instructor_with_the_currency_chosen(roles, maria):
    url = reverse("admin:payments_payout_add") + f"?instructor={maria.pk}&currency=eur"
    response = client_for(roles["analyst"]).get(url)
    assert response.status_code == 200
    assert response.context["form"].initial == {"currency": "eur"}
    assert [code for code, *_ in response.context["balances"]] == ["EUR", "USD"]


def test_the_form_without_an_instructor_sends_staff_to_the_instructors(roles):
    response = client_for(roles["analyst"]).get(reverse("admin:payments_payout_add"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:payments_instructor_changelist")
    assert MSG_PICK_INSTRUCTOR in messages_of(response)


def test_a_manual_payout_is_created_pending_for_someone_else(roles, maria):
    response = client_for(roles["analyst"]).post(
        reverse("admin:payments_payout_add"),
        {"instructor": maria.pk, "currency": "usd", "amount": "120.50", "note": "Advance"},
        follow=True,
    )
    row = Payout.objects.get()
    assert response.redirect_chain[-1][0] == change_url(row.pk)
    assert (row.amount, row.currency, row.source, row.status, row.requested_by) == (
        12050,
        "usd",
        Payout.Source.MANUAL,
        Payout.Status.PENDING,
        roles["analyst"],
    )


def test_a_manual_payout_above_the_available_balance_is_refused(roles, maria):
    response = client_for(roles["analyst"]).post(
        reverse("admin:payments_payout_add"),
        {"instructor": maria.pk, "currency": "usd", "amount": "500.01", "note": "Advance"},
    )
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        ERR_ABOVE_AVAILABLE.format(available="$500.00", currency="USD")
    ]
    assert not Payout.objects.exists()


def test_the_auditor_cannot_open_or_post_the_form(roles, maria):
    client = client_for(roles["auditor"])
    url = reverse("admin:payments_payout_add")
    assert client.get(f"{url}?instructor={maria.pk}").status_code == 403
    post = {"instructor": maria.pk, "currency": "usd", "amount": "1", "note": "x"}
    assert client.post(url, post).status_code == 403
    assert not Payout.objects.exists()


# --- Tabs, sidebar, search ----------------------------------------------------------------------


def test_the_sidebar_opens_the_queue_on_the_to_approve_tab(admin_client):
    (item,) = [
        item for _, items in SIDEBAR_SECTIONS for item in items if item[2] == "payments.payout"
    ]
    assert item[4] == dict(PAYOUT_TABS)["To approve"]
    response = admin_client.get(f"{CHANGELIST}?{item[4]}")
    active = [label for label, _, is_active in response.context["payout_tabs"] if is_active]
    assert active == ["To approve"]


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("To approve", {"pending"}),
        ("To pay by bank", {"approved-bank"}),
        ("Processing", {"approved-bank", "approved-connect", "processing"}),
        ("Failed", {"failed"}),
        ("All", {"pending", "approved-bank", "approved-connect", "processing", "failed", "paid"}),
    ],
)
def test_each_tab_shows_its_payouts(admin_client, maria, kenji, tab, expected):
    labels = {}
    for label, instructor, status in (
        ("pending", maria, Payout.Status.PENDING),
        ("approved-bank", kenji, Payout.Status.APPROVED),
        ("approved-connect", maria, Payout.Status.APPROVED),
        ("processing", maria, Payout.Status.PROCESSING),
        ("failed", maria, Payout.Status.FAILED),
        ("paid", kenji, Payout.Status.PAID),
    ):
        labels[payout(instructor, 100, "usd", status=status).pk] = label
    response = admin_client.get(f"{CHANGELIST}?{dict(PAYOUT_TABS)[tab]}")
    assert response.status_code == 200
    assert {labels[row.pk] for row in response.context["cl"].result_list} == expected


def test_a_payout_is_found_by_its_number(admin_client, maria):
    rows = [payout(maria, 100), payout(maria, 200)]
    response = admin_client.get(CHANGELIST, {"q": f"#{rows[1].pk}"})
    assert [row.pk for row in response.context["cl"].result_list] == [rows[1].pk]


def test_pending_badge_counts_payouts_to_approve(roles, kenji):
    from payments.admin.payout import pending_payouts_badge

    payout(kenji, 100, "jpy")
    payout(kenji, 200, "jpy", status=Payout.Status.APPROVED)
    request = type("R", (), {"user": roles["analyst"]})()
    assert pending_payouts_badge(request) == "1"
    request.user = UserFactory(username="nobody")
    assert pending_payouts_badge(request) == ""


def test_a_paid_payouts_page_links_its_transfer_and_offers_nothing_to_finance_staff(roles, maria):
    row = payout(maria, 8000, "eur", status=Payout.Status.PAID, stripe_transfer_id="tr_abc")
    response = client_for(roles["analyst"]).get(change_url(row.pk))
    body = response.content.decode()
    assert f"{reverse('admin:payments_transfer_changelist')}?q=tr_abc" in body
    for form in ("approve-form", "cancel-form", "mark-paid-form", "reverse-form"):
        assert f'data-testid="{form}"' not in body
    senior = client_for(roles["senior"]).get(change_url(row.pk)).content.decode()
    assert 'data-testid="reverse-form"' in senior


def test_the_runs_list_survives_a_malformed_totals_row(admin_client):
    PayoutRun.objects.create(totals={"usd": {"count": 2, "amount": 1234}, "eur": "oops"})
    response = admin_client.get(reverse("admin:payments_payoutrun_changelist"))
    assert response.status_code == 200
    assert "eur: ? · $12.34 (2)" in response.content.decode()


def test_posting_the_form_without_an_instructor_is_400(roles):
    response = client_for(roles["analyst"]).post(
        reverse("admin:payments_payout_add"), {"currency": "usd", "amount": "1", "note": "x"}
    )
    assert response.status_code == 400
    assert response.content.decode() == ERR_NO_INSTRUCTOR
    assert not Payout.objects.exists()


# --- A payout run from the admin ----------------------------------------------------------------

RUN_ADD = reverse("admin:payments_payoutrun_add")


def test_the_run_page_previews_per_currency_and_writes_nothing(roles, maria, kenji):
    tiny = InstructorFactory()
    entry(tiny, 999)  # under the 10.00 USD minimum
    response = client_for(roles["analyst"]).get(RUN_ADD)
    assert response.status_code == 200
    assert response.context["preview"].payouts_created == 3
    assert response.context["totals"] == ["€80.00 (1)", "¥60,000 (1)", "$500.00 (1)"]
    assert not Payout.objects.exists() and not PayoutRun.objects.exists()
    assert not AdminAction.objects.exists()
    yen = client_for(roles["analyst"]).get(RUN_ADD, {"currency": "jpy"})
    assert yen.context["totals"] == ["¥60,000 (1)"]


def test_a_currency_without_a_minimum_is_refused_on_the_page(roles, maria):
    response = client_for(roles["analyst"]).get(RUN_ADD, {"currency": "chf"})
    assert response.status_code == 400
    assert response.context["error"] == ERR_CURRENCY_NOT_CONFIGURED.format(currency="CHF")


def test_posting_the_run_creates_pending_payouts_and_audits_it(roles, maria, kenji):
    response = client_for(roles["analyst"]).post(RUN_ADD, {"currency": ""}, follow=True)
    run = PayoutRun.objects.get()
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}?run={run.pk}"
    assert MSG_RUN_CREATED.format(
        run=run.pk, count=3, totals="€80.00 (1) · ¥60,000 (1) · $500.00 (1)"
    ) in messages_of(response)
    assert (run.trigger, run.created_by) == ("admin", roles["analyst"])
    assert set(Payout.objects.values_list("status", flat=True)) == {Payout.Status.PENDING}
    assert {row.pk for row in response.context["cl"].result_list} == set(
        Payout.objects.values_list("pk", flat=True)
    )
    action = AdminAction.objects.get(action=AUDIT_RUN)
    assert (action.actor, action.ip_address) == (roles["analyst"], "203.0.113.9")
    # A second run right away finds every balance paid out (or in an open payout).
    again = client_for(roles["analyst"]).post(RUN_ADD, {}, follow=True)
    assert MSG_RUN_EMPTY in messages_of(again)
    assert Payout.objects.count() == 3


def test_the_auditor_may_not_start_a_run(roles, maria):
    client = client_for(roles["auditor"])
    assert client.get(RUN_ADD).status_code == 403
    assert client.post(RUN_ADD, {}).status_code == 403
    assert not PayoutRun.objects.exists()
