"""Django's formats for English pages: ours (backoffice/formats.py) instead of en's
"N j, Y, P". Named by settings.FORMAT_MODULE_PATH; a name missing here (the input formats)
falls back to Django's own en module."""

from backoffice.formats import DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT

SHORT_DATETIME_FORMAT = DATETIME_FORMAT
SHORT_DATE_FORMAT = DATE_FORMAT

__all__ = [
    "DATETIME_FORMAT",
    "DATE_FORMAT",
    "SHORT_DATETIME_FORMAT",
    "SHORT_DATE_FORMAT",
    "TIME_FORMAT",
]
