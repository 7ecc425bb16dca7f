"""Lessons reported by the booking system: one import service for the admin's file import
(CSV / XLSX), the JSON API (POST /api/v1/lessons/) and the benchmark.

A row: `student` (the student's e-mail or Stripe customer id), `booking_id`, `minutes`,
`date` (YYYY-MM-DD) and `status` (reserved, consumed or canceled). What a row does to the
hours ledger (payments/hours.py), by the booking's state before it:

    before \\ row   reserved          consumed                     canceled
    (new)          hold its minutes  take them (FIFO)             record it, no hours
    reserved       unchanged         take the held minutes        release the held minutes
    consumed       unchanged (*)     unchanged                    refused
    canceled       unchanged (*)     refused                      unchanged

(*) a step the booking has passed: a replay (the same file again, a late row), never a way
back; the booking keeps its status.

A booking keeps its student and minutes: a row naming others is refused. Rows are applied in
file order (a booking may be reserved and consumed in one file).

All or nothing: an import runs in ONE transaction; every row is checked (against the state
the rows before it left), every bad row is reported with its row number and the reason, and
when any row is bad, or for a preview (`dry_run`), the transaction is rolled back: nothing is
half-applied. Re-importing a file changes nothing (each row then says "unchanged"), and each
ledger effect has its own reference besides (lesson:<booking>:<step>).

Streamed: rows are read, checked and applied in chunks of CHUNK (students and bookings looked
up once per chunk); nothing keeps a row after its chunk, only the first MAX_ERRORS_KEPT
errors (all are counted), so memory stays flat from 10k to 100k rows. Each student's balance
row is locked once (FOR UPDATE) for the rest of the import; lock order: lessons, then
balances (as every writer of lessons takes them).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from payments import hours
from payments.models import Customer, Lesson

COLUMNS = ("student", "booking_id", "minutes", "date", "status")
STATUSES = tuple(Lesson.Status.values)
CHUNK = 1000
MAX_ERRORS_KEPT = 1000
MAX_LESSON_MINUTES = 24 * 60
MAX_BOOKING_ID_LENGTH = 64
_BOOKING_RE = re.compile(r"^[A-Za-z0-9_.:\-/#]+$")
# ASCII digits only and at most 4 of them (MAX_LESSON_MINUTES has 4): str.isdigit() accepts
# superscripts and other scripts' digits that int() refuses or reads, and int() refuses
# more than 4300 digits; each must be the row's error, never an exception.
_MINUTES_RE = re.compile(r"[0-9]{1,4}")
_CUSTOMER_ID_RE = re.compile(r"^cus_[A-Za-z0-9]+$")

AUDIT_IMPORT = "lessons.import"
DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE

# Row errors (staff and the booking system see them as they are).
ERR_MISSING = "{column} is missing."
ERR_STUDENT_UNKNOWN = "No student with {kind} {value!r}."
ERR_STUDENT_AMBIGUOUS = "{count} students have the e-mail {value!r}: give the Stripe customer id."
ERR_BOOKING_ID = (
    "booking_id {value!r} is not a valid id (letters, digits, _ . : - / #; at most "
    f"{MAX_BOOKING_ID_LENGTH})."
)
ERR_MINUTES = f"minutes {{value!r}} is not a whole number from 1 to {MAX_LESSON_MINUTES}."
ERR_DATE = "date {value!r} is not a date (YYYY-MM-DD)."
ERR_STATUS = "status {value!r} is not one of " + ", ".join(STATUSES) + "."
ERR_OTHER_STUDENT = "Booking {booking} belongs to another student ({student})."
ERR_OTHER_MINUTES = "Booking {booking} was reported with {before} minutes, not {minutes}."
ERR_FINAL = "Booking {booking} is already {before}: it cannot become {status}."
ERR_CONCURRENT = (
    "Another import wrote the same bookings at the same time; nothing was applied. "
    "Import the file again."
)
# File-level errors (the whole file is refused).
ERR_COLUMNS = "The file has no column {missing}; expected columns: " + ", ".join(COLUMNS) + "."
ERR_TOO_MANY_ROWS = "The file has more than {max} rows; split it."
ERR_UNREADABLE = "The file could not be read as {format}: {error}"
ERR_FORMAT = "Unknown format {format!r}: csv or xlsx."

# A row's outcome (the API answers it per row).
UNCHANGED = "unchanged"
ERROR = "error"


class LessonFileError(Exception):
    """The file itself is unusable (format, columns, size): nothing was read into the ledger."""


@dataclass(frozen=True)
class RowError:
    row: int  # 1 = the first data row (a file's header is row 0)
    booking_id: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "booking_id": self.booking_id, "error": self.message}


@dataclass
class LessonImportResult:
    dry_run: bool
    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys([*STATUSES, UNCHANGED], 0))
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    # Per row (only when asked: the API's batches), in order: (row, booking_id, outcome, error).
    outcomes: list[tuple[int, str, str, str]] | None = None

    @property
    def applied(self) -> bool:
        return not self.dry_run and self.error_count == 0

    def add_error(self, row: int, booking_id: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(RowError(row, booking_id, message))
        if self.outcomes is not None:
            self.outcomes.append((row, booking_id, ERROR, message))

    def add_outcome(self, row: int, booking_id: str, outcome: str) -> None:
        self.counts[outcome] += 1
        if self.outcomes is not None:
            self.outcomes.append((row, booking_id, outcome, ""))

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "applied": self.applied,
            "rows": self.rows,
            **self.counts,
            "errors": self.error_count,
            "error_rows": [error.as_dict() for error in self.errors],
        }


@dataclass(frozen=True)
class _Row:
    row: int
    student: str
    booking_id: str
    minutes: int
    lesson_date: date
    status: str


# --- reading files -------------------------------------------------------------------------------


def _header(names: Iterable) -> list[str]:
    header = [str(name or "").strip().lower() for name in names]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise LessonFileError(ERR_COLUMNS.format(missing=", ".join(missing)))
    return header


def read_csv(binary) -> Iterator[dict]:
    """Rows of a CSV upload (UTF-8, with or without BOM), read as a stream."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = _header(next(reader, []))
        for values in reader:
            if not any(value.strip() for value in values):
                continue  # blank lines (a trailing newline, spreadsheet padding)
            yield dict(zip(header, values, strict=False))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LessonFileError(ERR_UNREADABLE.format(format="CSV", error=exc)) from exc
    finally:
        text.detach()  # leave the caller's file open


