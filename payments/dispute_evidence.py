"""Stripe's dispute evidence fields and the limits Stripe puts on them, checked before anything
is sent (payments.services.dispute_response validates with `evidence_errors`).

Sources (checked November 2026):
- Text fields and their lengths: the API reference of "Update a dispute" (`evidence` hash).
  The long free-text fields say "Has a maximum character count of 20,000"; the other text
  fields are strings of at most 5,000 characters in Stripe's OpenAPI spec; "the combined
  character count of all fields is limited to 150,000".
- Files: the file upload guide lists purpose `dispute_evidence` as PDF, JPEG or PNG up to 5 MB
  a file; the disputes guide limits the combined size of a response's evidence files to
  4.5 MB. A file is recognised by its first bytes (magic numbers), never by its name: a
  renamed .docx is refused here rather than by Stripe (or worse, by the bank).
"""

from __future__ import annotations

from dataclasses import dataclass

# Free text Stripe accepts up to 20,000 characters each.
LONG_TEXT_FIELDS = (
    "product_description",
    "access_activity_log",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "duplicate_charge_explanation",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "uncategorized_text",
)
# Short strings (names, addresses, dates, ids), 5,000 characters each.
SHORT_TEXT_FIELDS = (
    "customer_name",
    "customer_email_address",
    "billing_address",
    "customer_purchase_ip",
    "service_date",
    "duplicate_charge_id",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
)
TEXT_FIELDS = SHORT_TEXT_FIELDS + LONG_TEXT_FIELDS
# Fields that hold the id of a file uploaded with purpose `dispute_evidence`.
FILE_FIELDS = (
    "receipt",
    "customer_communication",
    "service_documentation",
    "refund_policy",
    "cancellation_policy",
    "customer_signature",
    "duplicate_charge_documentation",
    "shipping_documentation",
    "uncategorized_file",
)
EVIDENCE_FIELDS = TEXT_FIELDS + FILE_FIELDS

LONG_TEXT_MAX_CHARS = 20_000
SHORT_TEXT_MAX_CHARS = 5_000
TOTAL_TEXT_MAX_CHARS = 150_000
# Stripe writes "5MB" and "4.5 MB"; read as decimal megabytes, the stricter reading.
FILE_MAX_BYTES = 5_000_000
FILES_TOTAL_MAX_BYTES = 4_500_000

FIELD_LABELS = {
    "product_description": "Product or service description",
    "access_activity_log": "Access / activity log",
    "cancellation_policy_disclosure": "Cancellation policy disclosure",
    "cancellation_rebuttal": "Cancellation rebuttal",
    "duplicate_charge_explanation": "Duplicate charge explanation",
    "refund_policy_disclosure": "Refund policy disclosure",
    "refund_refusal_explanation": "Refund refusal explanation",
    "uncategorized_text": "Other evidence (text)",
    "customer_name": "Customer name",
    "customer_email_address": "Customer e-mail address",
    "billing_address": "Billing address",
    "customer_purchase_ip": "Customer purchase IP",
    "service_date": "Service date",
    "duplicate_charge_id": "Duplicate charge id",
    "shipping_address": "Shipping address",
    "shipping_carrier": "Shipping carrier",
    "shipping_date": "Shipping date",
    "shipping_tracking_number": "Shipping tracking number",
    "receipt": "Receipt",
    "customer_communication": "Customer communication",
    "service_documentation": "Service documentation",
    "refund_policy": "Refund policy",
    "cancellation_policy": "Cancellation policy",
    "customer_signature": "Customer signature",
    "duplicate_charge_documentation": "Duplicate charge documentation",
    "shipping_documentation": "Shipping documentation",
    "uncategorized_file": "Other evidence (file)",
}

ERROR_UNKNOWN_FIELD = "{field} is not a Stripe evidence field."
ERROR_TEXT_TOO_LONG = "{label}: {length:,} characters; Stripe accepts at most {limit:,}."
ERROR_TEXT_TOTAL_TOO_LONG = (
    "The evidence text is {length:,} characters in all; Stripe accepts at most {limit:,}."
)
ERROR_FILE_TYPE = (
    "{label}: {filename} is not a PDF, PNG or JPG file (its content was checked, not its name)."
)
ERROR_FILE_EMPTY = "{label}: {filename} is empty."
ERROR_FILE_TOO_LARGE = "{label}: {filename} is {size}; Stripe accepts files up to {limit}."
ERROR_FILES_TOO_LARGE = "The evidence files are {size} together; Stripe accepts at most {limit}."

# First bytes of each accepted type -> (Stripe type, MIME type).
_MAGIC = (
    (b"%PDF-", "pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
)


@dataclass(frozen=True)
class EvidenceFile:
    """A file staff attached to one evidence field, not yet uploaded."""

    field: str
    filename: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)


def file_type(content: bytes) -> tuple[str, str] | None:
    """(type, MIME type) of a PDF, PNG or JPG by its magic bytes, else None."""
    for magic, kind, mime in _MAGIC:
        if content.startswith(magic):
            return kind, mime
    return None


def format_size(size: int) -> str:
    """Bytes for a person: 4500000 -> '4.5 MB', 12000 -> '12 kB', 900 -> '900 bytes'."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} kB"
    return f"{size} bytes"


def text_limit(field: str) -> int:
    return LONG_TEXT_MAX_CHARS if field in LONG_TEXT_FIELDS else SHORT_TEXT_MAX_CHARS


def evidence_errors(text: dict[str, str], files: list[EvidenceFile]) -> dict[str, list[str]]:
    """Every reason Stripe would refuse this evidence, by field ("__all__" for the combined
    limits); empty when it can be sent. Text in characters, files in bytes."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for field, value in text.items():
        if field not in TEXT_FIELDS:
            add("__all__", ERROR_UNKNOWN_FIELD.format(field=field))
            continue
        limit = text_limit(field)
        if len(value) > limit:
            add(
                field,
                ERROR_TEXT_TOO_LONG.format(
                    label=FIELD_LABELS[field], length=len(value), limit=limit
                ),
            )
    total_chars = sum(len(value) for value in text.values())
    if total_chars > TOTAL_TEXT_MAX_CHARS:
        add(
            "__all__",
            ERROR_TEXT_TOTAL_TOO_LONG.format(length=total_chars, limit=TOTAL_TEXT_MAX_CHARS),
        )

    for upload in files:
        if upload.field not in FILE_FIELDS:
            add("__all__", ERROR_UNKNOWN_FIELD.format(field=upload.field))
            continue
        label = FIELD_LABELS[upload.field]
        if upload.size == 0:
            add(upload.field, ERROR_FILE_EMPTY.format(label=label, filename=upload.filename))
        elif file_type(upload.content) is None:
            add(upload.field, ERROR_FILE_TYPE.format(label=label, filename=upload.filename))
        elif upload.size > FILE_MAX_BYTES:
            add(
                upload.field,
                ERROR_FILE_TOO_LARGE.format(
                    label=label,
                    filename=upload.filename,
                    size=format_size(upload.size),
                    limit=format_size(FILE_MAX_BYTES),
                ),
            )
    total_bytes = sum(upload.size for upload in files)
    if total_bytes > FILES_TOTAL_MAX_BYTES:
        add(
            "__all__",
            ERROR_FILES_TOO_LARGE.format(
                size=format_size(total_bytes), limit=format_size(FILES_TOTAL_MAX_BYTES)
            ),
        )
    return errors
