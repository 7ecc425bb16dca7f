"""Disputes and files for localstripe, in the shape Stripe's API reference documents (and,
through scripts/localstripe_connect.py, Connect: accounts, transfers, reversals; through
scripts/localstripe_promotion_codes.py, Stripe's coupons and promotion codes; through
scripts/localstripe_subscriptions.py, prices, subscription lifecycles and payment-method
updates; through scripts/localstripe_customer_balance.py, customers' balances and
balance transactions).

Test and demo infrastructure only (DESIGN.md decision 14): the launcher
(scripts/localstripe_server.py) calls `install()` before it serves. What it adds:

- `GET /v1/disputes` (filters `charge`, `payment_intent`, `created` as an integer or with
  `gt`/`gte`/`lt`/`lte`; `limit`, `starting_after`, `ending_before`; newest first),
  `GET /v1/disputes/{id}`, `POST /v1/disputes/{id}` (`evidence[...]`, `metadata[...]`,
  `submit`), `POST /v1/disputes/{id}/close`.
- `POST /v1/files` (multipart: `purpose`, `file`; the SDK sends it to its "files" base
  address), `GET /v1/files/{id}`, `GET /v1/files/{id}/contents`.
- Stripe's test cards open disputes when a charge succeeds: 4000000000000259
  (`pm_card_createDispute`, fraudulent), 4000000000002685
  (`pm_card_createDisputeProductNotReceived`), 4000000000001976
  (`pm_card_createDisputeInquiry`, an inquiry: `warning_needs_response`). Submitted
  evidence whose `uncategorized_text` is `winning_evidence` / `losing_evidence` closes the
  dispute as won / lost after `outcome_delay` seconds (Stripe: "within a few minutes"); an
  inquiry is closed (`warning_closed`) by winning evidence and escalated to a chargeback
  (`needs_response`, funds withdrawn) by losing evidence.
- A dispute (not an inquiry) withdraws its amount plus a 1500 minor-unit dispute fee through
  a balance transaction (`type=adjustment`, `reporting_category=dispute`, like Stripe's
  $15.00 in USD; the peer charges 1500 minor units in every currency); a won dispute
  reinstates the amount (the fee is not returned, as Stripe does today).
- Events `charge.dispute.created/updated/closed/funds_withdrawn/funds_reinstated` go
  through localstripe's own Event and webhook machinery (so /v1/events and registered
  webhooks get them); the charge reads `disputed: true`; refunding a charge with an open
  non-inquiry dispute answers Stripe's `charge_disputed` error.
- `Idempotency-Key` on these POSTs: the same key with the same request answers the stored
  response; with another request, Stripe's `idempotency_error` (400).
- Test/demo helpers under /_config (not Stripe API): `POST /_config/charges/{id}/dispute`
  (`reason`, `amount`, `inquiry=true`, `evidence_due_by`) opens a dispute on any charge;
  `POST /_config/disputes/{id}` (`evidence_due_by`, a Unix time) moves a deadline, which
  Stripe sets itself (the demo uses it to show deadlines in days and hours).

Everything lives in localstripe's store, so `DELETE /_config/data` empties it and `--state`
persists it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import (
    BalanceTransaction,
    Charge,
    Event,
    List,
    PaymentMethod,
    Refund,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

# Stripe's dispute test cards (docs.stripe.com/testing#disputes): card number -> (reason,
# inquiry?). The `pm_card_*` ids are Stripe's test payment methods for the same cards.
DISPUTE_CARDS = {
    "4000000000000259": ("fraudulent", False),
    "4000000000002685": ("product_not_received", False),
    "4000000000001976": ("fraudulent", True),
}
DISPUTE_TEST_PAYMENT_METHODS = {
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
}
WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"

# Stripe's dispute fee ($15.00 in USD); the peer takes it in the dispute's currency.
DISPUTE_FEE = 1500
# Stripe gives about 7 to 21 days; test-mode disputes are due 7 days out, at 23:59:59 UTC.
EVIDENCE_DAYS = 7

EVIDENCE_TEXT_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
)
EVIDENCE_FILE_FIELDS = (
    "cancellation_policy",
    "customer_communication",
    "customer_signature",
    "duplicate_charge_documentation",
    "receipt",
    "refund_policy",
    "service_documentation",
    "shipping_documentation",
    "uncategorized_file",
)
# Stripe: 150,000 characters over all text evidence fields together.
EVIDENCE_TEXT_LIMIT = 150_000

OPEN_STATUSES = ("needs_response", "warning_needs_response")
CLOSED_STATUSES = ("won", "lost", "warning_closed", "charge_refunded", "prevented")

FILE_PURPOSES = (
    "dispute_evidence",
    "identity_document",
    "additional_verification",
    "business_icon",
    "business_logo",
    "customer_signature",
    "pci_document",
    "tax_document_user_upload",
)
# Stripe's limit for one dispute evidence file (and the accepted kinds: PDF, JPEG, PNG).
DISPUTE_FILE_MAX_BYTES = 5 * 1024 * 1024
FILE_MAX_BYTES = 16 * 1024 * 1024

ERR_DISPUTE_CLOSED = "This dispute is already closed."
ERR_DISPUTE_SUBMITTED = "Evidence for this dispute has already been submitted."
ERR_CHARGE_DISPUTED = "Charge {charge} has been charged back; cannot issue a refund."
ERR_IN_PROGRESS = (
    "There is currently another in-progress request using this Idempotent Key (that "
    "probably means you submitted twice, and the other request is still going through): "
    "{key}. Please try again later."
)
ERR_IDEMPOTENCY = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)

# Seconds between a submission with a test outcome and the dispute's closing (set by the
# launcher's --dispute-outcome-delay).
outcome_delay = 0.5


def _now() -> int:
    return int(time.time())


def _due_by(created: int) -> int:
    day = datetime.fromtimestamp(created, tz=UTC).date() + timedelta(days=EVIDENCE_DAYS)
    return int(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).timestamp())


def _emit(kind: str, obj: StripeObject) -> None:
    schedule_webhook(Event(kind, obj))


def _dispute_transaction(dispute: Dispute, *, amount: int, fee: int, description: str):
    """A balance transaction for a dispute. localstripe's own constructor only knows charges
    and refunds, so it is built field by field in Stripe's shape."""
    txn = BalanceTransaction.__new__(BalanceTransaction)
    StripeObject.__init__(txn)
    txn.amount = amount
    txn.available_on = txn.created
    txn.currency = dispute.currency
    txn.description = description
    txn.exchange_rate = None
    txn.fee = fee
    txn.fee_details = (
        [
            {
                "amount": fee,
                "currency": dispute.currency,
                "type": "stripe_fee",
                "description": "Dispute fee",
                "application": None,
            }
        ]
        if fee
        else []
    )
    txn.reporting_category = "dispute" if amount < 0 else "dispute_reversal"
    txn.source = dispute.id
    txn.status = "available"
    txn.type = "adjustment"
    return txn


