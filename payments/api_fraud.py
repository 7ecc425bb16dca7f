"""Fraud alerts through the API: the worklist (unresolved first, newest first, as the admin
orders it), an alert's page, and the review steps the admin offers (assign to me, start
investigating, resolve as confirmed fraud or a false positive, with a note).

Each step is payments.services.fraud_alert's, with its rules and messages: a step already
done answers 200 with `changed: false` and the service's message; a refused step answers
403 (permission), 400 (no note, bad outcome) or 409 (the alert moved on).
"""

from __future__ import annotations

from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.fields import MoneySerializer, money
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request

from .admin.fraud import FraudAlertAdmin
from .api_filters import admin_search_filter
from .api_pagination import OrderKeysetPaginator, keyset_pagination
from .api_refusals import CONFLICT, FORBIDDEN, INVALID, refusal_error
from .models import FraudAlert
from .models.fraud_alert import FraudRule, FraudSeverity
from .services.fraud_alert import (
    ERR_ALREADY_RESOLVED,
    ERR_BAD_OUTCOME,
    ERR_NOT_ALLOWED,
    ERR_NOTE_REQUIRED,
    ERR_TRANSITION,
    PERM_REVIEW,
    FraudReviewError,
    fraud_alert_assign,
    fraud_alert_resolve,
    fraud_alert_start_investigating,
)

REFUSALS = (
    (ERR_NOT_ALLOWED, FORBIDDEN),
    (ERR_NOTE_REQUIRED, INVALID),
    (ERR_BAD_OUTCOME, INVALID),
    (ERR_ALREADY_RESOLVED, CONFLICT),
    (ERR_TRANSITION, CONFLICT),
)
REFUSAL_FIELDS = {ERR_NOTE_REQUIRED: "note", ERR_BAD_OUTCOME: "outcome"}


def _refusal(exc: FraudReviewError):
    message = str(exc)
    return refusal_error(message, REFUSALS, default=CONFLICT, field=REFUSAL_FIELDS.get(message))


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class FraudAlertSerializer(serializers.ModelSerializer):
    payment = serializers.IntegerField(source="payment_id", read_only=True)
    stripe_payment_intent_id = serializers.CharField(
        source="payment.stripe_payment_intent_id", read_only=True
    )
    amount = serializers.SerializerMethodField(help_text="The flagged payment's amount.")
    # Blank for alerts not raised by our rules (the model's blank=True choices).
    rule = serializers.ChoiceField(choices=FraudRule.choices, allow_blank=True, read_only=True)
    severity = serializers.ChoiceField(
        choices=FraudSeverity.choices, allow_blank=True, read_only=True
    )
    customer_email = serializers.SerializerMethodField()
    assigned_to = serializers.SerializerMethodField()
    reviewed_by = serializers.SerializerMethodField()

    class Meta:
        model = FraudAlert
        fields = [
            "id",
            "status",
            "source",
            "stripe_id",
            "fraud_type",
            "rule",
            "severity",
            "risk_score",
            "numbers",
            "cause_key",
            "payment",
            "stripe_payment_intent_id",
            "amount",
            "customer_email",
            "payment_ids",
            "created",
            "assigned_to",
            "assigned_at",
            "investigating_since",
            "reviewed_by",
            "reviewed_at",
            "review_note",
        ]
        read_only_fields = fields

    @extend_schema_field(MoneySerializer)
    def get_amount(self, obj):
        return money(obj.payment.amount, obj.payment.currency)

    def get_customer_email(self, obj) -> str | None:
        customer = obj.customer or obj.payment.customer
        return customer.email if customer is not None else None

    def get_assigned_to(self, obj) -> str | None:
        return _username(obj.assigned_to)

    def get_reviewed_by(self, obj) -> str | None:
        return _username(obj.reviewed_by)


class FraudReviewResultSerializer(serializers.Serializer):
    changed = serializers.BooleanField(help_text="False when the step was already done.")
    message = serializers.CharField()
    alert = FraudAlertSerializer()


class FraudResolveSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=[
            (FraudAlert.Status.CONFIRMED, "Confirmed fraud"),
            (FraudAlert.Status.DISMISSED, "False positive"),
        ],
        error_messages={"invalid_choice": ERR_BAD_OUTCOME, "required": ERR_BAD_OUTCOME},
    )
    # Blank is the service's to refuse, with its own message (400, under `fields.note`).
    note = serializers.CharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required: why (what you checked).",
    )


class FraudAlertFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=FraudAlert.Status.choices, distinct=False)
    unresolved = filters.BooleanFilter(method="filter_unresolved")
    source = filters.ChoiceFilter(choices=FraudAlert.Source.choices)
    rule = filters.ChoiceFilter(choices=FraudRule.choices)
    severity = filters.ChoiceFilter(choices=FraudSeverity.choices)
    assigned_to = filters.CharFilter(field_name="assigned_to__username")
    payment = filters.NumberFilter(field_name="payment_id")
    created_after = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")
    q = admin_search_filter(FraudAlertAdmin.search_spec)

    class Meta:
        model = FraudAlert
        fields = []

    def filter_unresolved(self, queryset, name, value):
        statuses = FraudAlert.UNRESOLVED_STATUSES
        return (
            queryset.filter(status__in=statuses) if value else queryset.exclude(status__in=statuses)
        )


_SELECT = ["payment", "payment__customer", "customer", "assigned_to", "reviewed_by"]


# The worklist's order: unresolved first (an annotation), then newest first.
WORKLIST_ORDER = ("unresolved_rank", "-created", "-id")


class WorklistPaginator(OrderKeysetPaginator):
    integer_annotations = frozenset({"unresolved_rank"})


@extend_schema_view(
    list=extend_schema(
        summary="Fraud alerts",
        description="Unresolved (open, investigating) first, then newest first. `q` searches "
        "an alert number, a customer's name or e-mail, a whole issfr_ / pi_ / ch_ id.",
    ),
    retrieve=extend_schema(summary="A fraud alert"),
)
class FraudAlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = FraudAlertSerializer
    filterset_class = FraudAlertFilter
    pagination_class = keyset_pagination(WorklistPaginator)
    queryset = FraudAlert.objects.select_related(*_SELECT)
    write_permissions = {
        "assign": [PERM_REVIEW],
        "investigate": [PERM_REVIEW],
        "resolve": [PERM_REVIEW],
    }

    def get_queryset(self):
        queryset = FraudAlert.objects.select_related(*_SELECT).annotate(
            unresolved_rank=Case(
                When(status__in=FraudAlert.UNRESOLVED_STATUSES, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        return queryset.order_by(*WORKLIST_ORDER)

    def _step(self, request, pk, step, **kwargs):
        alert = get_object_or_404(FraudAlert, pk=pk)
        try:
            result = step(
                alert=alert,
                acting_user=request.user,
                client=client_info_from_request(request),
                **kwargs,
            )
        except FraudReviewError as exc:
            raise _refusal(exc) from exc
        alert = self.get_queryset().get(pk=alert.pk)
        return Response(
            FraudReviewResultSerializer(
                {"changed": result.changed, "message": result.message, "alert": alert}
            ).data
        )

    @extend_schema(
        summary="Assign the alert to me",
        request=None,
        responses={200: FraudReviewResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def assign(self, request, pk=None):
        return self._step(request, pk, fraud_alert_assign)

    @extend_schema(
        summary="Start investigating",
        request=None,
        responses={200: FraudReviewResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def investigate(self, request, pk=None):
        return self._step(request, pk, fraud_alert_start_investigating)

    @extend_schema(
        summary="Resolve: confirmed fraud or a false positive",
        description="With a note. Resolving again with the same outcome changes nothing "
        "(`changed: false`); another outcome is refused (409).",
        request=FraudResolveSerializer,
        responses={200: FraudReviewResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def resolve(self, request, pk=None):
        body = FraudResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._step(request, pk, fraud_alert_resolve, **body.validated_data)


api_router.register("fraud-alerts", FraudAlertViewSet, basename="fraud-alert")
