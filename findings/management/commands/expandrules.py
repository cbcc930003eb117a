"""Turn the rule packs of large SARIF uploads into rules (findings.rules). Run it every minute
(cron, a Kubernetes CronJob): whatever reads a rule does the same first, so this only keeps
the first export or finding page after a large upload from waiting for it; and it vacuums the
rules it added, which a reader does not (findings.rules.rules_catch_up)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from findings.rules import rules_catch_up


class Command(BaseCommand):
    help = "Store the rules that large SARIF uploads packed since the last run."

    def handle(self, *args: Any, **options: Any) -> None:
        added = rules_catch_up(vacuum=True)  # (vacuumed here, where no page waits for it)
        self.stdout.write(f"{added} SARIF rule{'s' if added != 1 else ''} stored")
