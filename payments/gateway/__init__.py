"""The ONLY package that imports `stripe` (ruff TID251 bans it everywhere else).

- client.py   settings -> GatewayConfig, the token bucket, RetryPolicy, StripeClient (rate
              limit, retries that reuse the idempotency key), count_api_calls
- errors.py   should_retry, translate_error: stripe.* errors -> payments.exceptions
- types.py    the frozen dataclasses returned (minor units, aware datetimes) and Page
- mappers.py  `*_from_stripe`: a Stripe object or a webhook's plain dict -> those dataclasses
- calls.py    `stripe_<object>_<verb>` calls and the list pagers
- webhooks.py signature verification with the SDK's verifier, one secret at a time

Callers import from here (`from payments import gateway; gateway.stripe_refund_create(...)`),
so tests patch `payments.gateway.<call>`; the clock and `sleep` are patched on the submodule
that uses them (payments.gateway.client).
"""

from payments.gateway.calls import (
    PAGE_SIZE,
    PAYMENT_INTENT_EXPAND,
    stripe_customer_create,
    stripe_customer_list_pages,
    stripe_customer_retrieve,
    stripe_dispute_close,
    stripe_dispute_list,
    stripe_dispute_list_pages,
    stripe_dispute_retrieve,
    stripe_dispute_update,
    stripe_file_create,
    stripe_payment_intent_confirm,
    stripe_payment_intent_create,
    stripe_payment_intent_list_pages,
    stripe_payment_intent_retrieve,
    stripe_payment_method_attach,
    stripe_payment_method_list_for_customer,
    stripe_payment_method_retrieve,
    stripe_refund_create,
    stripe_refund_list,
    stripe_refund_list_pages,
    stripe_refund_retrieve,
)
from payments.gateway.client import (
    CallCounter,
    GatewayConfig,
    RetryPolicy,
    StripeClient,
    TokenBucket,
    count_api_calls,
)
from payments.gateway.errors import should_retry, translate_error
from payments.gateway.mappers import (
    customer_from_stripe,
    dispute_from_stripe,
    file_from_stripe,
    payment_intent_from_stripe,
    payment_method_from_stripe,
    refund_from_stripe,
)
from payments.gateway.types import (
    Page,
    StripeCustomer,
    StripeDispute,
    StripeFile,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
)
from payments.gateway.webhooks import webhook_event_construct, webhook_signature_header

__all__ = [
    "PAGE_SIZE",
    "PAYMENT_INTENT_EXPAND",
    "CallCounter",
    "GatewayConfig",
    "Page",
    "RetryPolicy",
    "StripeClient",
    "StripeCustomer",
    "StripeDispute",
    "StripeFile",
    "StripePaymentIntent",
    "StripePaymentMethod",
    "StripeRefund",
    "TokenBucket",
    "count_api_calls",
    "customer_from_stripe",
    "dispute_from_stripe",
    "file_from_stripe",
    "payment_intent_from_stripe",
    "payment_method_from_stripe",
    "refund_from_stripe",
    "should_retry",
    "stripe_customer_create",
    "stripe_customer_list_pages",
    "stripe_customer_retrieve",
    "stripe_dispute_close",
    "stripe_dispute_list",
    "stripe_dispute_list_pages",
    "stripe_dispute_retrieve",
    "stripe_dispute_update",
    "stripe_file_create",
    "stripe_payment_intent_confirm",
    "stripe_payment_intent_create",
    "stripe_payment_intent_list_pages",
    "stripe_payment_intent_retrieve",
    "stripe_payment_method_attach",
    "stripe_payment_method_list_for_customer",
    "stripe_payment_method_retrieve",
    "stripe_refund_create",
    "stripe_refund_list",
    "stripe_refund_list_pages",
    "stripe_refund_retrieve",
    "translate_error",
    "webhook_event_construct",
    "webhook_signature_header",
]
