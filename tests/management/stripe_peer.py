"""Helpers for tests that talk to localstripe: an SDK client to create objects there, and a
small fault-injecting HTTP proxy that sits between our gateway and localstripe.

The proxy is the HTTP boundary: our code sends real HTTP to it, it forwards to localstripe
and can instead answer 429/500, drop the connection after forwarding (Stripe got the request,
we got no answer), or answer late. It also plays Stripe's idempotency layer (localstripe
ignores Idempotency-Key): a POST whose key it has seen gets the first answer replayed, as
Stripe does for 24 hours.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests
import stripe

from payments.gateway import client as gateway_client

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"  # the one card localstripe declines on a one-off payment


def sdk(base_url: str) -> stripe.StripeClient:
    """The stripe SDK pointed at localstripe, as a test author would use it."""
    return stripe.StripeClient(
        "sk_test_localstripe", base_addresses={"api": base_url}, max_network_retries=0
    )


def make_customer(client, *, email: str, name: str = "", card: str = CARD_OK):
    customer = client.v1.customers.create(params={"email": email, "name": name})
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return customer, method


def make_payment(client, *, customer, method, amount: int, currency: str = "usd", **params):
    """A confirmed payment intent; a declined card leaves it in requires_payment_method."""
    try:
        return client.v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": currency,
                "customer": customer.id,
                "payment_method": method.id,
                "confirm": True,
                **params,
            }
        )
    except stripe.CardError as exc:
        intent_id = exc.json_body["error"].get("payment_intent", {}).get("id")
        if intent_id:
            return client.v1.payment_intents.retrieve(intent_id)
        # localstripe does not put the intent in the error: find the newest one.
        intents = client.v1.payment_intents.list(params={"limit": 100}).data
        return [i for i in intents if i.payment_method == method.id][-1]


@dataclass
class Fault:
    """Answer `status` (or `action`) to requests matching method + path prefix, `times` times
    (None: for ever), starting with the `after`-th matching request (0-based)."""

    method: str
    path: str
    status: int | None = None
    action: str = ""  # "", "drop_after_forward", "late_after_forward"
    times: int | None = 1
    after: int = 0
    headers: dict = field(default_factory=dict)
    seen: int = 0
    fired: int = 0


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    idempotency_key: str | None
    answered: int | str


class FaultProxy:
    def __init__(self, upstream: str, *, late_seconds: float = 1.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.log: list[Seen] = []
        self.late_seconds = late_seconds
        self._replay: dict[str, tuple[int, bytes, dict]] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._handle(self)

            def do_POST(self):
                proxy._handle(self)

            def do_DELETE(self):
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.log if s.method == method and s.path.startswith(path)]

    def _match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and path.startswith(fault.path):
                    fault.seen += 1
                    if fault.seen - 1 < fault.after:
                        continue
                    if fault.times is not None and fault.fired >= fault.times:
                        continue
                    fault.fired += 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        key = handler.headers.get("Idempotency-Key")
        method = handler.command
        seen = Seen(method, split.path, parse_qs(split.query), key, "")
        self.log.append(seen)
        fault = self._match(method, split.path)
        if fault is not None and fault.status:
            seen.answered = fault.status
            payload = b'{"error": {"type": "api_error", "message": "injected"}}'
            handler.send_response(fault.status)
            for name, value in fault.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if method == "POST" and key and key in self._replay:
            status, content, headers = self._replay[key]
            seen.answered = f"replayed {status}"
        else:
            forwarded = requests.request(
                method,
                self.upstream + handler.path,
                data=body,
                headers={
                    k: v
                    for k, v in handler.headers.items()
                    if k.lower() in ("authorization", "content-type", "stripe-version")
                },
                timeout=30,
            )
            status, content = forwarded.status_code, forwarded.content
            headers = {"Content-Type": forwarded.headers.get("Content-Type", "application/json")}
            if method == "POST" and key:
                self._replay[key] = (status, content, headers)
            seen.answered = status
        if fault is not None and fault.action == "drop_after_forward":
            # Stripe has acted; the answer is lost on the way back.
            seen.answered = "dropped"
            handler.close_connection = True
            return
        if fault is not None and fault.action == "late_after_forward":
            seen.answered = "late"
            time.sleep(self.late_seconds)
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass


@dataclass
class Peer:
    url: str
    client: stripe.StripeClient
    sleeps: list[float]


def setup_peer(localstripe: str, settings, monkeypatch) -> Peer:
    """Point our gateway at an empty localstripe (compat mode: localstripe has no `created`
    list filters) and record the gateway's backoff sleeps instead of sleeping. Test modules
    wrap this in their own `peer` fixture."""
    settings.STRIPE_LOCALSTRIPE_COMPAT = True
    settings.STRIPE_SYNC_OVERLAP_SECONDS = 300
    sleeps: list[float] = []
    monkeypatch.setattr(gateway_client, "sleep", sleeps.append)
    return Peer(url=localstripe, client=sdk(localstripe), sleeps=sleeps)
