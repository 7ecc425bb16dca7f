"""The dispute page, its evidence packet and form, and the save / submit / accept POSTs
through the Django test client (the gateway faked at its boundary; against localstripe in
test_dispute_respond_localstripe.py)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.admin.dispute_page import deadline_countdown, reason_label
from payments.dispute_evidence import (
    ERROR_FILE_TOO_LARGE,
    ERROR_FILE_TYPE,
    ERROR_FILES_TOO_LARGE,
    ERROR_TEXT_TOO_LONG,
    FILE_MAX_BYTES,
    FILES_TOTAL_MAX_BYTES,
    LONG_TEXT_MAX_CHARS,
    format_size,
)
from payments.models import BalanceEntry, Dispute, DisputeResponse, Payment, StudentBalance
from reports.dispute_evidence import evidence_packet
from reports.models import Receipt
from tests.factories import (
    DisputeFactory,
    PaymentFactory,
    RefundFactory,
    RefundRequestFactory,
    UserFactory,
)
from tests.payments.test_dispute_response import DOCX, PDF, FakeStripe

pytestmark = pytest.mark.django_db


def staff_with(*codenames, username="staff"):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def responder(client):
    client.force_login(staff_with("view_dispute", "respond_dispute", "view_payment"))
    return client


@pytest.fixture
def reader(client):
    client.force_login(staff_with("view_dispute", "view_payment", username="reader"))
    return client


@pytest.fixture
def dispute(db):
    payment = PaymentFactory(
        status=Payment.Status.DISPUTED,
        amount=123456,
        currency="usd",
        product_kind=Payment.ProductKind.HOUR_PACKAGE,
        product_name="10 hours of Spanish",
        package_minutes=600,
        ip_address="203.0.113.9",
        billing_details={"address": {"line1": "1 Main St", "city": "Lyon", "country": "FR"}},
        stripe_payment_intent_id="pi_disputed",
    )
    payment.customer.name = "Ana Lima"
    payment.customer.save()
    return DisputeFactory(
        stripe_id="dp_page",
        payment=payment,
        reason="product_not_received",
        evidence_due_by=timezone.now() + timedelta(days=2, hours=3),
    )


@pytest.fixture
def fake(dispute, monkeypatch):
    return FakeStripe(dispute).install(monkeypatch)


def page(client, dispute):
    return client.get(reverse("admin:payments_dispute_change", args=[dispute.pk]))


# --- the countdown ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "status", "expected"),
    [
        (timedelta(days=2, hours=23), "needs_response", ("danger", "2 days 23 h left")),
        (timedelta(days=3), "needs_response", ("warning", "3 days 0 h left")),
        (timedelta(days=6, hours=23), "warning_needs_response", ("warning", "6 days 23 h left")),
        (timedelta(days=7), "needs_response", ("plain", "7 days 0 h left")),
        (timedelta(hours=5, minutes=30), "needs_response", ("danger", "5 h 30 min left")),
        (-timedelta(days=1, hours=2), "needs_response", ("overdue", "overdue by 1 day 2 h")),
        (timedelta(days=1), "under_review", None),
        (timedelta(days=1), "won", None),
        (-timedelta(days=1), "lost", None),
    ],
)
def test_countdown(left, status, expected):
    now = timezone.now()
    assert deadline_countdown(due=now + left, status=status, now=now) == expected


def test_reason_in_words():
    assert reason_label("product_not_received") == "Product not received"
    assert reason_label("fraudulent").startswith("Fraudulent")
    assert reason_label("some_new_reason") == "Some new reason"


# --- the page -------------------------------------------------------------------------------------


def test_the_page_shows_the_dispute_packet_and_form(responder, dispute):
    dispute.evidence = {"uncategorized_text": "staged text", "receipt": "file_abc"}
    dispute.evidence_submission_count = 0
    dispute.save()
    StudentBalance.objects.create(customer=dispute.payment.customer, minutes=420)
    balance = StudentBalance.objects.get()
    BalanceEntry.objects.create(
        balance=balance, kind="purchase", minutes=600, payment=dispute.payment
    )
    BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-60, note="Lesson 1")
    BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-120, note="Lesson 2")
    RefundRequestFactory(
        payment=dispute.payment,
        status="rejected",
        customer_note="I never used it",
        rejection_reason="Three lessons were taken.",
    )
    response = page(responder, dispute)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Product not received" in html
    assert "$1,234.56" in html and "123456" not in html
    assert "2 days 3 h left" in html or "2 days 2 h left" in html
    assert "staged text" in html and "File file_abc" in html
    assert reverse("admin:payments_payment_change", args=[dispute.payment.pk]) in html
    assert reverse("admin:payments_customer_change", args=[dispute.payment.customer.pk]) in html
    # The packet: hours from the balance ledger, the refund request and its notes.
    assert "used since the purchase 180 min in 2 lesson(s)" in html
    assert "Rejected because: Three lessons were taken." in html
    # The form, pre-filled: the staged text wins over the packet's suggestion.
    assert reverse("admin:payments_dispute_evidence", args=[dispute.pk]) in html
    assert 'value="Ana Lima"' in html and 'value="203.0.113.9"' in html
    assert ">staged text</textarea>" in html
    assert "Submit evidence…" in html and "Accept dispute…" in html


def test_without_the_permission_no_buttons_and_403(reader, dispute, fake):
    html = page(reader, dispute).content.decode()
    assert "Evidence packet" in html
    assert "Submit evidence…" not in html and "Accept dispute…" not in html
    assert reverse("admin:payments_dispute_evidence", args=[dispute.pk]) not in html
    for name in ("evidence", "submit", "accept"):
        url = reverse(f"admin:payments_dispute_{name}", args=[dispute.pk])
        assert reader.post(url, {"confirm": "1", "uncategorized_text": "x"}).status_code == 403
    assert fake.updates == [] and fake.closes == []
    assert not AdminAction.objects.exists()


def test_the_actions_are_post_only(responder, dispute, fake):
    for name in ("evidence", "submit", "accept"):
        url = reverse(f"admin:payments_dispute_{name}", args=[dispute.pk])
        assert responder.get(url).status_code == 405
    assert fake.updates == [] and fake.closes == []


def test_a_closed_dispute_shows_no_buttons(responder, dispute):
    dispute.status = Dispute.Status.WON
    dispute.save()
    html = page(responder, dispute).content.decode()
    assert "Submit evidence…" not in html and "Accept dispute…" not in html
    assert "it takes no more evidence" in html
    assert "left" not in html.split("Evidence due", 1)[1].split("Payment", 1)[0]


# --- save ------------------------------------------------------------------------------------


def test_save_with_a_file_and_the_packet_receipt(responder, dispute, fake):
    url = reverse("admin:payments_dispute_evidence", args=[dispute.pk])
    response = responder.post(
        url,
        {
            "product_description": "10 hours of Spanish",
            "uncategorized_text": "winning_evidence",
            "attach_receipt": "on",
            "customer_communication": SimpleUploadedFile("chat.pdf", PDF, "application/pdf"),
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("admin:payments_dispute_change", args=[dispute.pk])
    receipt = Receipt.objects.get(payment=dispute.payment, kind="receipt")
    assert [f["filename"] for f in fake.files] == ["chat.pdf", f"{receipt.number}.pdf"]
    sent = fake.updates[0]
    assert sent["submit"] is False
    assert sent["evidence"]["uncategorized_text"] == "winning_evidence"
    assert set(sent["evidence"]) >= {"customer_communication", "receipt"}
    assert DisputeResponse.objects.get().status == "succeeded"
    assert AdminAction.objects.filter(action="dispute.evidence_save").count() == 1


def test_invalid_form_shows_the_errors_and_sends_nothing(responder, dispute, fake):
    url = reverse("admin:payments_dispute_evidence", args=[dispute.pk])
    response = responder.post(
        url,
        {
            "refund_refusal_explanation": "x" * (LONG_TEXT_MAX_CHARS + 5),
            "receipt": SimpleUploadedFile("receipt.pdf", DOCX, "application/pdf"),
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert ERROR_FILE_TYPE.format(label="Receipt", filename="receipt.pdf") in html
    expected = ERROR_TEXT_TOO_LONG.format(
        label="Refund refusal explanation",
        length=LONG_TEXT_MAX_CHARS + 5,
        limit=LONG_TEXT_MAX_CHARS,
    )
    assert expected in html
    assert "Nothing was sent to Stripe" in html
    assert fake.files == [] and fake.updates == []
    assert not DisputeResponse.objects.exists() and not AdminAction.objects.exists()


def test_too_large_files_are_refused_on_the_form(responder, dispute, fake):
    url = reverse("admin:payments_dispute_evidence", args=[dispute.pk])
    big = PDF + b"0" * FILE_MAX_BYTES
    response = responder.post(
        url,
        {
            "uncategorized_file": SimpleUploadedFile("scan.pdf", big, "application/pdf"),
            "receipt": SimpleUploadedFile("a.pdf", PDF + b"0" * 2_300_000, "application/pdf"),
            "service_documentation": SimpleUploadedFile(
                "b.pdf", PDF + b"0" * 2_300_000, "application/pdf"
            ),
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        ERROR_FILE_TOO_LARGE.format(
            label="Other evidence (file)",
            filename="scan.pdf",
            size=format_size(len(big)),
            limit=format_size(FILE_MAX_BYTES),
        )
        in html
    )
    together = 2 * (len(PDF) + 2_300_000)
    assert (
        ERROR_FILES_TOO_LARGE.format(
            size=format_size(together), limit=format_size(FILES_TOTAL_MAX_BYTES)
        )
        in html
    )
    assert fake.files == [] and fake.updates == []


# --- submit and accept, behind a confirmation ----------------------------------------------------


def test_submit_asks_for_confirmation_then_sends(responder, dispute, fake):
    dispute.evidence = {"uncategorized_text": "winning_evidence"}
    dispute.has_evidence = True
    dispute.save()
    url = reverse("admin:payments_dispute_submit", args=[dispute.pk])
    confirm = responder.post(url)
    assert confirm.status_code == 200
    assert "for good" in confirm.content.decode() and "winning_evidence" in confirm.content.decode()
    assert fake.updates == []
    done = responder.post(url, {"confirm": "1"})
    assert done.status_code == 302
    assert fake.updates == [
        {
            "evidence": {"uncategorized_text": "winning_evidence"},
            "submit": True,
            "key": DisputeResponse.objects.get().idempotency_key,
        }
    ]
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.UNDER_REVIEW
    # A second confirmation (double click, back button) sends nothing more.
    again = responder.post(url, {"confirm": "1"}, follow=True)
    assert "already submitted" in again.content.decode()
    assert len(fake.updates) == 1


def test_accept_asks_for_confirmation_then_closes(responder, dispute, fake):
    url = reverse("admin:payments_dispute_accept", args=[dispute.pk])
    confirm = responder.post(url)
    assert "Accept and lose $1,234.56" in confirm.content.decode()
    assert fake.closes == []
    responder.post(url, {"confirm": "1"})
    assert len(fake.closes) == 1
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.LOST
    audit = AdminAction.objects.get(action="dispute.accept")
    assert audit.amount == 123456 and audit.ip_address == "127.0.0.1"


# --- the packet ------------------------------------------------------------------------------


def test_packet_from_our_own_data(dispute):
    customer = dispute.payment.customer
    PaymentFactory(customer=customer, product_name="Intro course", amount=2000)
    RefundFactory(payment=dispute.payment, amount=5000, stripe_id="re_prior")
    RefundRequestFactory(
        payment=dispute.payment,
        amount=5000,
        status="processed",
        customer_note="Half the lessons please",
        admin_notes="Goodwill, half refunded",
    )
    balance = StudentBalance.objects.create(customer=customer, minutes=240)
    BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-90, note="Lesson")
    # A lesson before the purchase is not counted against this package.
    old = BalanceEntry.objects.create(balance=balance, kind="usage", minutes=-30)
    BalanceEntry.objects.filter(pk=old.pk).update(
        created_at=dispute.payment.succeeded_at - timedelta(days=3)
    )
    packet = evidence_packet(dispute)
    assert packet.text["customer_name"] == "Ana Lima"
    assert packet.text["customer_email_address"] == customer.email
    assert packet.text["billing_address"] == "1 Main St, Lyon, FR"
    assert packet.text["customer_purchase_ip"] == "203.0.113.9"
    assert packet.text["product_description"].startswith("Hour package: 10 hours of Spanish")
    assert "$1,234.56" in packet.text["product_description"]
    assert packet.hours.purchased == 600
    assert packet.hours.used_since_purchase == 90
    assert packet.hours.consumed_from_package == 90
    assert packet.hours.balance_now == 240
    assert "1.5 h of this package were used" in packet.text["access_activity_log"]
    assert [line.description for line in packet.history] == ["Intro course"]
    assert "re_prior" in packet.refunds[0] and "$50.00 refunded" in packet.refunds[0]
    assert "Customer wrote: Half the lessons please" in packet.messages[0]
    assert "Staff note: Goodwill, half refunded" in packet.messages[0]
    assert "Refund requests and messages" in packet.text["uncategorized_text"]


def test_senior_approvers_respond_to_disputes_analysts_and_auditors_do_not():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("demo_staff", verbosity=0)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert users["senior"].has_perm("payments.respond_dispute")
    assert not users["analyst"].has_perm("payments.respond_dispute")
    assert not users["auditor"].has_perm("payments.respond_dispute")
