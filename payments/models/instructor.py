from django.db import models
from django.db.models import Q

from .base import TimestampedModel


class Instructor(TimestampedModel):
    """A seller on the marketplace; paid out through their Stripe connected account.

    Created and matched by the Stripe sync from the payment metadata contract
    (payments/metadata.py): by connected account id first, then by e-mail."""

    name = models.CharField(max_length=255)
    # Lower-case; "" when only the connected account is known.
    email = models.EmailField(blank=True)
    stripe_account_id = models.CharField("Connected account", max_length=255, blank=True)
    # The marketplace's own id for the instructor (metadata `instructor_id`).
    external_id = models.CharField("Marketplace id", max_length=64, blank=True)
    # Where bank-transfer payouts go when there is no connected account (IBAN or account
    # number as the bank needs it); it appears only in the payout file staff send the bank.
    bank_account = models.CharField("Bank account", max_length=64, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["email"], condition=~Q(email=""), name="instructor_email_unique"
            ),
            models.UniqueConstraint(
                fields=["stripe_account_id"],
                condition=~Q(stripe_account_id=""),
                name="instructor_account_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name
