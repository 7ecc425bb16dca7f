"""A customer's GDPR requests: export their data (JSON) and erase it (pseudonymise).

Export needs payments.export_customer_data, erasure payments.erase_customer; both are POSTs
after a confirmation page, and each writes one AdminAction in the same transaction (the export's
row says who took a copy of whose data; the erasure's lists what changed). Audit rows name the
customer by pk and Stripe id, never by e-mail. What is exported and what is erased is stated
once in payments/customer_privacy.py. Erasure takes the customer's row lock; erasing an erased
customer changes nothing and is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from backoffice.audit import ClientInfo, audit_record
from backoffice.formats import format_datetime
from payments.customer_privacy import ERASED_NAME, customer_export_document, erase_related_rows
from payments.models import Customer

PERM_EXPORT = "payments.export_customer_data"
PERM_ERASE = "payments.erase_customer"

ERR_EXPORT_NOT_ALLOWED = "You may not export customers' personal data."
ERR_ERASE_NOT_ALLOWED = "You may not erase customers' personal data."
ERR_REASON_REQUIRED = "Write down the request this erasure answers (e.g. the ticket number)."
ERR_CONFIRMATION = "Type the customer's Stripe id ({stripe_id}) to confirm the erasure."
ERR_ALREADY_ERASED = "This customer's personal data was already erased on {when}; nothing changed."
MSG_ERASED = (
    "Personal data of {stripe_id} erased: name, e-mail, billing details, IPs and {events} "
    "webhook payload(s) pseudonymised; payments, refunds, disputes and the audit trail kept."
)

AUDIT_EXPORT = "customer.export_data"
AUDIT_ERASE = "customer.erase"


class CustomerPrivacyError(Exception):
    """An export or erasure that cannot be made; the message is safe to show to staff."""


@dataclass(frozen=True)
class ErasureResult:
    customer: Customer
    changed: dict[str, int]
    message: str


def _audit_name(customer: Customer) -> str:
    # Never the e-mail: the audit trail outlives the erasure.
    return customer.audit_repr()


def customer_data_export(
    *, customer: Customer, acting_user, client: ClientInfo | None = None
) -> dict:
    """The customer's data as one JSON-ready document (payments/customer_privacy.py), audited.
    Raises CustomerPrivacyError without payments.export_customer_data."""
    if acting_user is None or not acting_user.has_perm(PERM_EXPORT):
        raise CustomerPrivacyError(ERR_EXPORT_NOT_ALLOWED)
    now = timezone.now()
    with transaction.atomic():
        document = customer_export_document(customer=customer, now=now)
        audit_record(
            acting_user=acting_user,
            action=AUDIT_EXPORT,
            target=customer,
            target_repr=_audit_name(customer),
            details={
                "payments": len(document["payments"]),
                "erased": customer.erased_at is not None,
            },
            client=client,
        )
    return document


def customer_erase(
    *,
    customer: Customer,
    reason: str,
    confirmation: str,
    acting_user,
    client: ClientInfo | None = None,
) -> ErasureResult:
    """Pseudonymise `customer`'s personal data (see payments/customer_privacy.py): the
    Customer row and its history, payments, disputes, dispute responses, webhook payloads and
    what higher apps registered. `confirmation` must be the customer's Stripe id. Raises
    CustomerPrivacyError (no permission, no reason, wrong confirmation, already erased)."""
    if acting_user is None or not acting_user.has_perm(PERM_ERASE):
        raise CustomerPrivacyError(ERR_ERASE_NOT_ALLOWED)
    reason = (reason or "").strip()
    if not reason:
        raise CustomerPrivacyError(ERR_REASON_REQUIRED)
    if (confirmation or "").strip() != customer.stripe_id:
        raise CustomerPrivacyError(ERR_CONFIRMATION.format(stripe_id=customer.stripe_id))
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.erased_at is not None:
            raise CustomerPrivacyError(
                ERR_ALREADY_ERASED.format(when=format_datetime(locked.erased_at))
            )
        now = timezone.now()
        changed = erase_related_rows(customer=locked)
        # The customer's history rows hold every earlier name and e-mail.
        changed["customer_history"] = Customer.history.filter(id=locked.pk).update(
            email="", name=ERASED_NAME, user=None
        )
        locked.email = ""
        locked.name = ERASED_NAME
        locked.user = None
        locked.erased_at = now
        locked._change_reason = "GDPR erasure"
        locked.save(update_fields=["email", "name", "user", "erased_at", "updated_at"])
        # The admin's own log (LogEntry, not append-only) names objects by str(): the e-mail.
        changed["admin_log_entries"] = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), object_id=str(locked.pk)
        ).update(object_repr=_audit_name(locked))
        audit_record(
            acting_user=acting_user,
            action=AUDIT_ERASE,
            target=locked,
            target_repr=_audit_name(locked),
            reason=reason,
            details=changed,
            client=client,
        )
    return ErasureResult(
        customer=locked,
        changed=changed,
        message=MSG_ERASED.format(stripe_id=locked.stripe_id, events=changed["webhook_events"]),
    )
