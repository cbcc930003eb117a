"""Rebuild the dashboard's figures from the findings and their status history. Every upload
and triage keeps them in step in its own transaction; this is the safety net (after a
restore of only some tables, or a hand-made change in SQL)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from findings.services import findings_recount


class Command(BaseCommand):
    help = "Rebuild the dashboard's open-finding counts and daily activity from the findings."

    def handle(self, *args: Any, **options: Any) -> None:
        open_rows, day_rows = findings_recount()
        self.stdout.write(f"recounted: {open_rows} open-count rows, {day_rows} day rows")
