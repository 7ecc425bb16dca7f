"""The fraud rules' money thresholds come from the environment as one amount per currency, like
the refund thresholds; bad text stops the start with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_defaults(settings):
    assert settings.FRAUD_UNUSUAL_AMOUNT_ABOVE == {
        "usd": "2000.00",
        "eur": "2000.00",
        "gbp": "1600.00",
        "jpy": "300000",
    }
    assert settings.FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE == {
        "usd": "500.00",
        "eur": "500.00",
        "gbp": "400.00",
        "jpy": "75000",
    }
    assert (settings.FRAUD_LOOKBACK_HOURS, settings.FRAUD_DETECT_ON_EVENTS) == (24, True)


def test_the_project_does_not_start_with_a_bad_fraud_threshold():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backoffice.settings.test",
        # One number for every currency: exactly what must never be applied to yen.
        "FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE": "500",
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
    assert "ImproperlyConfigured: FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE is not valid" in result.stderr
