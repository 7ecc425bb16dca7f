from django.db import models

from .base import TimestampedModel


class Instructor(TimestampedModel):
    """A seller on the marketplace; paid out through their Stripe connected account."""

    name = models.CharField(max_length=255)
    email = models.EmailField(unique=True)
    stripe_account_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