class Dispute(StripeObject):
    object = "dispute"
    _id_prefix = "du_"

    def __init__(
        self,
        charge: Charge,
        *,
        reason: str = "fraudulent",
        amount=None,
        inquiry: bool = False,
        due_by: int | None = None,
    ):
        super().__init__()
        self.amount = charge.amount if amount is None else int(amount)
        self.balance_transactions = []
        self.charge = charge.id
        self.currency = charge.currency
        self.enhanced_eligibility_types = []
        self.evidence = {
            **dict.fromkeys(EVIDENCE_TEXT_FIELDS),
            **dict.fromkeys(EVIDENCE_FILE_FIELDS),
        }
        self.is_charge_refundable = inquiry
        self.metadata = {}
        self.network_reason_code = "10.4" if reason == "fraudulent" else "13.1"
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {
            "type": "card",
            "card": {
                "brand": "visa",
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": self.network_reason_code,
            },
        }
        self.reason = reason
        self.status = "warning_needs_response" if inquiry else "needs_response"
        self._due_by = due_by or _due_by(self.created)
        self._submission_count = 0

    @property
    def evidence_details(self) -> dict:
        return {
            "due_by": self._due_by,
            "enhanced_eligibility": {},
            "has_evidence": any(v not in (None, "") for v in self.evidence.values()),
            "past_due": _now() > self._due_by,
            "submission_count": self._submission_count,
            "submission_method": "manual" if self._submission_count else "not_submitted",
        }

    @classmethod
    def _open(cls, charge: Charge, **kwargs) -> Dispute:
        """Open a dispute on a succeeded charge, as the card network would."""
        dispute = cls(charge, **kwargs)
        charge.disputed = True
        _emit("charge.dispute.created", dispute)
        if not dispute.status.startswith("warning_"):
            dispute._withdraw()
        return dispute

    def _withdraw(self) -> None:
        txn = _dispute_transaction(
            self,
            amount=-self.amount,
            fee=DISPUTE_FEE,
            description=f"Chargeback withdrawal for {self.charge}",
        )
        self.balance_transactions = [*self.balance_transactions, txn]
        self.is_charge_refundable = False
        _emit("charge.dispute.funds_withdrawn", self)

    def _close(self, status: str) -> None:
        self.status = status
        if status == "won" and self.balance_transactions:
            txn = _dispute_transaction(
                self,
                amount=self.amount,
                fee=0,
                description=f"Chargeback reversal for {self.charge}",
            )
            self.balance_transactions = [*self.balance_transactions, txn]
            _emit("charge.dispute.closed", self)
            _emit("charge.dispute.funds_reinstated", self)
        else:
            _emit("charge.dispute.closed", self)

    def _apply_test_outcome(self) -> None:
        """Stripe's documented test evidence decides a submitted dispute."""
        if store.get("dispute:" + self.id) is not self:
            return  # the data was reset (DELETE /_config/data) since the submission
        text = self.evidence.get("uncategorized_text")
        if self.status == "under_review":
            if text == WINNING_EVIDENCE:
                self._close("won")
            elif text == LOSING_EVIDENCE:
                self._close("lost")
        elif self.status == "warning_under_review":
            if text == WINNING_EVIDENCE:
                self._close("warning_closed")
            elif text == LOSING_EVIDENCE:
                # An inquiry the cardholder's bank does not accept becomes a chargeback.
                self.status = "needs_response"
                self._due_by = _due_by(_now())
                _emit("charge.dispute.updated", self)
                self._withdraw()
        store.dump_to_disk()

    # --- API ------------------------------------------------------------------------------

    @classmethod
    def _api_create(cls, **data):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_update(cls, id, evidence=None, metadata=None, submit=None, **kwargs):
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        submit = try_convert_to_bool(submit)
        if submit is not None and type(submit) is not bool:
            raise UserError(400, "Invalid boolean: " + str(submit))
        evidence = _checked_evidence(evidence)
        if metadata is not None and type(metadata) is not dict:
            raise UserError(400, "Invalid metadata")
        obj = cls._api_retrieve(id)
        if obj.status in CLOSED_STATUSES:
            raise UserError(400, ERR_DISPUTE_CLOSED, {"code": "dispute_already_closed"})
        if (evidence or submit) and obj.status not in OPEN_STATUSES:
            raise UserError(400, ERR_DISPUTE_SUBMITTED, {"code": "dispute_already_submitted"})
        if evidence:
            merged = {**obj.evidence, **evidence}
            if (
                sum(len(v or "") for k, v in merged.items() if k in EVIDENCE_TEXT_FIELDS)
                > EVIDENCE_TEXT_LIMIT
            ):
                raise UserError(
                    400,
                    f"The evidence text fields together exceed {EVIDENCE_TEXT_LIMIT} characters.",
                )
            obj.evidence = merged
        for key, value in (metadata or {}).items():
            if value in ("", None):
                obj.metadata.pop(key, None)
            else:
                obj.metadata[key] = str(value)
        # Stripe submits by default when `submit` is omitted.
        if submit is not False and (evidence or submit):
            obj.status = (
                "under_review" if obj.status == "needs_response" else ("warning_under_review")
            )
            obj._submission_count += 1
            if obj.evidence.get("uncategorized_text") in (WINNING_EVIDENCE, LOSING_EVIDENCE):
                asyncio.get_event_loop().call_later(outcome_delay, obj._apply_test_outcome)
        _emit("charge.dispute.updated", obj)
        return obj

    @classmethod
    def _api_close(cls, id, **kwargs):
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        obj = cls._api_retrieve(id)
        if obj.status in CLOSED_STATUSES:
            raise UserError(400, ERR_DISPUTE_CLOSED, {"code": "dispute_already_closed"})
        if obj.status not in OPEN_STATUSES:
            raise UserError(400, ERR_DISPUTE_SUBMITTED, {"code": "dispute_already_submitted"})
        obj._close("warning_closed" if obj.status == "warning_needs_response" else "lost")
        return obj

    @classmethod
    def _api_list_all(
        cls,
        url,
        charge=None,
        payment_intent=None,
        created=None,
        limit=None,
        starting_after=None,
        ending_before=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        filters = [_created_filter(created)]
        if charge is not None:
            filters.append(lambda d: d.charge == charge)
        if payment_intent is not None:
            filters.append(lambda d: d.payment_intent == payment_intent)
        li = List(url, limit=limit, starting_after=starting_after)
        # Newest first; within one second, the later one first (store keeps insertion order).
        items = [v for k, v in store.items() if k.startswith("dispute:")][::-1]
        items.sort(key=lambda d: d.created, reverse=True)
        items = [d for d in items if all(f(d) for f in filters)]
        if ending_before is not None:
            ids = [d.id for d in items]
            end = ids.index(ending_before) if ending_before in ids else 0
            items = items[max(0, end - li._limit) : end]
        li._list = items
        return li


def _created_filter(created):
    if created is None:
        return lambda d: True
    if type(created) is not dict:
        value = try_convert_to_int(created)
        if type(value) is not int:
            raise UserError(400, "Invalid integer: " + str(created))
        return lambda d: d.created == value
    ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    checks = []
    for op, raw in created.items():
        value = try_convert_to_int(raw)
        if op not in ops or type(value) is not int:
            raise UserError(400, f"Invalid created[{op}]")
        checks.append((ops[op], value))
    return lambda d: all(fn(d.created, value) for fn, value in checks)


def _checked_evidence(evidence) -> dict:
    if evidence is None:
        return {}
    if type(evidence) is not dict:
        raise UserError(400, "Invalid evidence: must be an object")
    checked = {}
    for key, value in evidence.items():
        if key not in EVIDENCE_TEXT_FIELDS and key not in EVIDENCE_FILE_FIELDS:
            raise UserError(
                400, f"Received unknown parameter: evidence[{key}]", {"param": f"evidence[{key}]"}
            )
        if type(value) is not str:
            raise UserError(400, f"Invalid string: evidence[{key}]")
        if key in EVIDENCE_FILE_FIELDS and value:
            file = store.get("file:" + value)
            if file is None:
                raise UserError(
                    400,
                    f"No such file upload: '{value}'",
                    {"code": "resource_missing", "param": f"evidence[{key}]"},
                )
            if file.purpose != "dispute_evidence":
                raise UserError(
                    400,
                    f"File {value} was not uploaded with purpose dispute_evidence.",
                    {"param": f"evidence[{key}]"},
                )
        checked[key] = value or None
    return checked


class File(StripeObject):
    object = "file"
    _id_prefix = "file_"

    def __init__(self, purpose=None, file=None, **kwargs):
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        if purpose not in FILE_PURPOSES:
            raise UserError(400, f"Invalid purpose: {purpose}", {"param": "purpose"})
        if file is None or not hasattr(file, "file"):
            raise UserError(400, "Missing required param: file.", {"param": "file"})
        content = file.file.read()
        kind = _file_type(content)
        if purpose == "dispute_evidence":
            if kind not in ("pdf", "png", "jpg"):
                raise UserError(
                    400, "Dispute evidence must be a PDF, JPEG or PNG file.", {"param": "file"}
                )
            if len(content) > DISPUTE_FILE_MAX_BYTES:
                raise UserError(
                    400, "Dispute evidence files must be 5MB or smaller.", {"param": "file"}
                )
        elif len(content) > FILE_MAX_BYTES:
            raise UserError(400, "Files must be 16MB or smaller.", {"param": "file"})
        super().__init__()
        self._content = content
        self.expires_at = None
        self.filename = file.filename
        self.links = None
        self.purpose = purpose
        self.size = len(content)
        self.title = None
        self.type = kind
        # Stripe's is absolute on its files host; the peer's is relative to itself.
        self.url = f"/v1/files/{self.id}/contents"

    @classmethod
    def _api_update(cls, id, **data):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_list_all(cls, url, purpose=None, limit=None, starting_after=None, **kwargs):
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after, **kwargs)
        li._list = [f for f in li._list[::-1] if purpose is None or f.purpose == purpose]
        return li


