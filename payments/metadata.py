"""The metadata contract: what the marketplace's checkout puts on each PaymentIntent's
`metadata`, and how the mirror reads it. The README has the table for checkout developers.

Stripe metadata is free text that anyone with the API key can write, so every value is
validated here: a missing or malformed value never stops a payment from syncing; it is left
out and named in `problems`, which the payment page and `--fix-inconsistencies` show. Metadata
never decides an amount: prices, fees and refunds come from Stripe's own fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from payments.models import Payment

# Keys of the contract (all optional for Stripe; which ones a payment needs depends on its kind).
INSTRUCTOR_ACCOUNT = "instructor_account"
INSTRUCTOR_EMAIL = "instructor_email"
INSTRUCTOR_ID = "instructor_id"
INSTRUCTOR_NAME = "instructor_name"
PRODUCT_KIND = "product_kind"
PRODUCT_ID = "product_id"
PRODUCT_NAME = "product_name"
PACKAGE_MINUTES = "package_minutes"
COUPON_CODE = "coupon_code"
# What the checkout took off for the coupon, in minor units of the payment's currency (from
# our quote, POST /api/v1/coupons/quote/): the payment's amount is the price after it.
# Optional: without it the discount is computed from the coupon's terms and marked so.
COUPON_DISCOUNT = "coupon_discount"
BOOKING_ID = "booking_id"
# The buyer's IP as the checkout saw it (Stripe does not give it on a charge); the fraud rules
# count customers per IP (payments/fraud_rules.py). Optional: missing is no problem.
CLIENT_IP = "client_ip"
# When an hour package's minutes expire (payments/hours.py; without it, HOUR_PACKAGE_VALID_DAYS
# after the payment): an ISO 8601 date (the package is valid through that day, UTC), an ISO
# 8601 date-time with its UTC offset, or Unix seconds as Stripe writes times.
EXPIRES_AT = "expires_at"

# Stripe limits metadata values to 500 characters; our columns are shorter.
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 255
MAX_PACKAGE_MINUTES = 100_000  # about 1,666 hours: more is a typo, not a package
MAX_DISCOUNT = 10**12  # minor units; Stripe's largest charge is far below
_ACCOUNT_RE = re.compile(r"^acct_[A-Za-z0-9]{1,250}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:\-/#]+$")

MSG_NO_INSTRUCTOR = "No instructor: metadata has neither instructor_account nor instructor_email."
MSG_BAD_ACCOUNT = "instructor_account {value!r} is not a Stripe connected account id (acct_...)."
MSG_BAD_EMAIL = "instructor_email {value!r} is not an e-mail address."
MSG_BAD_TOKEN = "{key} {value!r} is not a valid id (letters, digits, _ . : - / #; at most {max})."
MSG_NO_KIND = "No product_kind: expected one of {kinds}."
MSG_BAD_KIND = "product_kind {value!r} is not one of {kinds}."
MSG_NO_MINUTES = "An hour package without package_minutes."
MSG_BAD_MINUTES = "package_minutes {value!r} is not a whole number of minutes from 1 to {max}."
MSG_BAD_DISCOUNT = "coupon_discount {value!r} is not a whole number of minor units from 0 to {max}."
MSG_DISCOUNT_WITHOUT_CODE = "coupon_discount without a coupon_code: ignored."
MSG_BAD_IP = "client_ip {value!r} is not an IPv4 or IPv6 address."
MSG_BAD_EXPIRES_AT = (
    "expires_at {value!r} is not a date (2027-01-31), a date-time with its UTC offset "
    "(2027-01-31T18:00:00+00:00) or Unix seconds, between {first} and {last}."
)
# Expiry dates outside these years are typos (or milliseconds for seconds).
EXPIRES_AT_YEARS = (2000, 2100)


@dataclass(frozen=True)
class PaymentMetadata:
    """The contract's values, validated; "" / None where missing or malformed."""

    instructor_account: str = ""
    instructor_email: str = ""
    instructor_id: str = ""
    instructor_name: str = ""
    product_kind: str = ""
    product_id: str = ""
    product_name: str = ""
    package_minutes: int | None = None
    coupon_code: str = ""  # upper-case: codes match whatever their case, as at Stripe
    coupon_discount: int | None = None
    booking_id: str = ""
    client_ip: str = ""  # normalised ("::ffff:1.2.3.4" stays as Python prints it)
    expires_at: datetime | None = None  # hour packages only; aware (UTC)
    problems: tuple[str, ...] = ()

    @property
    def names_instructor(self) -> bool:
        return bool(self.instructor_account or self.instructor_email)


