"""The calls: `stripe_<object>_<verb>` functions and the list pagers.

Each takes keyword-only arguments and an optional `client` (default: a StripeClient from
settings), returns the dataclasses of payments.gateway.types with amounts in integer minor
units, and raises payments.exceptions errors only. Every mutating call requires an
idempotency key derived by the caller from its own row (`refund:<pk>`); retries reuse it.
Pagers yield one `Page` per list call (limit 100), so the sync can upsert and advance its
watermark page by page.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import stripe

from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED
from payments.gateway.client import StripeClient
from payments.gateway.mappers import (
    _get,
    _id,
    _int,
    account_from_stripe,
    customer_from_stripe,
    dispute_from_stripe,
    file_from_stripe,
    payment_intent_from_stripe,
    payment_method_from_stripe,
    refund_from_stripe,
    transfer_from_stripe,
    transfer_reversal_from_stripe,
    transfer_reversals_incomplete,
)
from payments.gateway.types import (
    Page,
    StripeAccount,
    StripeCustomer,
    StripeDispute,
    StripeFile,
    StripePaymentIntent,
    StripePaymentMethod,
    StripeRefund,
    StripeTransfer,
    StripeTransferReversal,
)

ERR_AMOUNT_NOT_POSITIVE = "amount must be a positive number of minor units"

# Stripe's list maximum; one call fetches one page of this many objects.
PAGE_SIZE = 100
# Expanded in the payment intent list call, so fees and card details arrive with the page
# (no retrieve per object). Stripe allows up to 4 levels.
PAYMENT_INTENT_EXPAND = ["data.latest_charge.balance_transaction", "data.payment_method"]


# --- listing ----------------------------------------------------------------------------------


def _strings(values: dict) -> dict[str, str]:
    """Stripe's hashes of strings (metadata, evidence): keys and values sent as text."""
    return {str(key): str(value) for key, value in values.items()}


def _list_pages[T](
    fetch: Callable[[stripe.StripeClient, dict, dict], Any],
    mapper: Callable[[Any], T],
    *,
    params: dict,
    created_gt: datetime | None,
    starting_after: str | None,
    client: StripeClient,
    server_filters_created: bool,
) -> Iterator[Page[T]]:
    cursor = starting_after
    gt = int(created_gt.timestamp()) if created_gt else None
    while True:
        call_params = {**params, "limit": PAGE_SIZE}
        if gt is not None and server_filters_created:
            # `gt`, not `gte`: localstripe answers 500 to gte; the overlap is the caller's.
            call_params["created"] = {"gt": gt}
        if cursor:
            call_params["starting_after"] = cursor

        def run(sdk, options, call_params=call_params):
            return fetch(sdk, call_params, options)

        result = client.call(run)
        raw = list(_get(result, "data", []) or [])
        items = [
            mapper(obj)
            for obj in raw
            if gt is None or server_filters_created or _int(_get(obj, "created")) > gt
        ]
        has_more = bool(_get(result, "has_more", False)) and bool(raw)
        cursor = _id(raw[-1]) if raw else cursor
        yield Page(items=items, has_more=has_more, last_id=cursor or "")
        if not has_more:
            return


def stripe_customer_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeCustomer]]:
    """Pages (100 each, newest first) of customers created after `created_gt`, resuming
    after the object id `starting_after`. One API call per page. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.customers.list(params=params, options=options),
        customer_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_payment_method_list_for_customer(
    *, customer_id: str, client: StripeClient | None = None
) -> list[StripePaymentMethod]:
    """Every payment method attached to `customer_id` (Stripe lists them per customer and
    without a `created` filter). ceil(n/100) calls. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {}
    if client.config.localstripe_compat:
        params["type"] = "card"  # localstripe lists one type at a time, cards only

    def fetch(sdk, call_params, options):
        return sdk.v1.customers.payment_methods.list(
            customer_id, params=call_params, options=options
        )

    methods: list[StripePaymentMethod] = []
    for page in _list_pages(
        fetch if not client.config.localstripe_compat else _pm_list_localstripe(customer_id),
        payment_method_from_stripe,
        params=params,
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        methods.extend(page.items)
    return methods


def _pm_list_localstripe(customer_id: str):
    # localstripe serves GET /v1/payment_methods?customer=...&type=card, not the customer path.
    def fetch(sdk, call_params, options):
        return sdk.v1.payment_methods.list(
            params={**call_params, "customer": customer_id}, options=options
        )

    return fetch


def stripe_payment_intent_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripePaymentIntent]]:
    """Pages (100 each) of payment intents created after `created_gt`, each with its latest
    charge, the charge's balance transaction (fee, net) and the payment method expanded in
    the list call itself: one API call per page, no retrieve per object. Raises
    GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.payment_intents.list(params=params, options=options),
        payment_intent_from_stripe,
        params={"expand": PAYMENT_INTENT_EXPAND},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_refund_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeRefund]]:
    """Pages (100 each) of refunds created after `created_gt`. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.refunds.list(params=params, options=options),
        refund_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=not client.config.localstripe_compat,
    )