def _file_type(content: bytes) -> str | None:
    if content.startswith(b"%PDF"):
        return "pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    return None


# --- hooks into localstripe's own classes -------------------------------------------------------


def _dispute_card(charge: Charge) -> tuple[str, bool] | None:
    method = store.get("payment_method:" + str(charge.payment_method)) or store.get(
        "card:" + str(charge.payment_method)
    )
    return DISPUTE_CARDS.get(getattr(method, "_card_number", None))


def _install_hooks() -> None:
    Charge.disputed = False  # exported as a field of every charge (class attributes are)
    original_trigger = Charge._trigger_payment

    # Stripe opens a test card's dispute once the charge succeeds (here at once, after the
    # payment_intent.succeeded event is scheduled).

    def trigger_payment(self, on_success=None):
        def succeeded():
            if on_success:
                on_success()
            card = _dispute_card(self)
            if card and self.status == "succeeded" and not self.disputed:
                reason, inquiry = card
                Dispute._open(self, reason=reason, inquiry=inquiry)

        original_trigger(self, on_success=succeeded)

    Charge._trigger_payment = trigger_payment

    original_article = PaymentMethod._try_get_canonical_test_article.__func__

    @classmethod
    def canonical_article(cls, id):
        number = DISPUTE_TEST_PAYMENT_METHODS.get(id)
        if number:
            return PaymentMethod(
                type="card",
                card={"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"},
            )
        return original_article(cls, id)

    PaymentMethod._try_get_canonical_test_article = canonical_article

    original_refund_create = Refund._api_create.__func__

    @classmethod
    def refund_create(cls, **data):
        charge_id = data.get("charge")
        if data.get("payment_intent"):
            intent = store.get("payment_intent:" + str(data["payment_intent"]))
            charge_id = intent.latest_charge.id if intent and intent.latest_charge else None
        for key, value in list(store.items()):
            if (
                key.startswith("dispute:")
                and value.charge == charge_id
                and not value.is_charge_refundable
                and value.status not in ("won", "warning_closed")
            ):
                raise UserError(
                    400,
                    ERR_CHARGE_DISPUTED.format(charge=charge_id),
                    {"code": "charge_disputed", "charge": charge_id},
                )
        return original_refund_create(cls, **data)

    Refund._api_create = refund_create


