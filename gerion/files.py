"""Files that several processes may race to create: the first writer wins, everyone reads it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def create_once(path: Path, content: bytes, mode: int = 0o600) -> bytes:
    """Write `content` to `path` unless it exists; return what the file holds afterwards.

    The content goes to a private temporary file first and is then hard-linked into place:
    link() fails if the name exists, so readers never see a half-written file and concurrent
    gunicorn workers all end up with the same secret.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        with contextlib.suppress(FileExistsError):  # another process won; read theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()
