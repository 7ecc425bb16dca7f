"""Hour packages from real payments (payments/hours.py's record_payment_hours, called by the
sync's upserts): credited once whatever the replays, with the metadata's expiry or the
default; refunds (from any source) take their pro-rata minutes back once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import requests
import stripe
from django.db.models import Sum
from django.utils import timezone

from management import jobs
from payments import hours, sync
from payments import metadata as contract
from payments.gateway import StripeCustomer, StripePaymentIntent, StripeRefund
from payments.metadata import parse_payment_metadata
from payments.models import BalanceEntry, HourPackage, Payment, StudentBalance, WebhookEvent
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.webhook_support import PRIMARY_SECRET

Kind = BalanceEntry.Kind
CREATED = datetime(2026, 11, 20, 10, tzinfo=UTC)
PACKAGE = {
    "instructor_email": "grace@instructors.example.com",
    "product_kind": "hour_package",
    "product_id": "pkg_10h",
    "product_name": "10 tutoring hours",
    "package_minutes": "600",
}


def customer_row(cus="cus_hours1") -> StripeCustomer:
    return StripeCustomer(
        id=cus, email="ada@example.com", name="Ada", livemode=False, created=CREATED
    )


def intent(pi="pi_hours1", *, status="succeeded", metadata=None, refunded=0, cus="cus_hours1"):
    fields = {}
    if status == "succeeded":
        fields = {
            "latest_charge_id": "ch_" + pi[3:],
            "charge_status": "succeeded",
            "charge_created": CREATED + timedelta(seconds=5),
            "stripe_fee": 175,
            "amount_received": 6000,
            "amount_refunded": refunded,
        }
    return StripePaymentIntent(
        id=pi,
        amount=6000,
        currency="usd",
        status=status,
        created=CREATED,
        customer_id=cus,
        metadata=metadata or PACKAGE,
        **fields,
    )


def refund(re_id, amount, pi="pi_hours1") -> StripeRefund:
    return StripeRefund(
        id=re_id,
        payment_intent_id=pi,
        charge_id="ch_" + pi[3:],
        amount=amount,
        currency="usd",
        status="succeeded",
        created=CREATED + timedelta(days=1),
    )


def balance_minutes(cus="cus_hours1") -> int:
    return StudentBalance.objects.get(customer__stripe_id=cus).minutes


# --- the metadata contract's expires_at ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-31", datetime(2027, 2, 1, tzinfo=UTC)),
        ("2027-01-31T18:00:00+02:00", datetime(2027, 1, 31, 16, tzinfo=UTC)),
        ("1800000000", datetime.fromtimestamp(1_800_000_000, tz=UTC)),
    ],
)
def test_expires_at_is_read_as_a_date_a_datetime_with_offset_or_unix_seconds(text, expected):
    meta = parse_payment_metadata({**PACKAGE, "expires_at": text})
    assert meta.expires_at == expected
    assert not [p for p in meta.problems if "expires_at" in p]


@pytest.mark.parametrize(
    "text", ["tomorrow", "2027-01-31T18:00:00", "2027-02-30", "1800000000000", "1998-06-01"]
)
def test_a_bad_expires_at_is_a_problem_and_is_left_out(text):
    meta = parse_payment_metadata({**PACKAGE, "expires_at": text})
    assert meta.expires_at is None
    assert contract.MSG_BAD_EXPIRES_AT.format(value=text, first=2000, last=2099) in meta.problems


def test_expires_at_means_nothing_on_other_products():
    meta = parse_payment_metadata({**PACKAGE, "product_kind": "course", "expires_at": "soon"})
    assert meta.expires_at is None
    assert not [p for p in meta.problems if "expires_at" in p]


# --- credits ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_package_is_credited_once_whatever_the_replays(settings):
    settings.HOUR_PACKAGE_VALID_DAYS = 100
    sync.upsert_customers([customer_row()])
    # Not succeeded yet: nothing to credit.
    sync.upsert_payment_intents([intent(status="processing")])
    assert not BalanceEntry.objects.exists()
    # The webhook, the sync, a full re-sync, and an older snapshot arriving late.
    for row in [intent(), intent(), intent(), intent(status="processing"), intent()]:
        sync.upsert_payment_intents([row])
    payment = Payment.objects.get()
    entry = BalanceEntry.objects.get()
    assert (entry.kind, entry.minutes, entry.payment_id) == (Kind.PURCHASE, 600, payment.pk)
    assert entry.reference == hours.purchase_reference("pi_hours1")
    package = HourPackage.objects.get()
    assert (package.minutes, package.remaining, package.payment_id) == (600, 600, payment.pk)
    assert package.expires_at == payment.succeeded_at + timedelta(days=100)
    assert balance_minutes() == 600
    # --fix-inconsistencies finds nothing to repair on the balance.
    report = jobs.fix_inconsistencies(dry_run=True)
    assert not [c for c in report["changes"] if c.get("field") == "minutes"]


@pytest.mark.django_db
def test_the_metadata_expiry_wins():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents([intent(metadata={**PACKAGE, "expires_at": "2027-03-01"})])
    assert HourPackage.objects.get().expires_at == datetime(2027, 3, 2, tzinfo=UTC)


@pytest.mark.django_db
def test_courses_and_packages_without_a_customer_credit_nothing():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents(
        [
            intent("pi_course", metadata={**PACKAGE, "product_kind": "course"}),
            intent("pi_nobody", cus=""),
        ]
    )
    assert not BalanceEntry.objects.exists()


# --- refunds ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stripe_side_refunds_take_their_share_once():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents([intent()])
    # A partial refund made in Stripe's dashboard, mirrored twice (webhook and sync).
    for _ in range(2):
        sync.upsert_refunds([refund("re_1", 2000)])
        sync.upsert_payment_intents([intent(refunded=2000)])
    assert balance_minutes() == 400
    # The rest, later: the package is refunded in full, exactly its 600 minutes.
    sync.upsert_refunds([refund("re_1", 2000), refund("re_2", 4000)])
    sync.upsert_payment_intents([intent(refunded=6000)])
    refunds = BalanceEntry.objects.filter(kind=Kind.REFUND).order_by("id")
    assert list(refunds.values_list("minutes", "reference")) == [
        (-200, hours.refund_reference("pi_hours1", 1)),
        (-400, hours.refund_reference("pi_hours1", 2)),
    ]
    assert balance_minutes() == 0
    assert HourPackage.objects.get().remaining == 0


@pytest.mark.django_db
def test_a_refund_of_used_hours_takes_other_packages_then_leaves_a_debt():
    """The policy (payments/hours.py): the refunded package first, then the student's other
    unexpired packages, then a negative balance the next credit settles."""
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents(
        [intent("pi_a"), intent("pi_b", metadata={**PACKAGE, "package_minutes": "60"})]
    )
    customer_id = Payment.objects.get(stripe_payment_intent_id="pi_a").customer_id
    hours.debit_minutes(customer_id=customer_id, minutes=630, kind=Kind.USAGE, reference="u")
    # pi_a (600, first to expire? same expiry: the older one) is used up, pi_b has 30 left.
    sync.upsert_refunds([refund("re_a", 6000, pi="pi_a")])
    assert balance_minutes() == 30 - 600
    package_a = HourPackage.objects.get(payment__stripe_payment_intent_id="pi_a")
    package_b = HourPackage.objects.get(payment__stripe_payment_intent_id="pi_b")
    assert (package_a.remaining, package_b.remaining) == (-570, 0)
    sync.upsert_payment_intents([intent("pi_c", metadata={**PACKAGE, "package_minutes": "1200"})])
    package_a.refresh_from_db()
    assert package_a.remaining == 0
    assert balance_minutes() == 630
    entries = BalanceEntry.objects.aggregate(total=Sum("minutes"))["total"]
    assert entries == 630


@pytest.mark.django_db
def test_a_refund_that_no_longer_stands_gives_its_minutes_back():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents([intent()])
    sync.upsert_refunds([refund("re_1", 3000)])
    assert balance_minutes() == 300
    # Stripe reports the refund failed after all (it had succeeded).
    sync.upsert_refunds([dataclasses.replace(refund("re_1", 3000), status="failed")])
    assert balance_minutes() == 600
    assert list(
        BalanceEntry.objects.filter(kind=Kind.REFUND)
        .order_by("id")
        .values_list("minutes", flat=True)
    ) == [-300, 300]


@pytest.mark.django_db
@pytest.mark.parametrize("used", [0, 200])
@pytest.mark.parametrize("expiry_first", [False, True])
def test_a_refund_after_expiry_takes_what_a_refund_before_it_would(used, expiry_first):
    """What the refunded package lost to expiry counts as already gone: refunding before or
    after the expiry job ends at the same balance, the other package's paid hours kept."""
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents(
        [intent("pi_a", metadata={**PACKAGE, "expires_at": "2027-01-15"}), intent("pi_b")]
    )
    customer_id = Payment.objects.get(stripe_payment_intent_id="pi_a").customer_id
    if used:
        hours.debit_minutes(customer_id=customer_id, minutes=used, kind=Kind.USAGE, reference="u")
    later = datetime(2027, 2, 1, tzinfo=UTC)
    if expiry_first:
        hours.expire_packages(now=later)
    sync.upsert_refunds([refund("re_a", 6000, pi="pi_a")])
    if not expiry_first:
        hours.expire_packages(now=later)
    # Only the used share comes off the other package (the policy), never the expired part.
    assert balance_minutes() == 600 - used
    assert BalanceEntry.objects.aggregate(total=Sum("minutes"))["total"] == 600 - used


