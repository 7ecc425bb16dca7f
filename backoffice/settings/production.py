"""Production: fails closed. Refuses to start (ImproperlyConfigured naming the variable) without
its own secret key, named allowed hosts, a PostgreSQL DATABASE_URL, webhook signing secrets
and a Stripe key whose mode matches STRIPE_LIVEMODE, or with security settings loosened past
their bounds (step-up age, session age, lockout limit, bulk maximum, an allow-list of every
address) (backoffice/settings/production_rules.py).
HTTPS only: HSTS for a year with subdomains and preload, SSL redirect, secure cookies; the
Content-Security-Policy comes from base.py. `manage.py check --deploy --fail-level WARNING`
is clean with these settings (scripts/test.sh runs it).

Every variable is listed in the README's "Production settings"."""

import os

from .base import *  # noqa: F403
from .base import (
    ADMIN_ALLOWED_CIDRS,
    AXES_FAILURE_LIMIT,
    BULK_ACTION_MAX_ROWS,
    SESSION_COOKIE_AGE,
    STEP_UP_MINUTES,
    STRIPE_LIVEMODE,
)
from .env import env_bool, env_list, env_str
from .production_rules import (
    BULK_ACTION_MAX_ROWS_MAX,
    LOGIN_FAILURE_LIMIT_MAX,
    SESSION_COOKIE_AGE_MAX_SECONDS,
    STEP_UP_MINUTES_MAX,
    require_allowed_hosts,
    require_at_most,
    require_closed_allow_list,
    require_postgres,
    require_secret_key,
    require_secret_key_fallbacks,
    require_stripe_key,
    require_stripe_peer,
    require_webhook_secrets,
)

DEBUG = False
TWO_FACTOR_REQUIRED = True

# Read from the environment directly, never through base.py's development defaults.
SECRET_KEY = require_secret_key(os.environ.get("DJANGO_SECRET_KEY"))
SECRET_KEY_FALLBACKS = require_secret_key_fallbacks(env_list("DJANGO_SECRET_KEY_FALLBACKS"))
ALLOWED_HOSTS = require_allowed_hosts(env_list("DJANGO_ALLOWED_HOSTS"))
require_postgres(os.environ.get("DATABASE_URL"))
STRIPE_WEBHOOK_SECRETS = require_webhook_secrets(env_list("STRIPE_WEBHOOK_SECRETS"))
STRIPE_SECRET_KEY = require_stripe_key(
    os.environ.get("STRIPE_SECRET_KEY"), livemode=STRIPE_LIVEMODE
)
require_stripe_peer(
    api_base=env_str("STRIPE_API_BASE"),
    localstripe_compat=env_bool("STRIPE_LOCALSTRIPE_COMPAT", False),
)
# Security settings the environment may tighten but not loosen past a bound.
require_at_most("STEP_UP_MINUTES", STEP_UP_MINUTES, STEP_UP_MINUTES_MAX)
require_at_most("SESSION_COOKIE_AGE_SECONDS", SESSION_COOKIE_AGE, SESSION_COOKIE_AGE_MAX_SECONDS)
require_at_most("LOGIN_FAILURE_LIMIT", AXES_FAILURE_LIMIT, LOGIN_FAILURE_LIMIT_MAX)
require_at_most("BULK_ACTION_MAX_ROWS", BULK_ACTION_MAX_ROWS, BULK_ACTION_MAX_ROWS_MAX)
require_closed_allow_list(ADMIN_ALLOWED_CIDRS)

# HTTPS only. Browsers remember HSTS for a year, for every subdomain, and the domain may be
# submitted to the browsers' preload list: only deploy this on a domain served over HTTPS
# everywhere.
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
# A staff session never outlives the browser (and never a working day: SESSION_COOKIE_AGE).
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = True
# Behind a reverse proxy that terminates TLS, the app sees plain HTTP: name the header the
# proxy sets to "https" (e.g. X-Forwarded-Proto). Only then is the header trusted, and the
# proxy MUST overwrite it on every request (a client could send it otherwise). Unset: the app
# terminates TLS itself (or the proxy speaks HTTPS to it) and no header is trusted.
_proxy_ssl_header = env_str("DJANGO_SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _proxy_ssl_header.strip().upper().replace("-", "_"),
        "https",
    )

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
