"""Readers: one module per upload format, each turning a body into a ParsedUpload of the same
Rows (findings.normalize), which one write path stores (findings.merge)."""

from __future__ import annotations

from findings.normalize import ParsedUpload
from findings.readers.envelope import read_envelope


def read_upload(body: bytes | bytearray) -> ParsedUpload:
    """The upload in `body`, its findings read as `rows` is consumed; raises
    findings.normalize.UploadInvalid for a body that cannot be read at all."""
    return read_envelope(body)
