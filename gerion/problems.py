"""One error shape for the whole API: RFC 9457 problem details with a stable `code`.

Every error the API answers is built by `problem_response`, whether it comes from our own
`ProblemError`s, from DRF, or from Django itself (see gerion.middleware.ProblemMiddleware).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf

from gerion.context import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://api.gerion.dev/problems/"

# The code used when a status arrives without a more specific one (e.g. from Django).
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ProblemError(drf.APIException):
    """An API error with its status, stable code and human detail; rendered as a problem."""

    status_code = 400
    default_code = "bad_request"
    default_detail = "The request is invalid."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status_code = status
        self.code = code or self.default_code
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        super().__init__(detail or self.default_detail, self.code)


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = [{"path": e["path"], "message": e["message"]} for e in errors]
    if extra:
        body.update(extra)
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return body


def problem_response(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> HttpResponse:
    code = code or DEFAULT_CODES.get(status, "error")
    detail = detail or HTTPStatus(status).description or HTTPStatus(status).phrase
    body = problem_body(status, code, detail, errors=errors, extra=extra)
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into `[{path, message}]` with JSON paths (`a[3].b`)."""
    if isinstance(detail, Mapping):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if isinstance(key, int):  # DRF keys list-item errors by index
                child = f"{path}[{key}]"
            elif key == "non_field_errors":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            out.extend(flatten_errors(value, child))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"path": path or "$", "message": str(item)} for item in detail]
        out = []
        for index, value in enumerate(detail):
            if value:
                out.extend(flatten_errors(value, f"{path}[{index}]"))
        return out
    return [{"path": path or "$", "message": str(detail)}]


def _drf_code(exc: drf.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return DEFAULT_CODES.get(exc.status_code, "error")


def drf_exception_handler(exc: Exception, context: Mapping[str, Any]) -> HttpResponse | None:
    """DRF EXCEPTION_HANDLER: every handled exception becomes a problem response."""
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = ProblemError(
            "The request body is larger than this server accepts.",
            status=413,
            code="payload_too_large",
        )
    if not isinstance(exc, drf.APIException):
        return None  # unexpected: re-raised, logged, and rendered as a 500 problem

    # Imported here: rest_framework.views loads DRF's settings, which import our auth class,
    # which raises our ProblemErrors.
    from rest_framework.views import set_rollback

    set_rollback()
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header

    if isinstance(exc, ProblemError):
        headers.update(exc.headers)
        return problem_response(
            exc.status_code, exc.code, str(exc.detail), errors=exc.errors, headers=headers
        )
    if isinstance(exc, drf.ValidationError):
        errors = flatten_errors(exc.detail)
        return problem_response(
            400,
            "validation_error",
            f"The request has {len(errors)} invalid value(s); see `errors`.",
            errors=errors,
        )
    if isinstance(exc, drf.ParseError):
        return problem_response(400, "invalid_json", "The request body is not valid JSON.")
    if isinstance(exc, drf.MethodNotAllowed):
        return problem_response(405, "method_not_allowed", str(exc.detail), headers=headers)
    code = _drf_code(exc)
    detail = str(exc.detail) if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, code, detail, headers=headers)
