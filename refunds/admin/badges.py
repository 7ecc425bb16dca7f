"""Sidebar badge callbacks (UNFOLD["SIDEBAR"] refers to them by dotted path)."""

from refunds.selectors import refund_request_pending_count_upto

# Above this the badge reads "999+": counting further costs every admin page a query that
# grows with the queue.
BADGE_MAX = 999


def pending_refund_requests_badge(request) -> str:
    """The number of pending refund requests ("999+" above BADGE_MAX), or "" (no badge) when
    there are none."""
    if not request.user.has_perm("refunds.view_refundrequest"):
        return ""
    count = refund_request_pending_count_upto(BADGE_MAX + 1)
    if count > BADGE_MAX:
        return f"{BADGE_MAX}+"
    return str(count) if count else ""
