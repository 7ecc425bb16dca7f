"""Instructor payouts in the API: /api/v1/payouts/, /payout-runs/, /instructors/,
/earning-entries/, /transfers/.

Writes go through payments/services/payouts.py with the arguments the admin gives it, so every
rule (approve_payout, four-eyes on manual payouts, the senior limit per currency, the status
rules, not above the payable balance, what is left to reverse) is payments/payout_rules.py's,
asked again by the service under the payout's row lock. A refusal comes back with the
service's message: 400 bad input, 403 a permission or a rule about who acts (four-eyes), 409 the
payout's or the balance's state (payments/api_refusals.py). PayoutError / PayoutPermissionError
are also registered with the error handler (409 / 403), for any refusal a view does not sort.

Reads: balances are never stored; an instructor's balance, available and on-hold amounts per
currency come from payments.earnings_selectors.earning_balances, one grouped query per page.
Every list is newest first over an index and cursor-paginated (no COUNT).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from backoffice.api.errors import ApiError, register_exception
from backoffice.api.fields import MoneyField, MoneySerializer, money
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request
from backoffice.guard import guard_api_money_action, money_action_give_back

from . import payout_rules
from .admin.instructor import InstructorAdmin
from .admin.transfer import TransferAdmin
from .api_filters import AmountRangeFilterMixin, admin_search_filter
from .api_refusals import CONFLICT, FORBIDDEN, INVALID, RULE, message_matches, refusal_error
from .api_transactions import CurrencyFilter
from .earnings_selectors import EarningBalance, earning_balances
from .models import EarningEntry, Instructor, Payout, PayoutRun, Transfer, TransferReversal
from .money import MoneyError, normalize_currency
from .services import payouts as payout_services
from .services.payouts import PayoutError, PayoutPermissionError

ERR_INSTRUCTOR_NOT_FOUND = "No instructor with id {id}."
ERR_AMOUNT_NOT_INTEGER = "The amount is in minor units: a whole number, such as 2500 for $25.00."
# A gateway answer that leaves the outcome unknown: retrying is safe (the service sends the
# same Stripe idempotency key), and a 5xx answer is not kept by Idempotency-Key, so the same
# key runs it again.
CODE_OUTCOME_UNKNOWN = "outcome_unknown"
TRIGGER_API = "api"

register_exception(PayoutPermissionError, status=403, code="permission_denied")
register_exception(PayoutError, status=409, code="conflict")

# What kind of "no" each refusal is; unlisted messages are CONFLICT (a PayoutError) or
# FORBIDDEN (a PayoutPermissionError).
REFUSALS = (
    (payout_rules.ERR_NO_CREATE_PERMISSION, FORBIDDEN),
    (payout_rules.ERR_NO_APPROVE_PERMISSION, FORBIDDEN),
    (payout_rules.ERR_NO_MARK_PAID_PERMISSION, FORBIDDEN),
    (payout_rules.ERR_NO_REVERSE_PERMISSION, FORBIDDEN),
    (payout_rules.ERR_SENIOR_NEEDED, FORBIDDEN),
    (payout_rules.ERR_SENIOR_NEEDED_ANY, FORBIDDEN),
    (payout_rules.ERR_OWN_PAYOUT, RULE),
    (payout_services.ERR_AMOUNT_NOT_POSITIVE, INVALID),
    (payout_services.ERR_NOTE_REQUIRED, INVALID),
    (payout_services.ERR_CANCEL_REASON_REQUIRED, INVALID),
    (payout_services.ERR_BANK_REFERENCE_REQUIRED, INVALID),
    (payout_services.ERR_REVERSAL_REASON_REQUIRED, INVALID),
    (payout_services.ERR_CURRENCY_NOT_CONFIGURED, INVALID),
    (payout_rules.ERR_NOT_PENDING, CONFLICT),
    (payout_rules.ERR_NOT_CANCELABLE, CONFLICT),
    (payout_rules.ERR_NOT_BANK_TRANSFER, CONFLICT),
    (payout_rules.ERR_NOT_APPROVED_FOR_PAYMENT, CONFLICT),
    (payout_rules.ERR_NOT_REVERSIBLE, CONFLICT),
    (payout_rules.ERR_NOTHING_TO_REVERSE, CONFLICT),
    (payout_services.ERR_ABOVE_AVAILABLE, CONFLICT),
    (payout_services.ERR_REVERSAL_ABOVE_LEFT, CONFLICT),
    (payout_services.ERR_REVERSAL_REFUSED, CONFLICT),
)
# The body field an INVALID refusal is about. The two required texts of cancel and reverse
# are both `reason`.
REFUSAL_FIELDS = {
    payout_services.ERR_AMOUNT_NOT_POSITIVE: "amount",
    payout_services.ERR_NOTE_REQUIRED: "note",
    payout_services.ERR_CANCEL_REASON_REQUIRED: "reason",
    payout_services.ERR_BANK_REFERENCE_REQUIRED: "bank_reference",
    payout_services.ERR_REVERSAL_REASON_REQUIRED: "reason",
    payout_services.ERR_CURRENCY_NOT_CONFIGURED: "currency",
}
OUTCOME_UNKNOWN = (payout_services.ERR_REVERSAL_UNKNOWN, payout_services.ERR_REVERSAL_NOT_RECORDED)


def _refusal(exc: PayoutError) -> ApiError:
    message = str(exc)
    if any(message_matches(template, message) for template in OUTCOME_UNKNOWN):
        return ApiError(CODE_OUTCOME_UNKNOWN, message, status.HTTP_503_SERVICE_UNAVAILABLE)
    field = next(
        (name for template, name in REFUSAL_FIELDS.items() if message_matches(template, message)),
        None,
    )
    default = FORBIDDEN if isinstance(exc, PayoutPermissionError) else CONFLICT
    return refusal_error(message, REFUSALS, default=default, field=field)


# --- Shared fields ---------------------------------------------------------------------------


class StrictMinorUnitsField(serializers.IntegerField):
    """An amount in minor units: a JSON integer, never a float or a string with a point."""

    default_error_messages = {"invalid": ERR_AMOUNT_NOT_INTEGER}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CurrencyCodeField(serializers.CharField):
    """A currency code in any case, given back lower-case (money.normalize_currency's rule)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise serializers.ValidationError(str(exc)) from exc


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class InstructorRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instructor
        fields = ["id", "name", "email"]


class BalanceSerializer(serializers.Serializer):
    """One currency of an instructor's earnings (signed: a clawback makes them negative)."""

    currency = serializers.CharField()
    balance = MoneySerializer(help_text="Everything owed: available + on hold.")
    available = MoneySerializer(help_text="Past the hold period: what a payout may take.")
    on_hold = MoneySerializer(help_text="Still in the hold period (PAYOUT_HOLD_DAYS).")


def balance_data(balance: EarningBalance) -> dict:
    return {
        "currency": balance.currency,
        "balance": money(balance.balance, balance.currency),
        "available": money(balance.available, balance.currency),
        "on_hold": money(balance.on_hold, balance.currency),
    }


# --- Payouts ---------------------------------------------------------------------------------


class PayoutSerializer(serializers.ModelSerializer):
    instructor = InstructorRefSerializer()
    run = serializers.IntegerField(source="run_id", allow_null=True)
    amount = MoneyField()
    amount_reversed = MoneyField(amount_attr="amount_reversed")
    requested_by = serializers.SerializerMethodField()
    approved_by = serializers.SerializerMethodField()
    canceled_by = serializers.SerializerMethodField()
    paid_by = serializers.SerializerMethodField()

    class Meta:
        model = Payout
        fields = [
            "id",
            "status",
            "method",
            "source",
            "instructor",
            "run",
            "amount",
            "amount_reversed",
            "destination_account",
            "note",
            "requested_by",
            "approved_by",
            "approved_at",
            "approval_note",
            "canceled_by",
            "canceled_at",
            "cancel_reason",
            "stripe_transfer_id",
            "attempts",
            "paid_by",
            "paid_at",
            "bank_reference",
            "failed_at",
            "failure_code",
            "failure_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj) -> str | None:
        return _username(obj.requested_by)

    def get_approved_by(self, obj) -> str | None:
        return _username(obj.approved_by)

    def get_canceled_by(self, obj) -> str | None:
        return _username(obj.canceled_by)

    def get_paid_by(self, obj) -> str | None:
        return _username(obj.paid_by)


class ManualPayoutSerializer(serializers.Serializer):
    instructor = serializers.IntegerField(help_text="The instructor's id (/api/v1/instructors/).")
    amount = StrictMinorUnitsField(
        help_text="Minor units (2500 = $25.00); at most the instructor's payable balance."
    )
    currency = CurrencyCodeField()
    note = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ReasonSerializer(serializers.Serializer):
    # Blank is the service's to refuse, with its own message (400, under `fields.reason`).
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class MarkPaidSerializer(serializers.Serializer):
    bank_reference = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class ReverseSerializer(ReasonSerializer):
    amount = StrictMinorUnitsField(help_text="Minor units to pull back; at most what is left.")


class PayoutFilter(AmountRangeFilterMixin, filters.FilterSet):
    # Repeatable; distinct=False: one column's values OR-ed need no DISTINCT (which would stop
    # the keyset seek).
    status = filters.MultipleChoiceFilter(choices=Payout.Status.choices, distinct=False)
    method = filters.MultipleChoiceFilter(choices=Payout.Method.choices, distinct=False)
    source = filters.ChoiceFilter(choices=Payout.Source.choices)
    currency = CurrencyFilter()
    instructor = filters.NumberFilter(field_name="instructor_id", help_text="An instructor's id.")
    run = filters.NumberFilter(field_name="run_id", help_text="A payout run's id.")
    created_after = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Inclusive; ISO 8601."
    )
    created_before = filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Exclusive; ISO 8601."
    )

    class Meta:
        model = Payout
        fields = []


