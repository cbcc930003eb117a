"""Readers: one module per upload format, each turning a body into a ParsedUpload of the same
Rows (findings.normalize), which one write path stores (findings.merge)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from findings.normalize import ParsedUpload
from findings.readers.envelope import read_envelope


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Reading 100,000 findings allocates millions of objects, none of them cyclic; the
    cyclic collector would walk the growing heap again and again. Reference counting still
    frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_upload(body: bytes) -> ParsedUpload:
    """The upload in `body`, or findings.normalize.UploadInvalid listing every problem."""
    with _cyclic_gc_paused():
        return read_envelope(body)
