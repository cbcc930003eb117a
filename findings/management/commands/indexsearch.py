"""Write the search words of findings stored or changed by uploads since the last run. Run it
every minute (cron, a Kubernetes CronJob): a search does the same before it runs, so this
only keeps searches from waiting for the words of a large upload."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from findings.search import search_index_catch_up


class Command(BaseCommand):
    help = "Index the words of findings that uploads stored or changed since the last run."

    def handle(self, *args: Any, **options: Any) -> None:
        indexed = search_index_catch_up()
        self.stdout.write(f"{indexed} finding{'s' if indexed != 1 else ''} indexed for search")
