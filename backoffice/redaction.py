"""Personal data and secrets kept out of sight: masking for JSON (webhook payloads shown to staff
without payments.view_webhook_payload, erased customers' stored payloads) and for log text (the
RedactingFilter every handler in LOGGING runs).

Two rules, written once here:
- `mask_personal_data(value)`: a copy of a JSON value in which names, e-mail addresses, phone
  numbers, postal addresses and IP addresses are masked wherever they sit (any depth, any
  object: customer, charge billing_details, shipping, metadata ...), by key, plus any e-mail
  address inside other strings. Ids, amounts, statuses and countries stay, so a masked payload
  is still useful for debugging.
- `redact_text(text)`: log text with e-mail addresses shortened (j•••@example.com), card
  numbers (13-19 digits passing the Luhn check, spaces or dashes allowed) reduced to their
  last four, Stripe keys, webhook secrets, our API tokens, bearer tokens, passwords in URLs and
  the configured secrets themselves replaced.

Imports nothing of the project's apps: LOGGING names the filter, which Django configures
before apps load.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "•••"

# E-mail addresses anywhere in text (RFC-ish: good enough to find, not to validate).
EMAIL_RE = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)", re.UNICODE)

# Keys whose value is personal data, wherever they appear (compared lower-case).
PERSONAL_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "address",
        "shipping",
        "line1",
        "line2",
        "city",
        "postal_code",
        "state",
        "town",
        "ip",
        "ip_address",
        "client_ip",
        "first_name",
        "last_name",
        "full_name",
        "tax_id",
        "dob",
        "birth_date",
    }
)
# Key endings that mark personal data: customer_email, receipt_email, customer_email_address,
# billing_address, shipping_name, customer_phone, account_holder_name, student_name ...
PERSONAL_KEY_ENDINGS = ("_email", "_email_address", "_address", "_phone", "_name")
# ... except these, which name things, not people (Stripe's and our metadata contract's).
NOT_PERSONAL_KEYS = frozenset(
    {
        "product_name",
        "bank_name",
        "display_name",
        "statement_descriptor",
        "nickname",
        "event_name",
        "course_name",
        "package_name",
        "rule_name",
        "file_name",
        "filename",
    }
)
# Inside a personal object (an address, shipping, billing details) the country stays: it is
# what fraud and tax questions need, and identifies nobody.
KEPT_INSIDE_PERSONAL = frozenset({"country", "object", "id"})


def is_personal_key(key: str) -> bool:
    key = key.lower()
    if key in NOT_PERSONAL_KEYS:
        return False
    return key in PERSONAL_KEYS or key.endswith(PERSONAL_KEY_ENDINGS)


def mask_email(value: str) -> str:
    """'jane.doe@example.com' -> 'j•••@example.com': enough to tell two addresses apart in a
    log, not enough to write to the person."""
    return EMAIL_RE.sub(lambda m: f"{m.group(1)}{MASK}@{m.group(2)}", value)


def _mask_leaf(value: Any) -> Any:
    if value is None or value == "" or isinstance(value, bool):
        return value
    if isinstance(value, str) and EMAIL_RE.fullmatch(value.strip()):
        return mask_email(value.strip())
    return MASK


def _mask_personal_object(value: Any) -> Any:
    """Everything inside a personal key: leaves masked, except the country and ids."""
    if isinstance(value, dict):
        return {
            key: (item if str(key).lower() in KEPT_INSIDE_PERSONAL else _mask_personal_object(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_personal_object(item) for item in value]
    return _mask_leaf(value)


def mask_personal_data(value: Any) -> Any:
    """A copy of the JSON value `value` with its personal data masked (see the module's
    docstring). The input is not changed."""
    if isinstance(value, dict):
        return {
            key: (
                _mask_personal_object(item)
                if isinstance(key, str) and is_personal_key(key)
                else mask_personal_data(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_personal_data(item) for item in value]
    if isinstance(value, str):
        return mask_email(value)
    return value


# --- Log text ------------------------------------------------------------------------------

SECRET_PATTERNS = [
    # Stripe secret and restricted keys, webhook signing secrets, client secrets.
    (re.compile(r"\b((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]+"), rf"\1{MASK}"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]+"), rf"\1{MASK}"),
    (re.compile(r"\b((?:pi|seti)_[A-Za-z0-9]+_secret_)[A-Za-z0-9]+"), rf"\1{MASK}"),
    # Our API tokens (backoffice/api/tokens.py: bo_ + 43 url-safe characters).
    (re.compile(r"\b(bo_)[A-Za-z0-9_-]{20,}"), rf"\1{MASK}"),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # A password in a URL: scheme://user:password@host.
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), rf"\1{MASK}@"),
    # key=value / "key": "value" pairs naming a secret.
    (
        re.compile(
            r"(?i)\b((?:password|passwd|secret|api_key|apikey|token|cvc|cvv)\w*"
            r"""["']?\s*[:=]\s*["']?)[^\s"',;&]+"""
        ),
        rf"\1{MASK}",
    ),
]
# 13 to 19 digits, optionally grouped by single spaces or dashes: a card number candidate.
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not _luhn_valid(digits):
        return match.group(0)
    return f"{MASK}{digits[-4:]}"


def redact_text(text: str, *, secrets: tuple[str, ...] = ()) -> str:
    """`text` with secrets, card numbers and e-mail addresses masked (see the module's
    docstring). `secrets`: exact values to replace as well (the configured keys)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    text = CARD_RE.sub(_mask_card, text)
    return mask_email(text)


def configured_secrets() -> tuple[str, ...]:
    """The secret values in settings (long enough that replacing them is safe)."""
    from django.conf import settings

    if not settings.configured:
        return ()
    values = [
        getattr(settings, "SECRET_KEY", ""),
        *getattr(settings, "SECRET_KEY_FALLBACKS", []),
        getattr(settings, "STRIPE_SECRET_KEY", ""),
        *getattr(settings, "STRIPE_WEBHOOK_SECRETS", []),
        settings.DATABASES.get("default", {}).get("PASSWORD", ""),
    ]
    # Longest first: a key that contains another is replaced whole.
    return tuple(
        sorted({v for v in values if isinstance(v, str) and len(v) >= 8}, key=len, reverse=True)
    )


class RedactingFilter(logging.Filter):
    """A logging filter for handlers (LOGGING["handlers"][...]["filters"]): rewrites each
    record's message, and its traceback text, through `redact_text` before any formatter or
    later handler sees it. The record is changed in place (msg formatted, args dropped), so
    every handler after this one gets the redacted text too. Never drops a record."""

    def __init__(self, name: str = ""):
        super().__init__(name)
        self._secrets: tuple[str, ...] | None = None

    def _redact(self, text: str) -> str:
        if self._secrets is None:
            self._secrets = configured_secrets()
        return redact_text(text, secrets=self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what we have, redacted
            message = f"{record.msg} {record.args}"
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        record._redacted = True
        return True
