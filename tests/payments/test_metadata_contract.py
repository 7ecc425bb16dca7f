"""The metadata contract (payments/metadata.py): what the checkout puts on a PaymentIntent,
read by the sync and the webhooks into the mirror; instructors matched by connected account,
then e-mail, and created when new; bad values never stop a payment from syncing."""

from datetime import UTC, datetime

import pytest
import requests
import stripe

from management import jobs
from payments import metadata as contract
from payments import sync
from payments.gateway import StripePaymentIntent
from payments.metadata import parse_payment_metadata
from payments.models import Instructor, Payment, WebhookEvent
from tests.live_support import let_earlier_events_pass, stop_deliveries, wait_until
from tests.payments.webhook_support import PRIMARY_SECRET

CREATED = datetime(2026, 11, 20, 10, tzinfo=UTC)
FULL = {
    "instructor_account": "acct_1Grace",
    "instructor_email": "Grace@Instructors.Example.com",
    "instructor_id": "ins_42",
    "instructor_name": "Grace Hopper",
    "product_kind": "hour_package",
    "product_id": "pkg_10h",
    "product_name": "10 tutoring hours",
    "package_minutes": "600",
    "coupon_code": "WELCOME10",
    "booking_id": "bk_123",
}


def intent(pi="pi_meta1", metadata=None, amount=5000, **fields) -> StripePaymentIntent:
    return StripePaymentIntent(
        id=pi,
        amount=amount,
        currency="usd",
        status="succeeded",
        created=CREATED,
        latest_charge_id="ch_" + pi[3:],
        charge_status="succeeded",
        stripe_fee=175,
        amount_received=amount,
        metadata=metadata or {},
        **fields,
    )


# --- Parsing -----------------------------------------------------------------------------------


def test_a_complete_contract_is_read_with_no_problems():
    meta = parse_payment_metadata(FULL)
    assert meta.problems == ()
    assert meta.instructor_account == "acct_1Grace"
    assert meta.instructor_email == "grace@instructors.example.com"  # lower-cased
    assert (meta.product_kind, meta.package_minutes) == ("hour_package", 600)
    assert (meta.coupon_code, meta.booking_id, meta.instructor_id) == (
        "WELCOME10",
        "bk_123",
        "ins_42",
    )


def test_missing_metadata_is_named_not_fatal():
    meta = parse_payment_metadata({})
    assert meta.problems == (
        contract.MSG_NO_INSTRUCTOR,
        contract.MSG_NO_KIND.format(kinds="course, event, hour_package, subscription"),
    )
    assert parse_payment_metadata(None).problems == meta.problems
    assert parse_payment_metadata("not a mapping").problems == meta.problems


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("instructor_account", "cus_123", contract.MSG_BAD_ACCOUNT.format(value="cus_123")),
        ("instructor_email", "not-an-email", contract.MSG_BAD_EMAIL.format(value="not-an-email")),
        (
            "product_kind",
            "vacation",
            contract.MSG_BAD_KIND.format(
                value="vacation", kinds="course, event, hour_package, subscription"
            ),
        ),
        ("package_minutes", "ten", contract.MSG_BAD_MINUTES.format(value="ten", max=100_000)),
        ("package_minutes", "0", contract.MSG_BAD_MINUTES.format(value="0", max=100_000)),
        ("package_minutes", "-60", contract.MSG_BAD_MINUTES.format(value="-60", max=100_000)),
        (
            "booking_id",
            "bk 1; DROP",
            contract.MSG_BAD_TOKEN.format(key="booking_id", value="bk 1; DROP", max=64),
        ),
        (
            "coupon_code",
            "X" * 65,
            contract.MSG_BAD_TOKEN.format(key="coupon_code", value="X" * 65, max=64),
        ),
    ],
)
def test_a_malformed_value_is_dropped_and_named(key, value, message):
    meta = parse_payment_metadata({**FULL, key: value})
    assert message in meta.problems
    field = {"instructor_account": "instructor_account"}.get(key, key)
    assert getattr(meta, field) in ("", None)


def test_an_hour_package_without_minutes_is_a_gap():
    meta = parse_payment_metadata({**FULL, "package_minutes": ""})
    assert meta.problems == (contract.MSG_NO_MINUTES,)


# --- The sync writes it ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sync_fills_the_marketplace_fields_and_creates_the_instructor():
    sync.upsert_payment_intents([intent(metadata=FULL)])
    payment = Payment.objects.get()
    assert payment.product_kind == "hour_package"
    assert (payment.product_id, payment.product_name) == ("pkg_10h", "10 tutoring hours")
    assert (payment.package_minutes, payment.coupon_code, payment.booking_id) == (
        600,
        "WELCOME10",
        "bk_123",
    )
    assert payment.metadata_problems == []
    instructor = payment.instructor
    assert (instructor.name, instructor.email) == ("Grace Hopper", "grace@instructors.example.com")
    assert (instructor.stripe_account_id, instructor.external_id) == ("acct_1Grace", "ins_42")