@pytest.mark.django_db
def test_a_refund_that_no_longer_stands_on_an_expired_package_expires_at_once():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents(
        [intent("pi_a", metadata={**PACKAGE, "expires_at": "2027-01-15"}), intent("pi_b")]
    )
    sync.upsert_refunds([refund("re_1", 3000, pi="pi_a")])
    hours.expire_packages(now=datetime(2027, 2, 1, tzinfo=UTC))
    assert balance_minutes() == 600
    # The refund failed after all: its 300 minutes go back to pi_a, which has expired.
    sync.upsert_refunds([dataclasses.replace(refund("re_1", 3000, pi="pi_a"), status="failed")])
    assert balance_minutes() == 600
    package_a = HourPackage.objects.get(payment__stripe_payment_intent_id="pi_a")
    assert package_a.remaining == 0


@pytest.mark.django_db
def test_a_lost_dispute_takes_the_package_back_like_a_refund():
    """The business lost the money (a chargeback): the package's minutes go as a refund's
    would, once; a refund on top never takes more than the whole package."""
    from payments.gateway import StripeDispute

    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents([intent()])

    def dispute(status):
        return StripeDispute(
            id="dp_hours1",
            charge_id="ch_hours1",
            payment_intent_id="pi_hours1",
            amount=3000,
            currency="usd",
            status=status,
            created=CREATED + timedelta(days=2),
        )

    sync.upsert_disputes([dispute("needs_response")])
    assert balance_minutes() == 600  # open: nothing is lost yet
    for _ in range(2):
        sync.upsert_disputes([dispute("lost")])
    assert balance_minutes() == 300
    sync.upsert_refunds([refund("re_1", 3000)])
    assert balance_minutes() == 0


