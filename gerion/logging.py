"""Structured logs: one JSON object per line on stdout, carrying the request id.

Secrets never belong in a log line. Redaction is by field first: any field named like a
carrier of secrets (Authorization, X-API-Key, Cookie, Set-Cookie, passwords, tokens, bodies) is
replaced, at any depth, whatever its value looks like; gunicorn's and Django's messages that
quote a request (a header line, a request line, a Host) keep their kind and lose the quote.
Anything shaped like an API key, a JWT or a private key is masked as a last resort.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gerion.context import client_id_var, request_id_var

REDACTED = "[REDACTED]"

# What no line of ours shows (caller's file and line, thread and process names) is not worked
# out for every record: the logging HOWTO's "Optimization" switches. An access log line is
# written on every request; the caller lookup alone walks the stack for each.
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False

_SECRET_PATTERNS = [
    re.compile(r"gerion_[a-z0-9]{4,}_[A-Za-z0-9]+"),  # API keys (apikeys.keys.KEY_RE)
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWS compact
    # A PEM private key, body included (escaped newlines too, as in a JSON dump), or whatever
    # follows its header when the end is cut off.
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)", re.S
    ),
]

# Field names (headers, WSGI environ keys, form and JSON fields, log extras) whose value is never
# logged. Compared lower-case, with "_" as "-" and a WSGI "http-" prefix dropped.
_SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "apikey",
        "cookie",
        "set-cookie",
        "password",
        "passwd",
        "old-password",
        "new-password1",
        "new-password2",
        "secret",
        "token",
        "access-token",
        "refresh-token",
        "csrfmiddlewaretoken",
        "x-csrftoken",
        "private-key",
        "signature",
        # Request bodies (of sign-ins and authentication above all) are never logged.
        "body",
        "data",
        "payload",
        "post",
        "query-string",
    }
)
# A header or field quoted in free text ("Authorization: Bearer ...", "'cookie': '...'"): the
# value, up to the end of its quote or line, goes.
_SECRET_FIELD_IN_TEXT = re.compile(
    r"(?i)\b(authorization|x[-_]api[-_]key|set-cookie|cookie|password)"
    r"(['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]+"
)

# Attributes every LogRecord has; anything else was passed in `extra=` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@functools.lru_cache(maxsize=4096)  # field names repeat: the same few on every line
def _is_secret_field(name: str) -> bool:
    key = name.strip().lower().replace("_", "-")
    return key in _SECRET_FIELDS or key.removeprefix("http-") in _SECRET_FIELDS


_PLAIN = (bool, int, float, type(None))


def redact_fields(value: Any) -> Any:
    """`value` with every secret-carrying field's value replaced, at any depth, and every
    text masked (redact)."""
    # Exact types first: an access log line is a flat mapping of texts and numbers, and the
    # abstract-class checks below cost more than the rest of its redaction.
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if _is_secret_field(str(key)) else redact_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and _is_secret_field(value[0]):
            return [value[0], REDACTED]  # a (name, value) header pair
        return [redact_fields(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


# Every text that one of the patterns above could change contains one of these (compared
# case-insensitively: a superset). Most log text contains none, and one search is much cheaper
# than four substitutions, on every access log line.
_MAYBE_SECRET = re.compile(
    r"(?i)authorization|x[-_]api[-_]key|cookie|password|gerion_|eyj|-----begin [a-z ]*private"
)


def redact(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    text = _SECRET_FIELD_IN_TEXT.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.client_id = client_id_var.get()
        return True


class SuspiciousRequestFilter(logging.Filter):
    """Django logs every SuspiciousOperation (a Host not allowed, too many form fields, an
    admin lookup it refuses...) at ERROR with a traceback and the offending value, so anyone
    could flood the logs with tracebacks and make us log what they send. One brief WARNING
    line a request instead: the kind of refusal and the path (from the request), no value."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.name != "django.security.csrf":
            kind = record.name.removeprefix("django.security.")
            record.msg, record.args = "request refused: %s", (kind,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


# gunicorn's messages about a request it could not parse or serve, and what they quote.
_GUNICORN_INVALID = re.compile(r"^(Invalid request from ip=\S+?): (.*)$", re.S)


class GunicornRequestFilter(logging.Filter):
    """gunicorn quotes the offending request line, method or header line when it refuses a
    request ("Invalid HTTP Header: 'X-API-Key gerion-...'"), and the URI with its query string
    when the application fails. Keep the kind and the path; drop the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        invalid = _GUNICORN_INVALID.match(message)
        if invalid:
            kind = re.split(r"[:'\"(]", invalid[2], maxsplit=1)[0].strip() or "unparsable"
            record.msg, record.args = "%s: %s", (invalid[1], kind)
        elif message.startswith("Error handling request") and record.args:
            parts = [str(arg).split("?", 1)[0] for arg in record.args]
            record.args = tuple(parts)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        request = entry.pop("request", None)
        if request is not None:
            # Django's own error records carry the request, whose repr includes the query
            # string; the path is all a log needs.
            entry["path"] = getattr(request, "path", None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Masked field by field before encoding, so that the line stays valid JSON.
        return json.dumps(redact_fields(entry))
