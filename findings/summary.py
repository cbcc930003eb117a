"""The dashboard's figures, kept in step with the findings by the writes that change them.

Two small tables (findings.models.OpenFindingCount and FindingDay) answer the dashboard
without reading the findings table: open findings per repository, severity and first-seen
day (so overdue ones can be counted), and what each day opened and fixed. The merge of an
upload and every triage add their changes here in their own transaction, so the figures are
never stale after a write; `manage.py recountfindings` rebuilds both from the findings and
their status history, should they ever drift.

Deltas are applied in one statement per table, in key order: two transactions that touch the
same rows then lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

OpenKey = tuple[str, str, date]  # repository, severity, first-seen day
DayKey = tuple[date, str]  # day, severity


def day_sql(connection: BaseDatabaseWrapper, column: str) -> str:
    """SQL for the UTC day of a timestamp column."""
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"


def seconds_between_sql(connection: BaseDatabaseWrapper, start: str, end: str) -> str:
    """SQL for the whole seconds from `start` to `end` (timestamps)."""
    if connection.vendor == "postgresql":
        return f"extract(epoch FROM ({end}) - ({start}))::bigint"
    return f"CAST((julianday({end}) - julianday({start})) * 86400 AS integer)"


def as_date(value: Any) -> date:
    """A day as read from either database (PostgreSQL: date; SQLite: text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass
class SummaryDelta:
    """Changes to apply: open findings gained or lost, and a day's activity."""

    open: defaultdict[OpenKey, int] = field(default_factory=lambda: defaultdict(int))
    opened: defaultdict[DayKey, int] = field(default_factory=lambda: defaultdict(int))
    fixed: defaultdict[DayKey, int] = field(default_factory=lambda: defaultdict(int))
    fix_seconds: defaultdict[DayKey, int] = field(default_factory=lambda: defaultdict(int))

    def apply(self, cursor: CursorWrapper, connection: BaseDatabaseWrapper) -> None:
        adapt = connection.ops.adapt_datefield_value
        counts = sorted((key, n) for key, n in self.open.items() if n)
        if counts:
            values = ", ".join(["(%s, %s, %s, %s)"] * len(counts))
            cursor.execute(
                "INSERT INTO findings_openfindingcount "
                f"(repository_name, severity, first_seen_on, count) VALUES {values} "
                "ON CONFLICT (repository_name, severity, first_seen_on) DO UPDATE "
                "SET count = findings_openfindingcount.count + excluded.count",
                [v for (repo, sev, day), n in counts for v in (repo, sev, adapt(day), n)],
            )
        days = sorted(set(self.opened) | set(self.fixed))
        rows = [
            (
                day,
                sev,
                self.opened[(day, sev)],
                self.fixed[(day, sev)],
                self.fix_seconds[(day, sev)],
            )
            for day, sev in days
            if self.opened[(day, sev)] or self.fixed[(day, sev)]
        ]
        if rows:
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
            params: list[Any] = []
            for day, *rest in rows:
                params.extend((adapt(day), *rest))
            cursor.execute(
                "INSERT INTO findings_findingday (day, severity, opened, fixed, fix_seconds) "
                f"VALUES {values} ON CONFLICT (day, severity) DO UPDATE SET "
                "opened = findings_findingday.opened + excluded.opened, "
                "fixed = findings_findingday.fixed + excluded.fixed, "
                "fix_seconds = findings_findingday.fix_seconds + excluded.fix_seconds",
                params,
            )


def summary_recount(connection: BaseDatabaseWrapper) -> tuple[int, int]:
    """Rebuild both tables from the findings and their status history (run inside a
    transaction). Returns the rows written to each."""
    first_day = day_sql(connection, "f.first_seen_at")
    event_day = day_sql(connection, "e.at")
    fix = seconds_between_sql(connection, "f.first_seen_at", "e.at")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM findings_openfindingcount")
        cursor.execute(
            "INSERT INTO findings_openfindingcount "
            "(repository_name, severity, first_seen_on, count) "
            f"SELECT f.repository_name, f.severity, {first_day}, count(*) "
            "FROM findings_finding f "
            "WHERE f.active AND NOT f.false_positive AND NOT f.risk_accepted "
            f"GROUP BY f.repository_name, f.severity, {first_day}"
        )
        open_rows = int(cursor.rowcount)
        cursor.execute("DELETE FROM findings_findingday")
        # Opened: first sightings, and reactivations; fixed: mitigations (and how long since
        # the finding was first seen), each on its day, with the finding's severity.
        cursor.execute(
            "INSERT INTO findings_findingday (day, severity, opened, fixed, fix_seconds) "
            "SELECT day, severity, sum(opened), sum(fixed), sum(fix_seconds) FROM ("
            f" SELECT {first_day} AS day, f.severity, count(*) AS opened, 0 AS fixed, "
            "  0 AS fix_seconds FROM findings_finding f "
            f" GROUP BY {first_day}, f.severity"
            " UNION ALL"
            f" SELECT {event_day}, f.severity, "
            "  sum(CASE WHEN e.kind = 'reactivated' THEN 1 ELSE 0 END), "
            "  sum(CASE WHEN e.kind = 'mitigated' THEN 1 ELSE 0 END), "
            f"  sum(CASE WHEN e.kind = 'mitigated' THEN {fix} ELSE 0 END) "
            "  FROM findings_findingevent e JOIN findings_finding f ON f.id = e.finding_id "
            "  WHERE e.kind IN ('reactivated', 'mitigated') "
            f" GROUP BY {event_day}, f.severity"
            ") AS activity GROUP BY day, severity"
        )
        day_rows = int(cursor.rowcount)
    return open_rows, day_rows
