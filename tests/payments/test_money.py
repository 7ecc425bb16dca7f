"""payments.money: minor units <-> display and staff input, for 0-, 2- and 3-decimal currencies."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.money import (
    ERR_NEGATIVE,
    ERR_NOT_A_NUMBER,
    SUPPORTED_CURRENCIES,
    Money,
    MoneyError,
    decimal_places,
    format_money,
    parse_money,
    percent_of,
    threshold_minor,
    to_decimal,
)

currencies = st.sampled_from(sorted(SUPPORTED_CURRENCIES))
amounts = st.integers(min_value=0, max_value=10**15)


@pytest.mark.parametrize(
    ("currency", "places"),
    [("usd", 2), ("USD", 2), ("eur", 2), ("jpy", 0), ("krw", 0), ("kwd", 3), ("bhd", 3)],
)
def test_decimal_places_per_currency(currency, places):
    assert decimal_places(currency) == places


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (123456, "usd", "$1,234.56"),
        (5, "usd", "$0.05"),
        (-1999, "eur", "-€19.99"),
        (1500, "jpy", "¥1,500"),
        (1234, "kwd", "1.234 KWD"),
        (100, "chf", "1.00 CHF"),
        (0, "gbp", "£0.00"),
    ],
)
def test_format_money(amount, currency, shown):
    assert format_money(amount, currency) == shown


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "usd", 1250),
        ("12.5", "usd", 1250),
        ("1,234.56", "usd", 123456),
        (" 7 ", "usd", 700),
        ("0.01", "usd", 1),
        ("1500", "jpy", 1500),
        ("1.234", "kwd", 1234),
        ("12.", "eur", 1200),
        (Decimal("3.10"), "usd", 310),
    ],
)
def test_parse_money_accepts_staff_input(text, currency, minor):
    assert parse_money(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("-5", "usd", ERR_NEGATIVE),
        ("abc", "usd", ERR_NOT_A_NUMBER),
        ("", "usd", ERR_NOT_A_NUMBER),
        ("1e3", "usd", ERR_NOT_A_NUMBER),
        ("NaN", "usd", ERR_NOT_A_NUMBER),
        ("1,23.00", "usd", ERR_NOT_A_NUMBER),
        ("0.001", "usd", "USD amounts have at most 2 decimal places."),
        ("10.5", "jpy", "JPY amounts have at most 0 decimal places."),
        ("1.2345", "kwd", "KWD amounts have at most 3 decimal places."),
        ("10", "xyz", "Unknown currency 'xyz'."),
    ],
)
def test_parse_money_rejects_bad_input_with_a_clear_message(text, currency, message):
    with pytest.raises(MoneyError) as excinfo:
        parse_money(text, currency)
    assert str(excinfo.value) == message


@given(amount=amounts, currency=currencies)
def test_parse_inverts_decimal_display(amount, currency):
    # What staff read (without symbol) parses back to exactly the same minor units.
    shown = f"{to_decimal(amount, currency):,.{decimal_places(currency)}f}"
    assert parse_money(shown, currency) == amount


@given(amount=amounts, currency=currencies)
def test_format_never_loses_digits(amount, currency):
    digits = "".join(ch for ch in format_money(amount, currency) if ch.isdigit())
    assert int(digits) == amount


@given(a=amounts, b=amounts, currency=currencies)
def test_money_adds_within_one_currency(a, b, currency):
    assert (Money(a, currency) + Money(b, currency)).amount == a + b
    assert (Money(a, currency) - Money(b, currency)).amount == a - b


@given(a=amounts, b=amounts, pair=st.lists(currencies, min_size=2, max_size=2, unique=True))
def test_money_never_adds_different_currencies(a, b, pair):
    with pytest.raises(MoneyError):
        Money(a, pair[0]) + Money(b, pair[1])


def test_money_refuses_floats_and_unknown_currencies():
    with pytest.raises(TypeError):
        Money(12.5, "usd")
    with pytest.raises(MoneyError):
        Money(100, "zzz")
    assert Money(100, "USD").currency == "usd"


@given(amount=amounts, bps=st.integers(min_value=0, max_value=10_000))
def test_percent_of_is_exact_rounding_half_up(amount, bps):
    exact = Decimal(amount) * bps / 10_000
    result = percent_of(amount, bps)
    assert abs(Decimal(result) - exact) <= Decimal("0.5")
    assert 0 <= result <= amount


THRESHOLDS = {"usd": "50", "eur": "50.00", "gbp": "40", "jpy": "7500", "kwd": "12.345"}


@pytest.mark.parametrize(
    ("currency", "minor"),
    [
        ("usd", 5000),
        ("USD", 5000),
        ("eur", 5000),
        ("gbp", 4000),
        ("jpy", 7500),  # zero-decimal: 7500 yen, not 750000
        ("kwd", 12345),  # three decimals
    ],
)
def test_threshold_minor_in_each_currency(currency, minor):
    assert threshold_minor(THRESHOLDS, currency) == minor


@pytest.mark.parametrize("currency", ["chf", "krw", "bhd"])
def test_threshold_minor_of_an_unconfigured_currency_is_zero_never_another_currencys(currency):
    """No value -> 0 (the strictest rule), not USD's 50 read in another unit."""
    assert threshold_minor({"usd": "50"}, currency) == 0
    assert threshold_minor({}, currency) == 0


def test_threshold_minor_accepts_decimals_and_refuses_inexact_amounts():
    assert threshold_minor({"usd": Decimal("12.5")}, "usd") == 1250
    with pytest.raises(MoneyError):
        threshold_minor({"jpy": "7.5"}, "jpy")
    with pytest.raises(MoneyError):
        threshold_minor({"usd": "50"}, "xyz")


@given(amounts, currencies)
def test_threshold_minor_inverts_the_decimal_display(amount, currency):
    assert threshold_minor({currency: str(to_decimal(amount, currency))}, currency) == amount


def test_pro_rata_rounds_half_up_in_integers():
    from payments.money import pro_rata

    assert pro_rata(2000, 2500, 10_000) == 500
    assert pro_rata(1, 1, 2) == 1  # 0.5 -> 1
    assert pro_rata(10, 1, 3) == 3  # 3.33 -> 3
    assert pro_rata(600, 5000, 5000) == 600
    assert pro_rata(600, 1, 0) == 0


def test_an_unknown_currency_formats_raw_and_never_raises():
    """A bad stored row (currency 'usdx') must not break the page that shows it."""
    from payments.admin.display import WARN_UNKNOWN_CURRENCY, money
    from payments.money import format_money, is_known_currency, to_decimal_stored

    assert format_money(20300, "usdx") == "20300 usdx"
    assert format_money(-5, "") == "-5 "
    assert not is_known_currency("usdx") and is_known_currency("usd")
    assert to_decimal_stored(20300, "usdx") == 20300
    assert to_decimal_stored(20300, "usd") == Decimal("203.00")
    cell = str(money(20300, "usdx"))
    assert cell.startswith("20300 usdx") and WARN_UNKNOWN_CURRENCY in cell
    assert money(20300, "usd") == "$203.00"
