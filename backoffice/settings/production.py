"""Production: PostgreSQL, secrets from the environment, secure cookies. Fails fast when a
required variable is missing."""

import os

from .base import *  # noqa: F403

DEBUG = False
TWO_FACTOR_REQUIRED = True
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    raise RuntimeError("Production needs DATABASE_URL=postgres://...")
SESSION_COOKIE_SECURE = True
# A staff session never outlives the browser (and never a working day: SESSION_COOKIE_AGE).
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 3600
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