# --- routes ----------------------------------------------------------------------------------


_original_get_post_data = server.get_post_data


async def _get_post_data(request, remove_auth=True):
    if request.content_type == "multipart/form-data":
        return dict(await request.post())
    return await _original_get_post_data(request, remove_auth=remove_auth)


async def _request_fingerprint(request) -> str:
    """What makes two requests "the same" for an idempotency key: method, path and the
    parameters (a multipart upload's boundary differs per request; its fields do not)."""
    digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\0")
    if request.content_type == "multipart/form-data":
        for name, value in sorted((await request.post()).items(), key=lambda kv: kv[0]):
            digest.update(name.encode() + b"=")
            if hasattr(value, "file"):
                digest.update(str(value.filename).encode() + b"\0" + value.file.read())
                value.file.seek(0)  # the handler reads it again
            else:
                digest.update(str(value).encode())
            digest.update(b"&")
    else:
        digest.update(await request.read())
    return digest.hexdigest()


def _idempotency_error(status: int, message: str) -> web.Response:
    # Stripe's error type for key misuse (UserError would call it invalid_request_error).
    return server.json_response(
        {"error": {"type": "idempotency_error", "message": message}}, status=status
    )


# Idempotency keys whose first request is still being answered.
_in_flight: set[str] = set()


