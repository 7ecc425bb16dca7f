"""Receipts and credit notes: numbering, idempotence, signals, repair job, download."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.models import Payment
from payments.signals import payment_succeeded, refund_processed
from reports.models import DocumentSequence, Receipt
from reports.receipts import (
    ERR_NOT_CAPTURED,
    credit_note_issue,
    credit_notes_issue_missing,
    receipt_issue,
    receipts_issue_missing,
)
from tests.factories import PaymentFactory, RefundFactory
from tests.reports.helpers import pdf_text, staff_with

pytestmark = pytest.mark.django_db
YEAR = timezone.localdate().year


def test_receipts_are_numbered_per_year_without_gaps():
    first = receipt_issue(payment=PaymentFactory())
    second = receipt_issue(payment=PaymentFactory())
    assert (first.number, second.number) == (f"REC-{YEAR}-000001", f"REC-{YEAR}-000002")
    assert DocumentSequence.objects.get(kind="receipt", year=YEAR).last_number == 2


def test_issuing_twice_returns_the_same_receipt_and_takes_no_number():
    payment = PaymentFactory()
    first = receipt_issue(payment=payment)
    again = receipt_issue(payment=payment)
    assert again.pk == first.pk
    assert Receipt.objects.count() == 1
    assert DocumentSequence.objects.get(kind="receipt", year=YEAR).last_number == 1


def test_a_payment_that_was_never_captured_gets_no_receipt():
    payment = PaymentFactory(failed=True)
    with pytest.raises(ValueError) as exc:
        receipt_issue(payment=payment)
    assert str(exc.value) == ERR_NOT_CAPTURED.format(payment=payment)
    assert not DocumentSequence.objects.filter(last_number__gt=0).exists()


def test_issuing_writes_an_audit_row_in_the_same_transaction():
    receipt = receipt_issue(payment=PaymentFactory(amount=4200))
    action = AdminAction.objects.get(action="receipt_issue")
    assert (action.target_repr, action.amount, action.currency) == (receipt.number, 4200, "usd")


def test_payment_succeeded_signal_issues_the_receipt():
    payment = PaymentFactory()
    payment_succeeded.send(sender=Payment, payment=payment)
    payment_succeeded.send(sender=Payment, payment=payment)  # delivered twice: still one
    receipt = Receipt.objects.get()
    assert (receipt.payment, receipt.amount, receipt.kind) == (payment, 5000, "receipt")


def test_a_failing_receipt_never_breaks_the_sender(caplog):
    payment_succeeded.send(sender=Payment, payment=PaymentFactory(failed=True))
    assert not Receipt.objects.exists()
    assert "not issued" in caplog.text


def test_refund_processed_signal_issues_one_credit_note_per_stripe_refund():
    payment = PaymentFactory(amount=9000)
    kwargs = {"payment": payment, "refund_amount": 2500, "refund_request": None}
    refund_processed.send(sender=Payment, stripe_refund_id="re_1", **kwargs)
    refund_processed.send(sender=Payment, stripe_refund_id="re_1", **kwargs)
    refund_processed.send(sender=Payment, stripe_refund_id="re_2", **kwargs)
    notes = list(Receipt.objects.filter(kind="credit_note").order_by("sequence"))
    assert [n.number for n in notes] == [f"CN-{YEAR}-000001", f"CN-{YEAR}-000002"]
    assert [n.amount for n in notes] == [2500, 2500]
    assert not Receipt.objects.filter(kind="receipt").exists()  # its own sequence


def test_repair_job_issues_missing_receipts_in_one_gap_free_run():
    receipt_issue(payment=PaymentFactory())
    PaymentFactory.create_batch(7)
    PaymentFactory(failed=True)
    PaymentFactory(status=Payment.Status.PENDING)
    assert receipts_issue_missing() == {"receipts_issued": 7}
    sequences = sorted(Receipt.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, 9))
    assert receipts_issue_missing() == {"receipts_issued": 0}
    # The single path continues the same sequence.
    assert receipt_issue(payment=PaymentFactory()).sequence == 9


def test_repair_job_query_count_does_not_grow_with_the_payments():
    def queries_for(n: int) -> int:
        PaymentFactory.create_batch(n)
        with CaptureQueriesContext(connection) as context:
            assert receipts_issue_missing() == {"receipts_issued": n}
        return len(context)

    assert queries_for(3) == queries_for(30)


def test_repair_job_respects_small_batches(monkeypatch):
    monkeypatch.setattr("reports.receipts.MISSING_BATCH", 3)
    PaymentFactory.create_batch(8)
    assert receipts_issue_missing() == {"receipts_issued": 8}
    assert sorted(Receipt.objects.values_list("sequence", flat=True)) == list(range(1, 9))
    assert AdminAction.objects.filter(action="receipts_issue_missing").count() == 3


def test_credit_notes_for_refunds_made_outside_the_queue():
    refund = RefundFactory(stripe_id="re_dash", amount=700)
    RefundFactory(status="pending")
    credit_note_issue(payment=refund.payment, refund_amount=300, stripe_refund_id="re_queue")
    assert credit_notes_issue_missing() == {"credit_notes_issued": 1}
    assert credit_notes_issue_missing() == {"credit_notes_issued": 0}
    note = Receipt.objects.get(reference="refund:re_dash")
    assert (note.amount, note.sequence) == (700, 2)


def test_receipt_pdf_download_needs_the_view_permission(client):
    receipt = receipt_issue(payment=PaymentFactory(description="Spanish A1 Complete"))
    url = reverse("admin:reports_receipt_pdf", args=[receipt.pk])

    client.force_login(staff_with("payments.view_payment", username="nope"))
    assert client.get(url).status_code == 403

    client.force_login(staff_with("reports.view_receipt", username="clerk"))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert f"Receipt REC-{YEAR}-000001" in text
    assert "Spanish A1 Complete" in text
    assert "50.00 USD" in text
    assert "Paid in full" in text


def test_credit_note_pdf_names_the_receipt_it_credits(admin_client):
    payment = PaymentFactory(amount=12000, currency="eur")
    receipt = receipt_issue(payment=payment)
    note = credit_note_issue(payment=payment, refund_amount=4550, stripe_refund_id="re_9")
    response = admin_client.get(reverse("admin:reports_receipt_pdf", args=[note.pk]))
    text = pdf_text(response.content)
    assert f"Credit note CN-{YEAR}-000001" in text
    assert receipt.number in text
    assert "-45.50 EUR" in text
    assert "re_9" in text


def test_payment_page_links_its_receipt_for_staff_who_may_see_receipts(client):
    payment = PaymentFactory()
    receipt = receipt_issue(payment=payment)
    page = reverse("admin:payments_payment_change", args=[payment.pk])
    link = reverse("admin:reports_receipt_pdf", args=[receipt.pk])

    client.force_login(staff_with("payments.view_payment", username="viewer"))
    assert link not in client.get(page).content.decode()

    client.force_login(
        staff_with("payments.view_payment", "reports.view_receipt", username="clerk")
    )
    body = client.get(page).content.decode()
    assert link in body
    assert receipt.number in body


def test_receipts_changelist_search_and_query_count(admin_client, django_assert_max_num_queries):
    for _ in range(5):
        receipt_issue(payment=PaymentFactory())
    url = reverse("admin:reports_receipt_changelist")
    response = admin_client.get(url, {"q": f"rec-{YEAR}-000003"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list.values_list("sequence", flat=True)) == [3]
    for _ in range(20):
        receipt_issue(payment=PaymentFactory())
    with django_assert_max_num_queries(12):
        assert admin_client.get(url).status_code == 200
