"""REFUND_LARGE_AMOUNT and REFUND_SENIOR_APPROVAL_ABOVE come from the environment as one amount
per currency; bad text stops the start with a message that names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from backoffice.settings.env import env_thresholds, parse_thresholds

ROOT = Path(__file__).resolve().parents[2]


def test_parses_one_amount_per_currency():
    assert parse_thresholds(" usd=50, EUR=49.99 ,gbp=40,jpy=7500,kwd=1.5", name="X") == {
        "usd": "50.00",
        "eur": "49.99",
        "gbp": "40.00",
        "jpy": "7500",
        "kwd": "1.500",
    }


def test_unset_or_empty_gives_the_default(monkeypatch):
    monkeypatch.delenv("REFUND_TEST_THRESHOLD", raising=False)
    assert env_thresholds("REFUND_TEST_THRESHOLD", "usd=1") == {"usd": "1.00"}
    monkeypatch.setenv("REFUND_TEST_THRESHOLD", "")
    assert env_thresholds("REFUND_TEST_THRESHOLD", "usd=1") == {"usd": "1.00"}
    monkeypatch.setenv("REFUND_TEST_THRESHOLD", "jpy=100")
    assert env_thresholds("REFUND_TEST_THRESHOLD", "usd=1") == {"jpy": "100"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # The old single number: exactly what must not be applied to every currency.
        ("50.00", "'50.00' is not currency=amount."),
        ("usd=50,jpy=7.5", "in 'jpy=7.5': JPY amounts have at most 0 decimal places."),
        ("usd=0.001", "in 'usd=0.001': USD amounts have at most 2 decimal places."),
        ("usd=-5", "in 'usd=-5': The amount cannot be negative."),
        ("usd=fifty", "in 'usd=fifty': Enter an amount such as 12.50."),
        ("usd=", "in 'usd=': Enter an amount such as 12.50."),
        ("xyz=5", "in 'xyz=5': Unknown currency 'xyz'."),
        ("usd=5,USD=6", "USD is given twice."),
    ],
)
def test_bad_text_is_refused_naming_the_variable(text, problem):
    with pytest.raises(ImproperlyConfigured) as exc:
        parse_thresholds(text, name="REFUND_LARGE_AMOUNT")
    assert str(exc.value) == (
        f"REFUND_LARGE_AMOUNT is not valid: {problem} Give one amount per currency in major "
        f"units, such as 'usd=50,eur=50,gbp=40,jpy=7500' (got {text!r})."
    )


def test_the_project_does_not_start_with_a_bad_threshold():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backoffice.settings.test",
        "REFUND_SENIOR_APPROVAL_ABOVE": "500",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: REFUND_SENIOR_APPROVAL_ABOVE is not valid" in result.stderr


def test_shipped_defaults(settings):
    """The defaults in settings/base.py, per currency (the test settings do not change them)."""
    assert settings.REFUND_LARGE_AMOUNT == {
        "usd": "50.00",
        "eur": "50.00",
        "gbp": "40.00",
        "jpy": "7500",
    }
    assert settings.REFUND_SENIOR_APPROVAL_ABOVE == {
        "usd": "500.00",
        "eur": "500.00",
        "gbp": "400.00",
        "jpy": "75000",
    }
