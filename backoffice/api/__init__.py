"""The JSON API's framework: authentication (tokens), permissions, errors, money fields,
idempotency, throttling, pagination and the router apps register their endpoints in.

It knows no app (backoffice is the lowest one): each app declares its endpoints in its own
`api.py` (payments/api.py, refunds/api.py, reports/api.py), found by backoffice/api/urls.py.
Endpoints read through the apps' selectors and write through their services, exactly as the
admin does, so a rule lives once."""
