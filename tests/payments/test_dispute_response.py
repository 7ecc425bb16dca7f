"""Answering a dispute (payments.services.dispute_response): save, submit and accept, each
once whatever the clicks and timeouts, refused where Stripe would refuse, validated before
anything is sent, audited. The gateway is faked at its boundary here; the end-to-end runs
against localstripe are in tests/reports/test_dispute_respond_localstripe.py."""

import dataclasses
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from backoffice.formats import format_datetime
from backoffice.models import AdminAction
from payments import gateway
from payments.dispute_evidence import (
    ERROR_FILE_TYPE,
    ERROR_FILES_TOO_LARGE,
    ERROR_TEXT_TOO_LONG,
    ERROR_TEXT_TOTAL_TOO_LONG,
    FILES_TOTAL_MAX_BYTES,
    LONG_TEXT_MAX_CHARS,
    SHORT_TEXT_MAX_CHARS,
    EvidenceFile,
    evidence_errors,
    file_type,
    format_size,
)
from payments.exceptions import GatewayTimeout, InvalidRequest
from payments.models import Dispute, DisputeResponse, Payment
from payments.services import dispute_response as service
from payments.services.dispute_response import (
    ERROR_CLOSED,
    ERROR_IN_FLIGHT,
    ERROR_NO_PERMISSION,
    ERROR_NOTHING_TO_SAVE,
    ERROR_NOTHING_TO_SUBMIT,
    ERROR_PAST_DUE,
    ERROR_SUBMITTED,
    MESSAGE_UNKNOWN,
    DisputeResponseNotAllowed,
    dispute_accept,
    dispute_evidence_save,
    dispute_evidence_submit,
)
from tests.factories import DisputeFactory, UserFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
DOCX = b"PK\x03\x04" + b"\x00" * 64  # a zip (Word document) renamed .pdf


@pytest.fixture
def staff(db):
    user = UserFactory(username="disputes")
    user.user_permissions.add(Permission.objects.get(codename="respond_dispute"))
    return user


@pytest.fixture
def dispute(db):
    return DisputeFactory(stripe_id="dp_open", amount=5000, currency="usd")


class FakeStripe:
    """Stands in for the gateway's dispute and file calls; records every call and answers
    like Stripe (staged evidence merges, submit moves the dispute under review, close loses
    it)."""

    def __init__(self, dispute, *, fail_with=None):
        self.dispute = dispute
        self.updates, self.closes, self.files = [], [], []
        self.fail_with = fail_with
        self.evidence = dict(dispute.evidence)
        self.submissions = 0

    def answer(self, status):
        payment = self.dispute.payment
        return gateway.StripeDispute(
            id=self.dispute.stripe_id,
            charge_id=payment.stripe_charge_id,
            payment_intent_id=payment.stripe_payment_intent_id,
            amount=self.dispute.amount,
            currency=self.dispute.currency,
            status=status,
            created=self.dispute.created,
            reason=self.dispute.reason,
            evidence_due_by=self.dispute.evidence_due_by,
            evidence=dict(self.evidence),
            evidence_submission_count=self.submissions,
            has_evidence=bool(self.evidence),
        )

    def update(self, *, dispute_id, evidence, submit, idempotency_key, client=None):
        self.updates.append({"evidence": dict(evidence), "submit": submit, "key": idempotency_key})
        if self.fail_with:
            raise self.fail_with
        self.evidence.update(evidence)
        if submit:
            self.submissions += 1
        return self.answer("under_review" if submit else self.dispute.status)

    def close(self, *, dispute_id, idempotency_key, client=None):
        self.closes.append(idempotency_key)
        if self.fail_with:
            raise self.fail_with
        return self.answer("lost")

    def file_create(
        self, *, content, filename, purpose="dispute_evidence", idempotency_key, client=None
    ):
        self.files.append({"filename": filename, "purpose": purpose, "key": idempotency_key})
        return gateway.StripeFile(
            id=f"file_{len(self.files)}", size=len(content), type="pdf", filename=filename
        )

    def install(self, monkeypatch):
        monkeypatch.setattr(gateway, "stripe_dispute_update", self.update)
        monkeypatch.setattr(gateway, "stripe_dispute_close", self.close)
        monkeypatch.setattr(gateway, "stripe_file_create", self.file_create)
        return self


@pytest.fixture
def fake(dispute, monkeypatch):
    return FakeStripe(dispute).install(monkeypatch)


# --- validation (payments.dispute_evidence) --------------------------------------------------


def test_file_type_reads_the_content_not_the_name():
    assert file_type(PDF) == ("pdf", "application/pdf")
    assert file_type(PNG) == ("png", "image/png")
    assert file_type(JPG) == ("jpg", "image/jpeg")
    assert file_type(DOCX) is None
    assert file_type(b"GIF89a") is None


