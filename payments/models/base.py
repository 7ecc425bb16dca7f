from django.core.validators import RegexValidator
from django.db import models


class TimestampedModel(models.Model):
    """When our row was written; Stripe's own creation time lives in `created`."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class MinorUnitsField(models.BigIntegerField):
    """An amount in the currency's minor unit (cents for USD, yen for JPY). Never a float."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", 0)
        super().__init__(*args, **kwargs)


currency_validator = RegexValidator(r"^[a-z]{3}$", "A lower-case ISO 4217 code such as 'usd'.")


class CurrencyField(models.CharField):
    """Lower-case ISO 4217 code, exactly as Stripe sends it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("validators", [currency_validator])
        super().__init__(*args, **kwargs)
