"""Lessons in the API: /api/v1/lessons/. The booking system POSTs batches of lesson rows; the
rows go through the same import service as the admin's file import (payments/lessons.py),
with the same checks and the same messages per row, all or nothing:

- 200: every row is good and the batch was applied (or, with "dry_run": true, would be);
  the answer lists each row's outcome (reserved, consumed, canceled or unchanged);
- 400 `invalid_rows`: at least one row is bad and nothing was applied; `error.fields` names
  each bad row (`lessons.<row>`, 1 = the first) with its reason.

A batch repeated changes nothing (each row answers "unchanged"); with an Idempotency-Key the
repeat gets the first answer back. Needs payments.import_lessons (Finance staff)."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response

from backoffice.api.errors import ApiError
from backoffice.api.idempotency import idempotent
from backoffice.api.registry import api_router
from backoffice.audit import client_info_from_request

from . import lessons
from .models import Lesson

MAX_BATCH_ROWS = 1000
ERR_INVALID_ROWS = "{bad} of {rows} rows are bad; nothing was applied."
ERR_FILE = "{error}"


class LessonSerializer(serializers.ModelSerializer):
    student_email = serializers.CharField(source="customer.email", read_only=True)
    stripe_customer_id = serializers.CharField(source="customer.stripe_id", read_only=True)
    date = serializers.DateField(source="lesson_date", read_only=True)

    class Meta:
        model = Lesson
        fields = [
            "id",
            "booking_id",
            "student_email",
            "stripe_customer_id",
            "minutes",
            "date",
            "status",
            "source",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LessonRowSerializer(serializers.Serializer):
    """One row as the booking system sends it. Only the shape is checked here: the values
    are the import service's to check (its messages, per row)."""

    student = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        help_text="The student's e-mail or Stripe customer id (cus_...).",
    )
    booking_id = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="The booking system's id."
    )
    minutes = serializers.JSONField(
        required=False, default="", help_text="Whole minutes, 1 to 1440."
    )
    date = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="YYYY-MM-DD."
    )
    status = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="reserved, consumed or canceled."
    )


class LessonBatchSerializer(serializers.Serializer):
    lessons = LessonRowSerializer(many=True, allow_empty=False, max_length=MAX_BATCH_ROWS)
    dry_run = serializers.BooleanField(
        default=False, help_text="Check every row and apply nothing (a preview)."
    )


class LessonRowResultSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="1 = the batch's first lesson.")
    booking_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=[*lessons.STATUSES, lessons.UNCHANGED])


class LessonBatchResultSerializer(serializers.Serializer):
    applied = serializers.BooleanField()
    dry_run = serializers.BooleanField()
    rows = serializers.IntegerField()
    reserved = serializers.IntegerField()
    consumed = serializers.IntegerField()
    canceled = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    results = LessonRowResultSerializer(many=True)


class LessonFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Lesson.Status.choices, distinct=False)
    booking_id = filters.CharFilter(field_name="booking_id")
    customer = filters.CharFilter(
        field_name="customer__stripe_id", help_text="A Stripe customer id (cus_...)."
    )
    date_from = filters.DateFilter(field_name="lesson_date", lookup_expr="gte")
    date_to = filters.DateFilter(field_name="lesson_date", lookup_expr="lte")

    class Meta:
        model = Lesson
        fields = []


def _raw(row: dict) -> dict:
    # JSON numbers and strings alike reach the service as text, as a file's cells do.
    return {key: "" if value is None else str(value) for key, value in row.items()}


@extend_schema_view(
    list=extend_schema(
        summary="Lessons the booking system reported",
        description="Newest lesson date first; filter by status, booking id, customer, dates.",
    )
)
class LessonViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = LessonSerializer
    filterset_class = LessonFilter
    queryset = Lesson.objects.select_related("customer").order_by("-lesson_date", "-id")
    write_permissions = {"create": ["payments.import_lessons"]}

    @extend_schema(
        summary="Report lessons (a batch)",
        description=(
            "Each lesson: student (e-mail or cus_ id), booking_id, minutes, date (YYYY-MM-DD), "
            "status (reserved, consumed, canceled). A booking moves reserved -> consumed or "
            "canceled; a repeated row changes nothing. All or nothing: one bad row and nothing "
            "is applied (400 invalid_rows, each bad row under error.fields as lessons.<row>). "
            f"At most {MAX_BATCH_ROWS} lessons per batch. Send an Idempotency-Key."
        ),
        request=LessonBatchSerializer,
        responses={200: LessonBatchResultSerializer},
    )
    @idempotent
    def create(self, request):
        body = LessonBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rows = [_raw(row) for row in body.validated_data["lessons"]]
        try:
            result = lessons.lessons_import(
                rows,
                acting_user=request.user,
                source=Lesson.Source.API,
                dry_run=body.validated_data["dry_run"],
                keep_outcomes=True,
                client=client_info_from_request(request),
                file_name="api",
            )
        except lessons.LessonFileError as exc:
            raise ApiError("invalid", ERR_FILE.format(error=exc), 400) from exc
        if result.error_count:
            raise ApiError(
                "invalid_rows",
                ERR_INVALID_ROWS.format(bad=result.error_count, rows=result.rows),
                400,
                fields={
                    f"lessons.{row}": [error]
                    for row, _, outcome, error in result.outcomes
                    if outcome == lessons.ERROR
                },
            )
        return Response(
            {
                "applied": result.applied,
                "dry_run": result.dry_run,
                "rows": result.rows,
                **{key: result.counts[key] for key in (*lessons.STATUSES, lessons.UNCHANGED)},
                "results": [
                    {"row": row, "booking_id": booking_id, "outcome": outcome}
                    for row, booking_id, outcome, _ in result.outcomes
                ],
            }
        )


api_router.register("lessons", LessonViewSet, basename="lesson")
