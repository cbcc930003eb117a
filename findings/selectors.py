"""Reads of findings for the API and the staff pages."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models
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
    Sum,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.lookups import Lookup
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from apikeys.repositories import allows_all, like_pattern, sqlite_glob_pattern
from findings.models import (
    SEVERITY_ORDER,
    SEVERITY_RANK,
    Finding,
    FindingComment,
    FindingDay,
    FindingEvent,
    OpenFindingCount,
    ScannerRule,
    Status,
    Stream,
    Upload,
    decode_lenient,
    finding_status,
)
from findings.rules import rules_catch_up
from findings.sarif import ROW_FIELDS as SARIF_ROW_FIELDS
from findings.search import search_q

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
    # Staff pages: findings assigned to this user; open findings past their SLA.
    assignee_id: int | None = None
    overdue: bool = False


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
        # "Active" as the status says it: still reported and not triaged away (the CLI's
        # `report` hides false positives and accepted risks in its active-only default).
        queryset = queryset.filter(status_q(Status.ACTIVE))
    if filters.status is not None:
        queryset = queryset.filter(status_q(filters.status))
    if filters.assignee_id is not None:
        queryset = queryset.filter(assignee_id=filters.assignee_id)
    if filters.overdue:
        queryset = queryset.filter(status_q(Status.ACTIVE) & overdue_q(timezone.now().date()))
    return queryset


def overdue_q(today: date) -> Q:
    """Findings first seen before their severity's SLA window: first seen on a day more than
    SLA days before `today` (UTC). Open or not: combine with the status."""
    condition = Q(pk__in=[])
    for severity, days in settings.GERION_SLA_DAYS.items():
        if severity in SEVERITY_RANK:
            cutoff = datetime.combine(today - timedelta(days=days), time.min, tzinfo=UTC)
            condition |= Q(severity_rank=SEVERITY_RANK[severity], first_seen_at__lt=cutoff)
    return condition


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
        .annotate(
            sarif_rule=KT("raw__sarif__rule"),
            sarif_rule_id=KT("raw__sarif__ruleId"),
            sarif_message=KT("raw__sarif__result__message__text"),
        )
        .values(*SARIF_ROW_FIELDS)
    )
    rows: Iterator[dict[str, Any]] = queryset.iterator(chunk_size=2000)
    return rows


def scanner_rules(digests: list[str]) -> dict[str, Any]:
    """Stored rules (findings.models.ScannerRule) by digest: each as the scanner sent it.
    A rule not found may wait in a pack of its upload: packs are turned into rules first
    (findings.rules.rules_catch_up), and it is looked for again."""
    found = _rule_texts(digests)
    if len(found) < len(set(digests)):
        rules_catch_up()  # (which may find that another process stored them meanwhile)
        found.update(_rule_texts([d for d in digests if d not in found]))
    # (A number no float holds, a security-severity of 1e400 the upload warned of: as text.)
    return {digest: decode_lenient(data) for digest, data in found.items()}


def _rule_texts(digests: list[str]) -> dict[str, str]:
    return dict(ScannerRule.objects.filter(digest__in=digests).values_list("digest", "data"))


def scanner_data_of(finding: Finding) -> dict[str, Any]:
    """What the scanner sent for the finding; for a SARIF result, with its rule in full."""
    data = finding.scanner_data
    sarif = data.get("sarif")
    if isinstance(sarif, dict) and isinstance(sarif.get("rule"), str):
        descriptor = scanner_rules([sarif["rule"]]).get(sarif["rule"])
        data = {**data, "sarif": {**sarif, "rule": descriptor}}
    return data


R = TypeVar("R")

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


def _summary_overdue_q(today: date) -> Q:
    """OpenFindingCount rows of findings past their severity's SLA on `today`."""
    late = Q(pk__in=[])
    for severity, days in settings.GERION_SLA_DAYS.items():
        late |= Q(severity=severity, first_seen_on__lt=today - timedelta(days=days))
    return late


