"""Small helpers to read settings from the environment (no third-party dependency)."""

import os
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from payments.money import MoneyError, normalize_currency, parse_money, to_decimal

ERR_BAD_THRESHOLDS = (
    "{name} is not valid: {problem} Give one amount per currency in major units, such as "
    "'usd=50,eur=50,gbp=40,jpy=7500' (got {value!r})."
)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_thresholds(name: str, default: str) -> dict[str, str]:
    """A per-currency money threshold: 'usd=50,eur=50,jpy=7500' -> {'usd': '50.00', 'eur':
    '50.00', 'jpy': '7500'} (major units, exact in each currency's minor unit). Unset or
    empty -> `default`. Bad text raises ImproperlyConfigured naming the variable, so the
    project refuses to start instead of applying one number to every currency."""
    value = os.environ.get(name) or default
    return parse_thresholds(value, name=name)


def parse_thresholds(value: str, *, name: str) -> dict[str, str]:
    """The parser behind env_thresholds (see there); `name` is only for the error message."""

    def fail(problem: str):
        return ImproperlyConfigured(
            ERR_BAD_THRESHOLDS.format(name=name, problem=problem, value=value)
        )

    thresholds: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        code, sep, amount = item.partition("=")
        if not sep:
            raise fail(f"{item.strip()!r} is not currency=amount.")
        try:
            currency = normalize_currency(code)
            minor = parse_money(amount, currency)
        except MoneyError as exc:
            raise fail(f"in {item.strip()!r}: {exc}") from exc
        if currency in thresholds:
            raise fail(f"{currency.upper()} is given twice.")
        thresholds[currency] = str(to_decimal(minor, currency))
    return thresholds


def database_from_url(url: str) -> dict:
    """Turn `postgres://user:pass@host:port/name` or `sqlite:///path` into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path) or ":memory:"}
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
        }
    raise ValueError(f"Unsupported DATABASE_URL scheme: {parsed.scheme!r}")
