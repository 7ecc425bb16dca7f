"""Production settings fail closed: each required variable missing (or dangerous) stops the
import of backoffice.settings.production with ImproperlyConfigured naming it; with the
example environment (scripts/production.env.example) `check --deploy --fail-level WARNING`
is clean. Each case imports the settings in a fresh interpreter, as a deployment would."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from backoffice.settings import production_rules as rules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = ROOT / "scripts" / "production.env.example"
STRONG_KEY = secrets.token_urlsafe(50)


def example_environment() -> dict[str, str]:
    """scripts/production.env.example's values plus a generated secret key."""
    values = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    values["DJANGO_SECRET_KEY"] = STRONG_KEY
    return values


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # A clean environment: only what a deployment would set (and what Python needs).
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


SHOW_SETTINGS = """
import json
import backoffice.settings.production as s
print(json.dumps({name: getattr(s, name, None) for name in [
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER", "ALLOWED_HOSTS", "STRIPE_LIVEMODE", "TWO_FACTOR_REQUIRED",
]}))
"""


def production_settings(env: dict[str, str]) -> dict:
    result = run_python(SHOW_SETTINGS, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(env: dict[str, str]) -> str:
    """The ImproperlyConfigured message importing production settings with `env` ends in."""
    result = run_python("import backoffice.settings.production", env)
    assert result.returncode != 0, "production settings started"
    last = result.stderr.strip().splitlines()[-1]
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    assert last.startswith(prefix), result.stderr
    return last[len(prefix) :]


def test_the_example_environment_starts_https_only():
    values = production_settings(example_environment())
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "ALLOWED_HOSTS": ["backoffice.example.com"],
        "STRIPE_LIVEMODE": True,
        "TWO_FACTOR_REQUIRED": True,
    }


def test_the_proxy_header_is_trusted_only_when_configured():
    env = {**example_environment(), "DJANGO_SECURE_PROXY_SSL_HEADER": ""}
    assert production_settings(env)["SECURE_PROXY_SSL_HEADER"] is None
    env["DJANGO_SECURE_PROXY_SSL_HEADER"] = "X-Forwarded-Ssl-Proto"
    assert production_settings(env)["SECURE_PROXY_SSL_HEADER"] == [
        "HTTP_X_FORWARDED_SSL_PROTO",
        "https",
    ]


