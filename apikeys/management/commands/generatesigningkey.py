"""manage.py generatesigningkey PATH: a new RSA private key in PEM, mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from apikeys.models import AuditEvent
from apikeys.signing_keys import (
    DEFAULT_KEY_BITS,
    MIN_KEY_BITS,
    generate_private_key_pem,
    load_signing_key,
)
from gerion.files import write_private_file_atomically


class Command(BaseCommand):
    help = "Write a new RSA signing key (PEM, mode 0600) for GERION_JWT_SIGNING_KEY."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--bits", type=int, default=DEFAULT_KEY_BITS)
        parser.add_argument("--force", action="store_true", help="Overwrite an existing file")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        bits: int = options["bits"]
        if bits < MIN_KEY_BITS:
            raise CommandError(f"--bits must be at least {MIN_KEY_BITS}.")
        if path.exists() and not options["force"]:
            raise CommandError(f"{path} exists; refusing to overwrite a key (use --force).")
        write_private_file_atomically(path, generate_private_key_pem(bits), 0o600, replace=True)
        kid = load_signing_key(path).kid
        mode = stat.S_IMODE(path.stat().st_mode)
        try:
            AuditEvent.objects.create(
                action=AuditEvent.Action.SIGNING_KEY_GENERATED,
                subject=kid,
                actor_name="manage.py generatesigningkey",
                detail={"bits": bits},
            )
        except DatabaseError:
            self.stderr.write("Note: the database is not reachable; the audit trail misses this.")
        self.stdout.write(f"Wrote a {bits}-bit RSA key to {path} (mode {mode:04o}), kid {kid}.")
