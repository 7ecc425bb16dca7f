"""Settings for pytest: fast hashing, in-memory mail, q tasks run inline."""

from .base import *  # noqa: F403
from .base import Q_CLUSTER

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
STRIPE_MAX_REQUESTS_PER_SECOND = 1000
STRIPE_WEBHOOK_SECRETS = ["whsec_test_primary", "whsec_test_rotated"]
