"""Readers: one module per upload format, each turning a body into a ParsedUpload of the same
Rows (findings.normalize), which one write path stores (findings.merge). The media type
chooses the reader."""

from __future__ import annotations

from collections.abc import Mapping

from findings.normalize import ParsedUpload
from findings.readers import sarif
from findings.readers.envelope import read_envelope


def read_upload(
    body: bytes | bytearray, *, media_type: str = "application/json", params: Mapping[str, str]
) -> ParsedUpload:
    """The upload in `body`, its findings read as `rows` is consumed; raises
    findings.normalize.UploadInvalid for a body that cannot be read at all. `params` are the
    request's query parameters (a SARIF log's stream comes from them)."""
    if media_type == sarif.MEDIA_TYPE:
        return sarif.read_sarif(body, params)
    return read_envelope(body)
