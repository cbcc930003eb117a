"""Project-level views: liveness, readiness, and the last-resort 500 handler."""

from __future__ import annotations

import logging
import sys
import uuid

from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from gerion.middleware import is_api_path, service_unavailable_response
from gerion.problems import problem_response
from gerion.unavailable import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage does not
    make the orchestrator kill healthy workers."""
    return JsonResponse({"status": "ok"})


def _check_database() -> bool:
    try:
        for alias in connections:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
        return True
    except UNAVAILABLE_ERRORS as exc:
        logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        return False


def _check_cache() -> bool:
    nonce = uuid.uuid4().hex
    try:
        cache.set("readyz", nonce, timeout=10)
        return bool(cache.get("readyz") == nonce)
    except UNAVAILABLE_ERRORS as exc:
        logger.warning("readiness: cache unavailable: %s", type(exc).__name__)
        return False


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database and the cache answer now (checked on every call, no caching)."""
    checks = {
        "database": "ok" if _check_database() else "unavailable",
        "cache": "ok" if _check_cache() else "unavailable",
    }
    if all(state == "ok" for state in checks.values()):
        return JsonResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, state in checks.items() if state != "ok")
    return problem_response(
        503,
        "not_ready",
        f"Not ready: {failing} unreachable.",
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
        extra={"checks": checks},
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an unreachable backing service is a 503, anything else a plain 500."""
    exc = sys.exc_info()[1]
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return service_unavailable_response(request)
    if is_api_path(request.path):
        return problem_response(500, "internal_error", "An unexpected error occurred.")
    return HttpResponse(render_to_string("500.html"), status=500)
