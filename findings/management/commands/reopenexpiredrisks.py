"""Reopen findings whose risk acceptance has expired: run it daily (cron, a Kubernetes
CronJob). The staff pages do the same whenever they are read, so this only matters for
what is read elsewhere (the API) before anyone opens a staff page."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from findings.services import findings_reopen_expired


class Command(BaseCommand):
    help = "Reopen findings whose risk acceptance ended before today (UTC)."

    def handle(self, *args: Any, **options: Any) -> None:
        reopened = findings_reopen_expired()
        self.stdout.write(f"{reopened} finding{'s' if reopened != 1 else ''} reopened")
