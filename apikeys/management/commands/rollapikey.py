"""manage.py rollapikey API_KEY_ID [--grace-hours H]: issue the key's successor and retire the
key after H hours (default 24; 0 = at once); the new plaintext key alone is the last line of
stdout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.management.commands.createapikey import validation_message
from apikeys.selectors import api_key_get
from apikeys.services import DEFAULT_GRACE, api_key_roll


def grace_period(hours: str) -> timedelta:
    """--grace-hours as a period; its range is the service's to check."""
    try:
        return timedelta(hours=float(hours))
    except (ValueError, OverflowError):
        raise CommandError(f"--grace-hours: not a number of hours: {hours!r}") from None


class Command(BaseCommand):
    help = (
        "Roll the API key with this api_key_id (key-...): a new key with the same client_id, "
        "permissions and repositories; the old key keeps working for the grace period. The "
        "new key is printed once (the last line of stdout)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("api_key_id")
        parser.add_argument(
            "--grace-hours",
            default=str(DEFAULT_GRACE // timedelta(hours=1)),
            help="How long the old key keeps working (default 24; 0 = it stops at once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        grace = grace_period(options["grace_hours"])
        api_key = api_key_get(api_key_id=options["api_key_id"])
        if api_key is None:
            raise CommandError(f"No API key with api_key_id {options['api_key_id']!r}.")
        try:
            successor, plaintext = api_key_roll(
                api_key=api_key,
                grace=grace,
                actor_name="manage.py rollapikey",
            )
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc
        assert api_key.retires_at is not None
        self.stderr.write(
            f"Rolled {api_key.api_key_id} (client_id {api_key.client_id}): it keeps working "
            f"until {api_key.retires_at.isoformat()}, then expires with its tokens. The new "
            "key is below; store it now: it cannot be shown again."
        )
        self.stdout.write(f"api_key_id: {successor.api_key_id}")
        self.stdout.write(plaintext)
