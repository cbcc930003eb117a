"""The set-based write of one upload: staging table, merge on the identity, lifecycle.

Runs inside the caller's transaction, after the caller took the stream's lock, so what is
read before the writes is exactly what they change. PostgreSQL loads the staging table with
COPY; the embedded SQLite run uses executemany and otherwise the same statements.

What one upload does to its stream (repository, branch, scan type):
- a finding it reports for the first time is inserted;
- a finding it reports again is rewritten only if its content or state changed; an unchanged
  active finding is not touched at all: it is last seen in the stream's latest upload
  (findings.models.Stream), which is how re-uploading the same scan stays cheap;
- a finding that was active and is absent becomes mitigated in this build, and its last
  sighting is frozen at the previous upload (the last one that reported it);
- a finding that was mitigated and is reported again is reactivated;
- staff triage (false positive, risk accepted) is in no statement here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from findings.normalize import Row

# The staging columns, in the order of findings.normalize.Row.
STAGING_COLUMNS = [
    ("finding_id", "text"),
    ("title", "text"),
    ("severity", "text"),
    ("severity_rank", "smallint"),
    ("file_path", "text"),
    ("line_number", "integer"),
    ("creation_date", "timestamptz"),
    ("last_update_date", "timestamptz"),
    ("description", "text"),
    ("mitigation", "text"),
    ("security_scope", "text"),
    ("component_name", "text"),
    ("component_version", "text"),
    ("component_fix", "text"),
    ("cwe", "jsonb"),
    ("cve", "jsonb"),
    ("raw", "jsonb"),
    ("content_hash", "text"),
    ("seen_active", "boolean"),
]
# Scanner-owned columns: refreshed whenever an upload rewrites the finding.
_CONTENT = [name for name, _ in STAGING_COLUMNS if name not in ("finding_id", "seen_active")]
# The columns of a new finding, in the order both writers give them: the INSERT ... SELECT of
# a merge and the straight COPY of a new stream.
_NEW_ROW_COLUMNS = [
    "repository_name",
    "branch_name",
    "scan_type",
    "finding_id",
    *_CONTENT,
    "active",
    "mitigated",
    "mitigated_at",
    "mitigated_on_build_id",
    "mitigated_in_upload_id",
    "false_positive",
    "risk_accepted",
    "triage_reason",
    "first_seen_at",
    "first_seen_upload_id",
    "first_seen_build_id",
    "last_seen_at",
    "last_seen_upload_id",
    "last_seen_build_id",
]
_STAGING = "gerion_finding_staging"
_PREVIOUS = "gerion_finding_previous"
_STREAM = "repository_name = %(repo)s AND branch_name = %(branch)s AND scan_type = %(scan_type)s"


@dataclass(frozen=True)
class UploadContext:
    upload_id: int
    repository_name: str
    branch_name: str
    scan_type: str
    build_id: str | None
    now: datetime
    # The stream's latest upload before this one, if any.
    previous_upload_id: int | None
    previous_at: datetime | None
    previous_build_id: str | None


@dataclass(frozen=True)
class MergeCounts:
    created: int
    updated: int
    reactivated: int
    mitigated: int


def merge_upload(
    connection: BaseDatabaseWrapper, context: UploadContext, rows: list[Row]
) -> MergeCounts:
    is_postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    params: dict[str, Any] = {
        "repo": context.repository_name,
        "branch": context.branch_name,
        "scan_type": context.scan_type,
        "upload": context.upload_id,
        "build": context.build_id,
        "now": adapt(context.now),
        "previous_upload": context.previous_upload_id,
        "previous_at": adapt(context.previous_at) if context.previous_at else None,
        "previous_build": context.previous_build_id,
        "false": False if is_postgres else 0,
    }
    with connection.cursor() as cursor:
        if is_postgres and _stream_is_empty(cursor, params):
            # A new stream: nothing to merge with, so the rows go straight into the table,
            # as fast as PostgreSQL can take them. (The caller holds the stream's lock: no
            # other upload can add to it meanwhile; the identity constraint still guards.)
            _copy_into_new_stream(cursor, context, rows)
            return MergeCounts(created=len(rows), updated=0, reactivated=0, mitigated=0)
        _create_staging(cursor, is_postgres)
        _load_staging(cursor, connection, rows, is_postgres)

        # What each reported finding was before this upload (identity index lookups).
        cursor.execute(
            f"CREATE TEMP TABLE {_PREVIOUS} AS "
            "SELECT s.finding_id, s.seen_active, f.id AS existing_id, f.active AS was_active, "
            "f.content_hash = s.content_hash AS same_content "
            f"FROM {_STAGING} s LEFT JOIN findings_finding f "
            "ON f.repository_name = %(repo)s AND f.branch_name = %(branch)s "
            "AND f.scan_type = %(scan_type)s AND f.finding_id = s.finding_id",
            params,
        )
        cursor.execute(
            "SELECT "
            "COALESCE(SUM(CASE WHEN existing_id IS NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN existing_id IS NOT NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN existing_id IS NOT NULL AND NOT was_active AND seen_active "
            "THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN existing_id IS NOT NULL AND was_active AND NOT seen_active "
            "THEN 1 ELSE 0 END), 0) "
            f"FROM {_PREVIOUS}"
        )
        created, updated, reactivated, reported_fixed = (int(v) for v in cursor.fetchone())
        if is_postgres:
            cursor.execute(f"ANALYZE {_PREVIOUS}")
        else:
            # SQLite has no hash joins: without these, the joins below are quadratic.
            cursor.execute(f"CREATE INDEX {_STAGING}_id ON {_STAGING} (finding_id)")
            cursor.execute(f"CREATE INDEX {_PREVIOUS}_id ON {_PREVIOUS} (finding_id)")

        # First, before anything is inserted or reactivated: what was open and is not reported.
        gone = _mitigate_absent(cursor, params, is_postgres)
        if created:
            cursor.execute(
                f"INSERT INTO findings_finding ({', '.join(_NEW_ROW_COLUMNS)}) "
                "SELECT %(repo)s, %(branch)s, %(scan_type)s, s.finding_id, "
                + ", ".join(f"s.{c}" for c in _CONTENT)
                + ", s.seen_active, NOT s.seen_active, "
                "CASE WHEN s.seen_active THEN NULL ELSE %(now)s END, "
                "CASE WHEN s.seen_active THEN NULL ELSE %(build)s END, "
                "CASE WHEN s.seen_active THEN NULL ELSE %(upload)s END, "
                "%(false)s, %(false)s, '', "
                "%(now)s, %(upload)s, %(build)s, %(now)s, %(upload)s, %(build)s "
                f"FROM {_STAGING} s WHERE NOT EXISTS (SELECT 1 FROM {_PREVIOUS} p "
                "WHERE p.finding_id = s.finding_id AND p.existing_id IS NOT NULL)",
                params,
            )
        if updated:
            # Only what changed. Triage columns are staff's: not in this statement.
            assignments = ", ".join(f"{c} = s.{c}" for c in _CONTENT)
            cursor.execute(
                f"UPDATE findings_finding SET {assignments}, "
                "active = s.seen_active, mitigated = NOT s.seen_active, "
                # Already mitigated and still reported fixed: keep the build that mitigated it.
                "mitigated_at = CASE WHEN s.seen_active THEN NULL "
                "WHEN p.was_active THEN %(now)s ELSE findings_finding.mitigated_at END, "
                "mitigated_on_build_id = CASE WHEN s.seen_active THEN NULL "
                "WHEN p.was_active THEN %(build)s ELSE findings_finding.mitigated_on_build_id END, "
                "mitigated_in_upload_id = CASE WHEN s.seen_active THEN NULL "
                "WHEN p.was_active THEN %(upload)s ELSE findings_finding.mitigated_in_upload_id "
                "END, last_seen_at = %(now)s, last_seen_upload_id = %(upload)s, "
                "last_seen_build_id = %(build)s "
                f"FROM {_STAGING} s, {_PREVIOUS} p "
                "WHERE p.finding_id = s.finding_id AND findings_finding.id = p.existing_id "
                "AND NOT (p.was_active AND s.seen_active AND p.same_content)",
                params,
            )
            # The history: findings this upload brought back, or that the scanner reports fixed.
            cursor.execute(
                "INSERT INTO findings_findingevent (finding_id, kind, at, upload_id, build_id, "
                "reason) SELECT existing_id, CASE WHEN seen_active THEN 'reactivated' "
                f"ELSE 'mitigated' END, %(now)s, %(upload)s, %(build)s, '' FROM {_PREVIOUS} "
                "WHERE existing_id IS NOT NULL AND was_active <> seen_active",
                params,
            )
        cursor.execute(f"DROP TABLE {_PREVIOUS}")
        cursor.execute(f"DROP TABLE {_STAGING}")
    return MergeCounts(
        created=created, updated=updated, reactivated=reactivated, mitigated=gone + reported_fixed
    )


def _mitigate_absent(cursor: CursorWrapper, params: dict[str, Any], is_postgres: bool) -> int:
    """Open findings of the stream that this upload does not report become mitigated in this
    build; they were last seen in the previous upload. (An empty scan mitigates them all.)
    Runs before this upload inserts or reactivates anything: "open" means open until now."""
    # A set difference (hashed or sorted, both linear), not NOT EXISTS: right after a large
    # first upload, statistics that autovacuum has not refreshed make the stream look empty,
    # and the nested-loop anti-join the planner then picked for NOT EXISTS ran for hours over
    # 100,000 rows. The `id IN (...)` around it is a semi-join on the primary key, cheap
    # however it is planned.
    absent = (
        f"id IN (SELECT id FROM findings_finding WHERE {_STREAM} AND active "
        f"EXCEPT SELECT existing_id FROM {_PREVIOUS} WHERE existing_id IS NOT NULL)"
    )
    update = (
        "UPDATE findings_finding SET active = %(false)s, mitigated = NOT %(false)s, "
        "mitigated_at = %(now)s, mitigated_on_build_id = %(build)s, "
        "mitigated_in_upload_id = %(upload)s, last_seen_at = %(previous_at)s, "
        "last_seen_upload_id = %(previous_upload)s, last_seen_build_id = %(previous_build)s "
        f"WHERE {absent}"
    )
    event = (
        "INSERT INTO findings_findingevent (finding_id, kind, at, upload_id, build_id, reason) "
        "SELECT id, 'mitigated', %(now)s, %(upload)s, %(build)s, '' FROM "
    )
    if params["previous_upload"] is None:
        return 0  # the stream's first upload: nothing was open
    if is_postgres:
        # One pass over the stream: update, and write the history from what was updated.
        cursor.execute(
            f"WITH gone AS ({update} RETURNING id), "
            f"history AS ({event} gone) SELECT count(*) FROM gone",
            params,
        )
        return int(cursor.fetchone()[0])
    cursor.execute(f"{event} findings_finding WHERE {absent}", params)
    cursor.execute(update, params)
    return int(cursor.rowcount)


def _stream_is_empty(cursor: CursorWrapper, params: dict[str, Any]) -> bool:
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM findings_finding WHERE {_STREAM})", params)
    return not cursor.fetchone()[0]


def _copy_into_new_stream(cursor: CursorWrapper, context: UploadContext, rows: list[Row]) -> None:
    stream = (context.repository_name, context.branch_name, context.scan_type)
    seen = (context.now, context.upload_id, context.build_id)
    fixed = (context.now, context.build_id, context.upload_id)
    untriaged = (False, False, "")
    names = ", ".join(_NEW_ROW_COLUMNS)
    with cursor.copy(f"COPY findings_finding ({names}) FROM STDIN") as copy:
        for row in rows:
            active = row[-1]
            copy.write_row(
                (
                    *stream,
                    *row[:-1],
                    active,
                    not active,
                    *((None, None, None) if active else fixed),
                    *untriaged,
                    *seen,
                    *seen,
                )
            )


def _create_staging(cursor: CursorWrapper, is_postgres: bool) -> None:
    if is_postgres:
        columns = ", ".join(f"{name} {kind}" for name, kind in STAGING_COLUMNS)
        cursor.execute(f"CREATE TEMP TABLE {_STAGING} ({columns}) ON COMMIT DROP")
    else:
        columns = ", ".join(name for name, _ in STAGING_COLUMNS)
        cursor.execute(f"CREATE TEMP TABLE {_STAGING} ({columns})")


def _load_staging(
    cursor: CursorWrapper, connection: BaseDatabaseWrapper, rows: list[Row], is_postgres: bool
) -> None:
    names = ", ".join(name for name, _ in STAGING_COLUMNS)
    if is_postgres:
        with cursor.copy(f"COPY {_STAGING} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        # Without statistics the planner takes a temp table for tiny and may pick a nested
        # loop over 100,000 rows; the join column's statistics are enough and cheap.
        cursor.execute(f"ANALYZE {_STAGING} (finding_id)")
        return
    # SQLite stores date-times as text in Django's format; adapt them as the ORM would.
    adapt = connection.ops.adapt_datetimefield_value
    dates = {i for i, (_, kind) in enumerate(STAGING_COLUMNS) if kind == "timestamptz"}
    placeholders = ", ".join(["%s"] * len(STAGING_COLUMNS))
    cursor.executemany(
        f"INSERT INTO {_STAGING} ({names}) VALUES ({placeholders})",
        [
            tuple(adapt(v) if i in dates and v is not None else v for i, v in enumerate(row))
            for row in rows
        ],
    )
