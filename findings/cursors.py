"""Opaque page cursors: the keyset values of the last row seen, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json


def encode_cursor(values: list[int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(text: str, *, length: int) -> list[int] | None:
    """The values, if `text` is a cursor of `length` integers this service made; else None."""
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    if (
        isinstance(values, list)
        and len(values) == length
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        return values
    return None
