"""payments.gateway without a network: mappers, token bucket, retry/backoff decisions,
error translation and webhook signatures. Clocks and sleeps are injected; nothing sleeps."""

import importlib
import json
from datetime import UTC, datetime

import pytest
import stripe

from payments import gateway
from payments.exceptions import (
    ERR_IDEMPOTENCY_KEY_REQUIRED,
    ERR_SIGNATURE_MALFORMED,
    ERR_SIGNATURE_MISMATCH,
    ERR_SIGNATURE_MISSING,
    ERR_SIGNATURE_NO_SECRETS,
    ERR_SIGNATURE_STALE,
    AuthenticationFailed,
    CardDeclined,
    GatewayConnectionError,
    GatewayServerError,
    GatewayTimeout,
    IdempotencyConflict,
    InvalidRequest,
    RateLimited,
    ResourceMissing,
    WebhookSignatureError,
)
from payments.gateway import calls as gateway_calls
from payments.gateway import client as gateway_client

# --- mappers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapper",
    [
        gateway.customer_from_stripe,
        gateway.payment_method_from_stripe,
        gateway.payment_intent_from_stripe,
        gateway.refund_from_stripe,
        gateway.dispute_from_stripe,
    ],
)
def test_mappers_tolerate_an_object_with_only_an_id(mapper):
    mapped = mapper({"id": "x_1"})
    assert mapped.id == "x_1"


def test_payment_intent_mapper_reads_expanded_charge_and_balance_transaction():
    intent = gateway.payment_intent_from_stripe(
        {
            "id": "pi_1",
            "amount": 2000,
            "currency": "USD",
            "status": "succeeded",
            "created": 1_790_000_000,
            "customer": {"id": "cus_1", "object": "customer"},
            "payment_method": "pm_1",
            "latest_charge": {
                "id": "ch_1",
                "status": "succeeded",
                "created": 1_790_000_002,
                "amount_captured": 2000,
                "amount_refunded": 500,
                "payment_method_details": {"type": "card"},
                "balance_transaction": {"fee": 88, "net": 1912, "currency": "usd"},
            },
        }
    )
    assert (intent.currency, intent.customer_id, intent.payment_method_id) == (
        "usd",
        "cus_1",
        "pm_1",
    )
    assert (intent.stripe_fee, intent.balance_net) == (88, 1912)
    assert (intent.amount_received, intent.amount_refunded) == (2000, 500)
    assert intent.latest_charge_id == "ch_1"
    assert intent.charge_created == datetime.fromtimestamp(1_790_000_002, tz=UTC)


def test_fee_settled_in_another_currency_is_converted_to_the_charge_currency():
    # A EUR charge settled in USD at 1.10 USD per EUR: a fee of 110 US cents is 100 euro cents.
    intent = gateway.payment_intent_from_stripe(
        {
            "id": "pi_1",
            "amount": 10_000,
            "currency": "eur",
            "status": "succeeded",
            "latest_charge": {
                "id": "ch_1",
                "balance_transaction": {
                    "fee": 110,
                    "net": 10_890,
                    "currency": "usd",
                    "exchange_rate": 1.1,
                },
            },
        }
    )
    assert intent.stripe_fee == 100


def test_unexpanded_balance_transaction_leaves_the_fee_unknown():
    intent = gateway.payment_intent_from_stripe(
        {"id": "pi_1", "latest_charge": {"id": "ch_1", "balance_transaction": "txn_1"}}
    )
    assert intent.stripe_fee is None


def test_declined_intent_maps_error_and_decline_code():
    intent = gateway.payment_intent_from_stripe(
        {
            "id": "pi_1",
            "status": "requires_payment_method",
            "last_payment_error": {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            },
        }
    )
    assert (intent.failure_code, intent.decline_code) == ("card_declined", "insufficient_funds")


def test_mapper_accepts_a_stripe_object():
    obj = stripe.StripeObject.construct_from(
        {
            "id": "re_1",
            "amount": 300,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {"a": "1"},
        },
        "sk_test",
    )
    refund = gateway.refund_from_stripe(obj)
    assert (refund.amount, refund.metadata) == (300, {"a": "1"})


