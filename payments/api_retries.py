"""Payment retries through the API: retry a failed payment (POST), and the retries made.

POST /api/v1/payment-retries/ is payments.services.payment_retry.payment_retry, as the
payment page's button: the permission, a reason, a failed payment with a customer who is not
blocked and has a default payment method, one retry in flight per payment, Stripe's
idempotency key per retry. A decline is an answer, not an error: 201 with `succeeded: false`
and the service's message.
"""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from backoffice.api.fields import MoneyField
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back

from .api_refusals import CONFLICT, FORBIDDEN, INVALID, refusal_error
from .models import Payment, PaymentRetry
from .services.payment_retry import (
    ACTION,
    ERROR_CUSTOMER_BLOCKED,
    ERROR_IN_FLIGHT,
    ERROR_NO_CUSTOMER,
    ERROR_NO_DEFAULT_METHOD,
    ERROR_NO_PERMISSION,
    ERROR_NOT_FAILED,
    ERROR_REASON_REQUIRED,
    PERM_RETRY,
    PaymentRetryNotAllowed,
    payment_retry,
)

ERR_PAYMENT_NOT_FOUND = "No payment with id {id}."

REFUSALS = (
    (ERROR_NO_PERMISSION, FORBIDDEN),
    (ERROR_REASON_REQUIRED, INVALID),
    (ERROR_NOT_FAILED, CONFLICT),
    (ERROR_NO_CUSTOMER, CONFLICT),
    (ERROR_NO_DEFAULT_METHOD, CONFLICT),
    (ERROR_CUSTOMER_BLOCKED, CONFLICT),
    (ERROR_IN_FLIGHT, CONFLICT),
)


def _refusal(exc: PaymentRetryNotAllowed):
    # Anything else is Stripe refusing the confirmation before any charge: a conflict with
    # the payment intent's state there.
    field = "reason" if exc.message == ERROR_REASON_REQUIRED else None
    return refusal_error(exc.message, REFUSALS, default=CONFLICT, field=field)


class PaymentRetrySerializer(serializers.ModelSerializer):
    amount = MoneyField()
    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = PaymentRetry
        fields = [
            "id",
            "payment",
            "status",
            "amount",
            "stripe_payment_intent_id",
            "stripe_payment_method_id",
            "reason",
            "requested_by",
            "attempts",
            "created_at",
            "last_attempt_at",
            "finished_at",
            "stripe_status",
            "decline_code",
            "error",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None


class PaymentRetryCreateSerializer(serializers.Serializer):
    payment = serializers.IntegerField(help_text="The failed payment's id.")
    # Blank is the service's to refuse, with its own message (400, under `fields.reason`).
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class PaymentRetryResultSerializer(serializers.Serializer):
    succeeded = serializers.BooleanField(help_text="The payment is paid now.")
    payment_status = serializers.CharField(help_text="The payment's status after the retry.")
    message = serializers.CharField(help_text="The service's words, as the admin shows them.")
    idempotency_key = serializers.CharField(help_text="The key sent to Stripe.")
    retry = PaymentRetrySerializer()


class PaymentRetryFilter(filters.FilterSet):
    payment = filters.NumberFilter(field_name="payment_id")
    status = filters.MultipleChoiceFilter(choices=PaymentRetry.Status.choices, distinct=False)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = PaymentRetry
        fields = []


@extend_schema_view(
    list=extend_schema(summary="Payment retries", description="Newest first."),
    retrieve=extend_schema(summary="A payment retry"),
)
class PaymentRetryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = PaymentRetrySerializer
    filterset_class = PaymentRetryFilter
    queryset = PaymentRetry.objects.select_related("requested_by").order_by("-created_at", "-id")
    # Retries are read by whoever may read payments (the payment page shows them).
    read_permissions = ["payments.view_payment"]
    write_permissions = {"create": [PERM_RETRY]}

    @extend_schema(
        summary="Retry a failed payment",
        description="Confirms the payment intent again with the customer's default payment "
        "method. A decline answers 201 with `succeeded: false`; Stripe giving no clear answer "
        "leaves the retry open, and a new POST re-sends the same Stripe idempotency key.",
        request=PaymentRetryCreateSerializer,
        responses={201: PaymentRetryResultSerializer},
    )
    @idempotent
    def create(self, request):
        body = PaymentRetryCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        payment = Payment.objects.filter(pk=body.validated_data["payment"]).first()
        if payment is None:
            message = ERR_PAYMENT_NOT_FOUND.format(id=body.validated_data["payment"])
            raise serializers.ValidationError({"payment": [message]})
        # Charging a customer again moves money: the money-action guard first.
        guarded = guard_api_money_action(
            request, action=ACTION, amounts=[(payment.amount, payment.currency)], target=payment
        )
        try:
            result = payment_retry(
                payment=payment,
                reason=body.validated_data["reason"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PaymentRetryNotAllowed as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        retry = PaymentRetry.objects.select_related("requested_by").get(pk=result.retry_id)
        return Response(
            PaymentRetryResultSerializer(
                {
                    "succeeded": result.succeeded,
                    "payment_status": result.status,
                    "message": result.message,
                    "idempotency_key": result.idempotency_key,
                    "retry": retry,
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


api_router.register("payment-retries", PaymentRetryViewSet, basename="payment-retry")
