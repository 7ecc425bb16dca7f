"""One shape for every error the API answers:

    {"error": {"code": "conflict", "message": "...", "fields": {"amount": ["..."]}}}

`code` is stable text a program can branch on, `message` is for people (the services' own
words where a service refused), `fields` names the inputs at fault (empty otherwise).
Statuses: 400 bad input, 401 no or dead credentials, 403 a rule or a permission, 404,
409 a conflict (the state moved on: a double approval, an idempotency key reused),
429 too many requests (with Retry-After).

Apps map their services' exceptions once, in their api.py:
`register_exception(RefundPermissionError, status=403, code="forbidden")`; a view then lets
the service raise and the handler answers with str(exc) as the message."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

MSG_INVALID = "Some values are invalid; see fields."
MSG_NOT_FOUND = "Not found."
MSG_TRY_SLASH = "Not found. API paths end in '/': {path}/"
MSG_SERVER_ERROR = "Something went wrong on our side; it has been logged."

# Codes for DRF's own exceptions (by class); others use the exception's default_code.
_CODES = {
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "parse_error",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class ApiError(exceptions.APIException):
    """An error answered as is: `ApiError("conflict", "Already approved.", 409)`.

    `stored = False` on an instance: the request did nothing and may be sent again as is
    (a rate limit, a step-up), so an Idempotency-Key does not keep this answer."""

    stored = True

    def __init__(self, code: str, message: str, status_code: int, fields: dict | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.fields = fields or {}


# exception class -> (status, code), filled by the apps' api.py modules.
_REGISTERED: dict[type[BaseException], tuple[int, str]] = {}


def register_exception(exc_class: type[BaseException], *, status: int, code: str) -> None:
    """Answer `exc_class` (and its subclasses, unless they are registered themselves) with
    `status` and `code`, and str(exc) as the message."""
    _REGISTERED[exc_class] = (status, code)


def _registered(exc: BaseException) -> tuple[int, str] | None:
    for klass in type(exc).__mro__:
        if klass in _REGISTERED:
            return _REGISTERED[klass]
    return None


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail) -> list[str]:
    """DRF error details (nested lists/dicts of ErrorDetail) as a flat list of text."""
    if isinstance(detail, dict):
        return [text for value in detail.values() for text in _flatten(value)]
    if isinstance(detail, list):
        return [text for value in detail for text in _flatten(value)]
    return [str(detail)]


def _fields(detail: dict) -> dict:
    """{field: [messages]}; nested serializers' errors become dotted names."""
    fields = {}
    for name, value in detail.items():
        if isinstance(value, dict):
            for sub, messages in _fields(value).items():
                fields[f"{name}.{sub}"] = messages
        else:
            fields[name] = _flatten(value)
    return fields


def api_exception_handler(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every error in the one shape."""
    if isinstance(exc, ApiError):
        wait = getattr(exc, "wait", None)
        return Response(
            error_body(exc.error_code, exc.message, exc.fields),
            status=exc.status_code,
            headers={"Retry-After": str(wait)} if wait else None,
        )
    mapped = _registered(exc)
    if mapped is not None:
        status_code, code = mapped
        return Response(error_body(code, str(exc)), status=status_code)
    # DRF's handler turns Http404 and Django's PermissionDenied into its own, and sets the
    # WWW-Authenticate and Retry-After headers; we keep its response and reshape the body.
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling (and logging) takes it
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    code = next(
        (code for klass, code in _CODES.items() if isinstance(exc, klass)),
        getattr(exc, "default_code", "error"),
    )
    # A code given where the exception was raised (PermissionDenied(..., code="read_only_token"))
    # says more than the class's.
    raised_code = getattr(exc.detail, "code", None)
    if raised_code and raised_code != exc.default_code:
        code = raised_code
    fields = {}
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(exc.detail, dict):
            fields = _fields(exc.detail)
            non_field = fields.pop("non_field_errors", None)
            message = " ".join(non_field) if non_field else MSG_INVALID
        else:
            message = " ".join(_flatten(exc.detail)) or MSG_INVALID
    else:
        message = " ".join(_flatten(exc.detail))
    response.data = error_body(code, message, fields)
    return response


def json_not_found(request, *args, **kwargs):
    """A URL under /api/v1/ that matches nothing: the API's 404, not the admin's HTML page.
    (It also stops Django's APPEND_SLASH redirect, which would drop a POST's body: a path
    that only lacks its slash says so instead.)"""
    message = MSG_NOT_FOUND
    if not request.path.endswith("/"):
        try:
            resolved = resolve(request.path + "/")
        except Resolver404:
            resolved = None
        if resolved is not None and resolved.func is not json_not_found:
            message = MSG_TRY_SLASH.format(path=request.path)
    return JsonResponse(error_body("not_found", message), status=status.HTTP_404_NOT_FOUND)
