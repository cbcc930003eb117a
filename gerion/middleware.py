"""Project-wide middleware: request context and access log, problem errors, body-size limit,
security headers, refusal of NUL characters."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    QueryDict,
)
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control

from gerion.context import client_id_var, request_id_var
from gerion.net import client_ip
from gerion.problems import PROBLEM_CONTENT_TYPE, problem_response
from gerion.unavailable import UNAVAILABLE_ERRORS

access_log = logging.getLogger("gerion.access")
logger = logging.getLogger(__name__)

GetResponse = Callable[[HttpRequest], HttpResponseBase]

# A caller-supplied request id is echoed (and logged) only if it reads like an id: at most 64
# characters, parts of hexadecimal digits (a UUID, nginx's $request_id) or of at most 16
# letters and digits ("ci-run-42.step-7"). A secret sent there by mistake (a key whose "_"
# became "-", a token) has a long random part that fits neither, and is replaced.
_ID_PART = r"(?:[0-9A-Fa-f]+|[A-Za-z0-9]{1,16})"
_REQUEST_ID_RE = re.compile(rf"^(?=.{{1,64}}$){_ID_PART}(?:[._:-]{_ID_PART})*$")


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class RequestContextMiddleware:
    """Gives each request an id (logs, X-Request-ID, problem bodies) and writes the access log."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID_RE.match(supplied) else uuid.uuid4().hex
        id_token = request_id_var.set(request_id)
        client_token = client_id_var.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            # The path only: query strings are the client's business and may carry anything.
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "remote_ip": client_ip(request),
                },
            )
            return response
        finally:
            request_id_var.reset(id_token)
            client_id_var.reset(client_token)


class ProblemMiddleware:
    """Every error on /api/ leaves as application/problem+json, with DEBUG on or off.

    DRF views already answer problems (gerion.problems.drf_exception_handler); this catches what
    Django answers by itself: unknown paths, 405 from plain views, technical 500 pages, and
    turns "database or cache unreachable" into a 503 anywhere.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            is_api_path(request.path)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            headers = {h: response[h] for h in ("Allow", "Retry-After") if response.has_header(h)}
            return problem_response(response.status_code, headers=headers)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UNAVAILABLE_ERRORS):
            # The driver's message tells operators which server and why; it stays in the log.
            logger.warning(
                "dependency unavailable: %s",
                type(exception).__name__,
                extra={"path": request.path, "error": str(exception)[:500]},
            )
            return service_unavailable_response(request)
        return None


def service_unavailable_response(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return problem_response(
            503,
            "service_unavailable",
            "A backing service (database or cache) is unreachable; retry shortly.",
            headers={"Retry-After": "5"},
        )
    html = render_to_string("503.html", request=None)
    return HttpResponse(html, status=503, headers={"Retry-After": "5"})


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before host validation and the HTTPS redirect, which are
    for clients: a load balancer or the container's health check probes the instance by IP
    over plain HTTP."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method in ("GET", "HEAD"):
            from gerion import views  # views import this module

            if request.path == "/healthz":
                return views.healthz(request)
            if request.path == "/readyz":
                return views.readyz(request)
        return self.get_response(request)


# The one request that may carry a large body: a findings upload (SPEC: at least 64 MiB).
LARGE_BODY_REQUESTS = {("POST", "/api/v1/findings")}
# gunicorn reads and drops this much of a body the application left unread (its
# _DRAIN_MAX_BYTES); beyond it, BodySizeLimitMiddleware drops the rest itself.
_UNREAD_BODY_GUNICORN_DROPS = 64 * 1024
_DRAIN_CHUNK = 256 * 1024


def body_limit(request: HttpRequest) -> int:
    """GERION_MAX_BODY_BYTES for a findings upload; GERION_MAX_SMALL_BODY_BYTES for everything
    else (sign-in and admin forms, authentication), so that nobody, signed in or not, can make
    a worker buffer megabytes it will never use."""
    large = settings.GERION_MAX_BODY_BYTES
    if (request.method, request.path) in LARGE_BODY_REQUESTS:
        return large
    return min(settings.GERION_MAX_SMALL_BODY_BYTES, large)


class BodySizeLimitMiddleware:
    """413 for a body whose declared length exceeds its limit (body_limit), before reading it;
    411 for a body sent without a length (chunked), which Django would read as empty. Both are
    problem documents, on every path.

    A large body answered without being read (an upload with an expired token, say) is read
    to its end and dropped before the answer leaves: gunicorn discards at most 64 KiB of an
    unread body and then closes the connection with the rest unread, which resets it, and a
    proxy still sending the body (nginx) turns the answer into a 502."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        raw = request.META.get("CONTENT_LENGTH") or ""
        if not raw and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return problem_response(
                411, "length_required", "Send the body with a Content-Length header."
            )
        try:
            length = int(raw or "0")
        except ValueError:
            length = -1
        if length < 0:
            return problem_response(400, "invalid_content_length", "Content-Length is invalid.")
        limit = body_limit(request)
        if length > limit:
            detail = f"The body exceeds the limit of {limit} bytes for this request."
            return problem_response(413, "payload_too_large", detail)
        response = self.get_response(request)
        if length > _UNREAD_BODY_GUNICORN_DROPS and not getattr(request, "_read_started", False):
            while request.read(_DRAIN_CHUNK):
                pass
        return response


