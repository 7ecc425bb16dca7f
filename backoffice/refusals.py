"""Why a staff member may not do something: the one answer a page shows before the click and
a service raises after it (refunds/permissions.py, payments/payout_rules.py,
payments/earning_adjustment_rules.py each decide their own rules and answer with this)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """`permission` is True when the user lacks a permission (the server answers 403, the
    service raises its *PermissionError), False when the object does not allow it now (a
    rule: the service's plain error)."""

    message: str
    permission: bool = False

    def __str__(self) -> str:
        return self.message
