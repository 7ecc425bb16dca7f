"""The project's URLs plus a POST endpoint that exists only in tests, for the framework's
idempotency, throttling and error tests (outside /api/v1/, so outside the schema)."""

from django.urls import path
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from backoffice.api.errors import ApiError, register_exception
from backoffice.api.idempotency import idempotent
from backoffice.audit import audit_record
from backoffice.models import AdminAction
from backoffice.urls import urlpatterns as project_urlpatterns


class RuleBroken(Exception):
    """A service's refusal, mapped once like an app's api.py does."""


register_exception(RuleBroken, status=403, code="rule_broken")


class EchoView(APIView):
    """POST: one audit row (the side effect a replay must not repeat), answers 201."""

    read_permissions = ["backoffice.view_adminaction"]
    write_permissions = ["refunds.add_refundrequest"]

    def get(self, request):
        return Response({"effects": AdminAction.objects.filter(action="echo").count()})

    @idempotent
    def post(self, request):
        fail = request.data.get("fail")
        if fail == "conflict":
            raise ApiError("conflict", "Already done.", 409)
        if fail == "rule":
            raise RuleBroken("The rule says no.")
        if fail == "bug":
            raise RuntimeError("a bug")
        if fail == "invalid":
            raise ValidationError({"amount": ["Too much."], "non_field_errors": ["Both wrong."]})
        audit_record(acting_user=request.user, action="echo", target=AdminAction, target_id="0")
        effects = AdminAction.objects.filter(action="echo").count()
        # A multipart body (files) echoes its field names only.
        echo = sorted(request.data) if hasattr(request.data, "getlist") else request.data
        return Response({"effects": effects, "echo": echo}, status=201)


class UndeclaredView(APIView):
    """A write that declares no permission: refused for everybody, superusers included."""

    def post(self, request):
        return Response({}, status=201)


urlpatterns = [
    path("test-api/echo/", EchoView.as_view()),
    path("test-api/undeclared/", UndeclaredView.as_view()),
    *project_urlpatterns,
]
