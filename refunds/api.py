"""The refund requests API: the list with the queue's filters, the queue in priority order,
a request's page, and the three decisions the admin offers (request, approve, reject).

Writes go through refunds.services exactly as the admin's views do, with the same arguments,
so every rule (amounts, four-eyes, senior limit, blocked customers, pending only) is the
service's, asked under its row locks; refunds.permissions answers "may this user" for the
pages and for the permission classes here. A refusal comes back with the service's message:
400 bad input, 403 a permission or a rule about who acts, 409 the request's or payment's
state (payments/api_refusals.py).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.fields import MoneyField
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back
from payments.api_filters import AmountRangeFilterMixin, admin_search_filter
from payments.api_pagination import keyset_pagination
from payments.api_refusals import (
    CONFLICT,
    FORBIDDEN,
    INVALID,
    RULE,
    message_matches,
    refusal_error,
)
from payments.api_transactions import CurrencyFilter
from payments.models import Payment
from payments.money import MoneyError, normalize_currency

from . import rules, selectors
from .admin.pagination import DEFAULT_ORDER, PriorityQueuePaginator
from .admin.queue import RefundRequestAdmin
from .models import RefundRequest
from .permissions import (
    ERR_NO_APPROVE_PERMISSION,
    ERR_NO_REQUEST_PERMISSION,
    ERR_NOT_PENDING,
    ERR_NOTHING_LEFT,
    ERR_OWN_REQUEST,
    PERM_APPROVE,
    PERM_REQUEST,
)
from .selectors import Priority
from .services import (
    AUDIT_APPROVE,
    ERR_REJECTION_REASON_REQUIRED,
    RefundError,
    RefundPermissionError,
    refund_request_approve,
    refund_request_create,
    refund_request_reject,
)

ERR_PAYMENT_NOT_FOUND = "No payment with id {id}."
ERR_AMOUNT_NOT_INTEGER = "The amount is in minor units: a whole number, such as 2500 for $25.00."

# What kind of "no" each refusal is (payments/api_refusals.py). Unlisted: CONFLICT, which is
# what the rest of the services' messages are (the payment's or the request's state, the
# amount left to refund).
REFUSALS = (
    (ERR_NO_APPROVE_PERMISSION, FORBIDDEN),
    (ERR_NO_REQUEST_PERMISSION, FORBIDDEN),
    (ERR_OWN_REQUEST, RULE),
    (rules.ERR_NEEDS_SENIOR, FORBIDDEN),
    (rules.ERR_NEEDS_SENIOR_ANY, FORBIDDEN),
    (rules.ERR_NEEDS_SENIOR_BLOCKED, FORBIDDEN),
    (ERR_REJECTION_REASON_REQUIRED, INVALID),
    (rules.ERR_AMOUNT_NOT_POSITIVE, INVALID),
    (rules.ERR_AMOUNT_NOT_MINOR_UNITS, INVALID),
    (rules.ERR_CURRENCY_MISMATCH, INVALID),
    (ERR_NOT_PENDING, CONFLICT),
    (ERR_NOTHING_LEFT, CONFLICT),
)
# The body field an INVALID refusal is about.
REFUSAL_FIELDS = {
    ERR_REJECTION_REASON_REQUIRED: "reason",
    rules.ERR_AMOUNT_NOT_POSITIVE: "amount",
    rules.ERR_AMOUNT_NOT_MINOR_UNITS: "amount",
    rules.ERR_CURRENCY_MISMATCH: "currency",
}


def _refusal(exc: RefundError):
    message = str(exc)
    field = next(
        (name for template, name in REFUSAL_FIELDS.items() if message_matches(template, message)),
        None,
    )
    default = FORBIDDEN if isinstance(exc, RefundPermissionError) else CONFLICT
    return refusal_error(message, REFUSALS, default=default, field=field)


# --- Serializers -----------------------------------------------------------------------------


class RefundRequestSerializer(serializers.ModelSerializer):
    payment = serializers.IntegerField(source="payment_id", read_only=True)
    stripe_payment_intent_id = serializers.CharField(
        source="payment.stripe_payment_intent_id", read_only=True
    )
    customer_email = serializers.SerializerMethodField()
    amount = MoneyField(amount_attr="amount", currency_attr="currency")
    priority = serializers.SerializerMethodField(
        help_text="urgent, high, large or normal while pending; null once decided."
    )
    requested_by = serializers.SerializerMethodField()
    approved_by = serializers.SerializerMethodField()
    rejected_by = serializers.SerializerMethodField()

    class Meta:
        model = RefundRequest
        fields = [
            "id",
            "status",
            "priority",
            "payment",
            "stripe_payment_intent_id",
            "customer_email",
            "amount",
            "reason",
            "internal_reason",
            "source",
            "customer_note",
            "admin_notes",
            "notify_customer",
            "requested_by",
            "created_at",
            "approved_by",
            "approved_at",
            "rejected_by",
            "rejected_at",
            "rejection_reason",
            "processing_attempts",
            "processed_at",
            "stripe_refund_id",
            "failure_message",
            "updated_at",
        ]
        read_only_fields = fields

    def get_customer_email(self, obj) -> str | None:
        customer = obj.payment.customer
        return customer.email if customer is not None else None

    def get_priority(self, obj) -> str | None:
        return getattr(obj, "priority", "") or None

    def get_requested_by(self, obj) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None

    def get_approved_by(self, obj) -> str | None:
        return obj.approved_by.get_username() if obj.approved_by else None

    def get_rejected_by(self, obj) -> str | None:
        return obj.rejected_by.get_username() if obj.rejected_by else None


class StrictMinorUnitsField(serializers.IntegerField):
    """An amount in minor units: a JSON integer, never a float or a string with a point."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)

    default_error_messages = {"invalid": ERR_AMOUNT_NOT_INTEGER}


