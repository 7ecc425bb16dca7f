"""Benchmark: the lessons import (payments/lessons.py) of 100,000 rows from a CSV file, the
service the admin's import page and the API use. Prints rows/s and the peak memory Python
allocated during the import (tracemalloc) at 10,000 and at 100,000 rows: the import streams
(chunks of lessons.CHUNK rows), so the peak must stay flat. Asserts flat memory, never time.

    .venv/bin/python -m pytest -m benchmark -s -q tests/benchmarks/bench_hours_import.py
    # PostgreSQL: DATABASE_URL=postgres://... and add -m "benchmark and postgres" (or not)

HOURS_BENCH_ROWS (default 100000) and HOURS_BENCH_STUDENTS (default 2000) change the size.
The file: each booking is first reserved, and a later row (about 40 rows on) consumes it, or
one in five cancels it; one booking in four is consumed without a reservation. So every
row moves hours and every kind of step is measured. Rows/s is measured without tracemalloc
(it slows allocation-heavy code several times), the peak in a second run of the same size;
rows per CPU second is printed beside rows/s (on a loaded machine the wall clock counts the
neighbours' work too).
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
import tracemalloc
from datetime import timedelta

import pytest
from django.utils import timezone

from payments import hours, lessons
from payments.models import BalanceEntry, Customer, Lesson

pytestmark = [pytest.mark.benchmark, pytest.mark.django_db]

ROWS = int(os.environ.get("HOURS_BENCH_ROWS", "100000"))
STUDENTS = int(os.environ.get("HOURS_BENCH_STUDENTS", "2000"))
SMALL = ROWS // 10
LAG = 40  # rows between a booking's reservation and its outcome
# The peak at the full size may exceed the small one's by at most this (bytes): flat, with
# room for a larger balances cache (one locked row per student seen).
FLAT_MARGIN = 8 * 1024 * 1024


def _students() -> list[str]:
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [
            Customer(
                stripe_id=f"cus_hbench{i:06d}",
                email=f"student{i}@bench.example.com",
                name=f"Student {i}",
                created=now,
            )
            for i in range(STUDENTS)
        ],
        batch_size=1000,
    )
    for customer in Customer.objects.filter(stripe_id__startswith="cus_hbench"):
        hours.credit_minutes(
            customer_id=customer.pk,
            minutes=1_000_000,
            kind=BalanceEntry.Kind.ADJUSTMENT,
            reference=f"bench:{customer.pk}",
            expires_at=now + timedelta(days=365),
        )
    return [c.email if i % 2 else c.stripe_id for i, c in enumerate(customers)]


def _write_file(path: str, *, rows: int, prefix: str, students: list[str]) -> None:
    """`rows` rows: bookings reserved and, LAG rows later, consumed or canceled; some
    consumed directly."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(lessons.COLUMNS)
        pending: list[tuple[str, str, int]] = []
        written = n = 0
        while written < rows:
            if len(pending) >= LAG or (pending and written + len(pending) >= rows):
                booking, student, minutes = pending.pop(0)
                status = "canceled" if hash(booking) % 5 == 0 else "consumed"
                writer.writerow([student, booking, minutes, "2026-11-30", status])
            else:
                n += 1
                booking = f"{prefix}-{n}"
                student = students[n % len(students)]
                minutes = 30 + 15 * (n % 4)
                if n % 4 == 0:
                    writer.writerow([student, booking, minutes, "2026-11-30", "consumed"])
                else:
                    writer.writerow([student, booking, minutes, "2026-11-30", "reserved"])
                    pending.append((booking, student, minutes))
            written += 1


def _run(path: str, *, trace: bool) -> tuple[float, float, int, lessons.LessonImportResult]:
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as upload:
        result = lessons.lessons_import(
            lessons.read_lesson_file(upload, "csv"), file_name=os.path.basename(path)
        )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return seconds, cpu, peak, result


def test_lessons_import_streams_100k_rows_in_flat_memory():
    students = _students()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, size in (("small", SMALL), ("full", ROWS)):
            timed = os.path.join(folder, f"{label}-timed.csv")
            traced = os.path.join(folder, f"{label}-traced.csv")
            _write_file(timed, rows=size, prefix=f"{label}t", students=students)
            _write_file(traced, rows=size, prefix=f"{label}m", students=students)
            seconds, cpu, _, result = _run(timed, trace=False)
            assert result.applied, result.errors[:5]
            assert result.rows == size
            _, _, peak, traced_result = _run(traced, trace=True)
            assert traced_result.applied
            figures[label] = (size, seconds, cpu, peak, result)
    print()
    for label, (size, seconds, cpu, peak, result) in figures.items():
        counts = ", ".join(f"{n:,} {k}" for k, n in result.counts.items())
        # CPU seconds beside wall seconds: on a shared machine the wall clock measures the
        # neighbours too (this process's CPU time includes SQLite's work, in process).
        print(
            f"lessons import {label:>5}: {size:>7,} rows in {seconds:6.1f} s = "
            f"{size / seconds:7,.0f} rows/s ({size / cpu:7,.0f} rows per CPU second); "
            f"peak {peak / 1e6:5.1f} MB ({counts})"
        )
    growth = figures["full"][3] - figures["small"][3]
    print(f"peak growth from {SMALL:,} to {ROWS:,} rows: {growth / 1e6:+.1f} MB")
    print(f"lessons: {Lesson.objects.count():,}; ledger entries: {BalanceEntry.objects.count():,}")
    assert growth <= FLAT_MARGIN
