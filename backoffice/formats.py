"""Dates and times on pages: one format, `2026-12-01 13:47 UTC`, in the site's time zone
(settings.TIME_ZONE) and naming it, so that staff in several countries read one clock.

The format strings live here once. Django's own rendering (changelist date columns, read-only
DateTimeFields, the `date` filter with "DATETIME_FORMAT") reads them through
settings.FORMAT_MODULE_PATH (backoffice/date_formats/en/formats.py): since Django 5 locale
formats always win over settings.DATETIME_FORMAT, so a format module is the one place that
Unfold's own cells follow. Our cells and templates call format_datetime / format_date below
(or `|date:"DATETIME_FORMAT"`), which read the same strings.
"""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone
from django.utils.dateformat import format as django_format

# Django date-format syntax (https://docs.djangoproject.com/en/stable/ref/templates/builtins/#date):
# Y-m-d H:i and T, the time zone's name ("UTC", "CET").
DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
# What a missing date shows, like Django's empty_value_display.
EMPTY = "—"


def format_datetime(value: datetime | None) -> str:
    """An aware datetime in the site's time zone: '2026-12-01 13:47 UTC'; None -> '—'."""
    if value is None:
        return EMPTY
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return django_format(timezone.localtime(value), DATETIME_FORMAT)


def format_date(value: date | datetime | None) -> str:
    """A day: '2026-12-01' (a datetime is first moved to the site's time zone)."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return django_format(value, DATE_FORMAT)