def test_customer_mapper_default_payment_method_and_lowercase_email():
    customer = gateway.customer_from_stripe(
        {
            "id": "cus_1",
            "email": " Ada@Example.COM ",
            "invoice_settings": {"default_payment_method": {"id": "pm_9"}},
        }
    )
    assert (customer.email, customer.default_payment_method_id) == ("ada@example.com", "pm_9")


# --- token bucket -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = gateway.TokenBucket(20, clock=clock, sleeper=clock.sleep)
    for _ in range(20):
        assert bucket.acquire() == 0
    assert clock.slept == []
    for _ in range(40):
        bucket.acquire()
    # 40 more requests at 20/s take 2 seconds of waiting.
    assert sum(clock.slept) == pytest.approx(2.0)


def test_token_bucket_refills_while_idle():
    clock = FakeClock()
    bucket = gateway.TokenBucket(5, clock=clock, sleeper=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    clock.now += 1.0
    for _ in range(5):
        assert bucket.acquire() == 0


# --- retries ------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = gateway.RetryPolicy(base_delay=0.5, max_delay=8)
    assert policy.delay(0, rand=1.0) == pytest.approx(0.5)
    assert policy.delay(0, rand=0.0) == pytest.approx(0.25)
    assert policy.delay(3, rand=1.0) == pytest.approx(4.0)
    assert policy.delay(10, rand=1.0) == pytest.approx(8.0)


def test_retry_after_is_a_floor_and_capped():
    policy = gateway.RetryPolicy(base_delay=0.5, max_retry_after=60)
    assert policy.delay(0, retry_after=5, rand=1.0) == 5
    assert policy.delay(0, retry_after=600, rand=1.0) == 60


def err(cls, status, headers=None, **kwargs):
    return cls("boom", http_status=status, headers=headers or {}, **kwargs)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (err(stripe.RateLimitError, 429), True),
        (err(stripe.APIError, 500), True),
        (err(stripe.APIError, 503), True),
        (err(stripe.InvalidRequestError, 409, param=None), True),
        (err(stripe.InvalidRequestError, 400, param="amount"), False),
        (err(stripe.APIError, 500, {"Stripe-Should-Retry": "false"}), False),
        (err(stripe.InvalidRequestError, 400, {"Stripe-Should-Retry": "true"}, param=None), True),
        (stripe.APIConnectionError("down", should_retry=True), True),
    ],
)
def test_should_retry_honours_stripe_should_retry_first(error, expected):
    assert gateway.should_retry(error) is expected


def make_client(settings, *, max_retries=3):
    settings.STRIPE_MAX_RETRIES = max_retries
    settings.STRIPE_MAX_REQUESTS_PER_SECOND = 1000
    return gateway.StripeClient.from_settings()


def test_call_retries_then_succeeds_and_counts_calls(settings, monkeypatch):
    slept = []
    monkeypatch.setattr(gateway_client, "sleep", slept.append)
    client = make_client(settings)
    attempts = []

    def flaky(sdk, options):
        attempts.append(dict(options))
        if len(attempts) < 3:
            raise err(stripe.RateLimitError, 429, {"Retry-After": "2"})
        return "ok"

    with gateway.count_api_calls() as counter:
        assert client.call(flaky, idempotency_key="k1", mutating=True) == "ok"
    assert (counter.calls, counter.retries) == (3, 2)
    assert slept and all(s >= 2 for s in slept)
    assert [a["idempotency_key"] for a in attempts] == ["k1", "k1", "k1"]


def test_call_gives_up_after_max_retries_with_our_error(settings, monkeypatch):
    monkeypatch.setattr(gateway_client, "sleep", lambda s: None)
    client = make_client(settings, max_retries=2)
    calls = []

    def always_429(sdk, options):
        calls.append(1)
        raise err(stripe.RateLimitError, 429, {"Retry-After": "7"})

    with pytest.raises(RateLimited) as info:
        client.call(always_429)
    assert info.value.retry_after == 7
    assert len(calls) == 3


