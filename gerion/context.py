"""Per-request context for logs and problem bodies (set by RequestContextMiddleware)."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The client_id of the API key behind the request, once authenticated (never the key itself).
client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)
