"""What the gateway returns: frozen dataclasses, never Stripe objects.

Amounts are integers in the minor unit of `currency` (lower-case ISO 4217, as Stripe sends
it); times are aware UTC datetimes. `Page` is one list call's worth of mapped objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StripeCustomer:
    id: str
    email: str
    name: str
    livemode: bool
    created: datetime
    default_payment_method_id: str = ""
    deleted: bool = False
    metadata: dict = field(default_factory=dict)
    # Stripe's customer balance in minor units of `currency`, Stripe's sign (negative: credit
    # the customer holds); `currency` is "" until Stripe sets one (None: not sent).
    balance: int | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class StripePaymentMethod:
    id: str
    customer_id: str
    type: str
    card_brand: str
    card_last4: str
    card_exp_month: int | None
    card_exp_year: int | None
    livemode: bool
    created: datetime
    billing_details: dict = field(default_factory=dict)
    # card.fingerprint: the same for one card number whoever holds it ("" when not a card).
    card_fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class StripePaymentIntent:
    """A PaymentIntent and its latest charge. Amounts in minor units of `currency`;
    `stripe_fee`/`balance_net` come from the charge's balance transaction, converted to
    `currency` when Stripe settled in another currency (None: not known yet)."""

    id: str
    amount: int
    currency: str
    status: str
    created: datetime
    livemode: bool = False
    customer_id: str = ""
    payment_method_id: str = ""
    payment_method_type: str = ""
    latest_charge_id: str = ""
    charge_status: str = ""
    charge_created: datetime | None = None
    charge_disputed: bool = False
    failure_code: str = ""
    decline_code: str = ""
    failure_message: str = ""
    stripe_fee: int | None = None
    balance_net: int | None = None
    amount_received: int = 0
    amount_refunded: int = 0
    canceled_at: datetime | None = None
    description: str = ""
    metadata: dict = field(default_factory=dict)
    billing_details: dict = field(default_factory=dict)
    # The expanded payment method, when the list/retrieve call expanded it.
    payment_method: StripePaymentMethod | None = None
    # The charge's payment_method_details.card.fingerprint (or the expanded method's).
    card_fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class StripeRefund:
    id: str
    payment_intent_id: str
    charge_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str = ""
    failure_reason: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripeDispute:
    id: str
    charge_id: str
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str = ""
    evidence_due_by: datetime | None = None
    # Stripe's dispute fees net of any it gave back: the sum of the dispute's balance
    # transactions' fees, in minor units of `currency` (0 when Stripe sent none).
    fee: int = 0
    # Stripe's `evidence` object: only the fields that hold a value; file fields as file ids.
    evidence: dict[str, str] = field(default_factory=dict)
    # From `evidence_details`: how often evidence was submitted, and whether any is staged.
    evidence_submission_count: int = 0
    has_evidence: bool = False


@dataclass(frozen=True, slots=True)
class StripeFile:
    """An uploaded file (`purpose=dispute_evidence` for evidence). `size` in bytes; `type`
    is Stripe's kind (`pdf`, `png`, `jpg`)."""

    id: str
    size: int
    type: str
    filename: str


@dataclass(frozen=True, slots=True)
class StripeAccount:
    """A Connect connected account. `transfers_capability` is Stripe's status of its
    `transfers` capability (`active`, `inactive`, `pending`; "" when not requested): only an
    account with it active can receive transfers."""

    id: str
    email: str
    charges_enabled: bool
    payouts_enabled: bool
    transfers_capability: str
    type: str = ""
    country: str = ""
    created: datetime | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def can_receive_transfers(self) -> bool:
        return self.transfers_capability == "active"


@dataclass(frozen=True, slots=True)
class StripeTransferReversal:
    """Money pulled back from a connected account: `amount` minor units of `currency`."""

    id: str
    transfer_id: str
    amount: int
    currency: str
    created: datetime
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StripeTransfer:
    """A Connect transfer to `destination` (a connected account id). Amounts in minor units
    of `currency`; `reversals` are all of its reversals, newest first (the gateway pages
    past the ten Stripe embeds)."""

    id: str
    amount: int
    currency: str
    destination: str
    created: datetime
    amount_reversed: int = 0
    reversed: bool = False
    transfer_group: str = ""
    description: str = ""
    metadata: dict = field(default_factory=dict)
    livemode: bool = False
    reversals: list[StripeTransferReversal] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page[T]:
    """One list call's worth: mapped items, whether more exist, and the cursor to resume
    after this page (the last raw object's id, also when the mapped list is filtered)."""

    items: list[T]
    has_more: bool
    last_id: str