@pytest.mark.django_db
def test_instructors_match_by_account_first_then_email_and_learn_the_account():
    known = Instructor.objects.create(name="Alan", email="alan@example.com")
    other = Instructor.objects.create(
        name="Barbara", email="b@example.com", stripe_account_id="acct_B"
    )
    sync.upsert_payment_intents(
        [
            # Same account, another e-mail: the account wins.
            intent("pi_a", {"instructor_account": "acct_B", "instructor_email": "n@example.com"}),
            # Known e-mail, an account we did not know: matched, and the account is learnt.
            intent(
                "pi_b", {"instructor_account": "acct_A", "instructor_email": "ALAN@example.com"}
            ),
            # The same new instructor twice on one page: created once.
            intent("pi_c", {"instructor_account": "acct_C"}),
            intent("pi_d", {"instructor_account": "acct_C"}),
        ]
    )
    by_pi = dict(Payment.objects.values_list("stripe_payment_intent_id", "instructor_id"))
    assert by_pi["pi_a"] == other.pk
    assert by_pi["pi_b"] == known.pk
    known.refresh_from_db()
    assert known.stripe_account_id == "acct_A"
    assert by_pi["pi_c"] == by_pi["pi_d"] == Instructor.objects.get(stripe_account_id="acct_C").pk
    assert Instructor.objects.count() == 3


@pytest.mark.django_db
def test_bad_metadata_still_syncs_and_never_sets_an_amount():
    sync.upsert_payment_intents(
        [intent(metadata={"product_kind": "vacation", "amount": "1", "net": "0"}, amount=9900)]
    )
    payment = Payment.objects.get()
    assert payment.amount == 9900
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.instructor is None and payment.product_kind == ""
    assert contract.MSG_NO_INSTRUCTOR in payment.metadata_problems
    assert any("vacation" in problem for problem in payment.metadata_problems)


@pytest.mark.django_db
def test_the_gap_shows_on_the_payment_page_and_in_fix_inconsistencies(admin_client):
    sync.upsert_payment_intents([intent(metadata={"product_kind": "course"})])
    payment = Payment.objects.get()
    page = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
    assert "No instructor: metadata has neither instructor_account nor instructor_email." in page
    report = jobs.fix_inconsistencies()
    assert report["metadata_gaps"] == 1
    assert report["metadata_gap_examples"] == [
        {"payment": "pi_meta1", "problems": [contract.MSG_NO_INSTRUCTOR]}
    ]


# --- Against localstripe: the sync and the webhooks ---------------------------------------------

HOOK_ID = "wh_metadata_tests"


def _wait_processed(event_type: str) -> None:
    wait_until(
        lambda: WebhookEvent.objects.filter(type=event_type, status="processed").exists(),
        describe=lambda: list(WebhookEvent.objects.values("type", "status")),
    )


def _localstripe_payment(peer, metadata, *, delivering=False):
    customer = peer.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})
    if delivering:
        # One delivery at a time: the live server's in-memory SQLite refuses concurrent
        # writers (PostgreSQL does not; see test_webhook_postgres.py).
        _wait_processed("customer.created")
    method = peer.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    return peer.v1.payment_intents.create(
        params={
            "amount": 12_000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "metadata": metadata,
        }
    )


@pytest.mark.stripe
@pytest.mark.django_db(transaction=True)
def test_the_stripe_sync_reads_the_contract_from_localstripe(localstripe, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    peer = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
    paid = _localstripe_payment(peer, FULL)
    result = jobs.stripe_sync(full=True)
    assert result["status"] == "succeeded", result
    payment = Payment.objects.get(stripe_payment_intent_id=paid.id)
    assert (payment.product_kind, payment.package_minutes) == ("hour_package", 600)
    assert payment.instructor.stripe_account_id == "acct_1Grace"
    assert payment.metadata_problems == []


@pytest.mark.stripe
@pytest.mark.django_db(transaction=True)
def test_a_payment_intent_webhook_reads_the_contract(localstripe, live_server, settings):
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    settings.STRIPE_WEBHOOK_SECRETS = [PRIMARY_SECRET]
    url = f"{live_server.url}/stripe/webhook/"
    hook = f"{localstripe}/_config/webhooks/{HOOK_ID}"
    let_earlier_events_pass()
    requests.post(hook, json={"url": url, "secret": PRIMARY_SECRET}, timeout=5).raise_for_status()
    try:
        peer = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": localstripe})
        paid = _localstripe_payment(
            peer, {**FULL, "product_kind": "event", "package_minutes": ""}, delivering=True
        )
        _wait_processed("payment_intent.succeeded")
    finally:
        stop_deliveries(localstripe, HOOK_ID, url=url, secret=PRIMARY_SECRET)
    payment = Payment.objects.get(stripe_payment_intent_id=paid.id)
    assert (payment.product_kind, payment.booking_id) == ("event", "bk_123")
    assert payment.package_minutes is None
    assert payment.instructor.email == "grace@instructors.example.com"
