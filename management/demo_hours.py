"""Demo hour packages bought through the peer (localstripe): real card payments carrying the
metadata contract (package_minutes, and `expires_at` a few days ahead for two of them, so the
balance page shows packages near expiry), mirrored through the sync as production mirrors them
(payments.hours credits each once), then lessons reported through the import service
(payments.lessons) as the booking system would send them. The generator's packages
(management/demo_data.py) cover the rest: older, expired, refunded after use.

Idempotent: does nothing when its lessons exist. Without a reachable peer, does nothing."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from management.demo_purchases import demo_purchase_create, demo_purchase_mirror
from management.demo_refunds import DEMO_INSTRUCTOR, stripe_reachable
from payments import lessons
from payments.models import Lesson

# (name, hours, price in cents, expires in days or None, [(minutes, status), ...])
PEER_PACKAGES = [
    ("Near Expiry", 10, 29_900, 3, [(60, "consumed"), (60, "consumed"), (90, "reserved")]),
    ("Soon Expiring", 20, 54_900, 6, [(60, "consumed"), (45, "canceled")]),
    ("Fresh Package", 5, 15_900, None, [(60, "reserved")]),
]


def _booking(seed: int, index: int, n: int) -> str:
    return f"bk_peer_{seed}_{index}_{n}"


def seed_hour_packages(*, seed: int = 42, stdout=None) -> dict[str, int]:
    def log(message: str) -> None:
        if stdout is not None:
            stdout.write(message)

    if Lesson.objects.filter(booking_id__startswith=f"bk_peer_{seed}_").exists():
        log("Demo hour packages already present; nothing to do.")
        return {"hour_packages": 0, "lessons": 0}
    if not stripe_reachable():
        log("localstripe unreachable: no demo hour packages through the peer.")
        return {"hour_packages": 0, "lessons": 0}
    today = timezone.now().date()
    rows = []
    for index, (name, hours, price, days, steps) in enumerate(PEER_PACKAGES):
        email = f"{name.lower().replace(' ', '.')}.{seed}@students.example.com"
        metadata = {
            **DEMO_INSTRUCTOR,
            "product_kind": "hour_package",
            "product_id": f"hour_package_{hours:03d}",
            "product_name": f"{hours} tutoring hours",
            "package_minutes": str(hours * 60),
        }
        if days is not None:
            metadata["expires_at"] = (today + timedelta(days=days)).isoformat()
        purchase = demo_purchase_create(
            amount=price,
            currency="usd",
            email=email,
            name=name,
            key=f"demo:hours:{seed}:{index}",
            metadata=metadata,
        )
        payment = demo_purchase_mirror(purchase)
        for n, (minutes, status) in enumerate(steps):
            booking = _booking(seed, index, n)
            day = today - timedelta(days=len(steps) - n)
            base = {"student": email, "booking_id": booking, "minutes": str(minutes)}
            if status != "consumed" or n % 2 == 0:
                rows.append({**base, "date": day.isoformat(), "status": "reserved"})
            if status != "reserved":
                rows.append({**base, "date": day.isoformat(), "status": status})
        log(f"  hour package {payment.stripe_payment_intent_id} for {email}")
    result = lessons.lessons_import(rows, source=Lesson.Source.DEMO, file_name="demo-peer")
    if not result.applied:
        raise RuntimeError(f"demo lessons refused: {result.errors[:5]}")
    return {"hour_packages": len(PEER_PACKAGES), "lessons": result.rows}
