"""manage.py createapikey --name N --client-id C --permissions write:findings[,read:findings]
[--expires-at ISO8601] [--repositories 'acme/*,tools/cli']; the plaintext key alone is the
last line of stdout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from apikeys.models import Permission
from apikeys.repositories import split_patterns
from apikeys.services import api_key_create


def validation_message(exc: ValidationError) -> str:
    """One line for an operator's terminal."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in exc.message_dict.items())


def parse_expiry(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--expires-at: not an ISO 8601 date-time: {value!r}")
    # A time without a zone is read as UTC, as everywhere in this service.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Create an API key and print its plaintext once (the last line of stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--client-id", required=True)
        parser.add_argument(
            "--permissions",
            required=True,
            help=f"Comma-separated: {', '.join(Permission.values)}",
        )
        parser.add_argument("--expires-at", help="ISO 8601; without a time zone, UTC")
        parser.add_argument(
            "--repositories",
            default="*",
            help="Comma-separated globs the key may touch, e.g. 'acme/*,tools/cli' "
            "(* matches any characters, / included); default * (every repository)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        permissions = [p.strip() for p in options["permissions"].split(",") if p.strip()]
        expires_at = parse_expiry(options["expires_at"]) if options["expires_at"] else None
        try:
            api_key, plaintext = api_key_create(
                name=options["name"],
                client_id=options["client_id"],
                permissions=permissions,
                expires_at=expires_at,
                repository_patterns=split_patterns(options["repositories"]),
                actor_name="manage.py createapikey",
            )
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc
        self.stderr.write(
            f"Created {api_key.api_key_id} for client_id {api_key.client_id} "
            f"({', '.join(api_key.permissions)}; repositories "
            f"{', '.join(api_key.repository_patterns)}"
            + (f"; expires {api_key.expires_at.isoformat()}" if api_key.expires_at else "")
            + "). Store the key now: it cannot be shown again."
        )
        self.stdout.write(f"api_key_id: {api_key.api_key_id}")
        self.stdout.write(plaintext)