@pytest.mark.django_db
def test_a_refund_takes_back_the_purchased_package_whatever_the_metadata_says_now():
    sync.upsert_customers([customer_row()])
    sync.upsert_payment_intents([intent()])
    # Someone edits the payment's metadata after the purchase: the package stays 600 minutes.
    sync.upsert_payment_intents([intent(metadata={**PACKAGE, "package_minutes": "1200"})])
    sync.upsert_refunds([refund("re_1", 6000)])
    assert balance_minutes() == 0
    assert BalanceEntry.objects.get(kind=Kind.REFUND).minutes == -600


# --- against localstripe: webhook, sync and re-sync -----------------------------------------------

HOOK_ID = "wh_hours_tests"


@pytest.mark.stripe
@pytest.mark.django_db(transaction=True)
def test_a_localstripe_package_is_credited_once_by_webhook_sync_and_resync(
    localstripe, live_server, settings
):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    settings.STRIPE_WEBHOOK_SECRETS = [PRIMARY_SECRET]
    url = f"{live_server.url}/stripe/webhook/"
    hook = f"{localstripe}/_config/webhooks/{HOOK_ID}"
    let_earlier_events_pass()
    requests.post(hook, json={"url": url, "secret": PRIMARY_SECRET}, timeout=5).raise_for_status()
    peer = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
    expires = (timezone.now() + timedelta(days=3)).date().isoformat()
    try:
        customer = peer.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})
        wait_until(
            lambda: WebhookEvent.objects.filter(
                type="customer.created", status="processed"
            ).exists()
        )
        method = peer.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
        paid = peer.v1.payment_intents.create(
            params={
                "amount": 6000,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": method.id,
                "confirm": True,
                "metadata": {**PACKAGE, "expires_at": expires},
            }
        )
        wait_until(
            lambda: WebhookEvent.objects.filter(
                type="payment_intent.succeeded", status="processed"
            ).exists(),
            describe=lambda: list(WebhookEvent.objects.values("type", "status")),
        )
    finally:
        stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)
    assert jobs.stripe_sync()["status"] == "succeeded"
    assert jobs.stripe_sync(full=True)["status"] == "succeeded"
    purchases = BalanceEntry.objects.filter(kind=Kind.PURCHASE)
    assert list(purchases.values_list("minutes", "payment__stripe_payment_intent_id")) == [
        (600, paid.id)
    ]
    package = HourPackage.objects.get()
    assert package.expires_at.date().isoformat() > expires  # valid through that day
    # A refund made at Stripe (not through the back-office), then mirrored by the sync.
    peer.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1500})
    assert jobs.stripe_sync(full=True)["status"] == "succeeded"
    assert jobs.stripe_sync(full=True)["status"] == "succeeded"
    assert list(
        BalanceEntry.objects.filter(kind=Kind.REFUND).values_list("minutes", flat=True)
    ) == [-150]
    assert StudentBalance.objects.get().minutes == 450
