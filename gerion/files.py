"""Files that several processes may race to create: the first writer wins, everyone reads it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def create_once(path: Path, content: bytes, mode: int = 0o600) -> bytes:
    """Write `content` to `path` unless it exists; return what the file holds afterwards.

    The content goes to a private temporary file of its own (unique per process and thread)
    and is then hard-linked into place: link() fails if the name exists, so nobody ever reads
    a half-written file, and every process and thread ends up with the first writer's content.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file_atomically(path, content, mode, replace=False)
    return path.read_bytes()


def write_private_file_atomically(
    path: Path, content: bytes, mode: int = 0o600, *, replace: bool
) -> None:
    """Write `content` to `path` with `mode`, all or nothing: through a fresh temporary file
    (mkstemp: O_EXCL, never a file or link someone prepared). `replace=False` keeps an
    existing file."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another writer won; theirs stays
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