def read_xlsx(binary) -> Iterator[dict]:
    """Rows of the first sheet of an XLSX upload, read as a stream (openpyxl read-only)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(binary, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is no workbook
        raise LessonFileError(ERR_UNREADABLE.format(format="XLSX", error=exc)) from exc
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = _header(next(rows, ()))
        for values in rows:
            if all(value is None or str(value).strip() == "" for value in values):
                continue
            yield dict(zip(header, values, strict=False))
    finally:
        book.close()


def read_lesson_file(binary, fmt: str) -> Iterator[dict]:
    """Rows of an uploaded file as dicts keyed by lower-case column names."""
    readers = {"csv": read_csv, "xlsx": read_xlsx}
    if fmt not in readers:
        raise LessonFileError(ERR_FORMAT.format(format=fmt))
    return readers[fmt](binary)


# --- checking one row ----------------------------------------------------------------------------


def _text(raw: Mapping, key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets store 60 as 60.0
    if isinstance(value, datetime):
        value = value.date()
    return str(value).strip()


def _parse(number: int, raw: Mapping) -> _Row | str:
    """The row's values, checked one by one, or the first problem in words."""
    for column in COLUMNS:
        if not _text(raw, column):
            return ERR_MISSING.format(column=column)
    student = _text(raw, "student")
    booking_id = _text(raw, "booking_id")
    if len(booking_id) > MAX_BOOKING_ID_LENGTH or not _BOOKING_RE.match(booking_id):
        return ERR_BOOKING_ID.format(value=booking_id[:80])
    minutes_text = _text(raw, "minutes")
    if not _MINUTES_RE.fullmatch(minutes_text) or not 1 <= int(minutes_text) <= MAX_LESSON_MINUTES:
        return ERR_MINUTES.format(value=minutes_text[:80])
    date_text = _text(raw, "date")
    try:
        lesson_date = date.fromisoformat(date_text)
    except ValueError:
        return ERR_DATE.format(value=date_text[:80])
    status = _text(raw, "status").lower()
    if status not in STATUSES:
        return ERR_STATUS.format(value=status[:80])
    return _Row(number, student, booking_id, int(minutes_text), lesson_date, status)