def test_check_deploy_is_clean_with_the_example_environment():
    env = {**example_environment(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.production"}
    result = run_python("", env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_would_see_what_the_issue_found_without_these_settings():
    """The check is not vacuous: base settings with DEBUG off and a short key report the
    warnings the issue listed (W004 HSTS, W008 SSL redirect, W009 key, W012/W016 cookies)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "backoffice.settings.base",
        "DJANGO_DEBUG": "off",
        "DJANGO_SECRET_KEY": "short",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    result = run_python("", env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("W004", "W008", "W009", "W012", "W016"):
        assert f"security.{warning}" in result.stderr + result.stdout, warning


MISSING = {
    "DJANGO_SECRET_KEY": rules.ERR_SECRET_KEY_MISSING,
    "DJANGO_ALLOWED_HOSTS": rules.ERR_ALLOWED_HOSTS_MISSING,
    "DATABASE_URL": rules.ERR_DATABASE_NOT_POSTGRES.format(scheme="unset"),
    "STRIPE_WEBHOOK_SECRETS": rules.ERR_WEBHOOK_SECRETS_MISSING,
    "STRIPE_SECRET_KEY": rules.ERR_STRIPE_KEY_MISSING,
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_production_refuses_to_start_without(name):
    env = example_environment()
    del env[name]
    message = refusal(env)
    assert message == MISSING[name]
    assert name in message
    # Empty counts as missing.
    assert refusal({**env, name: ""}) == MISSING[name]


BAD_VALUES = {
    "the development secret key": (
        {"DJANGO_SECRET_KEY": rules.DEV_SECRET_KEY},
        rules.ERR_SECRET_KEY_DEV_DEFAULT.format(name="DJANGO_SECRET_KEY"),
    ),
    "a short secret key (W009)": (
        {"DJANGO_SECRET_KEY": "x" * 10 + "abcdef"},
        rules.ERR_SECRET_KEY_WEAK.format(name="DJANGO_SECRET_KEY"),
    ),
    "a long key of few characters (W009)": (
        {"DJANGO_SECRET_KEY": "abab" * 20},
        rules.ERR_SECRET_KEY_WEAK.format(name="DJANGO_SECRET_KEY"),
    ),
    "Django's generated insecure key (W009)": (
        {"DJANGO_SECRET_KEY": "django-insecure-" + STRONG_KEY},
        rules.ERR_SECRET_KEY_WEAK.format(name="DJANGO_SECRET_KEY"),
    ),
    "a weak fallback key": (
        {"DJANGO_SECRET_KEY_FALLBACKS": f"{secrets.token_urlsafe(50)},short"},
        rules.ERR_SECRET_KEY_WEAK.format(name="DJANGO_SECRET_KEY_FALLBACKS (entry 2)"),
    ),
    "any host": (
        {"DJANGO_ALLOWED_HOSTS": "backoffice.example.com,*"},
        rules.ERR_ALLOWED_HOSTS_WILDCARD,
    ),
    "SQLite": (
        {"DATABASE_URL": "sqlite:///var/backoffice.sqlite3"},
        rules.ERR_DATABASE_NOT_POSTGRES.format(scheme="sqlite"),
    ),
    "a webhook secret that is not one": (
        {"STRIPE_WEBHOOK_SECRETS": "whsec_ok,sk_live_pasted_by_mistake"},
        rules.ERR_WEBHOOK_SECRET_MALFORMED,
    ),
    "a test key while STRIPE_LIVEMODE is on": (
        {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_LIVEMODE": "on"},
        rules.ERR_STRIPE_TEST_KEY_IN_LIVEMODE,
    ),
    "a restricted test key while STRIPE_LIVEMODE is on": (
        {"STRIPE_SECRET_KEY": "rk_test_abc", "STRIPE_LIVEMODE": "on"},
        rules.ERR_STRIPE_TEST_KEY_IN_LIVEMODE,
    ),
    "a live key while STRIPE_LIVEMODE is off": (
        {"STRIPE_SECRET_KEY": "sk_live_abc", "STRIPE_LIVEMODE": "off"},
        rules.ERR_STRIPE_LIVE_KEY_IN_TESTMODE,
    ),
    "a publishable key": ({"STRIPE_SECRET_KEY": "pk_live_abc"}, rules.ERR_STRIPE_KEY_MALFORMED),
    "a plain-HTTP Stripe API base": (
        {"STRIPE_API_BASE": "http://127.0.0.1:8420"},
        rules.ERR_STRIPE_API_BASE_NOT_HTTPS,
    ),
    "the localstripe compatibility mode": (
        {"STRIPE_LOCALSTRIPE_COMPAT": "on"},
        rules.ERR_LOCALSTRIPE_COMPAT_ON,
    ),
    "a step-up older than an hour": (
        {"STEP_UP_MINUTES": "61"},
        rules.ERR_SETTING_ABOVE_MAX.format(
            name="STEP_UP_MINUTES",
            value=61,
            maximum=60,
            why=rules.BOUND_REASONS["STEP_UP_MINUTES"],
        ),
    ),
    "a session longer than 12 hours": (
        {"SESSION_COOKIE_AGE_SECONDS": str(12 * 3600 + 1)},
        rules.ERR_SETTING_ABOVE_MAX.format(
            name="SESSION_COOKIE_AGE_SECONDS",
            value=12 * 3600 + 1,
            maximum=12 * 3600,
            why=rules.BOUND_REASONS["SESSION_COOKIE_AGE_SECONDS"],
        ),
    ),
    "more than 20 sign-in failures": (
        {"LOGIN_FAILURE_LIMIT": "21"},
        rules.ERR_SETTING_ABOVE_MAX.format(
            name="LOGIN_FAILURE_LIMIT",
            value=21,
            maximum=20,
            why=rules.BOUND_REASONS["LOGIN_FAILURE_LIMIT"],
        ),
    ),
    "bulk actions over 1000 rows": (
        {"BULK_ACTION_MAX_ROWS": "1001"},
        rules.ERR_SETTING_ABOVE_MAX.format(
            name="BULK_ACTION_MAX_ROWS",
            value=1001,
            maximum=1000,
            why=rules.BOUND_REASONS["BULK_ACTION_MAX_ROWS"],
        ),
    ),
    "an allow-list of every IPv4 address": (
        {"ADMIN_ALLOWED_CIDRS": "10.0.0.0/8,0.0.0.0/0"},
        rules.ERR_ALLOW_LIST_OPEN.format(value="0.0.0.0/0"),
    ),
    "an allow-list of every IPv6 address": (
        {"ADMIN_ALLOWED_CIDRS": "::/0"},
        rules.ERR_ALLOW_LIST_OPEN.format(value="::/0"),
    ),
}


@pytest.mark.parametrize(
    ("name", "maximum"),
    [
        ("STEP_UP_MINUTES", rules.STEP_UP_MINUTES_MAX),
        ("SESSION_COOKIE_AGE_SECONDS", rules.SESSION_COOKIE_AGE_MAX_SECONDS),
        ("LOGIN_FAILURE_LIMIT", rules.LOGIN_FAILURE_LIMIT_MAX),
        ("BULK_ACTION_MAX_ROWS", rules.BULK_ACTION_MAX_ROWS_MAX),
    ],
)
def test_security_bounds_allow_up_to_the_maximum(name, maximum):
    assert rules.require_at_most(name, maximum, maximum) == maximum
    assert rules.require_at_most(name, 1, maximum) == 1
    with pytest.raises(ImproperlyConfigured, match=name):
        rules.require_at_most(name, maximum + 1, maximum)
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        rules.require_at_most(name, 0, maximum)


def test_an_allow_list_of_named_networks_passes():
    networks = ["10.20.0.0/16", "2001:db8::/32", "198.51.100.7"]
    assert rules.require_closed_allow_list(networks) == networks
    for every in ("0.0.0.0/0", " ::/0 ", "0.0.0.0/0.0.0.0"):
        with pytest.raises(ImproperlyConfigured, match="every address"):
            rules.require_closed_allow_list([every])


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_production_refuses_to_start_with(case):
    overrides, message = BAD_VALUES[case]
    assert refusal({**example_environment(), **overrides}) == message


def test_a_test_key_with_livemode_off_starts():
    env = {**example_environment(), "STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_LIVEMODE": "off"}
    assert production_settings(env)["STRIPE_LIVEMODE"] is False
