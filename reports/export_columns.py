"""The one definition of what our exports hold: columns, units and time zone.

Three exports read it: the admin's import-export (CSV, JSON, XLSX; reports/exports.py), the
streamed CSV and JSON (reports/exports.py: csv_rows, json_rows; the earnings ledger's export,
reports/ledger_export.py) and `manage_payments --payment-report`'s CSV
(reports/payment_report_files.py). A column list here is the header of each export that uses
it, in order, so the admin export and the streamed CSV cannot drift apart
(tests/reports/test_export_columns.py compares them).

Units and time, the same in all three:
- Money (MONEY) in MAJOR units of the row's `currency` column (12.34 usd, 1500 jpy, 1.234 kwd):
  numbers in XLSX with the currency's decimals as the number format, plain decimal text in
  CSV. Never converted between currencies; totals stay per currency.
- Minor units (MINOR) only in a column whose name ends in `_minor` (amount_minor = 1234).
- Date-times (DATETIME) in the site time zone (settings.TIME_ZONE), named in the `time_zone`
  column of every row: real date-time cells in XLSX, `YYYY-MM-DD HH:MM:SS` in CSV and JSON
  (a text spreadsheets read as a date). Dates (DATE, the report's period) likewise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from payments.money import decimal_places, is_known_currency, to_decimal_stored

# Column kinds: how a stored value becomes a cell.
TEXT = "text"  # a string; neutralised against spreadsheet formulas
NUMBER = "number"  # an integer that is no money (ids, counts)
RATE = "rate"  # a percentage as a number (66.67)
MONEY = "money"  # minor units in the database -> major units of the row's currency
MINOR = "minor"  # minor units, as stored; the header ends in MINOR_SUFFIX
DATETIME = "datetime"  # an aware datetime -> the site time zone
DATE = "date"  # a calendar day (already a site-zone day)
TIME_ZONE = "time_zone"  # the site time zone's name; no path

MINOR_SUFFIX = "_minor"
TIME_ZONE_HEADER = "time_zone"
CURRENCY_HEADER = "currency"
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_DATE_FORMAT = "yyyy-mm-dd"

ERR_MINOR_NAME = "A minor-unit column's name must end in '_minor': {header!r}."
ERR_MINOR_NAME_KIND = "Only minor-unit columns may end in '_minor': {header!r}."
ERR_KIND_CLASH = "Column {header!r} is {kind} in one export and {other} in another."


@dataclass(frozen=True)
class Column:
    """One export column. `path` is a values_list path ("customer__email"), which
    import-export's Field also follows (it splits attributes on "__")."""

    header: str
    path: str = ""
    kind: str = TEXT

    def __post_init__(self) -> None:
        if self.kind == MINOR and not self.header.endswith(MINOR_SUFFIX):
            raise ValueError(ERR_MINOR_NAME.format(header=self.header))
        if self.kind != MINOR and self.header.endswith(MINOR_SUFFIX):
            raise ValueError(ERR_MINOR_NAME_KIND.format(header=self.header))


def text(header: str, path: str | None = None) -> Column:
    return Column(header, path or header, TEXT)


def money(header: str, path: str | None = None) -> Column:
    return Column(header, path or header, MONEY)


def minor(header: str, path: str) -> Column:
    return Column(header, path, MINOR)


def when(header: str, path: str | None = None) -> Column:
    return Column(header, path or header, DATETIME)


TIME_ZONE_COLUMN = Column(TIME_ZONE_HEADER, "", TIME_ZONE)
CURRENCY_COLUMN = text(CURRENCY_HEADER)

PAYMENT_COLUMNS: list[Column] = [
    text("stripe_payment_intent_id"),
    text("stripe_charge_id"),
    when("created"),
    TIME_ZONE_COLUMN,
    text("status"),
    CURRENCY_COLUMN,
    money("amount"),
    minor("amount_minor", "amount"),
    money("amount_refunded"),
    money("stripe_fee"),
    money("platform_fee"),
    money("net"),
    text("payment_method_type"),
    text("customer_email", "customer__email"),
    text("customer_name", "customer__name"),
    text("product_kind"),
    text("description"),
    text("failure_code"),
    text("decline_code"),
    text("failure_message"),
    when("succeeded_at"),
]

REFUND_REQUEST_COLUMNS: list[Column] = [
    Column("id", "id", NUMBER),
    when("created_at"),
    TIME_ZONE_COLUMN,
    text("status"),
    CURRENCY_COLUMN,
    money("amount"),
    minor("amount_minor", "amount"),
    text("reason"),
    text("internal_reason"),
    text("source"),
    text("payment_intent", "payment__stripe_payment_intent_id"),
    text("requested_by", "requested_by__username"),
    when("approved_at"),
    when("processed_at"),
    text("stripe_refund_id"),
    text("failure_message"),
]

