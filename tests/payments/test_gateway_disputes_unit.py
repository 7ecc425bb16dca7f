"""Dispute and file calls of payments.gateway without a network: what they send (params,
idempotency keys), how they map Stripe's dispute (evidence, evidence_details), and that the
localstripe compatibility mode never hides disputes."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from payments import gateway
from payments.exceptions import ERR_IDEMPOTENCY_KEY_REQUIRED, GatewayServerError

STRIPE_DISPUTE = {
    "id": "du_1",
    "object": "dispute",
    "amount": 5000,
    "currency": "usd",
    "charge": "ch_1",
    "payment_intent": "pi_1",
    "status": "needs_response",
    "reason": "fraudulent",
    "created": 1_800_000_000,
    "balance_transactions": [{"amount": -5000, "fee": 1500, "currency": "usd"}],
    "evidence": {
        "customer_name": "Ada",
        "receipt": "file_1",
        "uncategorized_file": {"id": "file_2", "object": "file"},
        "product_description": None,
        "shipping_carrier": "",
        "enhanced_evidence": {"visa_compelling_evidence_3": {}},
    },
    "evidence_details": {
        "due_by": 1_800_604_799,
        "has_evidence": True,
        "past_due": False,
        "submission_count": 1,
    },
}


class Recording:
    def __init__(self, reply):
        self.reply = reply
        self.calls = []

    def __call__(self, *args, params=None, options=None):
        # A file upload's stream is read here, as the SDK's encoder reads it.
        if params and hasattr(params.get("file"), "read"):
            stream = params["file"]
            params = {**params, "file": (stream.name, stream.read())}
        self.calls.append((args, params, options))
        return self.reply


def client_with(settings, **endpoints):
    settings.STRIPE_MAX_REQUESTS_PER_SECOND = 1000
    client = gateway.StripeClient.from_settings()
    v1 = {name: SimpleNamespace(**methods) for name, methods in endpoints.items()}
    client.sdk = SimpleNamespace(v1=SimpleNamespace(**v1))
    return client


def test_dispute_mapper_reads_evidence_and_evidence_details():
    dispute = gateway.dispute_from_stripe(STRIPE_DISPUTE)
    assert dispute.evidence == {
        "customer_name": "Ada",
        "receipt": "file_1",
        "uncategorized_file": "file_2",
    }
    assert (dispute.evidence_submission_count, dispute.has_evidence) == (1, True)
    assert dispute.evidence_due_by == datetime.fromtimestamp(1_800_604_799, tz=UTC)
    assert dispute.fee == 1500


def test_a_dispute_without_evidence_maps_to_empty_evidence():
    dispute = gateway.dispute_from_stripe({"id": "du_2", "evidence": None})
    assert (dispute.evidence, dispute.evidence_submission_count, dispute.has_evidence) == (
        {},
        0,
        False,
    )


@pytest.mark.parametrize("submit", [False, True])
def test_dispute_update_sends_evidence_submit_and_the_key(settings, submit):
    update = Recording(STRIPE_DISPUTE)
    client = client_with(settings, disputes={"update": update})
    dispute = gateway.stripe_dispute_update(
        dispute_id="du_1",
        evidence={"customer_name": "Ada", "receipt": "file_1"},
        submit=submit,
        idempotency_key="dispute:7:evidence:1",
        client=client,
    )
    assert dispute.id == "du_1"
    assert update.calls == [
        (
            ("du_1",),
            {"evidence": {"customer_name": "Ada", "receipt": "file_1"}, "submit": submit},
            {"idempotency_key": "dispute:7:evidence:1"},
        )
    ]


def test_dispute_close_sends_the_key(settings):
    close = Recording({**STRIPE_DISPUTE, "status": "lost"})
    client = client_with(settings, disputes={"close": close})
    dispute = gateway.stripe_dispute_close(
        dispute_id="du_1", idempotency_key="dispute:7:accept", client=client
    )
    assert dispute.status == "lost"
    assert close.calls == [(("du_1",), None, {"idempotency_key": "dispute:7:accept"})]


def test_file_create_uploads_the_bytes_with_their_filename(settings):
    create = Recording(
        {"id": "file_9", "object": "file", "size": 8, "type": "pdf", "filename": "r.pdf"}
    )
    client = client_with(settings, files={"create": create})
    uploaded = gateway.stripe_file_create(
        content=b"%PDF-1.4", filename="r.pdf", idempotency_key="dispute:7:file:r", client=client
    )
    assert uploaded == gateway.StripeFile(id="file_9", size=8, type="pdf", filename="r.pdf")
    assert create.calls == [
        (
            (),
            {"purpose": "dispute_evidence", "file": ("r.pdf", b"%PDF-1.4")},
            {"idempotency_key": "dispute:7:file:r"},
        )
    ]


def test_a_retried_upload_sends_the_whole_file_again(settings, monkeypatch):
    from payments.gateway import client as gateway_client

    monkeypatch.setattr(gateway_client, "sleep", lambda s: None)
    sent = []

    def flaky_create(*args, params=None, options=None):
        sent.append(params["file"].read())
        if len(sent) == 1:
            import stripe

            raise stripe.APIError("boom", http_status=500)
        return {"id": "file_1", "size": 3, "type": "png", "filename": "a.png"}

    client = client_with(settings, files={"create": flaky_create})
    gateway.stripe_file_create(content=b"png", filename="a.png", idempotency_key="k", client=client)
    assert sent == [b"png", b"png"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: gateway.stripe_dispute_update(
            dispute_id="du_1", evidence={}, submit=False, idempotency_key=""
        ),
        lambda: gateway.stripe_dispute_close(dispute_id="du_1", idempotency_key=""),
        lambda: gateway.stripe_file_create(content=b"x", filename="x.pdf", idempotency_key=""),
    ],
)
def test_dispute_calls_refuse_to_run_without_an_idempotency_key(call):
    with pytest.raises(ValueError, match=ERR_IDEMPOTENCY_KEY_REQUIRED):
        call()


@pytest.mark.parametrize("compat", [False, True])
def test_dispute_list_always_asks_the_peer_and_filters_created_there(settings, compat):
    settings.STRIPE_LOCALSTRIPE_COMPAT = compat
    listing = Recording({"data": [STRIPE_DISPUTE], "has_more": False})
    client = client_with(settings, disputes={"list": listing})
    pages = list(
        gateway.stripe_dispute_list_pages(
            created_gt=datetime.fromtimestamp(1_799_999_000, tz=UTC), client=client
        )
    )
    assert [[d.id for d in page.items] for page in pages] == [["du_1"]]
    ((_, params, _),) = listing.calls
    assert params == {"limit": 100, "created": {"gt": 1_799_999_000}}


def test_the_files_address_follows_the_api_base(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9999/"
    client = gateway.StripeClient.from_settings()
    requestor = client.sdk._requestor
    assert requestor.base_addresses.get("files") == "http://127.0.0.1:9999"
    assert requestor.base_addresses.get("api") == "http://127.0.0.1:9999"


def test_without_a_base_the_sdk_keeps_stripes_own_addresses(settings):
    settings.STRIPE_API_BASE = ""
    client = gateway.StripeClient.from_settings()
    assert client.sdk._requestor.base_addresses.get("files") == "https://files.stripe.com"


def test_a_server_error_on_close_is_ours(settings, monkeypatch):
    import stripe

    from payments.gateway import client as gateway_client

    monkeypatch.setattr(gateway_client, "sleep", lambda s: None)
    settings.STRIPE_MAX_RETRIES = 0

    def failing(*args, params=None, options=None):
        raise stripe.APIError("down", http_status=500)

    client = client_with(settings, disputes={"close": failing})
    with pytest.raises(GatewayServerError):
        gateway.stripe_dispute_close(dispute_id="du_1", idempotency_key="k", client=client)
