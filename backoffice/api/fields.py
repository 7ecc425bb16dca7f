"""Money in one shape: {"amount": 2500, "currency": "usd", "display": "$25.00"}.

`amount` is an integer in the currency's minor unit (never a float), `currency` lower-case
ISO 4217 as Stripe sends it, `display` the text the admin shows, made by the function
settings.MONEY_FORMATTER names (payments.money.format_money: backoffice imports no app).

Datetimes: DRF's DateTimeField, ISO 8601 in UTC with the offset written as "Z"
(`2026-12-01T13:47:05.123456Z`), as settings.TIME_ZONE is UTC."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def money_formatter():
    return import_string(settings.MONEY_FORMATTER)


def money(amount: int | None, currency: str) -> dict | None:
    """The API's money object, or None for no amount."""
    if amount is None:
        return None
    return {"amount": amount, "currency": currency, "display": money_formatter()(amount, currency)}


class MoneySerializer(serializers.Serializer):
    """The schema of a money object (the component "Money")."""

    amount = serializers.IntegerField(help_text="Minor units of the currency (cents, yen).")
    currency = serializers.CharField(help_text="Lower-case ISO 4217 code.")
    display = serializers.CharField(help_text="As the admin shows it, e.g. '$25.00'.")


@extend_schema_field(MoneySerializer)
class MoneyField(serializers.Field):
    """A read-only money object from two attributes of the instance:
    `MoneyField(amount_attr="amount_refunded", currency_attr="currency")`."""

    def __init__(self, *, amount_attr: str = "amount", currency_attr: str = "currency", **kwargs):
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)
        self.amount_attr = amount_attr
        self.currency_attr = currency_attr

    def to_representation(self, instance):
        if isinstance(instance, dict):
            amount, currency = instance.get(self.amount_attr), instance.get(self.currency_attr)
        else:
            amount = getattr(instance, self.amount_attr)
            currency = getattr(instance, self.currency_attr)
        return money(amount, currency)
