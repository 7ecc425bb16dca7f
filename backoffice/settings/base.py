"""Settings for every environment. Everything that differs between machines comes from the
environment; nothing here talks to a database or network at import time."""

from datetime import timedelta
from pathlib import Path

from django.templatetags.static import static
from django.urls import reverse_lazy
from django.utils.csp import CSP
from django.utils.text import format_lazy

from .env import database_from_url, env_bool, env_int, env_list, env_str, env_thresholds

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("BACKOFFICE_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-not-secret-change-me")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# How many reverse proxies we run in front of the app (0: clients connect directly). The client
# IP (audit trail, lockout, admin allow-list) is then read from TRUSTED_PROXY_HEADER, that many
# entries from the right (backoffice/client_ip.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    # unfold before django.contrib.admin; its contrib apps before the apps they style.
    # BasicAppConfig: unfold's default app swaps admin.site for a plain UnfoldAdminSite and
    # would drop our site's login form and second-factor check (backoffice/admin_site.py).
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.import_export",
    "unfold.contrib.simple_history",
    # django.contrib.admin, with our site as admin.site (backoffice/apps.py).
    "backoffice.apps.BackofficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # The trigram indexes' operator class (payments migration 0018); inert on SQLite.
    "django.contrib.postgres",
    "simple_history",
    "import_export",
    "django_q",
    # The JSON API (backoffice/api/): DRF, its OpenAPI schema, and the list filters.
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc served from our own static files: no CDN (machines may have no
    # internet, and the admin's pages should not load third-party scripts).
    "drf_spectacular_sidecar",
    "django_filters",
    # Staff second factor: TOTP devices and single-use backup codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Sign-in lockout after repeated failures, per account and per address.
    "axes",
    # Customer e-mails leave through an outbox (queued with their cause, sent by a schedule).
    "post_office",
    # Append-only tables (audit, ledgers) guarded by PostgreSQL triggers; no-op on SQLite.
    "pgtrigger",
    "backoffice",
    "payments",
    "refunds",
    "reports",
    "management",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy header from SECURE_CSP, with a fresh nonce per request
    # (before the allow-list, so its refusal page carries the header too).
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # ADMIN_ALLOWED_CIDRS: refuses the admin to other networks before a session is read.
    "backoffice.allow_list.AdminAllowListMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): which staff passed their second factor this session.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last: turns a locked-out sign-in into the lockout page (backoffice/lockout.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "backoffice.urls"
WSGI_APPLICATION = "backoffice.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-level folder: unfold's own admin/index.html would shadow one inside an app.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # {{ csp_nonce }}: the nonce our own inline <script nonce=...> carry.
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {
    # Unset or empty: the embedded SQLite file.
    "default": database_from_url(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'backoffice.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default keeps its file under var/; create it so `migrate` works first time.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the q cluster and the web process write without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Reuse connections on SQLite too: opening one (and its WAL) per request cost ~15 ms on
    # the webhook endpoint (see the webhook benchmark in the README).
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# `loaddata groups` finds fixtures/groups.json from any working directory.
FIXTURE_DIRS = [BASE_DIR / "fixtures"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Dates on pages: one format naming the time zone, `2026-12-01 13:47 UTC` (backoffice/formats.py).
# A format module, because since Django 5 the locale's formats win over DATETIME_FORMAT.
FORMAT_MODULE_PATH = ["backoffice.date_formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"

# --- Content-Security-Policy (Django 6.0's own; every environment, so the demo and the e2e
# tests run under the policy production sends) ----------------------------------------------
# Scripts only from our own origin, plus inline scripts carrying the request's nonce
# ({{ csp_nonce }}; the Swagger page's start-up script is the only one). 'unsafe-eval':
# Unfold's standard Alpine build evaluates its directive strings (x-data, x-on:click).
# Styles: 'unsafe-inline' because Unfold writes its theme colours in a <style> element and
# htmx and Chart.js set style attributes; a nonce in style-src would make browsers ignore
# 'unsafe-inline', so there is none. No third-party origin anywhere: Swagger UI and Redoc are
# served from drf-spectacular-sidecar's static files. Redoc builds its search worker from a
# blob: URL. tests/e2e/test_csp_browser.py opens the admin's pages in Chromium and fails on any
# violation.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_EVAL, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF, "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Staff sign-in ----------------------------------------------------------------------------
# Every staff sign-in needs a second factor (TOTP or a backup code). Always on under
# production settings; off by default elsewhere (tests, the demo: see the README's switch).
TWO_FACTOR_REQUIRED = env_bool("TWO_FACTOR_REQUIRED", False)

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/admin/"

# Backup codes made at enrolment (and by "regenerate"); each signs in once.
TWO_FACTOR_BACKUP_CODES = env_int("TWO_FACTOR_BACKUP_CODES", 10)
# The name authenticator apps show next to the account.
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Payments back-office")
# The device admins (superusers only) never show a TOTP key or its QR code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Lockout (django-axes): LOGIN_FAILURE_LIMIT failed sign-ins (a wrong password, or a wrong code
# after the right password) lock the account AND, separately, the client address, for
# LOGIN_LOCKOUT_MINUTES after the last failure; an administrator may unlock earlier (Users >
# "Unlock sign-in", or Sign-in lockouts > "Unlock"). Locking per account lets a stranger lock
# a known login for a while; that is the price of stopping a password guesser who changes
# address, and the cool-off bounds it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "backoffice.lockout.lockout_response"
# The same client address as the audit trail and the allow-list (TRUSTED_PROXY_*).
AXES_CLIENT_IP_CALLABLE = "backoffice.client_ip.client_ip"
# Keep failures until the cool-off ends: a success from one address must not wipe the count
# another address (or a guesser who also owns an account) has built up.
AXES_RESET_ON_SUCCESS = False
# Masked in axes' log lines and in the form data it keeps with each attempt (the password
# always is): the code, and the username and address in logs (a mistyped username may be an
# e-mail address or a password; the attempt rows keep both in their own columns).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]
# No "AXES: BEGIN version ..." banner on every manage.py run (cron mails, command output).
AXES_VERBOSE = False

# Sessions end after a working day, signed in or not (production also ends them when the
# browser closes).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE_SECONDS", 8 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", False)

# Optional allow-list for the admin (and the API's session pages): comma-separated networks,
# e.g. "10.0.0.0/8,203.0.113.7/32". Empty: open to every address. The client address is
# REMOTE_ADDR unless TRUSTED_PROXY_COUNT says we run that many proxies in front, which write
# TRUSTED_PROXY_HEADER (then the n-th address from its right, the one our outermost proxy
# saw). A header no proxy of ours writes is client input and is never believed.
ADMIN_ALLOWED_CIDRS = env_list("ADMIN_ALLOWED_CIDRS", "")
TRUSTED_PROXY_HEADER = env_str("TRUSTED_PROXY_HEADER", "X-Forwarded-For")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "billing@example.com")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Logs never carry card numbers, secrets or whole e-mail addresses: every handler runs
    # the redacting filter (backoffice/redaction.py) first. A handler added here needs it too.
    "filters": {"redact": {"()": "backoffice.redaction.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default handlers for its own logger (a console one in DEBUG, mail_admins
        # with the whole request) would bypass the filter: its records go to the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # The SDK logs every request at INFO; our gateway records calls itself.
        "stripe": {"level": "WARNING"},
    },
}

# --- Payments -------------------------------------------------------------------------------
# Platform commission on each captured payment, in basis points (2000 = 20%).
PLATFORM_FEE_BPS = env_int("PLATFORM_FEE_BPS", 2000)
# Fee policy (payments/ledger.py): on refunds the platform returns its fee pro rata, as
# Stripe's refund_application_fee does ("pro_rata"), or keeps it ("keep"); a lost dispute's
# amount is borne by the instructor and Stripe's dispute fee by the platform ("instructor"),
# or the other way round ("platform").
PLATFORM_FEE_ON_REFUND = env_str("PLATFORM_FEE_ON_REFUND", "pro_rata")
DISPUTE_LOSS_BORNE_BY = env_str("DISPUTE_LOSS_BORNE_BY", "instructor")
# The admin shows an estimated row count instead of COUNT(*) on unfiltered PostgreSQL tables
# larger than this.
ADMIN_ESTIMATED_COUNT_THRESHOLD = env_int("ADMIN_ESTIMATED_COUNT_THRESHOLD", 50_000)

# --- Refunds --------------------------------------------------------------------------------
# Queue priority: pending longer than URGENT days is URGENT, longer than HIGH days is HIGH;
# otherwise a pending request above REFUND_LARGE_AMOUNT in its own currency is LARGE.
REFUND_URGENT_AFTER_DAYS = env_int("REFUND_URGENT_AFTER_DAYS", 3)
REFUND_HIGH_AFTER_DAYS = env_int("REFUND_HIGH_AFTER_DAYS", 1)
# Money thresholds are per currency (major units, `usd=50,eur=50,...` in the environment;
# bad text stops the start with ImproperlyConfigured). A currency that is not listed gets 0,
# the strictest rule: every refund in it ranks LARGE and needs a senior (never the USD number
# applied to yen; see payments.money.threshold_minor).
REFUND_LARGE_AMOUNT = env_thresholds("REFUND_LARGE_AMOUNT", "usd=50,eur=50,gbp=40,jpy=7500")
# Requests above this amount in their currency need the senior-approver permission
# refunds.approve_large_refundrequest.
REFUND_SENIOR_APPROVAL_ABOVE = env_thresholds(
    "REFUND_SENIOR_APPROVAL_ABOVE", "usd=500,eur=500,gbp=400,jpy=75000"
)
# Fraud review: when an alert from a Stripe early fraud warning is resolved as confirmed
# fraud, propose a full refund to the refund queue (source "fraud", still pending approval)
# before the dispute arrives. Off by default: refunding is finance's call.
FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING = env_bool(
    "FRAUD_PROPOSE_REFUND_ON_CONFIRMED_WARNING", False
)
# A worker's claim on a request older than this is a crashed worker: the request may resume.
REFUND_PROCESSING_LEASE_SECONDS = env_int("REFUND_PROCESSING_LEASE_SECONDS", 300)

# --- Instructor earnings and payouts (payments/earnings.py, payments/services/payouts*.py) -----
# An earning (and every later entry of the same payment) becomes payable this many days after
# the payment succeeded, so most refunds and early disputes land before the money leaves.
PAYOUT_HOLD_DAYS = env_int("PAYOUT_HOLD_DAYS", 7)
# A payout run pays an instructor in a currency only when the available balance reaches this
# (major units). A currency not listed is never paid out by a run (no USD number for yen).
PAYOUT_MINIMUM = env_thresholds("PAYOUT_MINIMUM", "usd=10,eur=10,gbp=10,jpy=1500")
# Payouts above this amount in their currency need payments.approve_large_payout (a senior).
PAYOUT_SENIOR_APPROVAL_ABOVE = env_thresholds(
    "PAYOUT_SENIOR_APPROVAL_ABOVE", "usd=5000,eur=5000,gbp=4000,jpy=750000"
)
# Manual earning adjustments above this (absolute) amount need a senior approver too.
EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE = env_thresholds(
    "EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE", "usd=500,eur=500,gbp=400,jpy=75000"
)
# A worker's claim on a payout older than this is a crashed worker: the payout may resume.
PAYOUT_PROCESSING_LEASE_SECONDS = env_int("PAYOUT_PROCESSING_LEASE_SECONDS", 300)
# How often the payout run schedule creates payouts (minutes; default weekly).
PAYOUT_RUN_SCHEDULE_MINUTES = env_int("PAYOUT_RUN_SCHEDULE_MINUTES", 7 * 24 * 60)

# --- Customer adjustments (payments/customer_adjustment_rules.py) ----------------------------
# Manual credits and debits to a customer, four-eyes. Money adjustments above this amount in
# their currency (major units; a currency not listed gets 0: every one needs a senior) and
# hours adjustments above this many minutes need payments.approve_large_customeradjustment.
CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE = env_thresholds(
    "CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE", "usd=100,eur=100,gbp=80,jpy=15000"
)
CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE_MINUTES = env_int(
    "CUSTOMER_ADJUSTMENT_SENIOR_APPROVAL_ABOVE_MINUTES", 600
)
# A worker's claim on a money adjustment older than this is a crashed worker: it may resume.
CUSTOMER_ADJUSTMENT_APPLY_LEASE_SECONDS = env_int("CUSTOMER_ADJUSTMENT_APPLY_LEASE_SECONDS", 300)

# --- Prepaid hours (payments/hours.py, payments/lessons.py) ---------------------------------
# An hour package expires this many days after its payment succeeded, unless the checkout's
# metadata names `expires_at` (payments/metadata.py).
HOUR_PACKAGE_VALID_DAYS = env_int("HOUR_PACKAGE_VALID_DAYS", 365)
# The balance page highlights packages expiring within this many days.
HOUR_PACKAGE_NEAR_EXPIRY_DAYS = env_int("HOUR_PACKAGE_NEAR_EXPIRY_DAYS", 14)
# How often the expiry job takes expired packages' minutes off the balances (minutes; daily).
HOURS_EXPIRY_SCHEDULE_MINUTES = env_int("HOURS_EXPIRY_SCHEDULE_MINUTES", 1440)
# A lessons import (file or API) takes at most this many rows; one transaction applies them.
LESSON_IMPORT_MAX_ROWS = env_int("LESSON_IMPORT_MAX_ROWS", 200_000)

# --- Fraud rules (payments/fraud_rules.py; the README lists them) ---------------------------
# Each pass (every payment event, the hourly `--detect-fraud`) looks at payments created in
# the last LOOKBACK hours; each rule counts over its own window ending at each such payment.
FRAUD_LOOKBACK_HOURS = env_int("FRAUD_LOOKBACK_HOURS", 24)
# N failed payments by one customer within the window.
FRAUD_FAILED_ATTEMPTS_COUNT = env_int("FRAUD_FAILED_ATTEMPTS_COUNT", 3)
FRAUD_FAILED_ATTEMPTS_WINDOW_MINUTES = env_int("FRAUD_FAILED_ATTEMPTS_WINDOW_MINUTES", 60)
# N payment attempts (any outcome) by one customer within a few minutes.
FRAUD_RAPID_ATTEMPTS_COUNT = env_int("FRAUD_RAPID_ATTEMPTS_COUNT", 5)
FRAUD_RAPID_ATTEMPTS_WINDOW_MINUTES = env_int("FRAUD_RAPID_ATTEMPTS_WINDOW_MINUTES", 10)
# A payment above MULTIPLIER times the customer's average captured payment in the same
# currency (over HISTORY_DAYS before it, with at least MIN_HISTORY such payments), or above
# the absolute per-currency amount (major units; a currency not listed has no absolute check).
FRAUD_UNUSUAL_AMOUNT_MULTIPLIER = env_int("FRAUD_UNUSUAL_AMOUNT_MULTIPLIER", 5)
FRAUD_UNUSUAL_AMOUNT_MIN_HISTORY = env_int("FRAUD_UNUSUAL_AMOUNT_MIN_HISTORY", 3)
FRAUD_UNUSUAL_AMOUNT_HISTORY_DAYS = env_int("FRAUD_UNUSUAL_AMOUNT_HISTORY_DAYS", 180)
FRAUD_UNUSUAL_AMOUNT_ABOVE = env_thresholds(
    "FRAUD_UNUSUAL_AMOUNT_ABOVE", "usd=2000,eur=2000,gbp=1600,jpy=300000"
)
# A payment above the per-currency amount by a customer created less than DAYS before it.
FRAUD_NEW_ACCOUNT_DAYS = env_int("FRAUD_NEW_ACCOUNT_DAYS", 7)
FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE = env_thresholds(
    "FRAUD_NEW_ACCOUNT_AMOUNT_ABOVE", "usd=500,eur=500,gbp=400,jpy=75000"
)
# N payment methods added to one customer within the window.
FRAUD_PAYMENT_METHODS_COUNT = env_int("FRAUD_PAYMENT_METHODS_COUNT", 4)
FRAUD_PAYMENT_METHODS_WINDOW_HOURS = env_int("FRAUD_PAYMENT_METHODS_WINDOW_HOURS", 24)
# One card (Stripe's fingerprint) or one IP (metadata `client_ip`) paying for N customers
# within the window. IPs are shared innocently (offices, campuses, mobile carriers): higher.
FRAUD_SHARED_CARD_CUSTOMERS = env_int("FRAUD_SHARED_CARD_CUSTOMERS", 3)
FRAUD_SHARED_CARD_WINDOW_HOURS = env_int("FRAUD_SHARED_CARD_WINDOW_HOURS", 24)
FRAUD_SHARED_IP_CUSTOMERS = env_int("FRAUD_SHARED_IP_CUSTOMERS", 5)
FRAUD_SHARED_IP_WINDOW_HOURS = env_int("FRAUD_SHARED_IP_WINDOW_HOURS", 24)
# Run the rules after every webhook/sync upsert of payment intents (scoped to what it touched).
FRAUD_DETECT_ON_EVENTS = env_bool("FRAUD_DETECT_ON_EVENTS", True)

# What `manage_payments --cleanup-old-data` keeps, in days. Money rows and the audit trail
# are never deleted.
RETENTION_DAYS = {
    "webhook_events": env_int("RETENTION_WEBHOOK_EVENTS_DAYS", 90),
    "sync_runs": env_int("RETENTION_SYNC_RUNS_DAYS", 180),
    "task_results": env_int("RETENTION_TASK_RESULTS_DAYS", 30),
}

# --- Stripe ---------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "sk_test_localstripe")
# Empty means Stripe's own API; the demo and the tests point this at a localstripe process.
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "")
STRIPE_API_VERSION = env_str("STRIPE_API_VERSION", "2024-06-20")
STRIPE_LIVEMODE = env_bool("STRIPE_LIVEMODE", False)
STRIPE_WEBHOOK_SECRETS = env_list("STRIPE_WEBHOOK_SECRETS", "")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)
STRIPE_MAX_REQUESTS_PER_SECOND = env_int("STRIPE_MAX_REQUESTS_PER_SECOND", 20)
STRIPE_MAX_RETRIES = env_int("STRIPE_MAX_RETRIES", 4)
# Seconds to wait for Stripe's answer; after a timeout a mutation is retried with the same key.
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 30)
# The peer is localstripe (tests, demo): no `created` filters on most of its lists, card-only
# payment method lists. Disputes are served by the project's launcher and always synced.
# Never set this against real Stripe.
STRIPE_LOCALSTRIPE_COMPAT = env_bool("STRIPE_LOCALSTRIPE_COMPAT", False)
# Sync: each run re-reads objects created this many seconds before the watermark (late writes
# and clock skew at Stripe), and the q2 schedule runs it every this many minutes.
STRIPE_SYNC_OVERLAP_SECONDS = env_int("STRIPE_SYNC_OVERLAP_SECONDS", 300)
STRIPE_SYNC_SCHEDULE_MINUTES = env_int("STRIPE_SYNC_SCHEDULE_MINUTES", 15)

# --- django-q2 ------------------------------------------------------------------------------
Q_CLUSTER = {
    "name": "backoffice",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": 300,
    # retry must stay above timeout, or a slow task runs twice.
    "retry": 360,
    "max_attempts": 5,
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
    # Successful tasks kept for the admin's task screen (0: all, -1: none); failures are all kept.
    "save_limit": env_int("Q_SAVE_LIMIT", 250),
}
if env_str("REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = env_str("REDIS_URL")

# --- Scale-out (Redis) ------------------------------------------------------------------------
# REDIS_URL (redis://host:6379/0) makes Redis django-q2's broker (above), so that any number of
# q clusters on any hosts share one queue, and adds the cache alias "shared" that every process
# sees (a counter kept in it holds across gunicorn instances; API_THROTTLE_CACHE=shared counts
# the API's throttles there). Without Redis there is no "shared" alias: what must be shared is
# counted in the database (API throttles, backoffice.guard's buckets). "default" stays per process.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if env_str("REDIS_URL"):
    CACHES["shared"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("REDIS_URL"),
        "KEY_PREFIX": "backoffice",
    }

# --- Reports --------------------------------------------------------------------------------
# Dashboard thresholds: success rate target (%), failed-payment share alert (%), pending refund
# requests alert (count), median refund processing target (hours), sync staleness (minutes).
REPORTS_SUCCESS_RATE_TARGET = env_int("REPORTS_SUCCESS_RATE_TARGET", 95)
REPORTS_FAILED_SHARE_ALERT = env_int("REPORTS_FAILED_SHARE_ALERT", 5)
REPORTS_PENDING_REFUNDS_ALERT = env_int("REPORTS_PENDING_REFUNDS_ALERT", 10)
REPORTS_REFUND_HOURS_TARGET = env_int("REPORTS_REFUND_HOURS_TARGET", 24)
REPORTS_SYNC_STALE_MINUTES = env_int("REPORTS_SYNC_STALE_MINUTES", 60)
# Printed on receipts, credit notes and reports.
REPORTS_COMPANY_NAME = env_str("REPORTS_COMPANY_NAME", "Tutoring Marketplace Ltd")
REPORTS_COMPANY_ADDRESS = env_str("REPORTS_COMPANY_ADDRESS", "1 Example Street, London")
# Exports need the permission reports.export_payments (reports/exports.py). Formula cells are
# neutralised by our resources; import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT
# stays off (it only strips "=" and turns every cell, None included, into text).

# --- JSON API (backoffice/api/; the README's "API" section) ----------------------------------
# Authentication: per-staff tokens (`Authorization: Bearer bo_...`, created in the admin) for
# programs, the admin session (CSRF-checked on writes) for the browsable pages and Swagger.
# Permissions are the user's Django permissions, exactly as in the admin. The classes live in
# their own modules (a class named here that imports a viewset would be a circular import).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "backoffice.api.authentication.ApiTokenAuthentication",
        # DRF's SessionAuthentication that also asks ADMIN_ALLOWED_CIDRS.
        "backoffice.api.authentication.AllowListSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["backoffice.api.permissions.StaffModelPermissions"],
    "DEFAULT_THROTTLE_CLASSES": [
        "backoffice.api.throttling.TokenWriteThrottle",
        "backoffice.api.throttling.UserWriteThrottle",
    ],
    "DEFAULT_PAGINATION_CLASS": "backoffice.api.pagination.KeysetCursorPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "backoffice.api.errors.api_exception_handler",
    # Writes per token and per user, in fixed windows counted in the database (shared by every
    # process), or in the cache API_THROTTLE_CACHE names. "<n>/<second|minute|hour|day>".
    "DEFAULT_THROTTLE_RATES": {
        "api_token_write": env_str("API_TOKEN_WRITE_RATE", "60/minute"),
        "api_user_write": env_str("API_USER_WRITE_RATE", "120/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Empty: count the API's write throttles in the database (backoffice.ApiThrottleWindow).
# A cache alias (a shared Redis or Memcached in CACHES) counts them there instead; never a
# per-process LocMemCache with several processes.
API_THROTTLE_CACHE = env_str("API_THROTTLE_CACHE", "")
# The largest page a client may ask for with ?page_size=.
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 200)
# A new token's default lifetime in the admin's form (days); every token expires.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90)
# Idempotency-Key records are kept this long (then `--cleanup-old-data` deletes them); a key
# reused after that runs the request again. A first use still running after LEASE seconds
# (a crashed worker) may be taken over by a repeat.
API_IDEMPOTENCY_TTL_HOURS = env_int("API_IDEMPOTENCY_TTL_HOURS", 24)
API_IDEMPOTENCY_LEASE_SECONDS = env_int("API_IDEMPOTENCY_LEASE_SECONDS", 60)
# backoffice knows no app: the API's money fields format their "display" with this function
# (amount in minor units, currency) -> text.
MONEY_FORMATTER = "payments.money.format_money"
SPECTACULAR_SETTINGS = {
    "TITLE": "Payments back-office API",
    "DESCRIPTION": (
        "The back-office's data and actions for BI tools, monitoring and the booking system. "
        "Money is {amount (minor units), currency, display}; times are ISO 8601 in UTC; errors "
        "are {error: {code, message, fields}}. Lists are cursor-paginated (follow `next`)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["backoffice.api.permissions.IsActiveStaff"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Enums named after their model, not after the field ("status" is on many models).
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "payments.models.payment.Payment.Status",
        "PaymentMethodTypeEnum": "payments.models.payment_method.PaymentMethodType",
        "ProductKindEnum": "payments.models.payment.Payment.ProductKind",
        "RefundRequestStatusEnum": "refunds.models.RefundRequest.Status",
        "FraudAlertStatusEnum": "payments.models.FraudAlert.Status",
        "DisputeStatusEnum": "payments.models.Dispute.Status",
        "DisputeResponseStatusEnum": "payments.models.DisputeResponse.Status",
        "WebhookEventStatusEnum": "payments.models.WebhookEvent.Status",
        "SyncRunStatusEnum": "payments.models.SyncRun.Status",
        "PaymentRetryStatusEnum": "payments.models.PaymentRetry.Status",
        "AdminActionResultEnum": "backoffice.models.AdminAction.Result",
    },
    # Every operation documents the error shape and statuses (backoffice/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "backoffice.api.schema.add_error_responses",
    ],
}

# --- Customer e-mail outbox (backoffice/outbox.py; django-post-office) -----------------------
# Customer e-mails are queued in the transaction of their cause and sent by the django-q2
# schedule "backoffice: send queued customer e-mails" every OUTBOX_SEND_SCHEDULE_MINUTES
# through EMAIL_BACKEND. A failed send is retried OUTBOX_MAX_RETRIES times,
# OUTBOX_RETRY_MINUTES apart, then shown as failed in the admin's Outbox (resend there).
# Attachments (receipt PDFs) are files in MEDIA_ROOT: shared storage when senders run on
# several hosts.
OUTBOX_SEND_SCHEDULE_MINUTES = env_int("OUTBOX_SEND_SCHEDULE_MINUTES", 1)
POST_OFFICE = {
    "MAX_RETRIES": env_int("OUTBOX_MAX_RETRIES", 5),
    "RETRY_INTERVAL": timedelta(minutes=env_int("OUTBOX_RETRY_MINUTES", 15)),
    "DEFAULT_PRIORITY": "medium",
    "BATCH_SIZE": 200,
    "LOG_LEVEL": 1,  # a Log row per failed attempt (the outbox page lists them), none per send
    "MESSAGE_ID_ENABLED": True,
}

# --- Dispute deadline alerts ----------------------------------------------------------------
# Alerts go out this many whole days before a dispute's evidence deadline (Stripe's
# `evidence_due_by`), once per dispute and threshold, to the active members (with an e-mail)
# of the group DISPUTE_ALERT_GROUP plus DISPUTE_ALERT_EMAILS; the job runs every
# DISPUTE_ALERT_SCHEDULE_MINUTES (daily; a re-run never sends an alert twice).
DISPUTE_ALERT_DAYS = [int(days) for days in env_list("DISPUTE_ALERT_DAYS", "7,3,1")]
DISPUTE_ALERT_GROUP = env_str("DISPUTE_ALERT_GROUP", "Finance staff")
DISPUTE_ALERT_EMAILS = env_list("DISPUTE_ALERT_EMAILS", "")
DISPUTE_ALERT_SCHEDULE_MINUTES = env_int("DISPUTE_ALERT_SCHEDULE_MINUTES", 1440)

# --- Money-action guard (backoffice/guard.py; the README's "Money-moving actions") ----------
# Approving refunds, payouts and adjustments, submitting dispute evidence and retrying
# payments ask for a fresh second-factor code when the session's last one is older than this
# (everyone when TWO_FACTOR_REQUIRED, otherwise staff with a confirmed device; API tokens
# never).
STEP_UP_MINUTES = env_int("STEP_UP_MINUTES", 15)
# Per staff member, token buckets shared by every process (in the database): money-moving
# actions (one per row) a minute, and amount approved an hour per currency (major units; a
# currency not listed cannot be approved at all: set it before taking money in it).
MONEY_ACTIONS_PER_MINUTE = env_int("MONEY_ACTIONS_PER_MINUTE", 100)
MONEY_ACTION_AMOUNT_PER_HOUR = env_thresholds(
    "MONEY_ACTION_AMOUNT_PER_HOUR", "usd=250000,eur=250000,gbp=200000,jpy=37500000"
)
# A bulk action (approve, reject, cancel) over more rows than this is refused whole.
BULK_ACTION_MAX_ROWS = env_int("BULK_ACTION_MAX_ROWS", 100)
# backoffice imports no app: the guard reads per-currency limits in minor units with this.
MONEY_THRESHOLD_MINOR = "payments.money.threshold_minor"

# --- Unfold ---------------------------------------------------------------------------------


def _nav_item(
    title: str,
    icon: str,
    model: str,
    badge: str | None = None,
    query: str = "",
    permission=None,
) -> dict:
    """A sidebar link to `app_label.model`'s changelist (with `query`, a saved view of it),
    shown to staff who may view it (or to whom `permission(request)` allows)."""
    app_label, model_name = model.split(".")
    link = reverse_lazy(f"admin:{app_label}_{model_name}_changelist")
    item = {
        "title": title,
        "icon": icon,
        "link": format_lazy("{}?{}", link, query) if query else link,
        "permission": permission
        or (lambda request: request.user.has_perm(f"{app_label}.view_{model_name}")),
    }
    if badge:
        item["badge"] = badge
    return item


# (section, [(title, Material icon, app_label.model, badge callback or None)])
SIDEBAR_SECTIONS = [
    (
        "Payments",
        [
            ("Payments", "payments", "payments.payment"),
            # Badge: disputes needing a response whose evidence deadline is within the
            # largest alert threshold (DISPUTE_ALERT_DAYS).
            ("Disputes", "gavel", "payments.dispute", "payments.selectors.dispute_deadline_badge"),
            ("Fraud alerts", "shield", "payments.fraudalert"),
            ("Customers", "group", "payments.customer"),
            ("Payment methods", "credit_card", "payments.paymentmethod"),
            ("Subscriptions", "autorenew", "payments.subscription"),
            ("Instructors", "school", "payments.instructor"),
            ("Student balances", "hourglass_top", "payments.studentbalance"),
            # Coupons and their redemptions (payments/admin/coupon.py).
            ("Coupons", "sell", "payments.coupon"),
            # Badge: manual credits and debits waiting for a second person. Opens on the
            # "Pending" tab (payments.admin.customer_adjustment.ADJUSTMENT_TABS).
            (
                "Customer adjustments",
                "price_change",
                "payments.customeradjustment",
                "payments.admin.customer_adjustment.pending_adjustments_badge",
                "status__exact=pending",
            ),
            # Lessons the booking system reported (and their import page).
            ("Lessons", "event_available", "payments.lesson"),
            ("Transfers", "send_money", "payments.transfer"),
            # Badge: events that failed for good and wait for a replay.
            (
                "Stripe webhooks",
                "webhook",
                "payments.webhookevent",
                "payments.selectors.webhook_failed_badge",
            ),
        ],
    ),
    (
        "Refunds",
        [
            # Badge: pending requests waiting for a decision. Opens on the "All pending" view
            # (refunds.admin.queue.QUEUE_PRESETS; tests/backoffice/test_sidebar.py holds them
            # equal), the work, not every request ever made.
            (
                "Refund queue",
                "currency_exchange",
                "refunds.refundrequest",
                "refunds.admin.badges.pending_refund_requests_badge",
                "status__exact=pending",
            ),
        ],
    ),
    (
        "Payouts",
        [
            # Badge: payouts waiting for approval. Opens on the "To approve" tab
            # (payments.admin.payout.PAYOUT_TABS; tests/payments/test_payout_admin.py holds
            # them equal).
            (
                "Payouts",
                "outbox",
                "payments.payout",
                "payments.admin.payout.pending_payouts_badge",
                "status__exact=pending",
            ),
            ("Payout runs", "event_repeat", "payments.payoutrun"),
            # The instructors' ledger and the manual adjustments waiting for a second person.
            ("Earnings ledger", "receipt", "payments.earningentry"),
            ("Earning adjustments", "tune", "payments.earningadjustment"),
        ],
    ),
    (
        "Reports",
        [
            ("Analytics", "monitoring", "reports.dailyrollup"),
            ("Receipts", "receipt_long", "reports.receipt"),
        ],
    ),
    (
        "Operations",
        [
            # Badge: "failed" while the latest sync run failed.
            (
                "Stripe sync runs",
                "sync",
                "payments.syncrun",
                "payments.admin.sync_run.sync_failed_badge",
            ),
            ("Audit trail", "policy", "backoffice.adminaction"),
            # Customer e-mails queued / sent / failed, with resend (backoffice/admin_outbox.py).
            ("Outbox", "outgoing_mail", "post_office.email"),
            # Every staff member manages their own API tokens (backoffice/api/admin.py).
            (
                "API tokens",
                "key",
                "backoffice.apitoken",
                None,
                "",
                lambda request: request.user.is_active and request.user.is_staff,
            ),
            ("Scheduled jobs", "schedule", "django_q.schedule"),
            # Accounts and addresses locked after failed sign-ins (superusers: axes' view
            # permission), with "Unlock" (backoffice/sign_in_admin.py).
            ("Sign-in lockouts", "lock_person", "axes.accessattempt"),
        ],
    ),
]

UNFOLD = {
    "SITE_TITLE": "Payments back-office",
    "SITE_HEADER": "Payments",
    "SITE_SUBHEADER": "Finance operations",
    "SITE_SYMBOL": "payments",
    "ENVIRONMENT": "backoffice.admin_site.environment_callback",
    "DASHBOARD_CALLBACK": "reports.dashboard.dashboard_callback",
    "SHOW_HISTORY": True,
    # The user menu: every staff member's own second factor (backup codes, new phone).
    "ACCOUNT": {
        "navigation": [
            {"title": "Two-factor sign-in", "link": reverse_lazy("admin:two_factor")},
        ],
    },
    "SHOW_VIEW_ON_SITE": False,
    "COLORS": {
        "primary": {
            "50": "oklch(97.7% .014 308.299)",
            "100": "oklch(94.6% .033 307.174)",
            "200": "oklch(90.2% .063 306.703)",
            "300": "oklch(82.7% .119 306.383)",
            "400": "oklch(71.4% .203 305.504)",
            "500": "oklch(62.7% .265 303.9)",
            "600": "oklch(55.8% .288 302.321)",
            "700": "oklch(49.6% .265 301.924)",
            "800": "oklch(43.8% .218 303.724)",
            "900": "oklch(38.1% .176 304.987)",
            "950": "oklch(29.1% .149 302.717)",
        },
    },
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": title,
                "separator": index > 0,
                "items": [_nav_item(*item) for item in items],
            }
            for index, (title, items) in enumerate(SIDEBAR_SECTIONS)
        ],
    },
    "STYLES": [
        lambda request: static("backoffice/admin.css"),
        # Column widths and the phone layout (cards) of the changelists (issue 14, item 2).
        lambda request: static("backoffice/layouts.css"),
    ],
    # The sidebar stays open at exactly 1280 px (Unfold closed it on any page reflow).
    "SCRIPTS": [lambda request: static("backoffice/sidebar.js")],
}