class RefundRequestCreateSerializer(serializers.Serializer):
    payment = serializers.IntegerField(help_text="The payment's id (GET /api/v1/transactions/).")
    amount = StrictMinorUnitsField(
        help_text="Minor units of the payment's currency (2500 = $25.00); partial allowed."
    )
    currency = serializers.CharField(
        required=False,
        max_length=3,
        help_text="Optional; must be the payment's currency when given.",
    )
    reason = serializers.ChoiceField(
        choices=RefundRequest.Reason.choices, default=RefundRequest.Reason.REQUESTED_BY_CUSTOMER
    )
    internal_reason = serializers.ChoiceField(
        choices=RefundRequest.InternalReason.choices, required=False, default=""
    )
    customer_note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default=""
    )
    admin_notes = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default=""
    )
    notify_customer = serializers.BooleanField(required=False, default=True)

    def validate_currency(self, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RejectSerializer(serializers.Serializer):
    # Blank is the service's to refuse, with its own message (400, under `fields.reason`).
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False
    )


# --- Filters ---------------------------------------------------------------------------------


class RefundRequestFilter(AmountRangeFilterMixin, filters.FilterSet):
    """The refund queue's filters; also the refunds export's (reports/api.py)."""

    # Repeatable (?status=pending&status=approved); distinct=False: one column's values OR-ed
    # need no DISTINCT, which would stop the keyset seek.
    status = filters.MultipleChoiceFilter(choices=RefundRequest.Status.choices, distinct=False)
    priority = filters.ChoiceFilter(
        choices=Priority.CHOICES, method="filter_priority", help_text="Pending requests only."
    )
    reason = filters.ChoiceFilter(choices=RefundRequest.Reason.choices)
    internal_reason = filters.ChoiceFilter(choices=RefundRequest.InternalReason.choices[1:])
    source = filters.MultipleChoiceFilter(choices=RefundRequest.Source.choices, distinct=False)
    currency = CurrencyFilter()
    payment = filters.NumberFilter(field_name="payment_id")
    requested_by = filters.CharFilter(
        field_name="requested_by__username", help_text="A staff username."
    )
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    q = admin_search_filter(RefundRequestAdmin.search_spec)

    class Meta:
        model = RefundRequest
        fields = []

    def filter_priority(self, queryset, name, value):
        return queryset.filter(selectors.priority_q(value))


# --- The queue's pages -----------------------------------------------------------------------


class QueueKeysetPaginator(PriorityQueuePaginator):
    """The admin queue's paginator (a union of index ranges per priority tier on PostgreSQL),
    keyed on (priority_rank, created_at, id) on every database: elsewhere the seek is the
    generic one, on the rank annotation."""

    @property
    def keys(self):
        return [(name, False) for name in DEFAULT_ORDER]


