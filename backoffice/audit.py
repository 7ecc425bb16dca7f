"""The one way an audit row is written.

Every service that records a staff (or system) action calls `audit_record` inside the
transaction of the change it describes, so the change and its audit row commit or roll back
together. Admin views pass `client_info_from_request(request)`; jobs pass nothing.

Rows are written once (AdminAction refuses updates and deletes): state that changes over time
belongs on its own model (a refund request, a payment retry), never on the audit row.

So no personal data goes in (the trail outlives a GDPR erasure): a target whose str() is
personal (a customer's e-mail) defines `audit_repr()`, which names it by id instead, and
audit_record uses it whoever calls; and reasons are staff words, never a customer's.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from .client_ip import client_ip, valid_ip
from .models import AdminAction

ERR_TARGET_ID_REQUIRED = "An audit row about a model class (not a row) needs an explicit target_id."

# Truncate to the columns, so a long user agent or repr never fails the action it records.
_USER_AGENT_MAX = AdminAction._meta.get_field("user_agent").max_length
_TARGET_REPR_MAX = AdminAction._meta.get_field("target_repr").max_length


@dataclass(frozen=True)
class ClientInfo:
    """Where a staff action came from, for the audit row."""

    ip_address: str | None = None
    user_agent: str = ""


def client_info_from_request(request) -> ClientInfo:
    """The client address (backoffice.client_ip: REMOTE_ADDR, or our proxies' header when
    TRUSTED_PROXY_COUNT says we run them) and user agent of `request`."""
    return ClientInfo(
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX],
    )


def audit_record(
    *,
    acting_user,
    action: str,
    target: models.Model | type[models.Model],
    amount: int | None = None,
    currency: str = "",
    reason: str = "",
    result: str = AdminAction.Result.SUCCESS,
    details: dict | None = None,
    client: ClientInfo | None = None,
    target_id: str | None = None,
    target_repr: str | None = None,
) -> AdminAction:
    """Insert one audit row and return it. Call it inside the transaction of the change.

    `target` is the row the action is about (target_type, target_id and target_repr derive
    from it), or a model class for an action about many rows (then `target_id` is required).
    `acting_user` may be None (a system job) or an AnonymousUser: both record no actor.
    `amount` is in minor units of `currency`. `details` must be JSON-serialisable.
    `target_repr` defaults to the target's `audit_repr()` when it has one, else str(target).
    """
    if target_id is None:
        if isinstance(target, type):
            raise ValueError(ERR_TARGET_ID_REQUIRED)
        target_id = str(target.pk)
    if target_repr is None:
        if isinstance(target, type):
            target_repr = ""
        elif hasattr(target, "audit_repr"):
            target_repr = target.audit_repr()  # never personal data (module docstring)
        else:
            target_repr = str(target)
    client = client or ClientInfo()
    return AdminAction.objects.create(
        # AnonymousUser has pk None; a system job passes None.
        actor=acting_user if getattr(acting_user, "pk", None) else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target_id),
        target_repr=target_repr[:_TARGET_REPR_MAX],
        amount=amount,
        currency=currency or "",
        reason=reason or "",
        ip_address=valid_ip(client.ip_address),
        user_agent=(client.user_agent or "")[:_USER_AGENT_MAX],
        result=result,
        details=details or {},
    )
