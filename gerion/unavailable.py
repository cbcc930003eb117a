"""The exceptions that mean "a backing service is unreachable": answered 503, not 500."""

from __future__ import annotations

import redis.exceptions
from django import db

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    db.OperationalError,
    db.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