# Refunds as mirrored from Stripe (payments.Refund): import-export only.
STRIPE_REFUND_COLUMNS: list[Column] = [
    text("stripe_id"),
    when("created"),
    TIME_ZONE_COLUMN,
    text("status"),
    CURRENCY_COLUMN,
    money("amount"),
    minor("amount_minor", "amount"),
    text("reason"),
    text("payment_intent", "payment__stripe_payment_intent_id"),
]

# The instructors' earnings ledger (payments.EarningEntry) for accounting: one row per entry,
# signed amounts (+ owed to the instructor), streamed as CSV or JSON (reports/ledger_export.py).
EARNING_ENTRY_COLUMNS: list[Column] = [
    Column("id", "id", NUMBER),
    when("occurred_at"),
    when("available_at"),
    when("recorded_at", "created_at"),
    TIME_ZONE_COLUMN,
    Column("instructor_id", "instructor_id", NUMBER),
    text("instructor_name", "instructor__name"),
    text("instructor_email", "instructor__email"),
    CURRENCY_COLUMN,
    money("amount"),
    minor("amount_minor", "amount"),
    text("kind"),
    text("reference"),
    text("payment_intent", "payment__stripe_payment_intent_id"),
    Column("payout_id", "payout_id", NUMBER),
    Column("adjustment_id", "adjustment_id", NUMBER),
    text("description"),
]

# `--payment-report` as CSV: one row per currency. Paths are keys of the report's per-currency
# payload (reports.selectors.payment_report), "__" stepping into nested dicts; `start` and
# `end` come from the report itself.
PAYMENT_REPORT_COLUMNS: list[Column] = [
    Column("start", "start", DATE),
    Column("end", "end", DATE),
    TIME_ZONE_COLUMN,
    CURRENCY_COLUMN,
    Column("total_transactions", "total_transactions", NUMBER),
    Column("succeeded_transactions", "succeeded_transactions", NUMBER),
    Column("failed_transactions", "failed_transactions", NUMBER),
    Column("success_rate", "success_rate", RATE),
    money("total_revenue"),
    minor("total_revenue_minor", "total_revenue"),
    money("avg_transaction_amount"),
    Column("refunds_count", "refunds__count", NUMBER),
    money("refunds_amount", "refunds__amount"),
    money("stripe_fees", "fees__stripe"),
    money("platform_fees", "fees__platform"),
    money("net"),
    minor("net_minor", "net"),
    Column("disputes_opened", "disputes_opened", NUMBER),
    text("payment_method_breakdown"),
    text("failure_reasons"),
]

ALL_COLUMN_LISTS = [
    PAYMENT_COLUMNS,
    REFUND_REQUEST_COLUMNS,
    STRIPE_REFUND_COLUMNS,
    PAYMENT_REPORT_COLUMNS,
    EARNING_ENTRY_COLUMNS,
]


def headers(columns: Iterable[Column]) -> list[str]:
    return [column.header for column in columns]


def _kinds_by_header() -> dict[str, str]:
    # A header means one thing in every export: the XLSX writer reads kinds by header.
    kinds: dict[str, str] = {}
    for columns in ALL_COLUMN_LISTS:
        for column in columns:
            other = kinds.setdefault(column.header, column.kind)
            if other != column.kind:
                raise ValueError(
                    ERR_KIND_CLASH.format(header=column.header, kind=column.kind, other=other)
                )
    return kinds


KIND_BY_HEADER = _kinds_by_header()


def site_time_zone_name() -> str:
    """The site time zone's name (settings.TIME_ZONE), as the `time_zone` column states it."""
    return timezone.get_default_timezone_name()


def site_datetime(value: datetime | None) -> datetime | None:
    """An aware datetime in the site time zone (not the request's active zone: an export is
    the same file whoever downloads it)."""
    if value is None:
        return None
    return value.astimezone(timezone.get_default_timezone())


def major(amount: int | None, currency: str) -> Decimal | None:
    """Minor units -> a Decimal in major units with exactly the currency's decimals
    (1230 usd -> 12.30), so spreadsheets get a number and a negative net is no formula."""
    return None if amount is None else to_decimal_stored(amount, currency)


def money_number_format(currency: str | None) -> str:
    """The XLSX number format of an amount in `currency`: 0.00 (usd), 0 (jpy), 0.000 (kwd).
    A currency we do not know (a bad stored row) is exported unscaled: 0."""
    code = (currency or "").lower()
    places = decimal_places(code) if is_known_currency(code) else 0
    return "0." + "0" * places if places else "0"


def datetime_text(value: datetime) -> str:
    """CSV and JSON text of a date-time already in the site zone: `YYYY-MM-DD HH:MM:SS`, ISO
    8601 with a space and no offset (the zone is a column). isoformat and a slice: about four
    times faster than strftime in the streamed export's hot loop."""
    return value.isoformat(" ", "seconds")[:19]


def text_cell(value) -> str:
    """A cell value as CSV / JSON text: the one rendering both CSV exports share."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
