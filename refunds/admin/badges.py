"""Sidebar badge callbacks (UNFOLD["SIDEBAR"] refers to them by dotted path)."""

from refunds.selectors import refund_request_pending_count


def pending_refund_requests_badge(request) -> str:
    """The number of pending refund requests, or "" (no badge) when there are none."""
    if not request.user.has_perm("refunds.view_refundrequest"):
        return ""
    count = refund_request_pending_count()
    return str(count) if count else ""