def test_a_mutation_without_an_idempotency_key_is_refused(settings):
    client = make_client(settings)
    with pytest.raises(ValueError, match=ERR_IDEMPOTENCY_KEY_REQUIRED):
        client.call(lambda sdk, options: None, mutating=True)
    with pytest.raises(ValueError, match=ERR_IDEMPOTENCY_KEY_REQUIRED):
        gateway.stripe_refund_create(payment_intent_id="pi_1", amount=100, idempotency_key="")


def test_settings_are_read_at_call_time(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:1234/"
    settings.STRIPE_API_VERSION = "2024-06-20"
    config = gateway.GatewayConfig.from_settings()
    assert (config.api_base, config.api_version) == ("http://127.0.0.1:1234", "2024-06-20")
    settings.STRIPE_API_BASE = ""
    assert gateway.GatewayConfig.from_settings().api_base == ""


# --- error translation --------------------------------------------------------------------------


def test_card_error_becomes_card_declined_with_codes():
    error = stripe.CardError(
        "Your card has insufficient funds.",
        param=None,
        code="card_declined",
        http_status=402,
        json_body={
            "error": {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "charge": "ch_1",
                "payment_intent": {"id": "pi_1"},
            }
        },
    )
    ours = gateway.translate_error(error)
    assert isinstance(ours, CardDeclined)
    assert (ours.code, ours.decline_code, ours.charge_id, ours.payment_intent_id) == (
        "card_declined",
        "insufficient_funds",
        "ch_1",
        "pi_1",
    )
    assert ours.message == "Your card has insufficient funds."


@pytest.mark.parametrize(
    ("error", "ours"),
    [
        (err(stripe.InvalidRequestError, 400, param="amount"), InvalidRequest),
        (err(stripe.InvalidRequestError, 404, param="id"), ResourceMissing),
        (err(stripe.IdempotencyError, 400), IdempotencyConflict),
        (err(stripe.AuthenticationError, 401), AuthenticationFailed),
        (err(stripe.PermissionError, 403), AuthenticationFailed),
        (err(stripe.APIError, 500), GatewayServerError),
        (err(stripe.RateLimitError, 429), RateLimited),
    ],
)
def test_stripe_errors_become_ours(error, ours):
    assert type(gateway.translate_error(error)) is ours


def test_connection_errors_say_whether_the_request_may_have_reached_stripe():
    not_sent = stripe.APIConnectionError("refused")
    not_sent.maybe_sent = False
    sent = stripe.APIConnectionError("read timed out")
    sent.maybe_sent = True
    assert type(gateway.translate_error(not_sent)) is GatewayConnectionError
    assert type(gateway.translate_error(sent)) is GatewayTimeout


# --- webhook signatures -------------------------------------------------------------------------

PAYLOAD = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode()


def construct(header, *, secrets=("whsec_a",), now=1_800_000_000, payload=PAYLOAD):
    return gateway.webhook_event_construct(
        payload=payload, sig_header=header, secrets=list(secrets), tolerance=300, now=now
    )


def test_valid_signature_returns_the_event():
    header = gateway.webhook_signature_header(
        payload=PAYLOAD, secret="whsec_a", timestamp=1_800_000_000
    )
    assert construct(header)["id"] == "evt_1"


def test_any_configured_secret_is_accepted_during_rotation():
    header = gateway.webhook_signature_header(
        payload=PAYLOAD, secret="whsec_new", timestamp=1_800_000_000
    )
    assert construct(header, secrets=("whsec_old", "whsec_new"))["id"] == "evt_1"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", ERR_SIGNATURE_MISSING),
        ("nonsense", ERR_SIGNATURE_MALFORMED),
        ("t=abc,v1=00", ERR_SIGNATURE_MALFORMED),
        ("t=1800000000", ERR_SIGNATURE_MALFORMED),
        ("t=1800000000,v1=deadbeef", ERR_SIGNATURE_MISMATCH),
    ],
)
def test_bad_signatures_are_rejected(header, message):
    with pytest.raises(WebhookSignatureError) as info:
        construct(header)
    assert info.value.message == message


