"""manage.py generatesigningkey PATH: a new RSA private key in PEM, mode 0600."""

from __future__ import annotations

import os
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
        pem = generate_private_key_pem(bits)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.replace(tmp, path)
        kid = load_signing_key(path).kid
        try:
            AuditEvent.objects.create(
                action=AuditEvent.Action.SIGNING_KEY_GENERATED,
                subject=kid,
                actor_name="manage.py generatesigningkey",
                detail={"bits": bits},
            )
        except DatabaseError:
            self.stderr.write("Note: the database is not reachable; the audit trail misses this.")
        self.stdout.write(f"Wrote a {bits}-bit RSA key to {path} (mode 0600), kid {kid}.")
