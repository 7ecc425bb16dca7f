"""The harness itself: localstripe really runs as a separate HTTP peer and is reset."""

import pytest
import requests

pytestmark = pytest.mark.stripe


def test_localstripe_is_a_real_http_peer_and_is_reset_between_tests(localstripe):
    created = requests.post(
        f"{localstripe}/v1/customers",
        data={"email": "a@example.com"},
        auth=("sk_test_x", ""),
        timeout=5,
    )
    assert created.status_code == 200
    assert created.json()["id"].startswith("cus_")
    listed = requests.get(f"{localstripe}/v1/customers", auth=("sk_test_x", ""), timeout=5)
    assert [c["email"] for c in listed.json()["data"]] == ["a@example.com"]


def test_localstripe_starts_empty(localstripe):
    listed = requests.get(f"{localstripe}/v1/customers", auth=("sk_test_x", ""), timeout=5)
    assert listed.json()["data"] == []


def test_localstripe_listens_on_loopback_only(localstripe):
    assert localstripe.startswith("http://127.0.0.1:")