def test_a_signature_for_another_payload_is_rejected():
    header = gateway.webhook_signature_header(
        payload=b"{}", secret="whsec_a", timestamp=1_800_000_000
    )
    with pytest.raises(WebhookSignatureError, match=ERR_SIGNATURE_MISMATCH):
        construct(header)


def test_a_stale_signature_is_rejected():
    header = gateway.webhook_signature_header(
        payload=PAYLOAD, secret="whsec_a", timestamp=1_800_000_000 - 301
    )
    with pytest.raises(WebhookSignatureError, match=ERR_SIGNATURE_STALE):
        construct(header)


def test_no_configured_secret_trusts_nothing():
    header = gateway.webhook_signature_header(payload=PAYLOAD, secret="", timestamp=1_800_000_000)
    with pytest.raises(WebhookSignatureError) as info:
        construct(header, secrets=())
    assert info.value.message == ERR_SIGNATURE_NO_SECRETS
    with pytest.raises(WebhookSignatureError) as info:
        construct(header, secrets=("",))
    assert info.value.message == ERR_SIGNATURE_MISMATCH


# --- paging (the real-Stripe path: the server filters by `created`) -----------------------------


class FakeList:
    """Stands in for one list endpoint: records each call's params, serves pages."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.params = []

    def __call__(self, sdk, params, options):
        self.params.append(dict(params))
        data, has_more = self.pages.pop(0)
        return {"data": data, "has_more": has_more}


def test_list_pages_sends_created_gt_and_resumes_after_the_last_id(settings):
    client = make_client(settings)
    fake = FakeList(
        [
            ([{"id": "re_3", "amount": 3, "created": 1_800_000_300}], True),
            ([{"id": "re_2", "amount": 2, "created": 1_800_000_200}], False),
        ]
    )
    floor = datetime.fromtimestamp(1_800_000_000, tz=UTC)
    pages = list(
        gateway_calls._list_pages(
            fake,
            gateway.refund_from_stripe,
            params={},
            created_gt=floor,
            starting_after="re_9",
            client=client,
            server_filters_created=True,
        )
    )
    assert fake.params == [
        {"limit": 100, "created": {"gt": 1_800_000_000}, "starting_after": "re_9"},
        {"limit": 100, "created": {"gt": 1_800_000_000}, "starting_after": "re_3"},
    ]
    assert [[r.id for r in p.items] for p in pages] == [["re_3"], ["re_2"]]
    assert [p.last_id for p in pages] == ["re_3", "re_2"]


def test_list_pages_filters_client_side_when_the_peer_cannot(settings):
    client = make_client(settings)
    fake = FakeList(
        [
            (
                [
                    {"id": "re_old", "created": 1_700_000_000},
                    {"id": "re_new", "created": 1_800_000_001},
                ],
                False,
            )
        ]
    )
    (page,) = gateway_calls._list_pages(
        fake,
        gateway.refund_from_stripe,
        params={},
        created_gt=datetime.fromtimestamp(1_800_000_000, tz=UTC),
        starting_after=None,
        client=client,
        server_filters_created=False,
    )
    assert "created" not in fake.params[0]
    assert [r.id for r in page.items] == ["re_new"]
    assert page.last_id == "re_new"  # the cursor follows the raw page, filtered or not


# --- the calls the demo composes a purchase from (params and idempotency keys sent) -------------


class RecordingEndpoint:
    """Stands in for one SDK method: records (args, params, options), answers `reply`."""

    def __init__(self, reply):
        self.reply = reply
        self.calls = []

    def __call__(self, *args, params=None, options=None):
        self.calls.append((args, params, options))
        return self.reply


def recording_client(settings, **endpoints):
    from types import SimpleNamespace

    client = make_client(settings)
    v1 = {name: SimpleNamespace(**methods) for name, methods in endpoints.items()}
    client.sdk = SimpleNamespace(v1=SimpleNamespace(**v1))
    return client


def test_payment_intent_create_sends_a_confirmed_card_payment_with_the_key(settings):
    create = RecordingEndpoint({"id": "pi_1", "amount": 2500, "currency": "usd"})
    client = recording_client(settings, payment_intents={"create": create})
    intent = gateway.stripe_payment_intent_create(
        amount=2500,
        currency="USD",
        customer_id="cus_1",
        payment_method_id="pm_1",
        confirm=True,
        metadata={"order": 42},
        idempotency_key="purchase:42:pi",
        client=client,
    )
    assert (intent.id, intent.amount) == ("pi_1", 2500)
    ((args, params, options),) = create.calls
    assert args == ()
    assert params == {
        "amount": 2500,
        "currency": "usd",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "payment_method_types": ["card"],
        "confirm": True,
        "metadata": {"order": "42"},
    }
    assert options == {"idempotency_key": "purchase:42:pi"}


def test_customer_create_and_payment_method_attach_send_their_keys(settings):
    create = RecordingEndpoint({"id": "cus_1", "email": "ada@example.com"})
    attach = RecordingEndpoint({"id": "pm_2", "customer": "cus_1", "type": "card"})
    client = recording_client(
        settings, customers={"create": create}, payment_methods={"attach": attach}
    )
    customer = gateway.stripe_customer_create(
        email="ada@example.com", name="Ada", idempotency_key="k:customer", client=client
    )
    method = gateway.stripe_payment_method_attach(
        payment_method_id="pm_card_visa",
        customer_id=customer.id,
        idempotency_key="k:attach",
        client=client,
    )
    assert create.calls == [
        ((), {"email": "ada@example.com", "name": "Ada"}, {"idempotency_key": "k:customer"})
    ]
    assert attach.calls == [
        (("pm_card_visa",), {"customer": "cus_1"}, {"idempotency_key": "k:attach"})
    ]
    assert (method.id, method.customer_id) == ("pm_2", "cus_1")


@pytest.mark.parametrize(
    "call",
    [
        lambda: gateway.stripe_customer_create(email="a@example.com", name="A", idempotency_key=""),
        lambda: gateway.stripe_payment_method_attach(
            payment_method_id="pm_1", customer_id="cus_1", idempotency_key=""
        ),
        lambda: gateway.stripe_payment_intent_create(
            amount=100,
            currency="usd",
            customer_id="cus_1",
            payment_method_id="pm_1",
            idempotency_key="",
        ),
    ],
)
def test_creating_calls_refuse_to_run_without_an_idempotency_key(call):
    with pytest.raises(ValueError, match=ERR_IDEMPOTENCY_KEY_REQUIRED):
        call()


def test_payment_intent_create_refuses_a_non_positive_amount():
    with pytest.raises(ValueError, match=gateway_calls.ERR_AMOUNT_NOT_POSITIVE):
        gateway.stripe_payment_intent_create(
            amount=0,
            currency="usd",
            customer_id="cus_1",
            payment_method_id="pm_1",
            idempotency_key="k",
        )


def test_the_package_reexports_its_calls_so_patching_reaches_callers(monkeypatch):
    # Callers call `gateway.<name>(...)`; a test that patches payments.gateway.<name> must
    # change what they run. Every public call is its submodule's own function (calls.py, or
    # an area's module such as customer_balance.py).
    for name in gateway.__all__:
        if name.startswith("stripe_"):
            function = getattr(gateway, name)
            assert function.__module__.startswith("payments.gateway.")
            assert getattr(importlib.import_module(function.__module__), name) is function
    from payments.services import payment_retry

    monkeypatch.setattr(gateway, "stripe_payment_intent_retrieve", lambda **kw: "patched")
    assert payment_retry.gateway.stripe_payment_intent_retrieve(payment_intent_id="x") == (
        "patched"
    )


def test_the_clock_and_sleep_are_patched_on_the_client_module_only():
    # Patching them on the package would silently change nothing: they are not there.
    assert not hasattr(gateway, "sleep")
    assert not hasattr(gateway, "monotonic")
    assert callable(gateway_client.sleep)