def open_findings_by_repository(
    today: date | None = None,
) -> tuple[list[RepositoryCounts], dict[str, int], dict[str, int]]:
    """Open (active, untriaged) findings per repository and severity, most open first, the
    totals per severity and the overdue ones per severity. One grouped query over the
    summary table (findings.summary), whatever the number of findings."""
    today = today or timezone.now().date()
    overdue = _summary_overdue_q(today)
    grouped = (
        OpenFindingCount.objects.values("repository_name", "severity")
        .annotate(n=Sum("count"), late=Sum("count", filter=overdue, default=0))
        .filter(n__gt=0)
        .order_by()
    )
    per_repository: dict[str, dict[str, int]] = {}
    totals = dict.fromkeys(SEVERITY_ORDER, 0)
    late = dict.fromkeys(SEVERITY_ORDER, 0)
    for row in grouped:
        counts = per_repository.setdefault(row["repository_name"], dict.fromkeys(SEVERITY_ORDER, 0))
        counts[row["severity"]] += row["n"]
        totals[row["severity"]] += row["n"]
        late[row["severity"]] += row["late"]
    rows = [RepositoryCounts(name, counts) for name, counts in per_repository.items()]
    rows.sort(key=lambda r: (-r.total, r.repository_name))
    return rows, totals, late


@dataclass(frozen=True)
class TrendPoint:
    start: date
    end: date  # inclusive
    opened: int
    fixed: int


@dataclass(frozen=True)
class Trends:
    days: int
    bucket_days: int  # 1: a point a day; 7: a week
    points: list[TrendPoint]
    mean_days_to_fix: dict[str, float | None]  # severity -> days, most severe first
    fixed_by_severity: dict[str, int]