# --- the import ----------------------------------------------------------------------------------


class _Students:
    """Students of a chunk by e-mail (case-insensitive, must be unique) or Stripe id."""

    def __init__(self, rows: list[_Row]):
        ids = {row.student for row in rows if row.student.startswith("cus_")}
        emails = {row.student.lower() for row in rows if not row.student.startswith("cus_")}
        self.by_id = dict(Customer.objects.filter(stripe_id__in=ids).values_list("stripe_id", "pk"))
        self.by_email: dict[str, int] = {}
        self.shared: dict[str, int] = {}
        if emails:
            # E-mails are stored lower-case (Customer.save), indexed (customer_email_prefix_idx).
            matches = Customer.objects.filter(email__in=emails).values_list("email", "pk")
            for email, pk in matches:
                if email in self.by_email or email in self.shared:
                    self.shared[email] = self.shared.get(email, 1) + 1
                    self.by_email.pop(email, None)
                else:
                    self.by_email[email] = pk

    def find(self, student: str) -> int | str:
        """The customer's pk, or the problem in words."""
        if student.startswith("cus_"):
            if student in self.by_id:
                return self.by_id[student]
            return ERR_STUDENT_UNKNOWN.format(kind="Stripe customer id", value=student[:80])
        key = student.lower()
        if key in self.shared:
            return ERR_STUDENT_AMBIGUOUS.format(count=self.shared[key], value=student[:80])
        if key in self.by_email:
            return self.by_email[key]
        return ERR_STUDENT_UNKNOWN.format(kind="e-mail", value=student[:80])


class _Importer:
    def __init__(self, result: LessonImportResult, *, source: str):
        self.result = result
        self.source = source
        # One unit of work for the whole import: each student's balance is locked once, and
        # each chunk's ledger writes go out in a few bulk statements (flush).
        self.ledger = hours.HoursLedger()

    def chunk(self, raw_rows: list[tuple[int, Mapping]]) -> None:
        parsed = [(number, raw, _parse(number, raw)) for number, raw in raw_rows]
        rows = [row for _, _, row in parsed if not isinstance(row, str)]
        students = _Students(rows)
        lessons = {
            lesson.booking_id: lesson
            for lesson in Lesson.objects.select_for_update()
            .filter(booking_id__in={row.booking_id for row in rows})
            .order_by("booking_id")
        }
        self.ledger.prefetch(
            ref for row in rows for ref in hours.HoursLedger.lesson_references(row.booking_id)
        )
        # The chunk's balances locked in customer order (fewer lock cycles between two
        # imports; a cycle across chunks is a deadlock PostgreSQL breaks: ERR_CONCURRENT).
        found = {students.find(row.student) for row in rows}
        for customer in sorted(c for c in found if isinstance(c, int)):
            self.ledger.balance(customer)
        created: dict[str, Lesson] = {}
        changed: dict[str, Lesson] = {}
        now = timezone.now()
        for number, raw, row in parsed:
            if isinstance(row, str):  # reported in file order, with the rows' other errors
                self.result.add_error(number, _text(raw, "booking_id")[:80], row)
                continue
            customer = students.find(row.student)
            if isinstance(customer, str):
                self.result.add_error(row.row, row.booking_id, customer)
                continue
            lesson = lessons.get(row.booking_id)
            try:
                outcome = self.apply(row, customer, lesson)
            except hours.HoursError as exc:
                self.result.add_error(row.row, row.booking_id, str(exc))
                continue
            if isinstance(outcome, str) and outcome not in (*STATUSES, UNCHANGED):
                self.result.add_error(row.row, row.booking_id, outcome)
                continue
            self.result.add_outcome(row.row, row.booking_id, outcome)
            if outcome == UNCHANGED:
                continue
            if lesson is None:
                lesson = Lesson(
                    booking_id=row.booking_id,
                    customer_id=customer,
                    minutes=row.minutes,
                    lesson_date=row.lesson_date,
                    status=row.status,
                    source=self.source,
                    created_at=now,
                    updated_at=now,
                )
                lessons[row.booking_id] = created[row.booking_id] = lesson
            else:
                lesson.status, lesson.lesson_date, lesson.updated_at = (
                    row.status,
                    row.lesson_date,
                    now,
                )
                if row.booking_id not in created:
                    changed[row.booking_id] = lesson
        self.ledger.flush()
        Lesson.objects.bulk_create(created.values())
        Lesson.objects.bulk_update(changed.values(), ["status", "lesson_date", "updated_at"])

    def apply(self, row: _Row, customer: int, lesson: Lesson | None) -> str:
        """The row's outcome (its status, or UNCHANGED), or the problem in words."""
        if lesson is not None:
            if lesson.customer_id != customer:
                return ERR_OTHER_STUDENT.format(booking=row.booking_id, student=row.student[:80])
            if lesson.minutes != row.minutes:
                return ERR_OTHER_MINUTES.format(
                    booking=row.booking_id, before=lesson.minutes, minutes=row.minutes
                )
            if lesson.status == row.status or row.status == Lesson.Status.RESERVED:
                return UNCHANGED  # the same step, or one the booking has passed (*)
            if lesson.status != Lesson.Status.RESERVED:
                return ERR_FINAL.format(
                    booking=row.booking_id, before=lesson.status, status=row.status
                )
        note = f"Booking {row.booking_id}, {row.lesson_date.isoformat()}"
        ledger = self.ledger
        balance = ledger.balance(customer)
        booking = row.booking_id
        if row.status == Lesson.Status.RESERVED:
            ledger.lesson_reserve(balance, booking_id=booking, minutes=row.minutes, note=note)
        elif row.status == Lesson.Status.CONSUMED:
            ledger.lesson_consume(balance, booking_id=booking, minutes=row.minutes, note=note)
        else:
            ledger.lesson_cancel(balance, booking_id=booking, note=note)
        return row.status


