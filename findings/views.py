"""HTTP endpoints of the findings API: upload (POST) and query (GET) /api/v1/findings, and the
official CLI's report path (GET /api/v1/reporting/findings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import HasScope, principal_of
from findings import docs
from findings.cursors import decode_cursor, encode_cursor
from findings.models import SEVERITY_ORDER, ScanType
from findings.normalize import SEVERITY_EXACT, UploadInvalid, normalize_scan_type
from findings.readers import sarif as sarif_reader
from findings.sarif import sarif_log
from findings.selectors import (
    FindingFilters,
    findings_api_page,
    findings_for_sarif,
    scanner_rules,
)
from findings.services import RepositoryNotAllowed, findings_ingest
from gerion.memory import release_free_memory
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


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class SarifRenderer(BaseRenderer):
    """Lets a client ask for `Accept: application/sarif+json`; the views answer it with a
    streamed log (findings.sarif), never through this renderer's output."""

    media_type = sarif_reader.MEDIA_TYPE
    format = "sarif"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return JSONRenderer().render(data)


RENDERERS = [JSONRenderer, SarifRenderer]


class _NoFormatParameter:
    URL_FORMAT_OVERRIDE = None


class AcceptHeaderNegotiation(DefaultContentNegotiation):
    """The Accept header chooses the representation; a `format` query parameter is not ours
    (DRF's override would answer an unknown one with a 404)."""

    settings = _NoFormatParameter()  # type: ignore[assignment]  # only this setting is read


SARIF_RESPONSE = (
    "With `Accept: application/sarif+json`: the whole selection (`limit` and `cursor` page "
    "the JSON list only) as one SARIF 2.1.0 log, streamed: one run per scan type, rules "
    'listed once, each finding_id in partialFingerprints["gerionFindingId/v1"]'
)

# The two list endpoints answer alike (bare JSON array, or one SARIF log).
LIST_RESPONSES = {
    (200, "application/json"): OpenApiResponse(docs.FindingOut(many=True), "Findings in id order"),
    (200, sarif_reader.MEDIA_TYPE): OpenApiResponse(docs.SarifLog, SARIF_RESPONSE),
    **problem_responses(400, 401, 403),
}


