"""Reads of findings for the API and the staff pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    DateTimeField,
    F,
    Field,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)

from findings.models import Finding, Status, Stream, finding_status

# What GET /api/v1/findings returns for each finding (besides `status`).
API_FIELDS = [
    "id",
    "finding_id",
    "title",
    "severity",
    "scan_type",
    "repository_name",
    "branch_name",
    "file_path",
    "line_number",
    "description",
    "mitigation",
    "security_scope",
    "component_name",
    "component_version",
    "component_fix",
    "cwe",
    "cve",
    "creation_date",
    "last_update_date",
    "active",
    "mitigated",
    "mitigated_at",
    "mitigated_on_build_id",
    "false_positive",
    "risk_accepted",
    "first_seen_at",
    "first_seen_build_id",
    "last_seen_at",
    "last_seen_build_id",
]
# The effective last sighting, under names that do not clash with the stored columns.
_LAST_SEEN = {"last_seen_at": "seen_at", "last_seen_build_id": "seen_build_id"}


def with_last_seen(queryset: QuerySet[Finding]) -> QuerySet[Finding]:
    """Annotate `seen_at`, `seen_build_id` and `seen_upload_id`: when and in which upload the
    finding was last reported. An active finding was reported by its stream's latest upload
    (re-uploads do not rewrite unchanged findings); an inactive one, by its stored last_seen."""
    head = Stream.objects.filter(
        repository_name=OuterRef("repository_name"),
        branch_name=OuterRef("branch_name"),
        scan_type=OuterRef("scan_type"),
    )

    def effective(stream_column: str, stored: str, output_field: Field[Any, Any]) -> Case:
        return Case(
            When(active=True, then=Subquery(head.values(stream_column)[:1])),
            default=F(stored),
            output_field=output_field,
        )

    return queryset.annotate(
        seen_at=effective("head_at", "last_seen_at", DateTimeField()),
        seen_build_id=effective("head_build_id", "last_seen_build_id", CharField()),
        seen_upload_id=effective("head_upload_id", "last_seen_upload_id", BigIntegerField()),
    )


@dataclass(frozen=True)
class FindingFilters:
    repository_name: str | None = None
    branch_name: str | None = None
    scan_type: str | None = None
    severities: tuple[str, ...] = ()
    active_only: bool = False
    status: str | None = None


def status_q(status: str) -> Q:
    """The rows whose derived `status` is `status` (see findings.models.finding_status)."""
    if status == Status.FALSE_POSITIVE:
        return Q(false_positive=True)
    if status == Status.RISK_ACCEPTED:
        return Q(false_positive=False, risk_accepted=True)
    untriaged = Q(false_positive=False, risk_accepted=False)
    if status == Status.ACTIVE:
        return untriaged & Q(active=True)
    return untriaged & Q(active=False)


def findings_filtered(filters: FindingFilters) -> QuerySet[Finding]:
    queryset = Finding.objects.all()
    if filters.repository_name is not None:
        queryset = queryset.filter(repository_name=filters.repository_name)
    if filters.branch_name is not None:
        queryset = queryset.filter(branch_name=filters.branch_name)
    if filters.scan_type is not None:
        queryset = queryset.filter(scan_type=filters.scan_type)
    if filters.severities:
        queryset = queryset.filter(severity__in=filters.severities)
    if filters.active_only:
        queryset = queryset.filter(active=True)
    if filters.status is not None:
        queryset = queryset.filter(status_q(filters.status))
    return queryset


def findings_api_page(
    filters: FindingFilters, *, limit: int, after_id: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page in id order (stable under concurrent uploads: keyset, not offset), and the
    id to continue after, if there is more."""
    queryset = findings_filtered(filters).order_by("id")
    if after_id is not None:
        queryset = queryset.filter(id__gt=after_id)
    fields = [_LAST_SEEN.get(name, name) for name in API_FIELDS]
    rows = list(with_last_seen(queryset).values(*fields)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        for api_name, annotation in _LAST_SEEN.items():
            row[api_name] = row.pop(annotation)
        row["status"] = finding_status(
            active=row["active"],
            false_positive=row["false_positive"],
            risk_accepted=row["risk_accepted"],
        )
    return rows, (rows[-1]["id"] if more else None)
