"""Links to the Stripe dashboard. Test-mode objects live under /test/ in the dashboard."""

DASHBOARD = "https://dashboard.stripe.com"

_PATHS = {
    "payment_intent": "payments",
    "customer": "customers",
    "payment_method": "payment_methods",
    "refund": "refunds",
    "dispute": "disputes",
    "transfer": "connect/transfers",
    "account": "connect/accounts",
    "subscription": "subscriptions",
}


def stripe_dashboard_url(kind: str, stripe_id: str, *, livemode: bool) -> str:
    """URL of `stripe_id` (a `kind` from _PATHS) in the live or the test dashboard."""
    prefix = DASHBOARD if livemode else f"{DASHBOARD}/test"
    return f"{prefix}/{_PATHS[kind]}/{stripe_id}"