def _idempotent(handler):
    """Same Idempotency-Key and same request -> the stored answer; another request with the
    key -> Stripe's idempotency_error; a request while the key's first one is still being
    answered -> Stripe's 409 (the client retries it). Keys live in the store (flushed with
    the data)."""

    async def wrapped(request):
        key = request.headers.get("Idempotency-Key")
        if not key:
            return await handler(request)
        fingerprint = await _request_fingerprint(request)
        if key in _in_flight:
            return _idempotency_error(409, ERR_IN_PROGRESS.format(key=key))
        seen = store.get("idempotency:" + key)
        if seen is not None:
            if seen["fingerprint"] != fingerprint:
                return _idempotency_error(400, ERR_IDEMPOTENCY.format(key=key))
            return web.Response(
                status=seen["status"],
                body=seen["body"],
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        _in_flight.add(key)
        try:
            response = await handler(request)
        except UserError as error:
            response = error.to_response()
        finally:
            _in_flight.discard(key)
        if response.status < 500:
            store["idempotency:" + key] = {
                "fingerprint": fingerprint,
                "status": response.status,
                "body": response.body
                if isinstance(response.body, bytes)
                else response.text.encode(),
            }
        return response

    return wrapped


def _json(obj) -> web.Response:
    return server.json_response(obj)


async def _dispute_update(request):
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    obj = Dispute._api_update(request.match_info["id"], **data)
    return _json(obj._export(expand=expand))


async def _dispute_close(request):
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    obj = Dispute._api_close(request.match_info["id"], **data)
    return _json(obj._export(expand=expand))


async def _file_create(request):
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    return _json(File(**data)._export())


def _file_contents(request):
    file = File._api_retrieve(request.match_info["id"])
    content_type = {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg"}.get(
        file.type, "application/octet-stream"
    )
    return web.Response(body=file._content, content_type=content_type)


async def _config_open_dispute(request):
    data = await server.get_post_data(request) or {}
    charge = Charge._api_retrieve(request.match_info["id"])
    if charge.status != "succeeded" or charge.disputed:
        raise UserError(400, "Only an undisputed, succeeded charge can be disputed.")
    due_by = (
        try_convert_to_int(data.get("evidence_due_by")) if data.get("evidence_due_by") else None
    )
    dispute = Dispute._open(
        charge,
        reason=data.get("reason") or "fraudulent",
        amount=try_convert_to_int(data["amount"]) if data.get("amount") else None,
        inquiry=try_convert_to_bool(data.get("inquiry", False)) is True,
        due_by=due_by,
    )
    return _json(dispute._export())


async def _config_update_dispute(request):
    data = await server.get_post_data(request) or {}
    dispute = Dispute._api_retrieve(request.match_info["id"])
    due_by = try_convert_to_int(data.get("evidence_due_by"))
    if type(due_by) is not int:
        raise UserError(400, "evidence_due_by (a Unix time) required")
    dispute._due_by = due_by
    return _json(dispute._export())


def install(*, dispute_outcome_delay: float = 0.5) -> None:
    """Add disputes and files to localstripe's app (before it starts serving)."""
    global outcome_delay
    outcome_delay = dispute_outcome_delay
    _install_hooks()
    server.get_post_data = _get_post_data
    router = server.app.router
    # localstripe's own routes never match /v1/disputes or /v1/files: order is free.
    router.add_get("/v1/disputes", server.api_list_all(Dispute, "/v1/disputes"))
    router.add_get("/v1/disputes/{id}", server.api_retrieve(Dispute, "/v1/disputes/{id}"))
    router.add_post("/v1/disputes/{id}", _idempotent(_dispute_update))
    router.add_post("/v1/disputes/{id}/close", _idempotent(_dispute_close))
    router.add_post("/v1/files", _idempotent(_file_create))
    router.add_get("/v1/files", server.api_list_all(File, "/v1/files"))
    router.add_get("/v1/files/{id}", server.api_retrieve(File, "/v1/files/{id}"))
    router.add_get("/v1/files/{id}/contents", _file_contents)
    router.add_post("/_config/charges/{id}/dispute", _config_open_dispute)
    router.add_post("/_config/disputes/{id}", _config_update_dispute)
    # Connected accounts, transfers and reversals (scripts/localstripe_connect.py).
    from localstripe_connect import install as install_connect

    install_connect(_idempotent)
    # Coupons as Stripe documents them, and promotion codes (localstripe_promotion_codes.py).
    from localstripe_promotion_codes import install as install_promotion_codes

    install_promotion_codes(_idempotent)
    # Prices, subscription lifecycles, payment-method updates
    # (scripts/localstripe_subscriptions.py).
    from localstripe_subscriptions import install as install_subscriptions

    install_subscriptions(_idempotent)
    # Customers' balances and their balance transactions
    # (scripts/localstripe_customer_balance.py).
    from localstripe_customer_balance import install as install_customer_balance

    install_customer_balance(_idempotent)
