"""Disputes through the API: the list (deadline filters), a dispute's page with the evidence
Stripe holds and the responses sent, and the three answers the admin offers: stage evidence
(save), submit it to the bank, accept the dispute.

The answers are payments.services.dispute_response's: the same permission, Stripe's limits
on evidence (checked before anything is sent), one response in flight per dispute, an
idempotency key per response. Files travel base64-encoded in the JSON body (PDF, PNG or JPG,
recognised by their bytes, 4.5 MB together: the service's rules).
"""

from __future__ import annotations

import base64
import binascii

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.fields import MoneyField
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back

from .admin.other import DisputeAdmin
from .api_filters import admin_search_filter
from .api_pagination import OrderKeysetPaginator, keyset_pagination
from .api_refusals import CONFLICT, FORBIDDEN, INVALID, refusal_error
from .api_transactions import CurrencyFilter
from .dispute_evidence import FILE_FIELDS, TEXT_FIELDS, EvidenceFile
from .models import Dispute, DisputeResponse
from .selectors import DISPUTE_NEEDS_RESPONSE_STATUSES
from .services.dispute_response import (
    AUDIT_ACTIONS,
    ERROR_CLOSED,
    ERROR_FILE_UPLOAD,
    ERROR_IN_FLIGHT,
    ERROR_INVALID,
    ERROR_NO_PERMISSION,
    ERROR_NOTHING_TO_SAVE,
    ERROR_NOTHING_TO_SUBMIT,
    ERROR_PAST_DUE,
    ERROR_SUBMITTED,
    PERM_RESPOND,
    DisputeResponseNotAllowed,
    dispute_accept,
    dispute_evidence_save,
    dispute_evidence_submit,
)

ERR_BAD_BASE64 = "Not valid base64."
ERR_UNKNOWN_FILE_FIELD = "Unknown evidence file field {field!r}."

REFUSALS = (
    (ERROR_NO_PERMISSION, FORBIDDEN),
    (ERROR_INVALID, INVALID),
    (ERROR_NOTHING_TO_SAVE, INVALID),
    (ERROR_NOTHING_TO_SUBMIT, INVALID),
    (ERROR_FILE_UPLOAD, INVALID),
    (ERROR_CLOSED, CONFLICT),
    (ERROR_SUBMITTED, CONFLICT),
    (ERROR_PAST_DUE, CONFLICT),
    (ERROR_IN_FLIGHT, CONFLICT),
)


AUDIT_SUBMIT = AUDIT_ACTIONS[DisputeResponse.Kind.SUBMIT]
AUDIT_ACCEPT = AUDIT_ACTIONS[DisputeResponse.Kind.ACCEPT]
# What each guarded response moves, for the hourly amount limit: submitting evidence pays
# nothing out; accepting gives the disputed amount up for good.
GUARDED_AMOUNTS = {
    AUDIT_SUBMIT: lambda dispute: [],
    AUDIT_ACCEPT: lambda dispute: [(dispute.amount, dispute.currency)],
}


def _refusal(exc: DisputeResponseNotAllowed):
    # Anything else is Stripe refusing the call (the dispute changed there): a conflict.
    error = refusal_error(exc.message, REFUSALS, default=CONFLICT)
    if exc.errors:
        error.fields = {
            ("evidence" if name == "__all__" else name): list(messages)
            for name, messages in exc.errors.items()
        }
    return error


class DisputeResponseSerializer(serializers.ModelSerializer):
    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = DisputeResponse
        fields = [
            "id",
            "kind",
            "status",
            "evidence",
            "attempts",
            "requested_by",
            "created_at",
            "last_attempt_at",
            "finished_at",
            "stripe_status",
            "error",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None


class DisputeSerializer(serializers.ModelSerializer):
    payment = serializers.IntegerField(source="payment_id", read_only=True)
    stripe_payment_intent_id = serializers.CharField(
        source="payment.stripe_payment_intent_id", read_only=True
    )
    amount = MoneyField()
    fee = MoneyField(amount_attr="fee")
    reason_label = serializers.CharField(read_only=True)
    needs_response = serializers.SerializerMethodField()

    class Meta:
        model = Dispute
        fields = [
            "id",
            "stripe_id",
            "status",
            "needs_response",
            "reason",
            "reason_label",
            "payment",
            "stripe_payment_intent_id",
            "amount",
            "fee",
            "created",
            "evidence_due_by",
            "closed_at",
            "has_evidence",
            "evidence_submission_count",
        ]
        read_only_fields = fields

    def get_needs_response(self, obj) -> bool:
        return obj.status in DISPUTE_NEEDS_RESPONSE_STATUSES


class DisputeDetailSerializer(DisputeSerializer):
    evidence = serializers.JSONField(read_only=True, help_text="As Stripe holds it.")
    responses = serializers.SerializerMethodField()

    class Meta(DisputeSerializer.Meta):
        fields = [*DisputeSerializer.Meta.fields, "evidence", "responses"]
        read_only_fields = fields

    @extend_schema_field(DisputeResponseSerializer(many=True))
    def get_responses(self, obj):
        rows = obj.responses.select_related("requested_by").order_by("-created_at", "-id")[:50]
        return DisputeResponseSerializer(rows, many=True).data


class EvidenceFileSerializer(serializers.Serializer):
    field = serializers.ChoiceField(choices=list(FILE_FIELDS))
    filename = serializers.CharField(max_length=255)
    content_base64 = serializers.CharField(help_text="The file's bytes, base64-encoded.")

    def validate_content_base64(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError(ERR_BAD_BASE64) from exc


class EvidenceSerializer(serializers.Serializer):
    """Stripe's evidence text fields by their names, and files for its file fields."""

    evidence = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=dict,
        help_text="Text fields by Stripe's names (product_description, customer_name ...); "
        "an empty one leaves what Stripe holds.",
    )
    files = EvidenceFileSerializer(many=True, required=False, default=list)

    def validate_evidence(self, value: dict) -> dict:
        unknown = sorted(set(value) - set(TEXT_FIELDS))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown evidence text field(s): {', '.join(unknown)}. Known: "
                + ", ".join(TEXT_FIELDS)
                + "."
            )
        return value

    def evidence_files(self) -> list[EvidenceFile]:
        return [
            EvidenceFile(
                field=item["field"], filename=item["filename"], content=item["content_base64"]
            )
            for item in self.validated_data["files"]
        ]


