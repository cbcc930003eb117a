"""Reads of findings for the API and the staff pages."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DateTimeField,
    F,
    Field,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.lookups import Lookup
from django.db.models.sql.compiler import SQLCompiler

from apikeys.repositories import allows_all, like_pattern, sqlite_glob_pattern
from findings.models import (
    SEVERITY_ORDER,
    SEVERITY_RANK,
    Finding,
    FindingEvent,
    ScannerRule,
    Status,
    Stream,
    Upload,
    finding_status,
)
from findings.sarif import ROW_FIELDS as SARIF_ROW_FIELDS

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
    min_severity: str | None = None  # this one and above
    active_only: bool = False
    status: str | None = None
    # The API key's repositories (apikeys.repositories globs): every API read passes its
    # principal's `repository_patterns`; None (staff pages) means no restriction.
    repository_patterns: tuple[str, ...] | None = None


class RepositoryGlob(Lookup[str]):
    """`lhs` matches one glob of apikeys.repositories. PostgreSQL: LIKE with `%`, `_` and
    `\\` escaped, which a prefix such as `acme/%` answers from the varchar_pattern_ops index
    (finding_repo_rank_idx); SQLite: GLOB, because its LIKE ignores case."""

    lookup_name = "repository_glob"
    prepare_rhs = False

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        lhs, rhs, params = self._sides(compiler, connection, like_pattern)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", params

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        lhs, rhs, params = self._sides(compiler, connection, sqlite_glob_pattern)
        return f"{lhs} GLOB {rhs}", params

    def _sides(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        translate: Callable[[str], str],
    ) -> tuple[str, str, tuple[str | int, ...]]:
        """Both sides compiled, the glob translated for this database."""
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return lhs, rhs, (*lhs_params, *(translate(str(p)) for p in rhs_params))


def repository_scope_q(patterns: tuple[str, ...], field: str = "repository_name") -> Q:
    """The rows whose repository one of `patterns` allows: equality for exact names (one
    index lookup for all of them), a glob match for the rest. No pattern: no row."""
    if allows_all(patterns):
        return Q()
    exact = [p for p in patterns if "*" not in p]
    parts = [Q(**{f"{field}__in": exact})] if exact else []
    parts += [Q(RepositoryGlob(F(field), p)) for p in patterns if "*" in p]
    return functools.reduce(operator.or_, parts) if parts else Q(pk__in=[])


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
    if filters.repository_patterns is not None:
        queryset = queryset.filter(repository_scope_q(filters.repository_patterns))
    if filters.repository_name is not None:
        queryset = queryset.filter(repository_name=filters.repository_name)
    if filters.branch_name is not None:
        queryset = queryset.filter(branch_name=filters.branch_name)
    if filters.scan_type is not None:
        queryset = queryset.filter(scan_type=filters.scan_type)
    if filters.severities:
        # The rank, not the name: it is what the (repository, rank, id) index holds.
        queryset = queryset.filter(severity_rank__in=[SEVERITY_RANK[s] for s in filters.severities])
    if filters.min_severity is not None:
        queryset = queryset.filter(severity_rank__lte=SEVERITY_RANK[filters.min_severity])
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


def findings_for_sarif(filters: FindingFilters) -> Iterator[dict[str, Any]]:
    """The selection as findings.sarif.sarif_log reads it: by scan type, then id, fetched in
    chunks (a server-side cursor on PostgreSQL), with the scanner's rule of SARIF uploads."""
    queryset = (
        findings_filtered(filters)
        .order_by("scan_type", "id")
        .annotate(sarif_rule=KT("raw__sarif__rule"), sarif_rule_id=KT("raw__sarif__ruleId"))
        .values(*SARIF_ROW_FIELDS)
    )
    rows: Iterator[dict[str, Any]] = queryset.iterator(chunk_size=2000)
    return rows


def scanner_rules(digests: list[str]) -> dict[str, Any]:
    """Stored rules (findings.models.ScannerRule) by digest: each as the scanner sent it."""
    rows = ScannerRule.objects.filter(digest__in=digests).values_list("digest", "data")
    return {digest: msgspec.json.decode(data) for digest, data in rows}


def scanner_data_of(finding: Finding) -> dict[str, Any]:
    """What the scanner sent for the finding; for a SARIF result, with its rule in full."""
    data = finding.scanner_data
    sarif = data.get("sarif")
    if isinstance(sarif, dict) and isinstance(sarif.get("rule"), str):
        rule = ScannerRule.objects.filter(digest=sarif["rule"]).values_list("data", flat=True)
        text = rule.first()
        descriptor = None if text is None else msgspec.json.decode(text)
        data = {**data, "sarif": {**sarif, "rule": descriptor}}
    return data


# --- staff pages ------------------------------------------------------------------------------

STAFF_PAGE_SIZE = 50
COUNT_CAP = 10_000


@dataclass(frozen=True)
class RepositoryCounts:
    repository_name: str
    counts: dict[str, int]  # severity -> open findings, most severe first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def open_findings_by_repository() -> tuple[list[RepositoryCounts], dict[str, int]]:
    """Open (active, untriaged) findings per repository and severity, most open first, and the
    totals per severity. One grouped query over the finding_open_idx partial index."""
    open_q = Finding.objects.filter(active=True, false_positive=False, risk_accepted=False)
    grouped = open_q.values("repository_name", "severity").annotate(n=Count("id"))
    per_repository: dict[str, dict[str, int]] = {}
    totals = dict.fromkeys(SEVERITY_ORDER, 0)
    for row in grouped:
        counts = per_repository.setdefault(row["repository_name"], dict.fromkeys(SEVERITY_ORDER, 0))
        counts[row["severity"]] += row["n"]
        totals[row["severity"]] += row["n"]
    rows = [RepositoryCounts(name, counts) for name, counts in per_repository.items()]
    rows.sort(key=lambda r: (-r.total, r.repository_name))
    return rows, totals