def _read_body(request: Request) -> bytearray:
    """The body, read once into a buffer of its declared length (the body-size middleware
    has checked it): a 100 MB upload is held once, where request.body holds it twice while
    reading it."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    body = bytearray(length)
    view = memoryview(body)
    received = 0
    while received < length:
        chunk = request._request.read(min(_READ_STEP, length - received))
        if not chunk:
            raise ProblemError(
                "The body ended before its Content-Length.", status=400, code="incomplete_body"
            )
        view[received : received + len(chunk)] = chunk
        received += len(chunk)
    return body


# Below the 1 MiB from which a worker's allocator maps each block afresh (gerion/memory.py):
# gunicorn copies every step through buffers of its own, which at 1 MiB were each mapped,
# faulted in page by page and unmapped again. 174 MB over HTTP: 0.6-0.9 s at 1 MiB steps,
# 0.28 s at 256 KiB, near a recv_into the buffer itself (0.22-0.29 s).
_READ_STEP = 256 << 10


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
    min_severity = serializers.CharField(
        required=False, help_text=f"This severity and above: one of {', '.join(SEVERITY_ORDER)}"
    )
    active_only = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only findings whose status is Active (still reported, not triaged)",
    )
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=MAX_LIMIT)
    cursor = serializers.CharField(required=False, help_text="From the Link header's next URL")

    def validate_scan_type(self, value: str) -> str:
        try:
            return normalize_scan_type(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_severity(self, value: str) -> tuple[str, ...]:
        return tuple(_severity(part) for part in value.split(",") if part.strip())

    def validate_min_severity(self, value: str) -> str:
        return _severity(value)


class ReportQuery(FindingQuery):
    severity = serializers.CharField(
        required=False,
        help_text=f"Minimum severity: this one and above ({', '.join(SEVERITY_ORDER)})",
    )
    min_severity = None  # type: ignore[assignment]

    def validate_severity(self, value: str) -> str:  # type: ignore[override]
        return _severity(value)


def _severity(value: str) -> str:
    """A severity filter: one of ours, in any case."""
    word = SEVERITY_EXACT.get(value.strip()) or SEVERITY_EXACT.get(value.strip().upper())
    if word is None:
        raise serializers.ValidationError(f"must be one of {', '.join(SEVERITY_ORDER)}")
    return word


class FindingsView(APIView):
    permission_classes = [HasScope]
    renderer_classes = RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation
    required_scope = {"GET": "read:findings", "POST": "write:findings"}
    parser_classes = []  # the body is read raw and parsed once, by findings.normalize

    @extend_schema(
        operation_id="findings_upload",
        summary="Upload the findings of one scan (our JSON envelopes, or a SARIF 2.1.0 log)",
        description="A SARIF log (`Content-Type: application/sarif+json`) takes its stream "
        "from the query parameters; each result becomes a finding (see docs/api.md). 403 "
        "`insufficient_scope` without `write:findings`; 403 `repository_not_allowed` for a "
        "repository outside the API key's repositories (nothing is stored).",
        request={
            "application/json": docs.UploadRequest,
            sarif_reader.MEDIA_TYPE: docs.SarifLog,
        },
        parameters=[*docs.SARIF_UPLOAD_PARAMETERS, docs.NO_FORMAT],
        responses={
            (201, "application/json"): OpenApiResponse(docs.UploadResult, "What was stored"),
            **problem_responses(400, 401, 403, 413, 415, 429),
        },
        examples=[*docs.UPLOAD_EXAMPLES, docs.SARIF_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        media = _media_type(request.content_type or "")
        if not _is_json(media):
            raise ProblemError(
                "Send the findings as JSON (Content-Type: application/json) or as a SARIF "
                "2.1.0 log (Content-Type: application/sarif+json).",
                status=415,
                code="unsupported_media_type",
            )
        principal = principal_of(request)
        try:
            result = findings_ingest(
                body=_read_body(request),
                api_key=principal.api_key,
                client_id=principal.client_id,
                repository_patterns=principal.repository_patterns,
                media_type=media,
                params=request.query_params.dict(),
            )
        except UploadInvalid as exc:
            code = "validation_error" if exc.errors else "invalid_json"
            raise ProblemError(
                exc.detail, status=400, code=code, errors=exc.errors or None
            ) from exc
        except RepositoryNotAllowed as exc:
            raise repository_not_allowed(exc.repository_name) from exc
        finally:
            release_free_memory(after_body_of=int(request.META.get("CONTENT_LENGTH") or 0))
        return Response(result.as_response(), status=201, content_type="application/json")

    @extend_schema(
        operation_id="findings_list",
        summary="List findings (a bare JSON array, paged with a Link header; or one SARIF log)",
        description="Only findings of the repositories the API key may touch.",
        parameters=[FindingQuery, docs.NO_FORMAT],
        responses=LIST_RESPONSES,
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        query = FindingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        severities, minimum = data.get("severity", ()), data.get("min_severity")
        return _findings_page(request, data, severities=severities, min_severity=minimum)


class ReportingFindingsView(APIView):
    """The path the newest official CLI's `report` command calls: the same findings, with
    `severity` as a minimum (the CLI documents `--severity HIGH` as HIGH and above)."""

    permission_classes = [HasScope]
    renderer_classes = RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation
    required_scope = {"GET": "read:findings"}

    @extend_schema(
        operation_id="reporting_findings_list",
        summary="List findings for a report (severity is a minimum)",
        parameters=[ReportQuery, docs.NO_FORMAT],
        responses=LIST_RESPONSES,
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        query = ReportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return _findings_page(request, data, severities=(), min_severity=data.get("severity"))


def _findings_page(
    request: Request,
    data: dict[str, Any],
    *,
    severities: tuple[str, ...],
    min_severity: str | None,
) -> Response | StreamingHttpResponse:
    """One page of the selection as a bare JSON array, and the next page's URL in Link; or,
    for `Accept: application/sarif+json`, the whole selection as one SARIF log, streamed
    (`limit` and `cursor` page the JSON list only: a log is one document, and GitHub takes
    one analysis per tool and category)."""
    filters = FindingFilters(
        repository_name=data.get("repository_name"),
        branch_name=data.get("branch_name"),
        scan_type=data.get("scan_type"),
        severities=severities,
        min_severity=min_severity,
        active_only=data["active_only"],
        repository_patterns=principal_of(request).repository_patterns,
    )
    if isinstance(request.accepted_renderer, SarifRenderer):
        return StreamingHttpResponse(
            sarif_log(findings_for_sarif(filters), scanner_rules),
            content_type=sarif_reader.MEDIA_TYPE,
        )
    after_id = _after_id(data["cursor"]) if "cursor" in data else None
    rows, next_after = findings_api_page(filters, limit=data["limit"], after_id=after_id)
    headers = {}
    if next_after is not None:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        params["cursor"] = encode_cursor([next_after])
        next_url = request.build_absolute_uri(request.path) + "?" + urlencode(params)
        headers["Link"] = f'<{next_url}>; rel="next"'
    return Response(rows, headers=headers)
