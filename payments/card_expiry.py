"""When a saved card expires, once: the Python test for one card (the pages' badges, the
"make default" rule) and its SQL twin for the payment methods list's filter.

A card is good until the last day of its expiry month; "today" is the site's date
(timezone.localdate(), settings.TIME_ZONE), so a card expiring this month is still good on
the 31st in the site's time zone. A method without an expiry (not a card) never expires.
"""

from __future__ import annotations

from datetime import date

from django.db.models import Q
from django.utils import timezone

EXPIRED = "expired"
THIS_MONTH = "this_month"
VALID = "valid"
STATES = (EXPIRED, THIS_MONTH, VALID)


def card_expiry_state(exp_month: int | None, exp_year: int | None, *, today: date | None = None):
    """EXPIRED, THIS_MONTH (its last month), VALID, or None when there is no expiry."""
    if exp_month is None or exp_year is None:
        return None
    today = today or timezone.localdate()
    expiry, now = (exp_year, exp_month), (today.year, today.month)
    if expiry < now:
        return EXPIRED
    return THIS_MONTH if expiry == now else VALID


def card_expiry_q(state: str, *, today: date | None = None) -> Q:
    """The rows of `state` (EXPIRED, THIS_MONTH, VALID) as a WHERE clause, the twin of
    card_expiry_state: (card_exp_year, card_exp_month) compared with today's (year, month),
    e.g. EXPIRED is `exp_year < Y OR (exp_year = Y AND exp_month < M)`. Served by the
    pm_card_expiry_idx index."""
    today = today or timezone.localdate()
    year, month = today.year, today.month
    if state == EXPIRED:
        return Q(card_exp_year__lt=year) | Q(card_exp_year=year, card_exp_month__lt=month)
    if state == THIS_MONTH:
        return Q(card_exp_year=year, card_exp_month=month)
    if state == VALID:
        return Q(card_exp_year__gt=year) | Q(card_exp_year=year, card_exp_month__gt=month)
    raise ValueError(state)