def stripe_dispute_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeDispute]]:
    """Pages (100 each, newest first) of disputes created after `created_gt`, each with its
    balance transactions (the dispute fee). Always asks the peer: the project's localstripe
    launcher serves disputes with Stripe's `created` filters, so the compatibility mode
    changes nothing here. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.disputes.list(params=params, options=options),
        dispute_from_stripe,
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=True,
    )


def stripe_refund_list(
    *, payment_intent_id: str, client: StripeClient | None = None
) -> list[StripeRefund]:
    """Every refund of one payment intent, newest first (amounts in minor units). Used to
    find a refund by its metadata after an ambiguous timeout. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    refunds: list[StripeRefund] = []
    for page in _list_pages(
        lambda sdk, params, options: sdk.v1.refunds.list(params=params, options=options),
        refund_from_stripe,
        params={"payment_intent": payment_intent_id},
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        refunds.extend(page.items)
    return refunds


def stripe_dispute_list(
    *, payment_intent_id: str, client: StripeClient | None = None
) -> list[StripeDispute]:
    """Every dispute of one payment intent, newest first (a charge may be disputed more than
    once). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    disputes: list[StripeDispute] = []
    for page in _list_pages(
        lambda sdk, params, options: sdk.v1.disputes.list(params=params, options=options),
        dispute_from_stripe,
        params={"payment_intent": payment_intent_id},
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        disputes.extend(page.items)
    return disputes


# --- retrieving (webhook handlers re-read the object) -----------------------------------------


def stripe_payment_intent_retrieve(
    *, payment_intent_id: str, client: StripeClient | None = None
) -> StripePaymentIntent:
    """The current payment intent with latest charge, balance transaction and payment
    method expanded. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    expand = [path.removeprefix("data.") for path in PAYMENT_INTENT_EXPAND]
    return payment_intent_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.retrieve(
                payment_intent_id, params={"expand": expand}, options=options
            )
        )
    )


def stripe_customer_retrieve(
    *, customer_id: str, client: StripeClient | None = None
) -> StripeCustomer:
    """The current customer (`deleted=True` for a deleted one). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return customer_from_stripe(
        client.call(lambda sdk, options: sdk.v1.customers.retrieve(customer_id, options=options))
    )


def stripe_refund_retrieve(*, refund_id: str, client: StripeClient | None = None) -> StripeRefund:
    """The current refund. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return refund_from_stripe(
        client.call(lambda sdk, options: sdk.v1.refunds.retrieve(refund_id, options=options))
    )


def stripe_payment_method_retrieve(
    *, payment_method_id: str, client: StripeClient | None = None
) -> StripePaymentMethod:
    """The current payment method (customer_id "" once detached). Raises GatewayError."""
    client = client or StripeClient.from_settings()
    return payment_method_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_methods.retrieve(payment_method_id, options=options)
        )
    )


