"""Refund jobs for management/jobs.py (the command, the admin and django-q2 schedules)."""

from .services import refund_requests_process_pending


def process_pending_refunds(*, limit: int = 500) -> dict:
    """Process approved refund requests and resume interrupted ones. JSON-able counts."""
    return refund_requests_process_pending(limit=limit)
