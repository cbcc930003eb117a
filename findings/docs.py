"""OpenAPI descriptions of the findings API bodies. Documentation only: uploads are read by
findings.readers (compiled msgspec decoding, built for 100,000 findings a request)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    inline_serializer,
)
from rest_framework import serializers

from findings.models import SEVERITY_ORDER, ScanType

_SEVERITY_HELP = (
    f"{', '.join(SEVERITY_ORDER)} (any case; default INFO). Scanners' words (ERROR, WARNING, "
    "UNKNOWN, moderate, negligible...) and CVSS scores are mapped, with a warning"
)
_SCAN_TYPE_HELP = f"{', '.join(ScanType.values)} (any case, e.g. Secrets, IaC)"

Doc = serializers.Serializer[dict[str, Any]]


class Metadata(Doc):
    repository_name = serializers.CharField(max_length=255)
    branch_name = serializers.CharField(max_length=255)
    build_id = serializers.CharField(max_length=255, allow_null=True)
    code_path = serializers.CharField(max_length=4096, allow_blank=True)
    scan_type = serializers.CharField(
        required=False, help_text=f"{_SCAN_TYPE_HELP}; inferred from the findings if omitted"
    )
    commit_hash = serializers.CharField(required=False, allow_null=True, max_length=128)
    commit_author = serializers.CharField(required=False, allow_null=True, max_length=255)
    cicd_platform = serializers.CharField(required=False, allow_null=True, max_length=100)
    scan_duration = serializers.FloatField(required=False, allow_null=True)


class FindingIn(Doc):
    finding_id = serializers.CharField(max_length=255, help_text="Unique within the stream")
    title = serializers.CharField(max_length=2000)
    severity = serializers.CharField(required=False, allow_null=True, help_text=_SEVERITY_HELP)
    scan_type = serializers.CharField(required=False, allow_null=True, help_text=_SCAN_TYPE_HELP)
    repository_name = serializers.CharField(
        required=False, allow_null=True, help_text="Must equal the metadata's if present"
    )
    file_path = serializers.CharField(required=False, allow_null=True, max_length=4096)
    line_number = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="A numeric string is read too"
    )
    active = serializers.BooleanField(required=False, allow_null=True)
    mitigated = serializers.BooleanField(required=False, allow_null=True)
    false_positive = serializers.BooleanField(required=False, allow_null=True)
    creation_date = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601; without a zone: UTC"
    )
    last_update_date = serializers.DateTimeField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_null=True)
    mitigation = serializers.CharField(required=False, allow_null=True)
    component_name = serializers.CharField(required=False, allow_null=True)
    component_version = serializers.CharField(required=False, allow_null=True)
    component_fix = serializers.CharField(required=False, allow_null=True)
    cwe = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text='"CWE-79", "CWE-79: Improper Neutralization ...", 79; a list or one value',
    )
    cve = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="A list, or one string (several may be separated by commas or spaces)",
    )


class DocumentedUpload(Doc):
    metadata = Metadata()
    findings = FindingIn(many=True)


class CliFindingsData(Doc):
    scan_metadata = Metadata(help_text="Older CLI versions call it `metadata`")
    findings = FindingIn(many=True)


class CliUpload(Doc):
    findings_data = CliFindingsData()


UploadRequest = PolymorphicProxySerializer(
    component_name="FindingsUpload",
    serializers=[DocumentedUpload, CliUpload],
    resource_type_field_name=None,
)


class UploadWarning(Doc):
    path = serializers.CharField(help_text="JSON path, e.g. findings[3].severity")
    message = serializers.CharField()


class UploadResult(Doc):
    upload_id = serializers.IntegerField()
    received = serializers.IntegerField(help_text="Findings in the body")
    duplicates = serializers.IntegerField(help_text="Repeated finding_ids (the last one won)")
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Seen before, refreshed")
    reactivated = serializers.IntegerField(help_text="Mitigated before, back now")
    mitigated = serializers.IntegerField(help_text="Open before, absent or fixed now")
    warnings = UploadWarning(
        many=True,
        help_text="Descriptive values stored normalised (the scanner's value stays in the raw "
        "data); the first 100",
    )
    warning_total = serializers.IntegerField(help_text="All warnings, listed or not")


class FindingOut(Doc):
    id = serializers.IntegerField()
    finding_id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.ChoiceField(choices=SEVERITY_ORDER)
    scan_type = serializers.ChoiceField(choices=ScanType.values)
    repository_name = serializers.CharField()
    branch_name = serializers.CharField()
    file_path = serializers.CharField()
    line_number = serializers.IntegerField(allow_null=True)
    description = serializers.CharField()
    mitigation = serializers.CharField()
    security_scope = serializers.CharField()
    component_name = serializers.CharField()
    component_version = serializers.CharField()
    component_fix = serializers.CharField()
    cwe = serializers.ListField(child=serializers.CharField())
    cve = serializers.ListField(child=serializers.CharField())
    creation_date = serializers.DateTimeField(allow_null=True)
    last_update_date = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(
        choices=["Active", "Mitigated", "False positive", "Risk accepted"]
    )
    active = serializers.BooleanField()
    mitigated = serializers.BooleanField()
    mitigated_at = serializers.DateTimeField(allow_null=True)
    mitigated_on_build_id = serializers.CharField(allow_null=True)
    false_positive = serializers.BooleanField()
    risk_accepted = serializers.BooleanField()
    first_seen_at = serializers.DateTimeField()
    first_seen_build_id = serializers.CharField(allow_null=True)
    last_seen_at = serializers.DateTimeField()
    last_seen_build_id = serializers.CharField(allow_null=True)


UPLOAD_EXAMPLES = [
    OpenApiExample(
        "documented",
        request_only=True,
        value={
            "metadata": {
                "repository_name": "acme/payments",
                "branch_name": "main",
                "build_id": "1234",
                "code_path": ".",
                "scan_type": "SAST",
                "commit_hash": "9f3c2d1",
            },
            "findings": [
                {
                    "finding_id": "semgrep-python.sql-injection-3f2a",
                    "title": "SQL built from user input",
                    "severity": "High",
                    "file_path": "app/db.py",
                    "line_number": 42,
                    "cwe": ["CWE-89"],
                }
            ],
        },
    ),
    OpenApiExample(
        "official CLI",
        request_only=True,
        value={
            "findings_data": {
                "scan_metadata": {
                    "repository_name": "acme/payments",
                    "branch_name": "main",
                    "build_id": None,
                    "code_path": ".",
                    "cicd_platform": "github",
                    "scan_duration": 12.5,
                },
                "findings": [
                    {
                        "finding_id": "gitleaks-aws-key-91ab",
                        "title": "AWS access key",
                        "severity": "CRITICAL",
                        "scan_type": "Secrets",
                        "file_path": "deploy/env.sh",
                        "line_number": 3,
                    }
                ],
            }
        },
    ),
]


SarifLog = inline_serializer(
    "SarifLog",
    {
        "$schema": serializers.CharField(required=False),
        "version": serializers.ChoiceField(choices=["2.1.0"]),
        "runs": serializers.ListField(
            child=serializers.DictField(),
            help_text="SARIF 2.1.0 runs (OASIS standard): tool.driver (name, rules), results",
        ),
    },
)

# Content negotiation is by the Accept header only (findings.views.AcceptHeaderNegotiation).
NO_FORMAT = OpenApiParameter("format", exclude=True)

_SARIF_STREAM = "SARIF uploads (Content-Type: application/sarif+json) only: "
SARIF_UPLOAD_PARAMETERS = [
    OpenApiParameter("repository_name", OpenApiTypes.STR, description=_SARIF_STREAM + "required"),
    OpenApiParameter("branch_name", OpenApiTypes.STR, description=_SARIF_STREAM + "required"),
    OpenApiParameter("build_id", OpenApiTypes.STR, description=_SARIF_STREAM + "optional"),
    OpenApiParameter("commit_hash", OpenApiTypes.STR, description=_SARIF_STREAM + "optional"),
    OpenApiParameter(
        "code_path",
        OpenApiTypes.STR,
        description=_SARIF_STREAM + "optional; file:// URIs below it are stored relative to it",
    ),
    OpenApiParameter(
        "scan_type",
        OpenApiTypes.STR,
        description=_SARIF_STREAM + f"{_SCAN_TYPE_HELP}; inferred from the tool when "
        "unambiguous (Semgrep, Opengrep, CodeQL, Bandit, Snyk Code: SAST; Grype, OSV-Scanner, "
        "Snyk Open Source, Snyk Container: SCA; Checkov, KICS, tfsec, Terrascan, Snyk IaC: "
        "IAC; Gitleaks, TruffleHog: SECRETS; Trivy: by its rules' tags), else required",
    ),
]

SARIF_EXAMPLE = OpenApiExample(
    "SARIF 2.1.0 (Checkov)",
    request_only=True,
    media_type="application/sarif+json",
    value={
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "Checkov",
                        "rules": [
                            {
                                "id": "CKV_AWS_20",
                                "shortDescription": {"text": "S3 Bucket has an ACL defined "
                                                     "which allows public READ access."},
                                "defaultConfiguration": {"level": "error"},
                            }
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": "CKV_AWS_20",
                        "ruleIndex": 0,
                        "level": "error",
                        "message": {"text": "S3 Bucket has an ACL defined which allows "
                                    "public READ access."},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "infra/storage.tf"},
                                    "region": {"startLine": 14},
                                }
                            }
                        ],
                    }
                ],
            }
        ],
    },
)  # fmt: skip
