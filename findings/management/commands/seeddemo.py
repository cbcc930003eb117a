"""manage.py seeddemo [--force] [--username U] [--password P] [--url URL]: fill an empty
database with a demo (findings.demo), a staff user and a CI key; print how to sign in."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from findings.demo import demo_seed
from findings.models import Finding


class Command(BaseCommand):
    help = (
        "Fill an empty database with a demo: repositories, branches, scans of all four types, "
        "mitigated and triaged findings, a staff user and an API key. The key is the last line "
        "of stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Add the demo even though the database already holds findings",
        )
        parser.add_argument("--username", default="demo", help="Staff user to create (demo)")
        parser.add_argument("--password", help="Its password (default: a random one, printed once)")
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Where the service answers"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        existing = Finding.objects.count()
        if existing and not options["force"]:
            # A demo mixed into real data would be hard to take out again.
            raise CommandError(
                f"The database already holds {existing} findings; seeddemo fills an empty one. "
                "Use --force to add the demo anyway (make demo DEMO_ARGS=--force)."
            )
        password = options["password"] or secrets.token_urlsafe(12)
        # One log line per upload and decision would bury the sign-in instructions.
        quiet = options["verbosity"] < 2
        loggers = [logging.getLogger(name) for name in ("findings", "apikeys")]
        levels = [logger.level for logger in loggers]
        try:
            for logger in loggers:
                logger.setLevel(logging.WARNING if quiet else logger.level)
            result = demo_seed(username=options["username"], password=password)
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
        assert result.api_key is not None
        url = options["url"].rstrip("/")
        self.stdout.write(
            f"Demo: {result.uploads} uploads of {result.streams} streams in "
            f"{len(result.repositories)} repositories; {result.created} findings, "
            f"{result.mitigated} mitigated along the way, {result.triaged} triaged."
        )
        if result.user_created:
            self.stdout.write(
                f"Sign in at {url}/accounts/login/ as {options['username']} with password "
                f"{password}"
            )
        else:
            self.stdout.write(
                f"Sign in at {url}/accounts/login/ as {options['username']} (an existing user: "
                "its password is unchanged)"
            )
        self.stdout.write(f"Dashboard: {url}/   API reference: {url}/api/v1/docs")
        self.stdout.write(
            f"API key {result.api_key.api_key_id} for client_id {result.api_key.client_id} "
            "(write:findings, read:findings), shown once:"
        )
        self.stdout.write(result.plaintext_key)