def _text(raw: Mapping, key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def _token(raw: Mapping, key: str, problems: list[str]) -> str:
    value = _text(raw, key)
    if value and (len(value) > MAX_ID_LENGTH or not _TOKEN_RE.match(value)):
        problems.append(MSG_BAD_TOKEN.format(key=key, value=value[:80], max=MAX_ID_LENGTH))
        return ""
    return value


def parse_expires_at(text: str) -> datetime | None:
    """An `expires_at` value as an aware datetime, or None when it is none of the accepted
    forms (see EXPIRES_AT)."""
    text = text.strip()
    if not text:
        return None
    try:
        if text.isdigit():
            value = datetime.fromtimestamp(int(text), tz=UTC)
        elif len(text) == 10:
            # Valid through that day: expires when the next one starts (UTC).
            day = date.fromisoformat(text)
            value = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        else:
            value = datetime.fromisoformat(text)
            if value.tzinfo is None:
                return None  # a time without its offset could be any of 26 instants
            value = value.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    first, last = EXPIRES_AT_YEARS
    return value if first <= value.year < last else None


def parse_payment_metadata(raw: Mapping | None) -> PaymentMetadata:
    """Read the contract from a PaymentIntent's metadata. Never raises: bad values are
    dropped and described in `problems` (for staff, in plain words)."""
    raw = raw if isinstance(raw, Mapping) else {}
    problems: list[str] = []

    account = _text(raw, INSTRUCTOR_ACCOUNT)
    if account and not _ACCOUNT_RE.match(account):
        problems.append(MSG_BAD_ACCOUNT.format(value=account[:80]))
        account = ""
    email = _text(raw, INSTRUCTOR_EMAIL).lower()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            problems.append(MSG_BAD_EMAIL.format(value=email[:80]))
            email = ""
    if not account and not email:
        problems.append(MSG_NO_INSTRUCTOR)

    kinds = ", ".join(Payment.ProductKind.values)
    kind = _text(raw, PRODUCT_KIND).lower()
    if not kind:
        problems.append(MSG_NO_KIND.format(kinds=kinds))
    elif kind not in Payment.ProductKind.values:
        problems.append(MSG_BAD_KIND.format(value=kind[:80], kinds=kinds))
        kind = ""

    minutes: int | None = None
    minutes_text = _text(raw, PACKAGE_MINUTES)
    if minutes_text:
        if minutes_text.isdigit() and 1 <= int(minutes_text) <= MAX_PACKAGE_MINUTES:
            minutes = int(minutes_text)
        else:
            problems.append(
                MSG_BAD_MINUTES.format(value=minutes_text[:80], max=MAX_PACKAGE_MINUTES)
            )
    if kind == Payment.ProductKind.HOUR_PACKAGE and minutes is None and not minutes_text:
        problems.append(MSG_NO_MINUTES)

    coupon_code = _token(raw, COUPON_CODE, problems).upper()
    discount: int | None = None
    discount_text = _text(raw, COUPON_DISCOUNT)
    if discount_text:
        if not (discount_text.isdigit() and int(discount_text) <= MAX_DISCOUNT):
            problems.append(MSG_BAD_DISCOUNT.format(value=discount_text[:80], max=MAX_DISCOUNT))
        elif not coupon_code:
            problems.append(MSG_DISCOUNT_WITHOUT_CODE)
        else:
            discount = int(discount_text)

    client_ip = _text(raw, CLIENT_IP)
    if client_ip:
        try:
            client_ip = str(ipaddress.ip_address(client_ip))
        except ValueError:
            problems.append(MSG_BAD_IP.format(value=client_ip[:80]))
            client_ip = ""

    expires_at = None
    expires_text = _text(raw, EXPIRES_AT)
    if expires_text and kind == Payment.ProductKind.HOUR_PACKAGE:
        expires_at = parse_expires_at(expires_text)
        if expires_at is None:
            first, last = EXPIRES_AT_YEARS
            problems.append(
                MSG_BAD_EXPIRES_AT.format(value=expires_text[:80], first=first, last=last - 1)
            )

    return PaymentMetadata(
        instructor_account=account,
        instructor_email=email,
        instructor_id=_token(raw, INSTRUCTOR_ID, problems),
        instructor_name=_text(raw, INSTRUCTOR_NAME)[:MAX_NAME_LENGTH],
        product_kind=kind,
        product_id=_token(raw, PRODUCT_ID, problems),
        product_name=_text(raw, PRODUCT_NAME)[:MAX_NAME_LENGTH],
        package_minutes=minutes if kind == Payment.ProductKind.HOUR_PACKAGE else None,
        coupon_code=coupon_code,
        coupon_discount=discount,
        booking_id=_token(raw, BOOKING_ID, problems),
        client_ip=client_ip,
        expires_at=expires_at,
        problems=tuple(problems),
    )
