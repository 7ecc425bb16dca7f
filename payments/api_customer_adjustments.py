"""Manual customer adjustments in the API: /api/v1/customer-adjustments/.

Writes go through payments/services/customer_adjustments.py as the admin's screens do: a
request (credit or debit; money as a positive amount in minor units and a currency, or hours
as minutes; a reason) is pending until someone else approves it (four-eyes; above the senior
limits only with payments.approve_large_customeradjustment). Approving hours applies them at
once; approving money applies it to the customer's Stripe balance exactly once, in a task
after the answer (the adjustment shows `approved`, then `applied`). Approvals pass the
money-action guard. Refusals come back with the service's message
(payments/api_refusals.py): 400 bad input, 403 a permission or the four-eyes rule, 409
already decided (or the hours ledger's refusal).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.errors import ApiError, register_exception
from backoffice.api.fields import MoneySerializer, money
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back

from . import customer_adjustment_rules as rules
from .api_payouts import NoteSerializer, ReasonSerializer, StrictMinorUnitsField
from .api_refusals import CONFLICT, FORBIDDEN, INVALID, RULE, message_matches, refusal_error
from .api_transactions import CurrencyFilter, CustomerRefSerializer
from .models import Customer, CustomerAdjustment
from .services import customer_adjustments as services
from .services.customer_adjustments import (
    CustomerAdjustmentError,
    CustomerAdjustmentPermissionError,
)

ERR_CUSTOMER_NOT_FOUND = "No customer with id {id}."

register_exception(CustomerAdjustmentPermissionError, status=403, code="permission_denied")
register_exception(CustomerAdjustmentError, status=409, code="conflict")

REFUSALS = (
    (rules.ERR_NO_REQUEST_PERMISSION, FORBIDDEN),
    (rules.ERR_NO_APPROVE_PERMISSION, FORBIDDEN),
    (rules.ERR_SENIOR, FORBIDDEN),
    (rules.ERR_SENIOR_BLOCKED, FORBIDDEN),
    (rules.ERR_OWN_REQUEST, RULE),
    (services.ERR_UNKNOWN_UNIT, INVALID),
    (services.ERR_UNKNOWN_DIRECTION, INVALID),
    (services.ERR_AMOUNT_NOT_POSITIVE, INVALID),
    (services.ERR_UNKNOWN_CURRENCY, INVALID),
    (services.ERR_CURRENCY_NOT_CUSTOMERS, INVALID),
    (services.ERR_MINUTES_RANGE, INVALID),
    (services.ERR_REASON_REQUIRED, INVALID),
    (services.ERR_REJECTION_NOTE_REQUIRED, INVALID),
    (rules.ERR_NOT_PENDING, CONFLICT),
    (services.ERR_HOURS_NOT_APPLIED, CONFLICT),
)
# The body field an INVALID refusal is about (the rejection's note is the body's `reason`).
REFUSAL_FIELDS = {
    services.ERR_UNKNOWN_UNIT: "unit",
    services.ERR_UNKNOWN_DIRECTION: "direction",
    services.ERR_AMOUNT_NOT_POSITIVE: "amount",
    services.ERR_UNKNOWN_CURRENCY: "currency",
    services.ERR_CURRENCY_NOT_CUSTOMERS: "currency",
    services.ERR_MINUTES_RANGE: "minutes",
    services.ERR_REASON_REQUIRED: "reason",
    services.ERR_REJECTION_NOTE_REQUIRED: "reason",
}


def _refusal(exc: CustomerAdjustmentError) -> ApiError:
    message = str(exc)
    field = next(
        (name for template, name in REFUSAL_FIELDS.items() if message_matches(template, message)),
        None,
    )
    default = FORBIDDEN if isinstance(exc, CustomerAdjustmentPermissionError) else CONFLICT
    return refusal_error(message, REFUSALS, default=default, field=field)


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class CustomerAdjustmentSerializer(serializers.ModelSerializer):
    customer = CustomerRefSerializer()
    amount = serializers.SerializerMethodField(
        help_text="Money adjustments: the amount (positive; `direction` gives the sign). "
        "Null for hours."
    )
    minutes = serializers.SerializerMethodField(
        help_text="Hours adjustments: the minutes (positive). Null for money."
    )
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()
    needs_senior = serializers.SerializerMethodField(
        help_text="Approving needs payments.approve_large_customeradjustment (above the "
        "senior limits, or a credit to a blocked customer)."
    )

    class Meta:
        model = CustomerAdjustment
        fields = [
            "id",
            "status",
            "customer",
            "unit",
            "direction",
            "amount",
            "minutes",
            "reason",
            "needs_senior",
            "requested_by",
            "created_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "applied_at",
            "stripe_balance_transaction_id",
            "failure_message",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(MoneySerializer(allow_null=True))
    def get_amount(self, obj):
        if obj.unit != CustomerAdjustment.Unit.MONEY:
            return None
        return money(obj.amount, obj.currency)

    def get_minutes(self, obj) -> int | None:
        return obj.minutes if obj.unit == CustomerAdjustment.Unit.HOURS else None

    def get_requested_by(self, obj) -> str | None:
        return _username(obj.requested_by)

    def get_decided_by(self, obj) -> str | None:
        return _username(obj.decided_by)

    def get_needs_senior(self, obj) -> bool:
        return obj.status == CustomerAdjustment.Status.PENDING and rules.needs_senior(obj)


class CustomerAdjustmentCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(help_text="The customer's id (/api/v1/customers/).")
    unit = serializers.ChoiceField(choices=CustomerAdjustment.Unit.choices)
    direction = serializers.ChoiceField(choices=CustomerAdjustment.Direction.choices)
    amount = StrictMinorUnitsField(
        required=False,
        default=0,
        help_text="Money: positive minor units (2500 is $25.00); the direction gives the sign.",
    )
    # The service checks the code (and says so under `fields.currency`).
    currency = serializers.CharField(max_length=3, required=False, default="", allow_blank=True)
    minutes = StrictMinorUnitsField(
        required=False, default=0, help_text="Hours: positive minutes (90 is 1 h 30 min)."
    )
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class CustomerAdjustmentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=CustomerAdjustment.Status.choices, distinct=False)
    unit = filters.ChoiceFilter(choices=CustomerAdjustment.Unit.choices)
    direction = filters.ChoiceFilter(choices=CustomerAdjustment.Direction.choices)
    customer = filters.NumberFilter(field_name="customer_id", help_text="A customer's id.")
    currency = CurrencyFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CustomerAdjustment
        fields = []


_SELECT = ["customer", "requested_by", "decided_by"]


@extend_schema_view(
    list=extend_schema(
        summary="Customer adjustments, newest first",
        description="Needs payments.view_customeradjustment.",
    ),
    retrieve=extend_schema(summary="A customer adjustment"),
)
class CustomerAdjustmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = CustomerAdjustmentSerializer
    filterset_class = CustomerAdjustmentFilter
    queryset = CustomerAdjustment.objects.select_related(*_SELECT).order_by("-created_at", "-id")
    write_permissions = {
        "create": [rules.PERM_REQUEST],
        "approve": [rules.PERM_APPROVE],
        "reject": [rules.PERM_APPROVE],
    }

    def _answer(self, pk: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        adjustment = CustomerAdjustment.objects.select_related(*_SELECT).get(pk=pk)
        return Response(self.get_serializer(adjustment).data, status=status_code)

    @extend_schema(
        summary="Request an adjustment",
        description="Pending until someone else approves it; nothing moves before. Needs "
        "payments.add_customeradjustment.",
        request=CustomerAdjustmentCreateSerializer,
        responses={201: CustomerAdjustmentSerializer},
    )
    @idempotent
    def create(self, request):
        body = CustomerAdjustmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        customer = Customer.objects.filter(pk=data["customer"]).first()
        if customer is None:
            message = ERR_CUSTOMER_NOT_FOUND.format(id=data["customer"])
            raise serializers.ValidationError({"customer": [message]})
        try:
            adjustment = services.customer_adjustment_request(
                customer=customer,
                direction=data["direction"],
                unit=data["unit"],
                amount=data["amount"],
                currency=data["currency"],
                minutes=data["minutes"],
                reason=data["reason"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except CustomerAdjustmentError as exc:
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a pending adjustment",
        description="Not your own request (four-eyes); above the senior limits only with "
        "payments.approve_large_customeradjustment. Hours are applied at once; money is "
        "applied to the customer's Stripe balance once, right after the answer.",
        request=NoteSerializer,
        responses={200: CustomerAdjustmentSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request, pk=None):
        adjustment = get_object_or_404(CustomerAdjustment, pk=pk)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=services.AUDIT_APPROVE,
            amounts=[(adjustment.amount, adjustment.currency)] if adjustment.is_money else [],
            target=adjustment,
        )
        try:
            services.customer_adjustment_approve(
                adjustment=adjustment,
                acting_user=request.user,
                note=body.validated_data["note"],
                client=client_info_from_request(request),
            )
        except CustomerAdjustmentError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk)

    @extend_schema(
        summary="Reject a pending adjustment",
        description="With a reason; the requester may reject their own (a withdrawal).",
        request=ReasonSerializer,
        responses={200: CustomerAdjustmentSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request, pk=None):
        adjustment = get_object_or_404(CustomerAdjustment, pk=pk)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.customer_adjustment_reject(
                adjustment=adjustment,
                acting_user=request.user,
                note=body.validated_data["reason"],
                client=client_info_from_request(request),
            )
        except CustomerAdjustmentError as exc:
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk)


api_router.register(
    "customer-adjustments", CustomerAdjustmentViewSet, basename="customer-adjustment"
)
