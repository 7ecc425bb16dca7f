"""django-q2 task entry points (the queue stores their dotted paths)."""

from django.contrib.auth import get_user_model

from .models import RefundRequest
from .services import refund_request_process


def refund_request_process_task(refund_request_id: int, acting_user_id: int | None = None) -> str:
    """Process one approved request; safe to run any number of times. Returns its status."""
    acting_user = (
        get_user_model().objects.filter(pk=acting_user_id).first() if acting_user_id else None
    )
    result = refund_request_process(
        refund_request=RefundRequest(pk=refund_request_id), acting_user=acting_user
    )
    return result.status