def lessons_import(
    rows: Iterable[Mapping],
    *,
    acting_user=None,
    source: str = Lesson.Source.IMPORT,
    dry_run: bool = False,
    keep_outcomes: bool = False,
    client: ClientInfo | None = None,
    file_name: str = "",
) -> LessonImportResult:
    """Check and apply lesson rows (dicts keyed by COLUMNS), all or nothing (see the module).
    `dry_run`: check only (the preview). `keep_outcomes`: list every row's outcome (the
    API). Raises LessonFileError for an unreadable file or more than LESSON_IMPORT_MAX_ROWS
    rows (nothing applied). An applied import is audited (AUDIT_IMPORT) with its counts."""
    result = LessonImportResult(dry_run=dry_run, outcomes=[] if keep_outcomes else None)
    limit = settings.LESSON_IMPORT_MAX_ROWS
    numbered = enumerate(rows, start=1)
    try:
        with transaction.atomic():
            importer = _Importer(result, source=source)
            while True:
                chunk = list(islice(numbered, CHUNK))
                if not chunk:
                    break
                if chunk[-1][0] > limit:
                    raise LessonFileError(ERR_TOO_MANY_ROWS.format(max=limit))
                result.rows = chunk[-1][0]
                importer.chunk(chunk)
            if result.applied and result.rows:
                audit_record(
                    acting_user=acting_user,
                    action=AUDIT_IMPORT,
                    target=Lesson,
                    target_id=file_name[:64] or source,
                    target_repr=f"{result.rows} lesson rows ({source})",
                    details={k: v for k, v in result.as_dict().items() if k != "error_rows"},
                    client=client,
                )
            else:
                transaction.set_rollback(True)
    except IntegrityError:
        # Two imports inserted the same booking at once; ours was rolled back whole.
        result.add_error(0, "", ERR_CONCURRENT)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK_DETECTED:
            raise
        # Two imports locked the same students in opposite orders; ours was rolled back.
        result.add_error(0, "", ERR_CONCURRENT)
    return result