def test_a_word_document_named_pdf_is_refused():
    errors = evidence_errors({}, [EvidenceFile("receipt", "receipt.pdf", DOCX)])
    assert errors == {"receipt": [ERROR_FILE_TYPE.format(label="Receipt", filename="receipt.pdf")]}


def test_text_over_its_field_limit_and_over_the_combined_limit():
    long_ok = "x" * LONG_TEXT_MAX_CHARS
    assert evidence_errors({"uncategorized_text": long_ok}, []) == {}
    errors = evidence_errors({"uncategorized_text": long_ok + "x"}, [])
    assert errors["uncategorized_text"] == [
        ERROR_TEXT_TOO_LONG.format(
            label="Other evidence (text)", length=LONG_TEXT_MAX_CHARS + 1, limit=LONG_TEXT_MAX_CHARS
        )
    ]
    assert "customer_name" in evidence_errors(
        {"customer_name": "x" * (SHORT_TEXT_MAX_CHARS + 1)}, []
    )
    # Eight long fields at their limit: each fine, 160,000 together is not.
    text = {field: long_ok for field in service.TEXT_FIELDS if field in service.TEXT_FIELDS[-8:]}
    assert evidence_errors(text, [])["__all__"] == [
        ERROR_TEXT_TOTAL_TOO_LONG.format(length=160_000, limit=150_000)
    ]


def test_files_too_large_one_by_one_and_together():
    big = PDF + b"0" * 5_000_000
    errors = evidence_errors({}, [EvidenceFile("receipt", "big.pdf", big)])
    assert errors["receipt"][0].startswith(
        "Receipt: big.pdf is 5.0 MB; Stripe accepts files up to 5.0 MB"
    )
    two = [
        EvidenceFile("receipt", "a.pdf", PDF + b"0" * 2_400_000),
        EvidenceFile("uncategorized_file", "b.png", PNG + b"0" * 2_400_000),
    ]
    errors = evidence_errors({}, two)
    assert list(errors) == ["__all__"]
    total = sum(f.size for f in two)
    assert errors["__all__"] == [
        ERROR_FILES_TOO_LARGE.format(
            size=format_size(total), limit=format_size(FILES_TOTAL_MAX_BYTES)
        )
    ]


def test_invalid_evidence_is_refused_before_anything_is_stored_or_sent(staff, dispute, fake):
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_save(
            dispute=dispute,
            text={"product_description": "x" * (LONG_TEXT_MAX_CHARS + 1)},
            files=[EvidenceFile("receipt", "receipt.pdf", DOCX)],
            acting_user=staff,
        )
    assert set(refused.value.errors) == {"product_description", "receipt"}
    assert fake.updates == [] and fake.files == []
    assert not DisputeResponse.objects.exists()
    assert not AdminAction.objects.exists()


# --- save, submit, accept -------------------------------------------------------------------


def test_save_uploads_files_then_stages_evidence_with_keys_stored_before(staff, dispute, fake):
    result = dispute_evidence_save(
        dispute=dispute,
        text={
            "product_description": " Course: Python ",
            "customer_name": "",
            "service_date": "2026-11-01",
        },
        files=[EvidenceFile("receipt", "REC-1.pdf", PDF)],
        acting_user=staff,
    )
    response = DisputeResponse.objects.get()
    key = f"dispute_response:{response.pk}"
    assert fake.files == [
        {"filename": "REC-1.pdf", "purpose": "dispute_evidence", "key": f"{key}:file:receipt"}
    ]
    assert fake.updates == [
        {
            "evidence": {
                "product_description": "Course: Python",
                "service_date": "2026-11-01",
                "receipt": "file_1",
            },
            "submit": False,
            "key": key,
        }
    ]
    assert result.succeeded and result.idempotency_key == key
    assert response.status == DisputeResponse.Status.SUCCEEDED
    assert response.files == [
        {
            "field": "receipt",
            "id": "file_1",
            "filename": "REC-1.pdf",
            "size": len(PDF),
            "type": "pdf",
        }
    ]
    dispute.refresh_from_db()
    # Mirrored from Stripe's answer through sync.upsert_disputes.
    assert dispute.evidence["receipt"] == "file_1"
    assert dispute.has_evidence and dispute.status == Dispute.Status.NEEDS_RESPONSE
    audit = AdminAction.objects.get()
    assert audit.action == "dispute.evidence_save"
    assert audit.actor == staff and audit.amount == 5000 and audit.currency == "usd"
    assert audit.target_id == str(dispute.pk)
    assert audit.details["idempotency_key"] == key
    assert audit.details["files"] == [
        {"field": "receipt", "filename": "REC-1.pdf", "size": len(PDF)}
    ]


