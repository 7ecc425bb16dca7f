"""Cells that leave us for a spreadsheet (CSV exports, the bank-transfer file): the one rule
against CSV injection, used by every app that writes such a file."""

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe, which makes
    it literal text. Numbers, dates and None pass untouched."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
