"""HTTP endpoints of the findings API: upload (POST) and query (GET) /api/v1/findings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import HasScope, principal_of
from findings import docs
from findings.cursors import decode_cursor, encode_cursor
from findings.models import SEVERITY_ORDER, ScanType
from findings.normalize import UploadInvalid, normalize_scan_type, normalize_severity
from findings.selectors import FindingFilters, findings_api_page
from findings.services import RepositoryNotAllowed, findings_ingest
from gerion.problems import ProblemError
from gerion.schema import problem_responses

MAX_LIMIT = 1000


def repository_not_allowed(repository_name: str) -> ProblemError:
    """403 for a write outside the API key's repositories (reads are filtered instead)."""
    return ProblemError(
        f"This API key may not upload to the repository {repository_name!r}; nothing was stored.",
        status=403,
        code="repository_not_allowed",
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _after_id(cursor: str) -> int:
    values = decode_cursor(cursor, length=1)
    if values is None:
        raise serializers.ValidationError({"cursor": ["is not a cursor this API returned"]})
    return values[0]


class FindingQuery(serializers.Serializer[dict[str, Any]]):
    repository_name = serializers.CharField(required=False, max_length=255)
    branch_name = serializers.CharField(required=False, max_length=255)
    scan_type = serializers.CharField(
        required=False, help_text=f"One of {', '.join(ScanType.values)} (any case)"
    )
    severity = serializers.CharField(
        required=False, help_text=f"One or more of {', '.join(SEVERITY_ORDER)}, comma-separated"
    )
    active_only = serializers.BooleanField(required=False, default=False)
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=MAX_LIMIT)
    cursor = serializers.CharField(required=False, help_text="From the Link header's next URL")

    def validate_scan_type(self, value: str) -> str:
        try:
            return normalize_scan_type(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_severity(self, value: str) -> tuple[str, ...]:
        try:
            return tuple(normalize_severity(part) for part in value.split(",") if part.strip())
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class FindingsView(APIView):
    permission_classes = [HasScope]
    required_scope = {"GET": "read:findings", "POST": "write:findings"}
    parser_classes = []  # the body is read raw and parsed once, by findings.normalize

    @extend_schema(
        operation_id="findings_upload",
        summary="Upload the findings of one scan",
        description=(
            "403 `insufficient_scope` without `write:findings`; 403 `repository_not_allowed` "
            "for a repository outside the API key's repositories (nothing is stored)."
        ),
        request={"application/json": docs.UploadRequest},
        responses={
            201: OpenApiResponse(docs.UploadResult, "What was stored"),
            **problem_responses(400, 401, 403, 413, 415, 429),
        },
        examples=docs.UPLOAD_EXAMPLES,
    )
    def post(self, request: Request) -> Response:
        if not _is_json(request.content_type or ""):
            raise ProblemError(
                "Send the findings as JSON (Content-Type: application/json).",
                status=415,
                code="unsupported_media_type",
            )
        principal = principal_of(request)
        try:
            result = findings_ingest(
                body=request.body,
                api_key=principal.api_key,
                client_id=principal.client_id,
                repository_patterns=principal.repository_patterns,
            )
        except UploadInvalid as exc:
            code = "validation_error" if exc.errors else "invalid_json"
            raise ProblemError(
                exc.detail, status=400, code=code, errors=exc.errors or None
            ) from exc
        except RepositoryNotAllowed as exc:
            raise repository_not_allowed(exc.repository_name) from exc
        return Response(result.as_response(), status=201)

    @extend_schema(
        operation_id="findings_list",
        summary="List findings (a bare JSON array, paged with a Link header)",
        description="Only findings of the repositories the API key may touch.",
        parameters=[FindingQuery],
        responses={
            200: OpenApiResponse(docs.FindingOut(many=True), "Findings in id order"),
            **problem_responses(400, 401, 403),
        },
    )
    def get(self, request: Request) -> Response:
        query = FindingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        after_id = _after_id(data["cursor"]) if "cursor" in data else None
        filters = FindingFilters(
            repository_name=data.get("repository_name"),
            branch_name=data.get("branch_name"),
            scan_type=data.get("scan_type"),
            severities=data.get("severity", ()),
            active_only=data["active_only"],
            repository_patterns=principal_of(request).repository_patterns,
        )
        rows, next_after = findings_api_page(filters, limit=data["limit"], after_id=after_id)
        headers = {}
        if next_after is not None:
            params = {k: v for k, v in request.query_params.items() if k != "cursor"}
            params["cursor"] = encode_cursor([next_after])
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(params)
            headers["Link"] = f'<{next_url}>; rel="next"'
        return Response(rows, headers=headers)
