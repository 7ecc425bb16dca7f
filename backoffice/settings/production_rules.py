"""What production settings refuse to start with (backoffice/settings/production.py).

Each rule reads a value the environment gave and raises ImproperlyConfigured naming the
variable, so a deployment with a missing or dangerous setting stops at import, before it
serves a request or moves money, instead of running on a development default. Pure
functions of their arguments (no settings, no os.environ): the tests call them directly and
also import the production module in a subprocess with each variable missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured

# The development default in base.py: never a production key.
DEV_SECRET_KEY = "dev-only-not-secret-change-me"
# Django's own W009 thresholds (django.core.checks.security.base): shorter keys, keys of few
# distinct characters and Django's generated "django-insecure-" keys are refused.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
SECRET_KEY_INSECURE_PREFIX = "django-insecure-"

ERR_SECRET_KEY_MISSING = (
    "DJANGO_SECRET_KEY is not set: production needs its own secret key (50+ random "
    "characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')."
)
ERR_SECRET_KEY_DEV_DEFAULT = (
    "{name} is the development default: production needs its own secret key."
)
ERR_SECRET_KEY_WEAK = (
    "{name} is too weak: it needs at least 50 characters, at least 5 different ones, and "
    "not Django's generated 'django-insecure-' prefix."
)
ERR_ALLOWED_HOSTS_MISSING = (
    "DJANGO_ALLOWED_HOSTS is not set: name the host names this back-office answers to, "
    "comma-separated (e.g. backoffice.example.com)."
)
ERR_ALLOWED_HOSTS_WILDCARD = (
    "DJANGO_ALLOWED_HOSTS may not be '*' in production: name the host names."
)
ERR_DATABASE_NOT_POSTGRES = (
    "DATABASE_URL must be a PostgreSQL URL in production (postgres://user:pass@host:port/name); "
    "got {scheme!r}."
)
ERR_WEBHOOK_SECRETS_MISSING = (
    "STRIPE_WEBHOOK_SECRETS is not set: give the endpoint's signing secret(s) from Stripe "
    "(whsec_..., comma-separated while rotating)."
)
ERR_WEBHOOK_SECRET_MALFORMED = (
    "STRIPE_WEBHOOK_SECRETS has an entry that is not a Stripe signing secret (whsec_...)."
)
ERR_STRIPE_KEY_MISSING = (
    "STRIPE_SECRET_KEY is not set: give the secret (sk_...) or restricted (rk_...) key."
)
ERR_STRIPE_KEY_MALFORMED = (
    "STRIPE_SECRET_KEY is not a Stripe secret or restricted key (sk_live_, rk_live_, "
    "sk_test_ or rk_test_)."
)
ERR_STRIPE_TEST_KEY_IN_LIVEMODE = (
    "STRIPE_SECRET_KEY is a test key but STRIPE_LIVEMODE is on: the admin would say 'Live' "
    "while no real money moves. Use the live key, or turn STRIPE_LIVEMODE off."
)
ERR_STRIPE_LIVE_KEY_IN_TESTMODE = (
    "STRIPE_SECRET_KEY is a live key but STRIPE_LIVEMODE is off: real money would move while "
    "the admin says 'Test mode'. Turn STRIPE_LIVEMODE on, or use a test key."
)
ERR_STRIPE_API_BASE_NOT_HTTPS = (
    "STRIPE_API_BASE must be empty (Stripe itself) or an https:// URL in production: the "
    "secret key travels with every request."
)
ERR_LOCALSTRIPE_COMPAT_ON = (
    "STRIPE_LOCALSTRIPE_COMPAT is on: it is only for the localstripe test peer and leaves out "
    "what real Stripe needs. Turn it off in production."
)

# Upper bounds on the security settings an environment may loosen (issue 12): beyond them a
# value no longer protects anything, so production refuses it rather than run weakened.
STEP_UP_MINUTES_MAX = 60
SESSION_COOKIE_AGE_MAX_SECONDS = 12 * 60 * 60
LOGIN_FAILURE_LIMIT_MAX = 20
BULK_ACTION_MAX_ROWS_MAX = 1000
ERR_SETTING_ABOVE_MAX = (
    "{name} is {value}: production allows at most {maximum} ({why}). Lower it, or leave it "
    "unset for the default."
)
ERR_SETTING_BELOW_ONE = "{name} is {value}: it must be at least 1."
ERR_ALLOW_LIST_OPEN = (
    "ADMIN_ALLOWED_CIDRS contains {value!r}, which is every address: the allow-list would "
    "allow the whole internet. Name the office and VPN networks, or leave it empty (off)."
)
BOUND_REASONS = {
    "STEP_UP_MINUTES": "a code older than an hour is no fresh proof before money moves",
    "SESSION_COOKIE_AGE_SECONDS": "12 hours: a staff session never outlives a working day",
    "LOGIN_FAILURE_LIMIT": "more wrong passwords or codes than that is guessing",
    "BULK_ACTION_MAX_ROWS": "a bigger bulk approval is one click moving too much money",
}

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")


def secret_key_problem(value: str) -> str | None:
    """Why `value` cannot sign production sessions and tokens, or None (W009's test)."""
    if value == DEV_SECRET_KEY:
        return ERR_SECRET_KEY_DEV_DEFAULT
    if (
        len(value) < SECRET_KEY_MIN_LENGTH
        or len(set(value)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or value.startswith(SECRET_KEY_INSECURE_PREFIX)
    ):
        return ERR_SECRET_KEY_WEAK
    return None


def require_secret_key(value: str | None) -> str:
    """DJANGO_SECRET_KEY, refused when missing, the dev default or weak."""
    if not value:
        raise ImproperlyConfigured(ERR_SECRET_KEY_MISSING)
    problem = secret_key_problem(value)
    if problem:
        raise ImproperlyConfigured(problem.format(name="DJANGO_SECRET_KEY"))
    return value


def require_secret_key_fallbacks(values: Sequence[str]) -> list[str]:
    """DJANGO_SECRET_KEY_FALLBACKS (old keys kept valid while rotating): each as strong."""
    for index, value in enumerate(values):
        problem = secret_key_problem(value)
        if problem:
            raise ImproperlyConfigured(
                problem.format(name=f"DJANGO_SECRET_KEY_FALLBACKS (entry {index + 1})")
            )
    return list(values)


def require_allowed_hosts(values: Sequence[str]) -> list[str]:
    """DJANGO_ALLOWED_HOSTS, named explicitly (no development default, no wildcard)."""
    if not values:
        raise ImproperlyConfigured(ERR_ALLOWED_HOSTS_MISSING)
    if "*" in values:
        raise ImproperlyConfigured(ERR_ALLOWED_HOSTS_WILDCARD)
    return list(values)


def require_postgres(url: str | None) -> str:
    """DATABASE_URL, a PostgreSQL one (SQLite cannot take the row locks money needs)."""
    scheme = (url or "").partition("://")[0].lower()
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(ERR_DATABASE_NOT_POSTGRES.format(scheme=scheme or "unset"))
    return url


def require_webhook_secrets(values: Sequence[str]) -> list[str]:
    """STRIPE_WEBHOOK_SECRETS: at least one, each a whsec_ signing secret."""
    if not values:
        raise ImproperlyConfigured(ERR_WEBHOOK_SECRETS_MISSING)
    if any(not value.startswith("whsec_") or value == "whsec_" for value in values):
        raise ImproperlyConfigured(ERR_WEBHOOK_SECRET_MALFORMED)
    return list(values)


def require_stripe_key(value: str | None, *, livemode: bool) -> str:
    """STRIPE_SECRET_KEY, whose mode must be STRIPE_LIVEMODE's: a test key while live would
    show 'Live' over test money, a live key while not live would move real money under a
    'Test mode' label."""
    if not value:
        raise ImproperlyConfigured(ERR_STRIPE_KEY_MISSING)
    if value.startswith(TEST_KEY_PREFIXES):
        if livemode:
            raise ImproperlyConfigured(ERR_STRIPE_TEST_KEY_IN_LIVEMODE)
    elif value.startswith(LIVE_KEY_PREFIXES):
        if not livemode:
            raise ImproperlyConfigured(ERR_STRIPE_LIVE_KEY_IN_TESTMODE)
    else:
        raise ImproperlyConfigured(ERR_STRIPE_KEY_MALFORMED)
    return value


def require_stripe_peer(*, api_base: str, localstripe_compat: bool) -> None:
    """Production talks to Stripe over TLS, never in the localstripe compatibility mode."""
    if api_base and not api_base.startswith("https://"):
        raise ImproperlyConfigured(ERR_STRIPE_API_BASE_NOT_HTTPS)
    if localstripe_compat:
        raise ImproperlyConfigured(ERR_LOCALSTRIPE_COMPAT_ON)


def require_at_most(name: str, value: int, maximum: int) -> int:
    """A security setting `name` (its environment variable) between 1 and `maximum`."""
    if value < 1:
        raise ImproperlyConfigured(ERR_SETTING_BELOW_ONE.format(name=name, value=value))
    if value > maximum:
        raise ImproperlyConfigured(
            ERR_SETTING_ABOVE_MAX.format(
                name=name, value=value, maximum=maximum, why=BOUND_REASONS[name]
            )
        )
    return value


def require_closed_allow_list(values: Sequence[str]) -> list[str]:
    """ADMIN_ALLOWED_CIDRS without a network of every address (0.0.0.0/0, ::/0, 0/0 ...).
    Entries that are not networks are left to the allow-list's own system check."""
    import ipaddress

    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            continue
        if network.prefixlen == 0:
            raise ImproperlyConfigured(ERR_ALLOW_LIST_OPEN.format(value=value))
    return list(values)
