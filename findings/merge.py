"""The one write path of an upload: compare with what its stream holds, write only what
changed, and keep the lifecycle.

Runs inside the caller's transaction, after the caller took the stream's lock, so what is
read first is exactly what the writes change. The comparison is made here, in Python, from one
narrow read of the stream (finding_id, id, content digest, active); then
- a finding reported for the first time is inserted (PostgreSQL: binary COPY straight into
  the table);
- a finding reported again is rewritten only if what it says or its state changed; an
  unchanged active finding is not touched at all: it is last seen in the stream's latest
  upload (findings.models.Stream). A new `creation_date`, `last_update_date` or build alone
  is not a change (they are not in the digest), and a rewrite keeps the first
  `creation_date`: it is when the finding was first reported;
- a finding that was active and is absent becomes mitigated in this build, and its last
  sighting is frozen at the previous upload (the last one that reported it);
- a finding that was mitigated and is reported again is reactivated;
- staff triage (false positive, risk accepted) is in no statement here;
- the dashboard's figures (findings.summary) follow, from what these statements did: counted
  while new rows stream by, returned by the mitigation, read with the rewrite's join.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from psycopg.adapt import PyFormat

from findings.normalize import (
    JSONB_VERSION,
    ROW_CONTENT_HASH,
    ROW_FINDING_ID,
    ROW_SEEN_ACTIVE,
    ROW_SEVERITY,
    Row,
)
from findings.summary import SummaryDelta, as_date, day_sql, seconds_between_sql

# The columns of a Row (findings.normalize.Row), in order, with their PostgreSQL types.
ROW_COLUMNS = [
    ("finding_id", "text"),
    ("title", "text"),
    ("severity", "text"),
    ("severity_rank", "int2"),
    ("file_path", "text"),
    ("line_number", "int4"),
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
    ("raw", "json"),
    ("raw_elided", "int4"),
    ("content_hash", "int8"),
    ("seen_active", "bool"),
]
# Scanner-owned columns, rewritten when a finding changed (creation_date is not: it is when
# the finding was first reported).
_CONTENT = [
    name for name, _ in ROW_COLUMNS if name not in ("finding_id", "seen_active", "creation_date")
]
# A new finding: the Row without seen_active, then the stream, lifecycle and sightings.
_NEW_COLUMNS = [
    *((name, kind) for name, kind in ROW_COLUMNS if name != "seen_active"),
    ("repository_name", "text"),
    ("branch_name", "text"),
    ("scan_type", "text"),
    ("active", "bool"),
    ("mitigated", "bool"),
    ("mitigated_at", "timestamptz"),
    ("mitigated_on_build_id", "text"),
    ("mitigated_in_upload_id", "int8"),
    ("false_positive", "bool"),
    ("risk_accepted", "bool"),
    ("triage_reason", "text"),
    ("first_seen_at", "timestamptz"),
    ("first_seen_upload_id", "int8"),
    ("first_seen_build_id", "text"),
    ("last_seen_at", "timestamptz"),
    ("last_seen_upload_id", "int8"),
    ("last_seen_build_id", "text"),
]
# A changed finding: its id and state before, then its Row.
_CHANGED_COLUMNS = [("id", "int8"), ("was_active", "bool"), *ROW_COLUMNS]
_NAIVE_UTC = frozenset({"creation_date", "last_update_date"})
_BYTES_AS_SENT = {"json": "bytea", "jsonb": "bytea"}
# psycopg's compiled bytes dumper (by type name it would pick a pure-Python one), which takes
# any buffer: msgspec.Raw without a copy. Also findings.rules'.
BYTES_DUMPER = psycopg.adapters.get_dumper(bytes, PyFormat.BINARY)
_CHANGED = "gerion_finding_changed"
_GONE = "gerion_finding_gone"
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
    updated: int  # reported before (changed or not)
    reactivated: int
    mitigated: int


class RepeatedFindingId(Exception):
    """A finding_id came twice in one upload: the merge cannot stream it (the last occurrence
    wins, and the first may be written already); the caller starts over with the rows
    deduplicated (findings.normalize.ParsedUpload.read_all)."""


def merge_upload(
    connection: BaseDatabaseWrapper, context: UploadContext, rows: Iterator[Row]
) -> MergeCounts:
    """Store the rows of one upload (each finding_id once, else RepeatedFindingId) and keep
    the lifecycle; new findings are written while the next rows are being read."""
    writer = _Writer(connection, context)
    delta = SummaryDelta()
    today = context.now.date()
    with connection.cursor() as cursor:
        writer.cursor = cursor
        stored = writer.stored_state()
        seen: set[str] = set()
        changed: list[tuple[int, bool, Row]] = []
        reactivated = reported_fixed = 0
        # New findings by severity: (all, open). A dict increment per row, no index.
        new_by_severity: dict[str, list[int]] = {}

        def new_rows() -> Iterator[Row]:
            nonlocal reactivated, reported_fixed
            for row in rows:
                finding_id = row[ROW_FINDING_ID]
                if finding_id in seen:
                    raise RepeatedFindingId(finding_id)
                seen.add(finding_id)
                before = stored.pop(finding_id, None)
                if before is None:
                    tally = new_by_severity.get(row[ROW_SEVERITY])
                    if tally is None:
                        tally = new_by_severity[row[ROW_SEVERITY]] = [0, 0]
                    tally[0] += 1
                    tally[1] += row[ROW_SEEN_ACTIVE]
                    yield row
                    continue
                pk, digest, was_active = before
                seen_active = row[ROW_SEEN_ACTIVE]
                if was_active and seen_active and digest == row[ROW_CONTENT_HASH]:
                    continue  # unchanged and still open: last seen in the stream's head
                changed.append((pk, was_active, row))
                if seen_active and not was_active:
                    reactivated += 1
                elif was_active and not seen_active:
                    reported_fixed += 1

        created = writer.insert(new_rows())
        for severity, (new, new_open) in new_by_severity.items():
            delta.opened[(today, severity)] += new
            delta.open[(context.repository_name, severity, today)] += new_open
        # What is left was not reported: the open ones are gone in this build. (With no
        # previous upload nothing was open; only rows not written by uploads could be.)
        absent = [pk for pk, _, was_active in stored.values() if was_active]
        stored.clear()
        gone = writer.mitigate(absent, delta) if absent and context.previous_upload_id else 0
        if changed:
            writer.rewrite(changed, delta)
        delta.apply(cursor, connection)
    return MergeCounts(
        created=created,
        updated=len(seen) - created,
        reactivated=reactivated,
        mitigated=gone + reported_fixed,
    )


class _Writer:
    """The statements of a merge, for PostgreSQL (binary COPY) and for the embedded SQLite
    run (executemany): the same columns and the same values."""

    cursor: CursorWrapper

    def __init__(self, connection: BaseDatabaseWrapper, context: UploadContext) -> None:
        self.context = context
        self.postgres = connection.vendor == "postgresql"
        adapt = connection.ops.adapt_datetimefield_value
        self.adapt = adapt
        self.params: dict[str, Any] = {
            "repo": context.repository_name,
            "branch": context.branch_name,
            "scan_type": context.scan_type,
            "upload": context.upload_id,
            "build": context.build_id,
            "now": adapt(context.now),
            "previous_upload": context.previous_upload_id,
            "previous_at": adapt(context.previous_at) if context.previous_at else None,
            "previous_build": context.previous_build_id,
        }

    def stored_state(self) -> dict[str, tuple[int, int, bool]]:
        """finding_id -> (id, content digest, active) of every finding of the stream."""
        self.cursor.execute(
            f"SELECT finding_id, id, content_hash, active FROM findings_finding WHERE {_STREAM}",
            self.params,
        )
        return {fid: (pk, digest, bool(active)) for fid, pk, digest, active in self.cursor}

    def mitigate(self, ids: list[int], delta: SummaryDelta) -> int:
        """Open findings this upload does not report: mitigated in this build, last seen in
        the previous upload (an empty scan mitigates them all). Adds to `delta` what that
        closed and fixed."""
        update = (
            "UPDATE findings_finding SET active = FALSE, mitigated = TRUE, "
            "mitigated_at = %(now)s, mitigated_on_build_id = %(build)s, "
            "mitigated_in_upload_id = %(upload)s, last_seen_at = %(previous_at)s, "
            "last_seen_upload_id = %(previous_upload)s, last_seen_build_id = %(previous_build)s "
        )
        event = (
            "INSERT INTO findings_findingevent (finding_id, kind, at, upload_id, build_id, "
            "reason) SELECT id, 'mitigated', %(now)s, %(upload)s, %(build)s, '' FROM "
        )
        # What they were: severity, first-seen day, whether open (untriaged), time to fix.
        connection = self.cursor.db
        summary = (
            f"SELECT severity, {day_sql(connection, 'first_seen_at')}, "
            "NOT (false_positive OR risk_accepted), count(*), "
            f"sum({seconds_between_sql(connection, 'first_seen_at', '%(now)s')}) FROM "
        )
        grouped = " GROUP BY 1, 2, 3"
        if self.postgres:
            # One statement: update, write the history and sum up from what was updated.
            self.cursor.execute(
                f"WITH gone AS ({update} WHERE id = ANY(%(ids)s) RETURNING id, severity, "
                "first_seen_at, false_positive, risk_accepted), "
                f"history AS ({event} gone) {summary} gone{grouped}",
                {**self.params, "ids": ids},
            )
            groups = self.cursor.fetchall()
        else:
            # SQLite: the ids in a temporary table (its bound-parameter limit is low).
            self.cursor.execute(f"CREATE TEMP TABLE {_GONE} (id integer PRIMARY KEY)")
            self.cursor.executemany(f"INSERT INTO {_GONE} (id) VALUES (%s)", [(pk,) for pk in ids])
            self.cursor.execute(f"{event} {_GONE}", self.params)
            self.cursor.execute(f"{update} WHERE id IN (SELECT id FROM {_GONE})", self.params)
            self.cursor.execute(
                f"{summary} findings_finding WHERE id IN (SELECT id FROM {_GONE}){grouped}",
                self.params,
            )
            groups = self.cursor.fetchall()
            self.cursor.execute(f"DROP TABLE {_GONE}")
        today = self.context.now.date()
        count = 0
        for severity, first_day, was_open, n, seconds in groups:
            count += n
            delta.fixed[(today, severity)] += n
            delta.fix_seconds[(today, severity)] += int(seconds or 0)
            if was_open:
                delta.open[(self.context.repository_name, severity, as_date(first_day))] -= n
        return count

    def insert(self, rows: Iterator[Row]) -> int:
        """New findings, as the rows come; how many."""
        c = self.context
        stream = (c.repository_name, c.branch_name, c.scan_type)
        seen = (c.now, c.upload_id, c.build_id)
        fixed = (c.now, c.build_id, c.upload_id)
        untriaged = (False, False, "")
        open_ = (True, False, None, None, None)
        closed = (False, True, *fixed)
        full = (
            (*row[:ROW_SEEN_ACTIVE], *stream, *(open_ if row[ROW_SEEN_ACTIVE] else closed),
             *untriaged, *seen, *seen)
            for row in rows
        )  # fmt: skip
        if not self.postgres:
            return self._write("findings_finding", _NEW_COLUMNS, full)
        # Search indexes the new findings later (findings.search): queue the ids they got,
        # which lie between the sequence's value before the COPY and this session's last.
        self.cursor.execute("SELECT last_value FROM findings_finding_id_seq")
        low = int(self.cursor.fetchone()[0])
        count = self._write("findings_finding", _NEW_COLUMNS, full)
        if count:
            self.cursor.execute(
                "INSERT INTO findings_searchqueue (low, high) "
                "VALUES (%s, currval('findings_finding_id_seq'))",
                [low],
            )
        return count

    def rewrite(self, changed: list[tuple[int, bool, Row]], delta: SummaryDelta) -> None:
        """Findings reported again whose content or state changed: their content, state and
        last sighting; a finding fixed before and still reported fixed keeps the build that
        fixed it. The history records what this upload reactivated or the scanner fixed, and
        `delta` what it opened, closed or moved to another severity."""
        if self.postgres:
            columns = ", ".join(f"{name} {kind}" for name, kind in _CHANGED_COLUMNS)
            self.cursor.execute(f"CREATE TEMP TABLE {_CHANGED} ({columns}) ON COMMIT DROP")
        else:
            self.cursor.execute(
                f"CREATE TEMP TABLE {_CHANGED} ({', '.join(n for n, _ in _CHANGED_COLUMNS)})"
            )
        self._write(_CHANGED, _CHANGED_COLUMNS, ((pk, was, *row) for pk, was, row in changed))
        mitigation = (
            "{col} = CASE WHEN s.seen_active THEN NULL WHEN s.was_active THEN {value} "
            "ELSE findings_finding.{col} END"
        )
        assignments = ", ".join(
            [
                *(f"{name} = s.{name}" for name in _CONTENT),
                "creation_date = COALESCE(findings_finding.creation_date, s.creation_date)",
                "active = s.seen_active",
                "mitigated = NOT s.seen_active",
                mitigation.format(col="mitigated_at", value="%(now)s"),
                mitigation.format(col="mitigated_on_build_id", value="%(build)s"),
                mitigation.format(col="mitigated_in_upload_id", value="%(upload)s"),
                "last_seen_at = %(now)s",
                "last_seen_upload_id = %(upload)s",
                "last_seen_build_id = %(build)s",
            ]
        )
        params = self.params
        if not self.postgres:
            self.cursor.execute(f"CREATE INDEX {_CHANGED}_id ON {_CHANGED} (id)")
        self._summarise_rewrite(delta)
        self.cursor.execute(
            f"UPDATE findings_finding SET {assignments} FROM {_CHANGED} AS s "
            "WHERE findings_finding.id = s.id",
            params,
        )
        self.cursor.execute(
            "INSERT INTO findings_findingevent (finding_id, kind, at, upload_id, build_id, "
            "reason) SELECT id, CASE WHEN seen_active THEN 'reactivated' ELSE 'mitigated' END, "
            f"%(now)s, %(upload)s, %(build)s, '' FROM {_CHANGED} "
            "WHERE was_active <> seen_active",
            params,
        )
        if self.postgres:
            # Their words may have changed: search indexes them again (findings.search).
            self.cursor.execute(
                f"INSERT INTO findings_searchqueue (low, high) SELECT id, id FROM {_CHANGED}"
            )
        self.cursor.execute(f"DROP TABLE {_CHANGED}")

    def _summarise_rewrite(self, delta: SummaryDelta) -> None:
        """Before the rewrite: what it will open, close and fix, from the stored state (f)
        and the reported one (s)."""
        connection = self.cursor.db
        first_day = day_sql(connection, "f.first_seen_at")
        self.cursor.execute(
            f"SELECT f.severity, s.severity, {first_day}, f.active, s.seen_active, "
            "f.false_positive OR f.risk_accepted, count(*), "
            f"sum({seconds_between_sql(connection, 'f.first_seen_at', '%(now)s')}) "
            f"FROM findings_finding f JOIN {_CHANGED} s ON f.id = s.id "
            "WHERE f.active <> s.seen_active OR f.severity <> s.severity "
            "GROUP BY 1, 2, 3, 4, 5, 6",
            self.params,
        )
        today = self.context.now.date()
        repository = self.context.repository_name
        for old, new, first_day_value, was, now_active, triaged, n, seconds in self.cursor:
            day = as_date(first_day_value)
            if was and not triaged:
                delta.open[(repository, old, day)] -= n
            if now_active and not triaged:
                delta.open[(repository, new, day)] += n
            if was and not now_active:
                delta.fixed[(today, old)] += n
                delta.fix_seconds[(today, old)] += int(seconds or 0)
            elif now_active and not was:
                delta.opened[(today, new)] += n

    def _write(self, table: str, columns: list[tuple[str, str]], rows: Iterator[Any]) -> int:
        """Rows into `table`, as they come; how many."""
        names = ", ".join(name for name, _ in columns)
        count = 0
        if self.postgres:
            # Binary COPY sends each value in its column's binary input form, which some Row
            # values already are: JSON as bytes (json: the text, jsonb: a version byte and
            # the text; see findings.normalize.Row) go as they are, like bytea; a finding's
            # own dates are naive UTC, sent as `timestamp`, whose binary form is the same
            # microseconds count that a timestamptz column reads as UTC.
            wire = [
                "timestamp" if name in _NAIVE_UTC else _BYTES_AS_SENT.get(kind, kind)
                for name, kind in columns
            ]
            # ...with the compiled bytes dumper.
            self.cursor.cursor.adapters.register_dumper(None, BYTES_DUMPER)
            with self.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(wire)
                write = copy.write_row
                for row in rows:
                    write(row)
                    count += 1
            return count
        converters = [_sqlite_converter(kind, self.adapt) for _, kind in columns]
        marks = ", ".join(["%s"] * len(columns))
        values = [
            tuple(
                v if f is None or v is None else f(v) for f, v in zip(converters, row, strict=True)
            )
            for row in rows
        ]
        self.cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
        return len(values)


def _sqlite_converter(kind: str, adapt: Any) -> Any:
    if kind == "json":
        return lambda value: bytes(value).decode()
    if kind == "jsonb":
        return lambda value: bytes(value)[len(JSONB_VERSION) :].decode()
    if kind == "timestamptz":
        # Aware values are made naive UTC, naive ones (findings' own dates) are UTC already.
        return adapt
    return None