# Pages may load only what this service serves: no inline script, no other origin, no framing.
# (Swagger UI's start-up script is served as a file too: SpectacularSwaggerSplitView.)
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SecurityHeadersMiddleware:
    """Security headers on every answer, whatever built it (a problem that ProblemMiddleware
    put in place of Django's page, a refused body, a health check): Django's (nosniff, referrer
    and opener policy, HSTS, frame options), a content security policy on HTML, and no caching:
    `no-store` on the API (findings and tokens are nobody's business but the client's; the JWKS
    sets its own lifetime), `private, no-store` on every page but static files."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        # Their response halves only; the HTTPS redirect stays after the health checks.
        self.django_security = SecurityMiddleware(get_response)
        self.frame_options = XFrameOptionsMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        # Typed for HttpResponse; they only read and set headers, which every response has.
        self.django_security.process_response(request, response)  # type: ignore[arg-type]
        self.frame_options.process_response(request, response)  # type: ignore[arg-type]
        if response.get("Content-Type", "").startswith("text/html"):
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if is_api_path(request.path):
            response.setdefault("Cache-Control", "no-store")
        elif not request.path.startswith(settings.STATIC_URL):
            patch_cache_control(response, private=True, no_store=True)
        return response


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _carries_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info:
        return True
    # The query and the cookies are parsed only if their raw text could hold a NUL once
    # decoded: a raw NUL or `%00` in the query, a raw NUL or a backslash escape (`\000` in a
    # quoted value) in the cookies. Most requests have neither, and parsing is not free.
    query = request.META.get("QUERY_STRING", "")
    if ("\x00" in query or "%00" in query) and any(
        "\x00" in name or "\x00" in value for name, value in _pairs(request.GET)
    ):
        return True
    cookies = request.META.get("HTTP_COOKIE", "")
    if ("\x00" in cookies or "\\" in cookies) and any(
        "\x00" in name or "\x00" in value for name, value in request.COOKIES.items()
    ):
        return True
    if any(
        "\x00" in str(value) for name, value in request.META.items() if name.startswith("HTTP_")
    ):
        return True
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if request.method == "POST" and content_type in _FORM_TYPES:
        return any("\x00" in name or "\x00" in value for name, value in _pairs(request.POST))
    return False


def _pairs(query: QueryDict) -> list[tuple[str, str]]:
    return [(name, value) for name, values in query.lists() for value in values]


class RefuseNulMiddleware:
    """400 for a NUL character anywhere a client controls text: path, query values (every
    filter of the staff pages, the admin and the API), cookies, headers and form fields.
    PostgreSQL can neither store nor compare it, so a filter or lookup on it would be a 500.
    JSON bodies are checked by their readers (findings.normalize, the authenticate view)."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _carries_nul(request):
            if is_api_path(request.path):
                return problem_response(
                    400, "nul_character", "NUL characters are not accepted in a request."
                )
            return HttpResponseBadRequest(render_to_string("400.html"))
        return self.get_response(request)
