"""Pushes work into the Redis broker the way production does, from its own process (run with
tests/scaleout/cluster_support.process_env: production settings, REDIS_URL, Q_SYNC=0).

    python -m tests.scaleout.driver webhooks SPEC_JSON FIRST COUNT
        Signed Stripe events POSTed to /stripe/webhook/ through Django's test client: the
        URL conf, the middleware, the signature check, the insert unique by event id and the
        enqueue after commit, as a gunicorn worker runs them. SPEC_JSON names the run and the
        payment intents and customers the events are about; event i (FIRST <= i <
        FIRST + COUNT) is about one of them (see `event_for`).
    python -m tests.scaleout.driver approve APPROVER_ID
        Approves every pending refund request through refunds.services (which queues its
        processing task on commit), as the admin's approve action does.

Prints one JSON line of counts at the end.
"""

from __future__ import annotations

import json
import sys
import time


def event_for(spec: dict, index: int) -> dict:
    """Event `index` of the run: every fifth one a customer update, the others a payment
    intent's success, round-robin over the run's objects (Stripe sends many events per
    object; handlers re-read the object, so any number converge)."""
    if index % 5 == 4:
        customers = spec["customers"]
        event_type, data = "customer.updated", {"id": customers[index % len(customers)]}
        data["object"] = "customer"
    else:
        intents = spec["payment_intents"]
        event_type = "payment_intent.succeeded"
        data = {"id": intents[index % len(intents)], "object": "payment_intent"}
    return {
        "id": f"evt_{spec['run']}_{index:06d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": data},
    }


def push_webhooks(spec_path: str, first: int, count: int) -> dict:
    from django.test import Client

    from tests.payments.webhook_support import sign
    from tests.scaleout.cluster_support import WEBHOOK_SECRET

    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    client = Client()
    statuses: dict[int, int] = {}
    duplicates = 0
    started = time.perf_counter()
    for index in range(first, first + count):
        body = json.dumps(event_for(spec, index)).encode()
        response = client.post(
            "/stripe/webhook/",
            data=body,
            content_type="application/json",
            headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 200 and response.json().get("duplicate"):
            duplicates += 1
    return {
        "posted": count,
        "statuses": statuses,
        "duplicates": duplicates,
        "seconds": round(time.perf_counter() - started, 2),
    }


def approve_refunds(approver_id: int) -> dict:
    from django.contrib.auth import get_user_model

    from refunds.models import RefundRequest
    from refunds.services import refund_request_approve

    approver = get_user_model().objects.get(pk=approver_id)
    approved = 0
    started = time.perf_counter()
    pending = RefundRequest.objects.filter(status=RefundRequest.Status.PENDING).order_by("pk")
    for refund_request in list(pending):
        refund_request_approve(refund_request=refund_request, acting_user=approver)
        approved += 1
    return {"approved": approved, "seconds": round(time.perf_counter() - started, 2)}


def main(argv: list[str]) -> None:
    import django

    django.setup()
    command, *args = argv
    if command == "webhooks":
        result = push_webhooks(args[0], int(args[1]), int(args[2]))
    elif command == "approve":
        result = approve_refunds(int(args[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
