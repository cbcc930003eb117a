"""manage.py revokeapikey API_KEY_ID: revoke at once and for good."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.selectors import api_key_get
from apikeys.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke the API key with this api_key_id (key-...). Every token it minted stops working."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("api_key_id")

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = api_key_get(api_key_id=options["api_key_id"])
        if api_key is None:
            raise CommandError(f"No API key with api_key_id {options['api_key_id']!r}.")
        if api_key_revoke(api_key=api_key, actor_name="manage.py revokeapikey"):
            self.stdout.write(f"Revoked {api_key.api_key_id} (client_id {api_key.client_id}).")
        else:
            assert api_key.revoked_at is not None
            self.stdout.write(
                f"{api_key.api_key_id} was already revoked at {api_key.revoked_at.isoformat()}."
            )