class DisputeResponseResultSerializer(serializers.Serializer):
    succeeded = serializers.BooleanField()
    message = serializers.CharField(help_text="The service's words, as the admin shows them.")
    resumed = serializers.BooleanField(
        help_text="An earlier response with no answer from Stripe was re-sent instead."
    )
    response_id = serializers.IntegerField()
    idempotency_key = serializers.CharField(help_text="The key sent to Stripe.")
    dispute = DisputeDetailSerializer()


class DisputeFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Dispute.Status.choices, distinct=False)
    needs_response = filters.BooleanFilter(method="filter_needs_response")
    due_before = filters.IsoDateTimeFilter(field_name="evidence_due_by", lookup_expr="lte")
    payment = filters.NumberFilter(field_name="payment_id")
    currency = CurrencyFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")
    q = admin_search_filter(DisputeAdmin.search_spec)
    ordering = filters.ChoiceFilter(
        choices=[("newest", "Newest first"), ("deadline", "Soonest evidence deadline first")],
        method="filter_ordering",
        help_text="newest (default), or deadline: disputes with a deadline, soonest first.",
    )

    class Meta:
        model = Dispute
        fields = []

    def filter_needs_response(self, queryset, name, value):
        statuses = DISPUTE_NEEDS_RESPONSE_STATUSES
        if value:
            return queryset.filter(status__in=statuses)
        return queryset.exclude(status__in=statuses)

    def filter_ordering(self, queryset, name, value):
        if value == "deadline":
            # A nullable column: the rows without a deadline are left out of this order.
            return queryset.filter(evidence_due_by__isnull=False).order_by("evidence_due_by", "id")
        return queryset


@extend_schema_view(
    list=extend_schema(
        summary="Disputes",
        description="Newest first; `needs_response=true&ordering=deadline` lists what is due "
        "soonest. `q` searches a whole dispute (dp_), payment or charge id, or a customer.",
    ),
    retrieve=extend_schema(summary="A dispute, with its evidence and the responses sent"),
)
class DisputeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DisputeSerializer
    filterset_class = DisputeFilter
    # Newest first, or soonest deadline first (disputes without one left out).
    pagination_class = keyset_pagination(OrderKeysetPaginator)
    queryset = Dispute.objects.select_related("payment")
    write_permissions = {
        "evidence": [PERM_RESPOND],
        "submit": [PERM_RESPOND],
        "accept": [PERM_RESPOND],
    }

    def get_serializer_class(self):
        if self.action in ("retrieve",):
            return DisputeDetailSerializer
        return DisputeSerializer

    def get_queryset(self):
        return Dispute.objects.select_related("payment").order_by("-created", "-id")

    def _respond(self, request, pk, call, *, with_evidence: bool, guard_action: str = ""):
        dispute = get_object_or_404(Dispute, pk=pk)
        kwargs = {}
        if with_evidence:
            body = EvidenceSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            kwargs = {"text": body.validated_data["evidence"], "files": body.evidence_files()}
        guarded = None
        if guard_action:
            # Submitting is final and accepting gives the amount up: the money-action guard.
            guarded = guard_api_money_action(
                request,
                action=guard_action,
                amounts=GUARDED_AMOUNTS[guard_action](dispute),
                target=dispute,
            )
        try:
            result = call(
                dispute=dispute,
                acting_user=request.user,
                client=client_info_from_request(request),
                **kwargs,
            )
        except DisputeResponseNotAllowed as exc:
            if guarded is not None:
                money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        dispute = Dispute.objects.select_related("payment").get(pk=dispute.pk)
        return Response(
            DisputeResponseResultSerializer(
                {
                    "succeeded": result.succeeded,
                    "message": result.message,
                    "resumed": result.resumed,
                    "response_id": result.response_id,
                    "idempotency_key": result.idempotency_key,
                    "dispute": dispute,
                }
            ).data
        )

    @extend_schema(
        summary="Save evidence (staged in Stripe, not submitted)",
        request=EvidenceSerializer,
        responses={200: DisputeResponseResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def evidence(self, request, pk=None):
        return self._respond(request, pk, dispute_evidence_save, with_evidence=True)

    @extend_schema(
        summary="Submit the evidence to the bank, for good",
        description="The staged evidence plus any given now. Stripe takes no more afterwards.",
        request=EvidenceSerializer,
        responses={200: DisputeResponseResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def submit(self, request, pk=None):
        return self._respond(
            request, pk, dispute_evidence_submit, with_evidence=True, guard_action=AUDIT_SUBMIT
        )

    @extend_schema(
        summary="Accept the dispute (it is lost)",
        request=None,
        responses={200: DisputeResponseResultSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def accept(self, request, pk=None):
        return self._respond(
            request, pk, dispute_accept, with_evidence=False, guard_action=AUDIT_ACCEPT
        )


api_router.register("disputes", DisputeViewSet, basename="dispute")