def finding_trends(days: int, today: date | None = None) -> Trends:
    """Findings opened (first seen or reactivated) and fixed (mitigated by a scan) per day,
    or per week past 30 days, over the last `days` days up to today, and the mean time from
    first seen to fixed per severity over the same days: the status history summed by day
    (findings.models.FindingDay)."""
    today = today or timezone.now().date()
    start = today - timedelta(days=days - 1)
    bucket = 1 if days <= 31 else 7
    rows = FindingDay.objects.filter(day__gte=start, day__lte=today).values_list(
        "day", "severity", "opened", "fixed", "fix_seconds"
    )
    opened = [0] * ((days + bucket - 1) // bucket)
    fixed = [0] * len(opened)
    fix_seconds = dict.fromkeys(SEVERITY_ORDER, 0)
    fixed_by_severity = dict.fromkeys(SEVERITY_ORDER, 0)
    for day, severity, day_opened, day_fixed, seconds in rows:
        # Buckets end today: the last one is always complete up to now.
        index = len(opened) - 1 - (today - day).days // bucket
        if index >= 0:
            opened[index] += day_opened
            fixed[index] += day_fixed
        fix_seconds[severity] = fix_seconds.get(severity, 0) + seconds
        fixed_by_severity[severity] = fixed_by_severity.get(severity, 0) + day_fixed
    points = []
    for index in range(len(opened)):
        end = today - timedelta(days=(len(opened) - 1 - index) * bucket)
        points.append(
            TrendPoint(
                max(start, end - timedelta(days=bucket - 1)), end, opened[index], fixed[index]
            )
        )
    mean = {
        severity: (fix_seconds[severity] / fixed_by_severity[severity] / 86400)
        if fixed_by_severity[severity]
        else None
        for severity in SEVERITY_ORDER
    }
    return Trends(days, bucket, points, mean, fixed_by_severity)


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
    # Ids are handed out as findings are first stored, so id order is first-seen order: the
    # age sort rides on the primary key, with no index on first_seen_at to pay at insert.
    OLDEST = "oldest", "Oldest first (age)"


# (order_by, keyset condition after a row, keyset condition before a row) per sort. Every
# order ends in id, so it is total and stable, and each has an index behind it.
def _keyset_slice(
    queryset: QuerySet[Finding],
    sort: str,
    cursor: list[int] | None,
    *,
    backwards: bool,
    limit: int,
    fetch: Callable[[QuerySet[Finding], int], list[R]],
) -> list[R]:
    """Up to `limit` rows after (or before) the cursor, in the sort's order. Each query is a
    range of one index: in the severity order, the rest of the cursor's severity, then the
    severities past it. (One OR of the two would be a filter over the index read from its
    start: the 200th page would read 10,000 entries to skip them.)"""
    forward_order, backward_order = _ORDER[Sort(sort)]
    order = backward_order if backwards else forward_order
    if cursor is None:
        return fetch(queryset.order_by(*order), limit)
    if sort != Sort.SEVERITY:
        (pk,) = cursor
        newer = (sort == Sort.NEWEST) != backwards
        return fetch(
            queryset.filter(Q(id__lt=pk) if newer else Q(id__gt=pk)).order_by(*order), limit
        )
    rank, pk = cursor
    within = Q(id__gt=pk) if backwards else Q(id__lt=pk)
    rows = fetch(queryset.filter(within, severity_rank=rank).order_by(*order), limit)
    if len(rows) < limit:
        past = Q(severity_rank__lt=rank) if backwards else Q(severity_rank__gt=rank)
        rows += fetch(queryset.filter(past).order_by(*order), limit - len(rows))
    return rows


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
    queryset = staff_selection(filters, search=search)
    counted = None if search else open_count_from_summary(filters)
    if counted == 0:
        return StaffPage([], None, None, 0, False)
    rows = _keyset_slice(
        queryset,
        sort,
        cursor,
        backwards=backwards,
        limit=page_size + 1,
        fetch=lambda qs, n: list(with_last_seen(qs.select_related("assignee"))[:n]),
    )
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_previous = (cursor is not None) if not backwards else more
    if counted is not None:
        count: int | None = counted
    else:
        count = None if search else queryset.order_by()[: COUNT_CAP + 1].count()
    return StaffPage(
        findings=rows,
        next_cursor=_cursor_values(sort, rows[-1]) if rows and has_next else None,
        previous_cursor=_cursor_values(sort, rows[0]) if rows and has_previous else None,
        count=None if count is None else min(count, COUNT_CAP),
        count_capped=count is not None and count > COUNT_CAP,
    )


def open_count_from_summary(filters: FindingFilters) -> int | None:
    """The number of open findings the filters select, from the dashboard's summary, when
    they filter on nothing it does not hold (repository, severity, overdue); else None.
    Exact where a capped count would have to read every row to find few (overdue ones)."""
    if filters.status != Status.ACTIVE or (
        filters.branch_name
        or filters.scan_type
        or filters.min_severity
        or filters.assignee_id is not None
    ):
        return None
    rows = OpenFindingCount.objects.all()
    if filters.repository_name is not None:
        rows = rows.filter(repository_name=filters.repository_name)
    if filters.severities:
        rows = rows.filter(severity__in=filters.severities)
    if filters.overdue:
        rows = rows.filter(_summary_overdue_q(timezone.now().date()))
    return int(rows.aggregate(n=Sum("count", default=0))["n"])


def staff_selection(filters: FindingFilters, *, search: str = "") -> QuerySet[Finding]:
    """What the list's filters and search select: the list's rows, its bulk triage's "all
    matching" and its exports are all this."""
    queryset = findings_filtered(filters)
    if search:
        queryset = queryset.filter(search_q(search))
    return queryset


def staff_selection_ids(filters: FindingFilters, *, search: str = "", limit: int) -> list[int]:
    """The ids of the selection, at most `limit` + 1 of them (one more says "too many")."""
    return list(
        staff_selection(filters, search=search)
        .order_by("id")
        .values_list("id", flat=True)[: limit + 1]
    )


EXPORT_BATCH = 2_000
# The API's identity and content fields (its first 9, and component to CVE), then triage.
EXPORT_FIELDS = [
    *API_FIELDS[:9],
    *API_FIELDS[API_FIELDS.index("component_name") : API_FIELDS.index("cve") + 1],
    "active",
    "false_positive",
    "risk_accepted",
    "risk_accepted_until",
    "triage_reason",
    "first_seen_at",
    "first_seen_build_id",
    "mitigated_at",
    "mitigated_on_build_id",
]


def staff_export_rows(
    filters: FindingFilters, *, search: str = "", sort: str = Sort.SEVERITY
) -> Iterator[dict[str, Any]]:
    """Every finding of the selection in the list's order, as plain values (status, last
    sighting, assignee, age and SLA added), read in keyset batches: no OFFSET, and memory
    that does not grow with the size of the export."""
    queryset = staff_selection(filters, search=search)
    names = [*EXPORT_FIELDS, "severity_rank", "seen_at", "seen_build_id", "assignee__username"]
    cursor: list[int] | None = None
    today = timezone.now().date()

    def fetch(selection: QuerySet[Finding], limit: int) -> list[dict[str, Any]]:
        return list(with_last_seen(selection).values(*names)[:limit])

    while True:
        batch = _keyset_slice(
            queryset, sort, cursor, backwards=False, limit=EXPORT_BATCH, fetch=fetch
        )
        for row in batch:
            yield _export_row(row, today)
        if len(batch) < EXPORT_BATCH:
            return
        last = batch[-1]
        cursor = [last["severity_rank"], last["id"]] if sort == Sort.SEVERITY else [last["id"]]


def _export_row(row: dict[str, Any], today: date) -> dict[str, Any]:
    status = finding_status(
        active=row["active"],
        false_positive=row["false_positive"],
        risk_accepted=row["risk_accepted"],
    )
    first_day = row["first_seen_at"].astimezone(UTC).date()
    sla = settings.GERION_SLA_DAYS.get(row["severity"])
    age = (today - first_day).days
    out = {name: row[name] for name in EXPORT_FIELDS[:14]}
    out.update(
        status=status,
        assignee=row["assignee__username"] or "",
        age_days=age,
        sla_due=(first_day + timedelta(days=sla)) if sla is not None else None,
        overdue=status == Status.ACTIVE and sla is not None and age > sla,
        risk_accepted_until=row["risk_accepted_until"],
        triage_reason=row["triage_reason"],
        first_seen_at=row["first_seen_at"],
        first_seen_build_id=row["first_seen_build_id"],
        last_seen_at=row["seen_at"],
        last_seen_build_id=row["seen_build_id"],
        mitigated_at=row["mitigated_at"],
        mitigated_on_build_id=row["mitigated_on_build_id"],
    )
    return out


# The columns of an export, in order (staff_export_rows' keys).
EXPORT_COLUMNS = [
    *EXPORT_FIELDS[:14],
    "status",
    "assignee",
    "age_days",
    "sla_due",
    "overdue",
    "risk_accepted_until",
    "triage_reason",
    "first_seen_at",
    "first_seen_build_id",
    "last_seen_at",
    "last_seen_build_id",
    "mitigated_at",
    "mitigated_on_build_id",
]


@dataclass(frozen=True)
class FindingPage:
    finding: Finding
    events: list[FindingEvent]
    comments: list[FindingComment]
    first_upload: Upload | None
    last_upload: Upload | None
    same_cve: list[tuple[str, str, int]]  # (cve, repository, open findings), other repos


SAME_CVE_LIMIT = 20


def finding_with_history(pk: int) -> FindingPage | None:
    finding = (
        with_last_seen(Finding.objects.select_related("triaged_by", "assignee"))
        .filter(pk=pk)
        .first()
    )
    if finding is None:
        return None
    events = list(
        FindingEvent.objects.filter(finding=finding)
        .select_related("actor", "upload", "assignee")
        .order_by("at", "id")
    )
    comments = list(
        FindingComment.objects.filter(finding=finding).select_related("author").order_by("at", "id")
    )
    uploads = Upload.objects.in_bulk(
        [pk for pk in (finding.first_seen_upload_id, finding.seen_upload_id) if pk]  # type: ignore[attr-defined]
    )
    return FindingPage(
        finding=finding,
        events=events,
        comments=comments,
        first_upload=uploads.get(finding.first_seen_upload_id),
        last_upload=uploads.get(finding.seen_upload_id),  # type: ignore[attr-defined]
        same_cve=same_cve_elsewhere(finding),
    )


def same_cve_elsewhere(finding: Finding) -> list[tuple[str, str, int]]:
    """For each CVE of the finding, the other repositories that have it, with how many
    findings there (through the search index: the words of the id, then the exact id)."""
    found: list[tuple[str, str, int]] = []
    cves = (
        [c for c in finding.cve if isinstance(c, str)][:5] if isinstance(finding.cve, list) else []
    )
    for cve in cves:
        exact = Q(cve__contains=[cve]) if connection.vendor == "postgresql" else Q()
        rows = (
            Finding.objects.filter(search_q(cve), exact)
            .exclude(repository_name=finding.repository_name)
            .values("repository_name")
            .annotate(n=Count("id"))
            .order_by("-n", "repository_name")[:SAME_CVE_LIMIT]
        )
        found.extend((cve, row["repository_name"], row["n"]) for row in rows)
    return found