# The queue's order is an annotation: its pages seek on (priority_rank, created_at, id).
RefundQueuePagination = keyset_pagination(QueueKeysetPaginator)


# --- Views -----------------------------------------------------------------------------------

_SELECT = ["payment", "payment__customer", "requested_by", "approved_by", "rejected_by"]


@extend_schema_view(
    list=extend_schema(
        summary="Refund requests",
        description="Newest first; filters as the refund queue's. `q` searches a request "
        "number, a customer's name or e-mail, a whole payment (pi_) or refund (re_) id.",
    ),
    retrieve=extend_schema(summary="A refund request"),
)
class RefundRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = RefundRequestSerializer
    filterset_class = RefundRequestFilter
    queryset = RefundRequest.objects.select_related(*_SELECT)
    # The permission each write action needs before the service is asked (it asks again).
    write_permissions = {
        "create": [PERM_REQUEST],
        "approve": [PERM_APPROVE],
        "reject": [PERM_APPROVE],
    }

    def get_queryset(self):
        # Annotated with the queue's priority (a CASE per row of the page), newest first.
        queryset = selectors.refund_request_queue(
            queryset=RefundRequest.objects.select_related(*_SELECT)
        ).order_by("-created_at", "-id")
        return queryset

    @extend_schema(
        summary="The refund queue",
        description="Pending requests in the queue's priority order (urgent, high, large, "
        "normal; oldest first within each), as refunds.selectors.refund_request_queue ranks "
        "them. The same filters as the list.",
        responses={200: RefundRequestSerializer(many=True)},
    )
    @action(detail=False, methods=["get"], pagination_class=RefundQueuePagination)
    def queue(self, request):
        queryset = self.filter_queryset(
            self.get_queryset().filter(status=RefundRequest.Status.PENDING)
        ).order_by(*DEFAULT_ORDER)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Request a refund",
        request=RefundRequestCreateSerializer,
        responses={201: RefundRequestSerializer},
    )
    @idempotent
    def create(self, request):
        body = RefundRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        payment = Payment.objects.select_related("customer").filter(pk=data["payment"]).first()
        if payment is None:
            raise serializers.ValidationError(
                {"payment": [ERR_PAYMENT_NOT_FOUND.format(id=data["payment"])]}
            )
        try:
            created = refund_request_create(
                payment=payment,
                amount=data["amount"],
                currency=data.get("currency"),
                reason=data["reason"],
                internal_reason=data["internal_reason"] or "",
                customer_note=data["customer_note"],
                admin_notes=data["admin_notes"],
                notify_customer=data["notify_customer"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except RefundError as exc:
            raise _refusal(exc) from exc
        return Response(
            self.get_serializer(self._reload(created.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Approve a pending request",
        description="Four-eyes (not your own request), the senior limit of its currency and a "
        "blocked customer's rule, as in the admin. The refund is sent to Stripe after the "
        "answer; the request then moves to processing and processed.",
        request=ApproveSerializer,
        responses={200: RefundRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request, pk=None):
        refund_request = get_object_or_404(RefundRequest, pk=pk)
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=AUDIT_APPROVE,
            amounts=[(refund_request.amount, refund_request.currency)],
            target=refund_request,
        )
        try:
            refund_request_approve(
                refund_request=refund_request,
                acting_user=request.user,
                note=body.validated_data["note"],
                client=client_info_from_request(request),
            )
        except RefundError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return Response(self.get_serializer(self._reload(refund_request.pk)).data)

    @extend_schema(
        summary="Reject a pending request",
        request=RejectSerializer,
        responses={200: RefundRequestSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request, pk=None):
        refund_request = get_object_or_404(RefundRequest, pk=pk)
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            refund_request_reject(
                refund_request=refund_request,
                acting_user=request.user,
                reason=body.validated_data["reason"],
                client=client_info_from_request(request),
            )
        except RefundError as exc:
            raise _refusal(exc) from exc
        return Response(self.get_serializer(self._reload(refund_request.pk)).data)

    def _reload(self, pk: int) -> RefundRequest:
        return selectors.refund_request_queue(
            queryset=RefundRequest.objects.select_related(*_SELECT).filter(pk=pk)
        ).get()


api_router.register("refund-requests", RefundRequestViewSet, basename="refund-request")