@dataclass(frozen=True)
class KnownRepositories:
    matching: int
    total: int
    first: list[str]  # the first few matching names, alphabetically


def known_repositories(patterns: tuple[str, ...], *, first: int = 20) -> KnownRepositories:
    """Of the repositories with findings (the streams table: one row per stream), those that
    `patterns` reach, counted, with the first few named: what an API key may touch today."""
    names = Stream.objects.values_list("repository_name", flat=True).distinct().order_by()
    matching = names.filter(repository_scope_q(patterns))
    return KnownRepositories(
        matching=matching.count(),
        total=names.count(),
        first=list(matching.order_by("repository_name")[:first]),
    )


def recent_uploads(limit: int = 10) -> list[Upload]:
    return list(Upload.objects.order_by("-received_at", "-id")[:limit])


MENU_LIMIT = 500


def stream_choices() -> dict[str, list[str]]:
    """Repositories and branches for the filter menus, from the streams table: those of the
    MENU_LIMIT most recently uploaded streams (feature branches come and go; any other value
    still works when typed into the URL or followed from a link)."""
    pairs = list(
        Stream.objects.order_by("-head_at").values_list("repository_name", "branch_name")[
            :MENU_LIMIT
        ]
    )
    return {
        "repositories": sorted({r for r, _ in pairs}),
        "branches": sorted({b for _, b in pairs}),
    }


class Sort(models.TextChoices):
    SEVERITY = "severity", "Most severe first"
    NEWEST = "newest", "Newest first"
    OLDEST = "oldest", "Oldest first"


# (order_by, keyset condition after a row, keyset condition before a row) per sort. Every
# order ends in id, so it is total and stable, and each has an index behind it.
def _keyset(sort: str, values: list[int], forward: bool) -> Q:
    if sort == Sort.SEVERITY:
        rank, pk = values
        if forward:
            return Q(severity_rank__gt=rank) | Q(severity_rank=rank, id__lt=pk)
        return Q(severity_rank__lt=rank) | Q(severity_rank=rank, id__gt=pk)
    (pk,) = values
    newer = sort == Sort.NEWEST
    return Q(id__lt=pk) if newer == forward else Q(id__gt=pk)


_ORDER = {
    Sort.SEVERITY: (["severity_rank", "-id"], ["-severity_rank", "id"]),
    Sort.NEWEST: (["-id"], ["id"]),
    Sort.OLDEST: (["id"], ["-id"]),
}


def _cursor_values(sort: str, finding: Finding) -> list[int]:
    return [finding.severity_rank, finding.pk] if sort == Sort.SEVERITY else [finding.pk]


@dataclass
class StaffPage:
    findings: list[Finding]
    next_cursor: list[int] | None
    previous_cursor: list[int] | None
    count: int | None  # None when searching: counting would scan the table a second time
    count_capped: bool


def search_q(text: str) -> Q:
    """Free text over title, file path, component, CVE and the scanner's id."""
    return (
        Q(title__icontains=text)
        | Q(file_path__icontains=text)
        | Q(component_name__icontains=text)
        | Q(cve__icontains=text)
        | Q(finding_id__icontains=text)
    )


def staff_findings_page(
    filters: FindingFilters,
    *,
    search: str = "",
    sort: str = Sort.SEVERITY,
    cursor: list[int] | None = None,
    backwards: bool = False,
    page_size: int = STAFF_PAGE_SIZE,
) -> StaffPage:
    """One keyset page: its cost does not grow with the page number, whatever the table size.
    Two queries: the page (with last sightings) and a count capped at COUNT_CAP (none when
    searching: a substring search scans what the other filters leave, once is enough)."""
    queryset = findings_filtered(filters)
    if search:
        queryset = queryset.filter(search_q(search))
    forward_order, backward_order = _ORDER[Sort(sort)]
    page_qs = queryset
    if cursor is not None:
        page_qs = page_qs.filter(_keyset(sort, cursor, forward=not backwards))
    page_qs = page_qs.order_by(*(backward_order if backwards else forward_order))
    rows = list(with_last_seen(page_qs)[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_previous = (cursor is not None) if not backwards else more
    count = None if search else queryset.order_by()[: COUNT_CAP + 1].count()
    return StaffPage(
        findings=rows,
        next_cursor=_cursor_values(sort, rows[-1]) if rows and has_next else None,
        previous_cursor=_cursor_values(sort, rows[0]) if rows and has_previous else None,
        count=None if count is None else min(count, COUNT_CAP),
        count_capped=count is not None and count > COUNT_CAP,
    )


def finding_with_history(pk: int) -> tuple[Finding, list[FindingEvent]] | None:
    finding = with_last_seen(Finding.objects.select_related("triaged_by")).filter(pk=pk).first()
    if finding is None:
        return None
    events = list(
        FindingEvent.objects.filter(finding=finding)
        .select_related("actor", "upload")
        .order_by("at", "id")
    )
    return finding, events