def test_submit_sends_the_staged_evidence_for_good(staff, dispute, fake):
    dispute_evidence_save(
        dispute=dispute, text={"uncategorized_text": "winning_evidence"}, acting_user=staff
    )
    result = dispute_evidence_submit(dispute=dispute, acting_user=staff)
    assert fake.updates[-1]["submit"] is True
    assert fake.updates[-1]["evidence"] == {"uncategorized_text": "winning_evidence"}
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.UNDER_REVIEW
    assert dispute.evidence_submission_count == 1
    assert result.message == service.MESSAGE_SUBMITTED.format(status="under review")
    assert list(AdminAction.objects.order_by("id").values_list("action", flat=True)) == [
        "dispute.evidence_save",
        "dispute.evidence_submit",
    ]


def test_submitting_twice_makes_one_call(staff, dispute, fake):
    """The second click finds the dispute under review (Stripe's answer to the first)."""
    dispute_evidence_submit(dispute=dispute, text={"uncategorized_text": "ours"}, acting_user=staff)
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_submit(dispute=dispute, acting_user=staff)
    assert refused.value.message == ERROR_SUBMITTED.format(status="under review")
    assert len(fake.updates) == 1
    assert DisputeResponse.objects.count() == 1


def test_a_submit_in_flight_refuses_a_second(staff, dispute, fake):
    """Two submits at once: the first holds an open response (its call still running), so
    the second is refused without a call (on PostgreSQL the row lock serialises them)."""
    DisputeResponse.objects.create(
        dispute=dispute,
        kind=DisputeResponse.Kind.SUBMIT,
        idempotency_key="dispute_response:first",
        files_uploaded=True,
        last_attempt_at=timezone.now(),
    )
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_submit(
            dispute=dispute, text={"uncategorized_text": "x"}, acting_user=staff
        )
    assert refused.value.message == ERROR_IN_FLIGHT
    assert fake.updates == []


def test_accept_closes_the_dispute(staff, dispute, fake):
    result = dispute_accept(dispute=dispute, acting_user=staff)
    response = DisputeResponse.objects.get()
    assert fake.closes == [f"dispute_response:{response.pk}"]
    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.LOST and dispute.closed_at is not None
    assert dispute.payment.status == Payment.Status.DISPUTED
    assert result.message == service.MESSAGE_ACCEPTED.format(status="lost")
    assert AdminAction.objects.get().action == "dispute.accept"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("won", ERROR_CLOSED.format(status="won")),
        ("lost", ERROR_CLOSED.format(status="lost")),
        ("warning_closed", ERROR_CLOSED.format(status="warning: closed")),
        ("under_review", ERROR_SUBMITTED.format(status="under review")),
    ],
)
def test_closed_or_submitted_disputes_take_nothing(staff, fake, status, message):
    dispute = DisputeFactory(status=status)
    fake.dispute = dispute
    for call, kwargs in (
        (dispute_evidence_save, {"text": {"uncategorized_text": "x"}}),
        (dispute_evidence_submit, {"text": {"uncategorized_text": "x"}}),
        (dispute_accept, {}),
    ):
        with pytest.raises(DisputeResponseNotAllowed) as refused:
            call(dispute=dispute, acting_user=staff, **kwargs)
        assert refused.value.message == message
    assert fake.updates == [] and fake.closes == []
    assert not AdminAction.objects.exists()


def test_past_the_deadline_evidence_is_refused_but_accepting_is_not(staff, fake):
    due = timezone.now() - timedelta(hours=1)
    dispute = DisputeFactory(evidence_due_by=due)
    fake.dispute = dispute
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_save(dispute=dispute, text={"uncategorized_text": "x"}, acting_user=staff)
    assert refused.value.message == ERROR_PAST_DUE.format(due=format_datetime(due))
    assert format_datetime(due).endswith(" UTC")
    dispute_accept(dispute=dispute, acting_user=staff)
    assert len(fake.closes) == 1


def test_nothing_to_save_or_submit(staff, dispute, fake):
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_save(dispute=dispute, text={"customer_name": "  "}, acting_user=staff)
    assert refused.value.message == ERROR_NOTHING_TO_SAVE
    with pytest.raises(DisputeResponseNotAllowed) as refused:
        dispute_evidence_submit(dispute=dispute, acting_user=staff)
    assert refused.value.message == ERROR_NOTHING_TO_SUBMIT


