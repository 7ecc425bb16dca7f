"""Money as integer minor units plus a lower-case ISO 4217 currency code, as Stripe sends it.

Decimal appears only at the edges: parsing what staff type and formatting what they read.
Amounts of different currencies are never added (see `Money.__add__`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Stripe's zero-decimal and three-decimal currencies; every other supported currency has two.
ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL_CURRENCIES = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
TWO_DECIMAL_CURRENCIES = frozenset(
    [
        "usd",
        "eur",
        "gbp",
        "aud",
        "cad",
        "chf",
        "cny",
        "czk",
        "dkk",
        "hkd",
        "huf",
        "ils",
        "inr",
        "mxn",
        "nok",
        "nzd",
        "pln",
        "ron",
        "sek",
        "sgd",
        "thb",
        "try",
        "zar",
        "brl",
        "myr",
        "php",
        "idr",
        "aed",
        "sar",
        "twd",
    ]
)
# The one list of currencies we know: formatting reads it, and so does the boundary
# validation of everything Stripe sends (payments/validation.py). A code outside it is
# refused at the boundary and, if a row holding one is already stored, shown raw.
SUPPORTED_CURRENCIES = ZERO_DECIMAL_CURRENCIES | THREE_DECIMAL_CURRENCIES | TWO_DECIMAL_CURRENCIES

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "aud": "A$", "cad": "C$"}

ERR_UNKNOWN_CURRENCY = "Unknown currency {currency!r}."
ERR_NOT_A_NUMBER = "Enter an amount such as 12.50."
ERR_NEGATIVE = "The amount cannot be negative."
ERR_TOO_MANY_DECIMALS = "{currency} amounts have at most {places} decimal places."
ERR_MIXED_CURRENCIES = "Cannot combine {left} and {right} amounts."

# Digits, optional thousands separators (commas), an optional decimal part. No exponents.
_AMOUNT_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d*)?$")


class MoneyError(ValueError):
    """Bad money input; the message is safe to show to staff."""


def is_known_currency(currency: str | None) -> bool:
    """True for a lower-case ISO code in SUPPORTED_CURRENCIES (exactly as Stripe sends it)."""
    return isinstance(currency, str) and currency in SUPPORTED_CURRENCIES


def normalize_currency(currency: str) -> str:
    """Lower-case ISO code; raises MoneyError for a currency we do not know."""
    code = (currency or "").strip().lower()
    if code not in SUPPORTED_CURRENCIES:
        raise MoneyError(ERR_UNKNOWN_CURRENCY.format(currency=currency))
    return code


def decimal_places(currency: str) -> int:
    """Number of minor-unit digits of `currency` (0 for JPY, 2 for USD, 3 for KWD)."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units -> Decimal in major units, exact (1234 usd -> Decimal('12.34'))."""
    return Decimal(int(amount)).scaleb(-decimal_places(currency))


def to_decimal_stored(amount: int, currency: str) -> Decimal:
    """to_decimal for a stored row read back (exports, charts): a currency we do not know (a
    bad row) has no known minor unit, so its amount comes back unscaled rather than raising
    and sinking the whole export; --fix-inconsistencies lists such rows."""
    if not is_known_currency((currency or "").lower()):
        return Decimal(int(amount))
    return to_decimal(amount, currency)


def format_money(amount: int | None, currency: str, *, with_code: bool = False) -> str:
    """Human display: format_money(123456, 'usd') -> '$1,234.56'; 1500 jpy -> '¥1,500';
    1234 kwd -> '1.234 KWD'. Negative amounts get a leading minus.

    Never raises for a stored value: a currency we do not know (a bad row already in the
    database) comes back raw, '20300 usdx', because its minor unit is unknown; screens add a
    warning badge (payments.admin.display.money) and --fix-inconsistencies lists the row."""
    if amount is None:
        return "—"
    code = (currency or "").lower()
    if not is_known_currency(code):
        return f"{amount} {currency}"
    places = decimal_places(code)
    sign = "-" if amount < 0 else ""
    major = to_decimal(abs(amount), code)
    number = f"{major:,.{places}f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    if symbol and not with_code:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code.upper()}"


def parse_money(text: str | int | Decimal, currency: str) -> int:
    """Staff input in major units -> minor units: parse_money('12.5', 'usd') == 1250.

    Raises MoneyError for unknown currencies, negative amounts, text that is not a number and
    more decimal places than the currency has (never rounds: '0.001' usd is an error).
    """
    places = decimal_places(currency)
    raw = str(text).strip().replace(" ", "").replace("_", "")
    if not raw or not _AMOUNT_RE.match(raw) or raw in {"+", "-", ".", "+.", "-."}:
        raise MoneyError(ERR_NOT_A_NUMBER)
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation as exc:
        raise MoneyError(ERR_NOT_A_NUMBER) from exc
    if value < 0:
        raise MoneyError(ERR_NEGATIVE)
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise MoneyError(ERR_TOO_MANY_DECIMALS.format(currency=currency.upper(), places=places))
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency. Adding different currencies raises."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount is an int in minor units")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money can only be combined with Money")
        if other.currency != self.currency:
            raise MoneyError(ERR_MIXED_CURRENCIES.format(left=self.currency, right=other.currency))

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __str__(self) -> str:
        return format_money(self.amount, self.currency)


def pro_rata(total: int, part: int, whole: int) -> int:
    """`total` * part / whole, rounded half up, in integers: the share of a fee, or of a
    package's minutes, that `part` of `whole` stands for (0 when `whole` is not positive)."""
    if whole <= 0:
        return 0
    return (total * part * 2 + whole) // (whole * 2)


def percent_of(amount: int, basis_points: int) -> int:
    """`basis_points`/10000 of `amount`, rounded half up, in the same minor units."""
    return (amount * basis_points + 5000) // 10000


def threshold_minor(thresholds: Mapping[str, str | int | Decimal], currency: str) -> int:
    """A per-currency money threshold in minor units of `currency`.

    `thresholds` maps lower-case ISO codes to amounts in major units, as the settings hold
    them (`{"usd": "50", "jpy": "7500"}`): threshold_minor(that, "usd") == 5000,
    threshold_minor(that, "jpy") == 7500. The amount must be exact in the currency's minor
    unit (MoneyError otherwise, see parse_money).

    A currency with no configured value gets 0, the strictest rule: every amount in it is
    "above the threshold" (a refund ranks LARGE and needs a senior). Never another currency's
    number: 500 (USD) would be about 3 dollars in yen. For a minimum (a payout minimum, say)
    0 is the most lenient value instead: such a caller should insist the currency is
    configured rather than lean on this default.
    """
    code = normalize_currency(currency)
    value = thresholds.get(code)
    if value is None:
        return 0
    return parse_money(value, code)