_PAYOUT_SELECT = ["instructor", "requested_by", "approved_by", "canceled_by", "paid_by"]
_OUTCOME_UNKNOWN_RESPONSE = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"},
    description=(
        "Stripe gave no clear answer (code outcome_unknown): retry, with the same "
        "Idempotency-Key if you like; the same Stripe idempotency key is sent, so it cannot "
        "happen twice."
    ),
)


@extend_schema_view(
    list=extend_schema(
        summary="Payouts, newest first",
        description="Filters as the payouts list's. Needs payments.view_payout.",
    ),
    retrieve=extend_schema(summary="A payout"),
)
class PayoutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PayoutSerializer
    filterset_class = PayoutFilter
    queryset = Payout.objects.select_related(*_PAYOUT_SELECT).order_by("-created_at", "-id")
    # The permission each write needs before the service is asked (it asks again, with the
    # four-eyes and senior rules, under the payout's lock).
    write_permissions = {
        "create": [payout_rules.PERM_CREATE],
        "approve": [payout_rules.PERM_APPROVE],
        "cancel": [payout_rules.PERM_APPROVE],
        "mark_paid": [payout_rules.PERM_MARK_PAID],
        "reverse": [payout_rules.PERM_REVERSE],
    }

    def _payout(self, pk) -> Payout:
        return get_object_or_404(Payout, pk=pk)

    def _answer(self, pk: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        payout = Payout.objects.select_related(*_PAYOUT_SELECT).get(pk=pk)
        return Response(self.get_serializer(payout).data, status=status_code)

    @extend_schema(
        summary="Ask for a manual payout",
        description="Pending until someone else approves it (four-eyes). At most the "
        "instructor's payable balance in the currency; a note is required. Needs "
        "payments.add_payout.",
        request=ManualPayoutSerializer,
        responses={201: PayoutSerializer},
    )
    @idempotent
    def create(self, request):
        body = ManualPayoutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instructor = Instructor.objects.filter(pk=data["instructor"]).first()
        if instructor is None:
            message = ERR_INSTRUCTOR_NOT_FOUND.format(id=data["instructor"])
            raise serializers.ValidationError({"instructor": [message]})
        try:
            payout = payout_services.payout_manual_create(
                instructor=instructor,
                amount=data["amount"],
                currency=data["currency"],
                note=data["note"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            raise _refusal(exc) from exc
        return self._answer(payout.pk, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a pending payout",
        description="Not a manual payout you asked for (four-eyes); above the senior limit of "
        "its currency only with payments.approve_large_payout. A Stripe Connect payout is then "
        "transferred by a worker (processing, then paid or failed); a bank transfer waits for "
        "mark-paid.",
        request=NoteSerializer,
        responses={200: PayoutSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request, pk=None):
        payout = self._payout(pk)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=payout_services.AUDIT_APPROVE,
            amounts=[(payout.amount, payout.currency)],
            target=payout,
        )
        try:
            payout_services.payout_approve(
                payout=payout,
                acting_user=request.user,
                note=body.validated_data["note"],
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return self._answer(payout.pk)

    @extend_schema(
        summary="Cancel a pending or approved payout",
        description="A reason is required; the amount goes back to the instructor's balance.",
        request=ReasonSerializer,
        responses={200: PayoutSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk=None):
        payout = self._payout(pk)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            payout_services.payout_cancel(
                payout=payout,
                reason=body.validated_data["reason"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            raise _refusal(exc) from exc
        return self._answer(payout.pk)

    @extend_schema(
        summary="Mark an approved bank transfer paid",
        description="With the bank's reference. Needs payments.mark_payout_paid.",
        request=MarkPaidSerializer,
        responses={200: PayoutSerializer},
    )
    @action(detail=True, methods=["post"], url_path="mark-paid")
    @idempotent
    def mark_paid(self, request, pk=None):
        payout = self._payout(pk)
        body = MarkPaidSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=payout_services.AUDIT_MARK_PAID,
            amounts=[(payout.amount, payout.currency)],
            target=payout,
        )
        try:
            payout_services.payout_mark_paid(
                payout=payout,
                bank_reference=body.validated_data["bank_reference"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return self._answer(payout.pk)

    @extend_schema(
        summary="Reverse (part of) a paid Connect payout's transfer",
        description="Pulls `amount` back from the connected account (a Stripe transfer "
        "reversal); the amount is owed to the instructor again. Needs payments.reverse_payout.",
        request=ReverseSerializer,
        responses={200: PayoutSerializer, 503: _OUTCOME_UNKNOWN_RESPONSE},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reverse(self, request, pk=None):
        payout = self._payout(pk)
        body = ReverseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guarded = guard_api_money_action(
            request,
            action=payout_services.AUDIT_REVERSE,
            amounts=[(body.validated_data["amount"], payout.currency)],
            target=payout,
        )
        try:
            payout_services.payout_reverse(
                payout=payout,
                amount=body.validated_data["amount"],
                reason=body.validated_data["reason"],
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            money_action_give_back(request.user, guarded)  # nothing moved
            raise _refusal(exc) from exc
        return self._answer(payout.pk)


# --- Payout runs -----------------------------------------------------------------------------


class CurrencyTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    count = serializers.IntegerField(help_text="Payouts.")
    amount = MoneySerializer()


def _totals(totals: dict) -> list[dict]:
    return [
        {"currency": code, "count": row["count"], "amount": money(row["amount"], code)}
        for code, row in sorted(totals.items())
    ]


class PayoutRunSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    totals = serializers.SerializerMethodField()

    class Meta:
        model = PayoutRun
        fields = [
            "id",
            "created_at",
            "created_by",
            "currency",
            "trigger",
            "payouts_created",
            "totals",
        ]
        read_only_fields = fields

    def get_created_by(self, obj) -> str | None:
        return _username(obj.created_by)

    @extend_schema_field(CurrencyTotalSerializer(many=True))
    def get_totals(self, obj):
        return _totals(obj.totals or {})


class PayoutRunCreateSerializer(serializers.Serializer):
    currency = CurrencyCodeField(
        required=False,
        allow_blank=True,
        default="",
        help_text="One currency; every currency with a PAYOUT_MINIMUM when left out.",
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Say what would be created; write nothing."
    )

    def to_internal_value(self, data):
        # "" means every currency: not a code for normalize_currency to refuse.
        if isinstance(data, dict) and data.get("currency") == "":
            data = {key: value for key, value in data.items() if key != "currency"}
        return super().to_internal_value(data)


class SkippedSerializer(serializers.Serializer):
    currency = serializers.CharField()
    instructors = serializers.IntegerField()


class PayoutRunResultSerializer(serializers.Serializer):
    run = serializers.IntegerField(allow_null=True, help_text="The run made (null for a dry run).")
    dry_run = serializers.BooleanField()
    currencies = serializers.ListField(child=serializers.CharField())
    payouts_created = serializers.IntegerField(help_text="Or that would be, for a dry run.")
    totals = CurrencyTotalSerializer(many=True)
    skipped_open_payout = SkippedSerializer(
        many=True, help_text="Instructors left out for an open payout in the currency."
    )


def run_result_data(result: payout_services.PayoutRunResult) -> dict:
    return {
        "run": result.run_id,
        "dry_run": result.dry_run,
        "currencies": result.currencies,
        "payouts_created": result.payouts_created,
        "totals": _totals(result.totals),
        "skipped_open_payout": [
            {"currency": code, "instructors": count}
            for code, count in sorted(result.skipped_open_payout.items())
        ],
    }


@extend_schema_view(
    list=extend_schema(summary="Payout runs, newest first"),
    retrieve=extend_schema(summary="A payout run"),
)
class PayoutRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PayoutRunSerializer
    queryset = PayoutRun.objects.select_related("created_by").order_by("-created_at", "-id")
    write_permissions = {"create": [payout_rules.PERM_CREATE]}

    @extend_schema(
        summary="Run payouts now",
        description="One pending payout per instructor and currency whose payable balance "
        "reaches PAYOUT_MINIMUM (skipping those with an open payout in it), as "
        "`manage_payments --create-payouts`. `dry_run` says what would be created (200); a "
        "run answers 201. Needs payments.add_payout. List the payouts with ?run=<id>.",
        request=PayoutRunCreateSerializer,
        responses={201: PayoutRunResultSerializer, 200: PayoutRunResultSerializer},
    )
    @idempotent
    def create(self, request):
        body = PayoutRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            result = payout_services.payout_run_create(
                currency=body.validated_data.get("currency") or None,
                dry_run=body.validated_data["dry_run"],
                trigger=TRIGGER_API,
                acting_user=request.user,
                client=client_info_from_request(request),
            )
        except PayoutError as exc:
            raise _refusal(exc) from exc
        return Response(
            run_result_data(result),
            status=status.HTTP_200_OK if result.dry_run else status.HTTP_201_CREATED,
        )


# --- Instructors and their balances ----------------------------------------------------------


class InstructorSerializer(serializers.ModelSerializer):
    has_connected_account = serializers.SerializerMethodField(
        help_text="Paid by Stripe Connect transfer; else by bank transfer."
    )
    has_bank_account = serializers.SerializerMethodField(
        help_text="A bank account is on file (shown only in the bank-transfer file)."
    )
    balances = serializers.SerializerMethodField(
        help_text="Per currency with entries in the ledger; none is converted."
    )

    class Meta:
        model = Instructor
        fields = [
            "id",
            "name",
            "email",
            "external_id",
            "stripe_account_id",
            "has_connected_account",
            "has_bank_account",
            "balances",
            "created_at",
        ]
        read_only_fields = fields

    def get_has_connected_account(self, obj) -> bool:
        return bool(obj.stripe_account_id)

    def get_has_bank_account(self, obj) -> bool:
        return bool(obj.bank_account)

    @extend_schema_field(BalanceSerializer(many=True))
    def get_balances(self, obj):
        balances = self.context.get("balances", {}).get(obj.pk, [])
        return [balance_data(balance) for balance in balances]


class InstructorFilter(filters.FilterSet):
    q = admin_search_filter(InstructorAdmin.search_spec)
    connected = filters.BooleanFilter(
        field_name="stripe_account_id",
        method="filter_connected",
        help_text="true: with a Stripe connected account; false: paid by bank transfer.",
    )

    class Meta:
        model = Instructor
        fields = []

    def filter_connected(self, queryset, name, value):
        return (
            queryset.exclude(stripe_account_id="")
            if value
            else queryset.filter(stripe_account_id="")
        )


@extend_schema_view(
    list=extend_schema(
        summary="Instructors by name, with their balances",
        description="Balance, available and on hold per currency (the ledger's sums; one "
        "grouped query per page). Needs payments.view_instructor.",
    ),
    retrieve=extend_schema(summary="An instructor with their balances"),
)
class InstructorViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstructorSerializer
    filterset_class = InstructorFilter
    queryset = Instructor.objects.order_by("name", "id")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["balances"] = getattr(self, "_balances", {})
        return context

    def _load_balances(self, instructors) -> None:
        by_instructor: dict[int, list[EarningBalance]] = {}
        ids = [instructor.pk for instructor in instructors]
        if ids:
            found = earning_balances(instructor_ids=ids, now=timezone.now())
            for key in sorted(found):
                by_instructor.setdefault(key[0], []).append(found[key])
        self._balances = by_instructor

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        self._load_balances(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        instructor = self.get_object()
        self._load_balances([instructor])
        return Response(self.get_serializer(instructor).data)


# --- The earnings ledger (read-only) ---------------------------------------------------------


class EarningEntrySerializer(serializers.ModelSerializer):
    instructor = InstructorRefSerializer()
    amount = MoneyField(help_text="Signed: + owed to the instructor, - taken back or paid out.")
    payment = serializers.IntegerField(source="payment_id", allow_null=True)
    stripe_payment_intent_id = serializers.SerializerMethodField()
    payout = serializers.IntegerField(source="payout_id", allow_null=True)
    adjustment = serializers.IntegerField(source="adjustment_id", allow_null=True)

    class Meta:
        model = EarningEntry
        fields = [
            "id",
            "reference",
            "kind",
            "instructor",
            "amount",
            "currency",
            "payment",
            "stripe_payment_intent_id",
            "payout",
            "adjustment",
            "description",
            "occurred_at",
            "available_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_stripe_payment_intent_id(self, obj) -> str | None:
        return obj.payment.stripe_payment_intent_id if obj.payment_id else None


class EarningEntryFilter(filters.FilterSet):
    instructor = filters.NumberFilter(field_name="instructor_id", help_text="An instructor's id.")
    currency = CurrencyFilter()
    kind = filters.MultipleChoiceFilter(choices=EarningEntry.Kind.choices, distinct=False)
    payment = filters.NumberFilter(field_name="payment_id")
    payout = filters.NumberFilter(field_name="payout_id")
    occurred_after = filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="Inclusive; ISO 8601."
    )
    occurred_before = filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="Exclusive; ISO 8601."
    )

    class Meta:
        model = EarningEntry
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="The earnings ledger, newest first",
        description="Append-only entries (earnings, refunds, disputes, payouts, reversals, "
        "adjustments, corrections): an instructor's balance in a currency is their sum. "
        "Needs payments.view_earningentry.",
    ),
    retrieve=extend_schema(summary="A ledger entry"),
)
class EarningEntryViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = EarningEntrySerializer
    filterset_class = EarningEntryFilter
    queryset = EarningEntry.objects.select_related("instructor", "payment").order_by(
        "-occurred_at", "-id"
    )


# --- Transfers (the Stripe mirror, read-only) ------------------------------------------------


class TransferReversalSerializer(serializers.ModelSerializer):
    amount = MoneyField()

    class Meta:
        model = TransferReversal
        fields = ["id", "stripe_id", "amount", "created"]
        read_only_fields = fields


class TransferSerializer(serializers.ModelSerializer):
    instructor = InstructorRefSerializer(allow_null=True)
    payout = serializers.IntegerField(source="payout_id", allow_null=True)
    amount = MoneyField()
    amount_reversed = MoneyField(amount_attr="amount_reversed")
    reversals = TransferReversalSerializer(many=True)

    class Meta:
        model = Transfer
        fields = [
            "id",
            "stripe_id",
            "payout",
            "instructor",
            "destination",
            "amount",
            "amount_reversed",
            "reversed",
            "reversals",
            "transfer_group",
            "description",
            "livemode",
            "created",
        ]
        read_only_fields = fields


class TransferFilter(filters.FilterSet):
    instructor = filters.NumberFilter(field_name="instructor_id", help_text="An instructor's id.")
    payout = filters.NumberFilter(field_name="payout_id")
    currency = CurrencyFilter()
    reversed = filters.BooleanFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")
    q = admin_search_filter(TransferAdmin.search_spec)

    class Meta:
        model = Transfer
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="Stripe Connect transfers, newest first",
        description="The mirror of Stripe's transfers and their reversals, as the sync and "
        "the webhooks land them. Needs payments.view_transfer.",
    ),
    retrieve=extend_schema(summary="A transfer"),
)
class TransferViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = TransferSerializer
    filterset_class = TransferFilter
    queryset = (
        Transfer.objects.select_related("instructor")
        .prefetch_related("reversals")
        .order_by("-created", "-id")
    )


api_router.register("payouts", PayoutViewSet, basename="payout")
api_router.register("payout-runs", PayoutRunViewSet, basename="payout-run")
api_router.register("instructors", InstructorViewSet, basename="instructor")
api_router.register("earning-entries", EarningEntryViewSet, basename="earning-entry")
api_router.register("transfers", TransferViewSet, basename="transfer")