def test_without_the_permission_nothing_happens(dispute, fake):
    clerk = UserFactory(username="clerk")
    for call in (dispute_evidence_save, dispute_evidence_submit, dispute_accept):
        kwargs = {} if call is dispute_accept else {"text": {"uncategorized_text": "x"}}
        with pytest.raises(DisputeResponseNotAllowed) as refused:
            call(dispute=dispute, acting_user=clerk, **kwargs)
        assert refused.value.message == ERROR_NO_PERMISSION
    assert fake.updates == [] and fake.closes == []


# --- unknown outcomes: the same request again, never a new one ---------------------------------


def test_a_timeout_leaves_the_response_open_and_the_next_click_resends_it(
    staff, dispute, fake, monkeypatch
):
    fake.fail_with = GatewayTimeout()
    result = dispute_evidence_submit(
        dispute=dispute, text={"uncategorized_text": "first"}, acting_user=staff
    )
    assert not result.succeeded and result.message == MESSAGE_UNKNOWN
    response = DisputeResponse.objects.get()
    assert response.status == DisputeResponse.Status.UNKNOWN
    # A click within the window is refused as in flight ...
    with pytest.raises(DisputeResponseNotAllowed, match="already being sent"):
        dispute_evidence_submit(
            dispute=dispute, text={"uncategorized_text": "second"}, acting_user=staff
        )
    # ... after it, the SAME response is re-sent with its key and evidence, whatever the click.
    DisputeResponse.objects.filter(pk=response.pk).update(
        last_attempt_at=timezone.now() - service.IN_FLIGHT_WINDOW - timedelta(seconds=1)
    )
    fake.fail_with = None
    result = dispute_evidence_save(
        dispute=dispute, text={"uncategorized_text": "second"}, acting_user=staff
    )
    assert result.resumed and not result.succeeded
    assert [u["key"] for u in fake.updates] == [response.idempotency_key] * 2
    assert fake.updates[-1] == {
        "evidence": {"uncategorized_text": "first"},
        "submit": True,
        "key": response.idempotency_key,
    }
    response.refresh_from_db()
    assert response.status == DisputeResponse.Status.SUCCEEDED and response.attempts == 2
    assert DisputeResponse.objects.count() == 1
    assert AdminAction.objects.filter(details__resumed=True).count() == 1


def test_stripe_refusing_ends_the_response(staff, dispute, fake):
    fake.fail_with = InvalidRequest("This dispute is already closed.")
    with pytest.raises(DisputeResponseNotAllowed, match="already closed"):
        dispute_accept(dispute=dispute, acting_user=staff)
    response = DisputeResponse.objects.get()
    assert response.status == DisputeResponse.Status.FAILED
    assert response.error == "This dispute is already closed."
    # Over: the next click is a new response with a new key.
    fake.fail_with = None
    dispute_accept(dispute=dispute, acting_user=staff)
    assert len(set(fake.closes)) == 2


def test_interrupted_while_uploading_files_starts_afresh(staff, dispute, fake):
    stale = DisputeResponse.objects.create(
        dispute=dispute,
        kind=DisputeResponse.Kind.SAVE,
        idempotency_key="dispute_response:stale",
        files_uploaded=False,
        last_attempt_at=timezone.now() - timedelta(hours=1),
    )
    result = dispute_evidence_save(
        dispute=dispute, text={"uncategorized_text": "again"}, acting_user=staff
    )
    stale.refresh_from_db()
    assert (
        stale.status == DisputeResponse.Status.FAILED and stale.error == service.ERROR_INTERRUPTED
    )
    assert result.succeeded and not result.resumed
    assert fake.updates[0]["key"] != "dispute_response:stale"


def test_the_database_refuses_a_second_open_response(dispute):
    from django.db import IntegrityError, transaction

    DisputeResponse.objects.create(dispute=dispute, kind="save", idempotency_key="k1")
    with pytest.raises(IntegrityError), transaction.atomic():
        DisputeResponse.objects.create(dispute=dispute, kind="submit", idempotency_key="k2")


def test_mapper_reads_evidence_and_its_details():
    obj = {
        "id": "dp_1",
        "charge": "ch_1",
        "amount": 100,
        "currency": "usd",
        "status": "needs_response",
        "created": 1_700_000_000,
        "evidence": {
            "uncategorized_text": "hello",
            "receipt": {"id": "file_9", "object": "file"},
            "customer_name": None,
            "enhanced_evidence": {"visa_compelling_evidence_3": {}},
        },
        "evidence_details": {"due_by": 1_700_600_000, "submission_count": 1, "has_evidence": True},
    }
    row = gateway.dispute_from_stripe(obj)
    assert row.evidence == {"uncategorized_text": "hello", "receipt": "file_9"}
    assert row.evidence_submission_count == 1 and row.has_evidence
    assert dataclasses.replace(row, evidence={}).evidence == {}
