"""Manual earnings adjustments in the API: /api/v1/earning-adjustments/.

Writes go through payments/services/earning_adjustments.py as the admin's queue does: a
request (a signed amount in minor units, a currency, a reason) is pending until someone else
approves it (four-eyes; above EARNING_ADJUSTMENT_SENIOR_APPROVAL_ABOVE only with
payments.approve_large_payout); approval writes its one `adjustment:<pk>` ledger entry under
the row lock. Refusals come back with the service's message (payments/api_refusals.py): 400
bad input, 403 a permission or the four-eyes rule, 409 already decided.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.errors import ApiError, register_exception
from backoffice.api.fields import MoneyField
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back

from . import earning_adjustment_rules as rules
from .api_payouts import (
    ERR_INSTRUCTOR_NOT_FOUND,
    InstructorRefSerializer,
    NoteSerializer,
    ReasonSerializer,
    StrictMinorUnitsField,
)
from .api_refusals import CONFLICT, FORBIDDEN, INVALID, RULE, message_matches, refusal_error
from .api_transactions import CurrencyFilter
from .models import EarningAdjustment, Instructor
from .services import earning_adjustments as services
from .services.earning_adjustments import (
    EarningAdjustmentError,
    EarningAdjustmentPermissionError,
)

register_exception(EarningAdjustmentPermissionError, status=403, code="permission_denied")
register_exception(EarningAdjustmentError, status=409, code="conflict")

REFUSALS = (
    (rules.ERR_NO_REQUEST_PERMISSION, FORBIDDEN),
    (rules.ERR_NO_APPROVE_PERMISSION, FORBIDDEN),
    (rules.ERR_SENIOR, FORBIDDEN),
    (rules.ERR_OWN_REQUEST, RULE),
    (services.ERR_AMOUNT_ZERO, INVALID),
    (services.ERR_AMOUNT_NOT_INTEGER, INVALID),
    (services.ERR_UNKNOWN_CURRENCY, INVALID),
    (services.ERR_REASON_REQUIRED, INVALID),
    (services.ERR_REJECTION_NOTE_REQUIRED, INVALID),
    (rules.ERR_NOT_PENDING, CONFLICT),
)
# The body field an INVALID refusal is about (the rejection's note is the body's `reason`).
REFUSAL_FIELDS = {
    services.ERR_AMOUNT_ZERO: "amount",
    services.ERR_AMOUNT_NOT_INTEGER: "amount",
    services.ERR_UNKNOWN_CURRENCY: "currency",
    services.ERR_REASON_REQUIRED: "reason",
    services.ERR_REJECTION_NOTE_REQUIRED: "reason",
}


def _refusal(exc: EarningAdjustmentError) -> ApiError:
    message = str(exc)
    field = next(
        (name for template, name in REFUSAL_FIELDS.items() if message_matches(template, message)),
        None,
    )
    default = FORBIDDEN if isinstance(exc, EarningAdjustmentPermissionError) else CONFLICT
    return refusal_error(message, REFUSALS, default=default, field=field)


class EarningAdjustmentSerializer(serializers.ModelSerializer):
    instructor = InstructorRefSerializer()
    amount = MoneyField(help_text="Signed: + a credit to the instructor, - a debit.")
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()
    needs_senior = serializers.SerializerMethodField(
        help_text="Above the currency's senior limit: approving needs approve_large_payout."
    )

    class Meta:
        model = EarningAdjustment
        fields = [
            "id",
            "status",
            "instructor",
            "amount",
            "reason",
            "needs_senior",
            "requested_by",
            "created_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "updated_at",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None

    def get_decided_by(self, obj) -> str | None:
        return obj.decided_by.get_username() if obj.decided_by else None

    def get_needs_senior(self, obj) -> bool:
        return rules.needs_senior(amount=obj.amount, currency=obj.currency)


class EarningAdjustmentCreateSerializer(serializers.Serializer):
    instructor = serializers.IntegerField(help_text="The instructor's id (/api/v1/instructors/).")
    amount = StrictMinorUnitsField(
        help_text="Signed minor units: 2500 credits $25.00, -2500 takes it back."
    )
    # The service checks the code (and says so under `fields.currency`).
    currency = serializers.CharField(max_length=3)
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class EarningAdjustmentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=EarningAdjustment.Status.choices, distinct=False)
    instructor = filters.NumberFilter(field_name="instructor_id", help_text="An instructor's id.")
    currency = CurrencyFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = EarningAdjustment
        fields = []


_SELECT = ["instructor", "requested_by", "decided_by"]


@extend_schema_view(
    list=extend_schema(
        summary="Earnings adjustments, newest first",
        description="Needs payments.view_earningadjustment.",
    ),
    retrieve=extend_schema(summary="An earnings adjustment"),
)
class EarningAdjustmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = EarningAdjustmentSerializer
    filterset_class = EarningAdjustmentFilter
    queryset = EarningAdjustment.objects.select_related(*_SELECT).order_by("-created_at", "-id")
    write_permissions = {
        "create": [rules.PERM_REQUEST],
        "approve": [rules.PERM_APPROVE],
        "reject": [rules.PERM_APPROVE],
    }

    def _answer(self, pk: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        adjustment = EarningAdjustment.objects.select_related(*_SELECT).get(pk=pk)
        return Response(self.get_serializer(adjustment).data, status=status_code)

    @extend_schema(
        summary="Request an adjustment",
        description="Pending until someone else approves it; nothing moves before. Needs "
        "payments.add_earningadjustment.",
        request=EarningAdjustmentCreateSerializer,
        responses={201: EarningAdjustmentSerializer},
    )
    @idempotent
    def create(self, request):
        body = EarningAdjustmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instructor = Instructor.objects.filter(pk=data["instructor"]).first()
        if instructor is None:
            message = ERR_INSTRUCTOR_NOT_FOUND.format(id=data["instructor"])
            raise serializers.ValidationError({"instructor": [message]})
        try:
            adjustment = services.earning_adjustment_request(
                instructor=instructor,
                amount=data["amount"],
                currency=data["currency"],
                reason=data["reason"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except EarningAdjustmentError as exc:
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a pending adjustment",
        description="Not your own request (four-eyes); above the currency's senior limit only "
        "with payments.approve_large_payout. Writes its ledger entry, available at once.",
        request=NoteSerializer,
        responses={200: EarningAdjustmentSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request, pk=None):
        adjustment = get_object_or_404(EarningAdjustment, pk=pk)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=services.AUDIT_APPROVE,
            amounts=[(adjustment.amount, adjustment.currency)],
            target=adjustment,
        )
        try:
            services.earning_adjustment_approve(
                adjustment=adjustment,
                acting_user=request.user,
                note=body.validated_data["note"],
                client=client_info_from_request(request),
            )
        except EarningAdjustmentError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk)

    @extend_schema(
        summary="Reject a pending adjustment",
        description="With a reason; the requester may reject their own (a withdrawal).",
        request=ReasonSerializer,
        responses={200: EarningAdjustmentSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request, pk=None):
        adjustment = get_object_or_404(EarningAdjustment, pk=pk)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.earning_adjustment_reject(
                adjustment=adjustment,
                acting_user=request.user,
                note=body.validated_data["reason"],
                client=client_info_from_request(request),
            )
        except EarningAdjustmentError as exc:
            raise _refusal(exc) from exc
        return self._answer(adjustment.pk)


api_router.register("earning-adjustments", EarningAdjustmentViewSet, basename="earning-adjustment")
