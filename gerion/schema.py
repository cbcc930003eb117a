"""OpenAPI pieces shared by every API view: the problem document and the security schemes."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from gerion.problems import PROBLEM_CONTENT_TYPE

ProblemError = inline_serializer(
    "ProblemErrorItem",
    {"path": serializers.CharField(), "message": serializers.CharField()},
)

Problem = inline_serializer(
    "Problem",
    {
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "code": serializers.CharField(help_text="Stable, machine-readable"),
        "request_id": serializers.CharField(required=False),
        "errors": serializers.ListField(child=ProblemError, required=False),
    },
)


def problem_responses(*statuses: int) -> dict[int | tuple[int, str], Any]:
    """`responses=` entries for the given error statuses, as application/problem+json."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(Problem, HTTPStatus(status).phrase)
        for status in statuses
    }


class BearerJWTScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apikeys.authentication.ApiKeyJWTAuthentication"
    name = "BearerJWT"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