def stripe_dispute_retrieve(
    *, dispute_id: str, client: StripeClient | None = None
) -> StripeDispute:
    """The current dispute. Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return dispute_from_stripe(
        client.call(lambda sdk, options: sdk.v1.disputes.retrieve(dispute_id, options=options))
    )


# --- mutations (idempotency key required) -----------------------------------------------------


def stripe_dispute_update(
    *,
    dispute_id: str,
    evidence: dict[str, str],
    submit: bool,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeDispute:
    """Stage (`submit=False`) or submit for good (`submit=True`) evidence on a dispute.
    `evidence` maps Stripe's evidence field names to text, or to file ids (from
    stripe_file_create) for the file fields; fields left out keep their value. Stripe moves
    a submitted dispute to `under_review` (`warning_under_review` for an inquiry) and
    accepts one submission only. Raises InvalidRequest when Stripe refuses (closed or
    already submitted dispute, unknown field, file not found), GatewayTimeout when it may
    have acted (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    # `submit` always sent: Stripe's default (when omitted) is to submit.
    params: dict[str, Any] = {
        "evidence": _strings(evidence),
        "submit": bool(submit),
    }
    return dispute_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.disputes.update(dispute_id, params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_dispute_close(
    *, dispute_id: str, idempotency_key: str, client: StripeClient | None = None
) -> StripeDispute:
    """Accept a dispute: Stripe closes it as `lost` (`warning_closed` for an inquiry) and
    the withdrawn amount and fee stay withdrawn. Irreversible. Raises InvalidRequest when
    Stripe refuses (already closed or submitted), GatewayTimeout when it may have acted
    (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    return dispute_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.disputes.close(dispute_id, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_file_create(
    *,
    content: bytes,
    filename: str,
    purpose: str = "dispute_evidence",
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeFile:
    """Upload `content` (bytes) as a Stripe file; its id goes into a dispute's evidence
    file fields. Stripe takes PDF, JPEG and PNG as dispute evidence (its size limits are
    the caller's to check before sending). Raises InvalidRequest when Stripe refuses the
    file, GatewayTimeout when it may have acted (retry with the SAME key), or another
    GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()

    def upload(sdk, options):
        # A fresh stream per attempt: a retry must send the whole file again.
        stream = io.BytesIO(content)
        stream.name = filename  # the SDK's multipart encoder sends it as the filename
        return sdk.v1.files.create(params={"purpose": purpose, "file": stream}, options=options)

    return file_from_stripe(client.call(upload, idempotency_key=idempotency_key, mutating=True))


def stripe_payment_intent_confirm(
    *,
    payment_intent_id: str,
    payment_method_id: str,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePaymentIntent:
    """Confirm `payment_intent_id` again with `payment_method_id` (retry a failed payment).

    Raises CardDeclined (with code/decline_code) when the card is declined, GatewayTimeout
    when the outcome is unknown (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "payment_method": payment_method_id,
        "expand": ["latest_charge.balance_transaction", "payment_method"],
    }
    if client.config.localstripe_compat:
        # localstripe confirms only without parameters (500 "Not implemented" otherwise) and
        # only an intent that was never charged: set the method by an update first.
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.update(
                payment_intent_id, params={"payment_method": payment_method_id}, options=options
            ),
            idempotency_key=f"{idempotency_key}:payment-method",
            mutating=True,
        )
        params = {}
    return payment_intent_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.confirm(
                payment_intent_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_refund_create(
    *,
    payment_intent_id: str,
    amount: int,
    idempotency_key: str,
    reason: str | None = None,
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripeRefund:
    """Refund `amount` minor units of `payment_intent_id`.

    Put your row's id in `metadata` (e.g. {"refund_request": "42"}) so that the refund can
    be found with stripe_refund_list after an ambiguous failure. Raises GatewayTimeout when
    the request may have reached Stripe (retry with the SAME key), InvalidRequest when
    Stripe refuses (e.g. more than the refundable amount), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if amount <= 0:
        raise ValueError(ERR_AMOUNT_NOT_POSITIVE)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"payment_intent": payment_intent_id, "amount": int(amount)}
    if reason:
        params["reason"] = reason
    if metadata:
        params["metadata"] = _strings(metadata)
    return refund_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.refunds.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_customer_create(
    *,
    email: str,
    name: str,
    idempotency_key: str,
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripeCustomer:
    """Create a customer. Raises GatewayTimeout when the request may have reached Stripe
    (retry with the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"email": email, "name": name}
    if metadata:
        params["metadata"] = _strings(metadata)
    return customer_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.customers.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_payment_method_attach(
    *,
    payment_method_id: str,
    customer_id: str,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripePaymentMethod:
    """Attach a payment method to a customer and return it as attached. Use the returned
    id: Stripe answers a test payment method (`pm_card_visa`) with a new object. Raises
    CardDeclined when the card cannot be saved, or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    return payment_method_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_methods.attach(
                payment_method_id, params={"customer": customer_id}, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_payment_intent_create(
    *,
    amount: int,
    currency: str,
    customer_id: str,
    payment_method_id: str,
    idempotency_key: str,
    confirm: bool = False,
    metadata: dict | None = None,
    client: StripeClient | None = None,
) -> StripePaymentIntent:
    """Create a card payment intent of `amount` minor units of `currency` for a customer's
    saved payment method; with `confirm=True` Stripe charges it at once.

    Raises CardDeclined (with code/decline_code) when a confirmed charge is declined,
    GatewayTimeout when the outcome is unknown (retry with the SAME key), or another
    GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if amount <= 0:
        raise ValueError(ERR_AMOUNT_NOT_POSITIVE)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "amount": int(amount),
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "confirm": confirm,
    }
    if metadata:
        params["metadata"] = _strings(metadata)
    return payment_intent_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.payment_intents.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


# --- Connect: connected accounts, transfers, reversals ----------------------------------------


def stripe_account_create(
    *,
    email: str,
    name: str = "",
    country: str = "US",
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeAccount:
    """Create an Express connected account for an instructor, requesting the `transfers`
    capability (what a payout needs; Stripe activates it once the instructor has finished
    onboarding, so check `can_receive_transfers` before paying). Raises InvalidRequest when
    Stripe refuses, GatewayTimeout when it may have acted (retry with the SAME key), or
    another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "type": "express",
        "country": country.upper(),
        "email": email,
        "capabilities": {"transfers": {"requested": True}},
    }
    if name:
        params["business_profile"] = {"name": name}
    return account_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.accounts.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_account_retrieve(
    *, account_id: str, client: StripeClient | None = None
) -> StripeAccount:
    """The connected account as Stripe has it now (capabilities, charges/payouts enabled).
    Raises ResourceMissing (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return account_from_stripe(
        client.call(lambda sdk, options: sdk.v1.accounts.retrieve(account_id, options=options))
    )


def _transfer_reversals_all(transfer_id: str, client: StripeClient) -> list[StripeTransferReversal]:
    """Every reversal of a transfer, newest first: ceil(n/100) calls."""

    def fetch(sdk, call_params, options):
        return sdk.v1.transfers.reversals.list(transfer_id, params=call_params, options=options)

    reversals: list[StripeTransferReversal] = []
    for page in _list_pages(
        fetch,
        lambda obj: transfer_reversal_from_stripe(obj, transfer_id=transfer_id),
        params={},
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        reversals.extend(page.items)
    return reversals


def _transfer_mapper(client: StripeClient) -> Callable[[Any], StripeTransfer]:
    """Stripe embeds a transfer's first ten reversals: page the rest only when it says there
    are more (one extra call for such a transfer, none for the others)."""

    def mapper(obj: Any) -> StripeTransfer:
        if transfer_reversals_incomplete(obj):
            return transfer_from_stripe(obj, reversals=_transfer_reversals_all(_id(obj), client))
        return transfer_from_stripe(obj)

    return mapper


def stripe_transfer_create(
    *,
    amount: int,
    currency: str,
    destination: str,
    transfer_group: str,
    metadata: dict,
    description: str = "",
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeTransfer:
    """Transfer `amount` minor units of `currency` from the platform's balance to the
    connected account `destination`. Put the payout's id in `metadata` and its reference in
    `transfer_group`, so that the transfer can be found (stripe_transfer_list) after an
    ambiguous failure. Raises InvalidRequest when Stripe refuses (unknown destination, an
    account without the transfers capability: stripe_code `resource_missing` /
    `insufficient_capabilities_for_transfer`; insufficient platform balance), GatewayTimeout
    when it may have acted (look it up, or retry with the SAME key), or another
    GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if amount <= 0:
        raise ValueError(ERR_AMOUNT_NOT_POSITIVE)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {
        "amount": int(amount),
        "currency": currency.lower(),
        "destination": destination,
        "transfer_group": transfer_group,
        "metadata": _strings(metadata),
    }
    if description:
        params["description"] = description
    return _transfer_mapper(client)(
        client.call(
            lambda sdk, options: sdk.v1.transfers.create(params=params, options=options),
            idempotency_key=idempotency_key,
            mutating=True,
        )
    )


def stripe_transfer_retrieve(
    *, transfer_id: str, client: StripeClient | None = None
) -> StripeTransfer:
    """The transfer as Stripe has it now, with all its reversals. Raises ResourceMissing
    (404) or another GatewayError."""
    client = client or StripeClient.from_settings()
    return _transfer_mapper(client)(
        client.call(lambda sdk, options: sdk.v1.transfers.retrieve(transfer_id, options=options))
    )


def stripe_transfer_list(
    *,
    transfer_group: str | None = None,
    destination: str | None = None,
    created_gte: datetime | None = None,
    client: StripeClient | None = None,
) -> list[StripeTransfer]:
    """Every transfer matching the filters, newest first: how a payout finds the transfer
    of its `transfer_group` after a timeout before sending again. ceil(n/100) calls.
    Raises GatewayError."""
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {}
    if transfer_group is not None:
        params["transfer_group"] = transfer_group
    if destination is not None:
        params["destination"] = destination
    if created_gte is not None:
        params["created"] = {"gte": int(created_gte.timestamp())}
    transfers: list[StripeTransfer] = []
    for page in _list_pages(
        lambda sdk, call_params, options: sdk.v1.transfers.list(
            params=call_params, options=options
        ),
        _transfer_mapper(client),
        params=params,
        created_gt=None,
        starting_after=None,
        client=client,
        server_filters_created=True,
    ):
        transfers.extend(page.items)
    return transfers


def stripe_transfer_list_pages(
    *,
    created_gt: datetime | None = None,
    starting_after: str | None = None,
    client: StripeClient | None = None,
) -> Iterator[Page[StripeTransfer]]:
    """Pages (100 each, newest first) of transfers created after `created_gt`, each with
    all its reversals. The project's localstripe launcher serves transfers with Stripe's
    `created` filters, so the compatibility mode changes nothing here. Raises
    GatewayError."""
    client = client or StripeClient.from_settings()
    return _list_pages(
        lambda sdk, params, options: sdk.v1.transfers.list(params=params, options=options),
        _transfer_mapper(client),
        params={},
        created_gt=created_gt,
        starting_after=starting_after,
        client=client,
        server_filters_created=True,
    )


def stripe_transfer_reversal_create(
    *,
    transfer_id: str,
    amount: int,
    metadata: dict,
    idempotency_key: str,
    client: StripeClient | None = None,
) -> StripeTransferReversal:
    """Pull `amount` minor units (in the transfer's currency) back from the connected
    account. Raises InvalidRequest when Stripe refuses (more than is left to reverse, the
    connected account's balance too low), GatewayTimeout when it may have acted (retry with
    the SAME key), or another GatewayError."""
    if not idempotency_key:
        raise ValueError(ERR_IDEMPOTENCY_KEY_REQUIRED)
    if amount <= 0:
        raise ValueError(ERR_AMOUNT_NOT_POSITIVE)
    client = client or StripeClient.from_settings()
    params: dict[str, Any] = {"amount": int(amount), "metadata": _strings(metadata)}
    return transfer_reversal_from_stripe(
        client.call(
            lambda sdk, options: sdk.v1.transfers.reversals.create(
                transfer_id, params=params, options=options
            ),
            idempotency_key=idempotency_key,
            mutating=True,
        ),
        transfer_id=transfer_id,
    )


def stripe_event_object_ids(
    *,
    event_type: str,
    created_gt: datetime | None = None,
    client: StripeClient | None = None,
) -> list[str]:
    """The ids of the objects named by the events of `event_type` created after
    `created_gt`, newest first, each once. Stripe keeps events for 30 days: how the sync
    finds what changed on objects older than its window (a reversal of an old transfer).
    ceil(n/100) calls. Raises GatewayError."""
    client = client or StripeClient.from_settings()
    ids: dict[str, None] = {}
    for page in _list_pages(
        lambda sdk, params, options: sdk.v1.events.list(params=params, options=options),
        lambda event: _id(_get(_get(event, "data"), "object")),
        params={"type": event_type},
        created_gt=created_gt,
        starting_after=None,
        client=client,
        # localstripe filters events by `created[gt]` too (not by gte).
        server_filters_created=True,
    ):
        ids.update(dict.fromkeys(i for i in page.items if i))
    return list(ids)
