"""payments.gateway.webhooks: Stripe-Signature headers are verified by the Stripe SDK's own
verifier, one configured secret at a time, with our tolerance on the signed timestamp.

The signatures here are computed by hand with hmac (Stripe's documented scheme:
HMAC-SHA256(secret, "<t>.<body>") in hex), a second way to build what the SDK checks."""

import hashlib
import hmac
import json

import pytest
import stripe

from payments import gateway
from payments.exceptions import (
    ERR_PAYLOAD_NOT_JSON,
    ERR_SIGNATURE_MALFORMED,
    ERR_SIGNATURE_MISMATCH,
    ERR_SIGNATURE_STALE,
    WebhookSignatureError,
)

NOW = 1_800_000_000
TOLERANCE = 300
OLD, NEW = "whsec_old", "whsec_new"
PAYLOAD = json.dumps({"id": "evt_1", "object": "event", "type": "charge.refunded"}).encode()


def v1(secret: str, timestamp: int, payload: bytes = PAYLOAD) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def construct(header: str, *, secrets=(OLD, NEW), payload: bytes = PAYLOAD, now: int = NOW):
    return gateway.webhook_event_construct(
        payload=payload, sig_header=header, secrets=list(secrets), tolerance=TOLERANCE, now=now
    )


def refused(header: str, **kwargs) -> str:
    with pytest.raises(WebhookSignatureError) as info:
        construct(header, **kwargs)
    return info.value.message


@pytest.fixture
def sdk_calls(monkeypatch):
    """Records the secret of each call to the SDK's verifier (and still runs it)."""
    calls = []
    original = stripe.WebhookSignature.verify_header

    def spy(payload, header, secret, tolerance=None):
        calls.append(secret)
        return original(payload, header, secret, tolerance)

    monkeypatch.setattr(stripe.WebhookSignature, "verify_header", spy)
    return calls


def test_a_signature_with_the_second_of_two_secrets_passes(sdk_calls):
    event = construct(f"t={NOW},v1={v1(NEW, NOW)}")
    assert event["id"] == "evt_1"
    # The SDK's verifier decided, trying the configured secrets one at a time, in order.
    assert sdk_calls == [OLD, NEW]


def test_the_first_secret_that_verifies_ends_the_search(sdk_calls):
    assert construct(f"t={NOW},v1={v1(OLD, NOW)}")["id"] == "evt_1"
    assert sdk_calls == [OLD]


def test_a_tampered_payload_fails():
    header = f"t={NOW},v1={v1(NEW, NOW)}"
    tampered = PAYLOAD.replace(b"charge.refunded", b"charge.captured")
    assert refused(header, payload=tampered) == ERR_SIGNATURE_MISMATCH


def test_a_wrong_secret_fails(sdk_calls):
    assert refused(f"t={NOW},v1={v1('whsec_attacker', NOW)}") == ERR_SIGNATURE_MISMATCH
    assert sdk_calls == [OLD, NEW]


def test_a_timestamp_changed_after_signing_fails():
    assert refused(f"t={NOW + 1},v1={v1(NEW, NOW)}", now=NOW + 1) == ERR_SIGNATURE_MISMATCH


@pytest.mark.parametrize("age", [TOLERANCE + 1, 3600, -(TOLERANCE + 1)])
def test_a_timestamp_outside_the_tolerance_fails_either_way(age):
    signed_at = NOW - age
    assert refused(f"t={signed_at},v1={v1(NEW, signed_at)}") == ERR_SIGNATURE_STALE


@pytest.mark.parametrize("age", [0, TOLERANCE, -TOLERANCE])
def test_a_timestamp_within_the_tolerance_passes(age):
    signed_at = NOW - age
    assert construct(f"t={signed_at},v1={v1(NEW, signed_at)}")["id"] == "evt_1"


def test_a_stale_header_with_a_wrong_signature_is_a_mismatch():
    # Signature first: an unsigned timestamp says nothing.
    signed_at = NOW - 3600
    assert refused(f"t={signed_at},v1={v1('whsec_x', signed_at)}") == ERR_SIGNATURE_MISMATCH


def test_a_header_with_several_v1_signatures_passes_when_any_one_matches():
    # Stripe signs with every active secret of the endpoint while one is being rolled.
    header = f"t={NOW},v1={v1('whsec_other', NOW)},v1={v1(NEW, NOW)},v0={'0' * 64}"
    assert construct(header, secrets=(NEW,))["id"] == "evt_1"


def test_a_header_with_several_v1_signatures_none_matching_fails():
    header = f"t={NOW},v1={v1('whsec_a', NOW)},v1={v1('whsec_b', NOW)}"
    assert refused(header) == ERR_SIGNATURE_MISMATCH


def test_only_a_v0_signature_is_malformed():
    assert refused(f"t={NOW},v0={v1(NEW, NOW)}") == ERR_SIGNATURE_MALFORMED


def test_the_first_timestamp_is_the_one_checked_for_tolerance():
    # The SDK signs and verifies against the first `t`; the tolerance must look at the same.
    stale = NOW - 3600
    assert refused(f"t={stale},t={NOW},v1={v1(NEW, stale)}") == ERR_SIGNATURE_STALE


def test_blank_secrets_are_skipped_not_sent_to_the_sdk(sdk_calls):
    assert construct(f"t={NOW},v1={v1(NEW, NOW)}", secrets=("", "  ", NEW))["id"] == "evt_1"
    assert sdk_calls == [NEW]


def test_a_payload_that_is_not_utf8_fails_without_reaching_json():
    payload = b"\xff\xfe" + PAYLOAD
    assert refused(f"t={NOW},v1={v1(NEW, NOW, payload)}", payload=payload) == (ERR_PAYLOAD_NOT_JSON)


def test_a_signed_payload_that_is_not_a_json_object_fails():
    payload = b"[1, 2]"
    assert refused(f"t={NOW},v1={v1(NEW, NOW, payload)}", payload=payload) == (ERR_PAYLOAD_NOT_JSON)


def test_the_header_helper_builds_what_stripe_sends():
    header = gateway.webhook_signature_header(payload=PAYLOAD, secret=NEW, timestamp=NOW)
    assert header == f"t={NOW},v1={v1(NEW, NOW)}"
    assert header == stripe.WebhookSignature.generate_signature_header(
        PAYLOAD.decode(), NEW, timestamp=NOW
    )
    assert construct(header)["id"] == "evt_1"
