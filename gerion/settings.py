"""Settings, read from the environment in this one place (names: SPEC.md "Fixed names").

With nothing set the service runs on embedded defaults: SQLite and a secret key kept under
GERION_DATA_DIR, the in-process cache, DEBUG off. DATABASE_URL and REDIS_URL switch to
PostgreSQL and Redis, as production, CI and the tests use.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

from gerion.files import create_once

# Generic Django classes (ModelAdmin[ApiKey], ...) subscriptable at runtime, as mypy sees them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


DEBUG = env_bool("DJANGO_DEBUG", False)

# Embedded mode keeps its SQLite file, secret key and development signing key here.
DATA_DIR = Path(os.environ.get("GERION_DATA_DIR", str(BASE_DIR / "var")))

# Read by the deploy check: production must set its own secret, not use the generated one.
SECRET_KEY_FROM_ENV = bool(os.environ.get("DJANGO_SECRET_KEY"))
SECRET_KEY = (
    os.environ.get("DJANGO_SECRET_KEY")
    or create_once(DATA_DIR / "secret-key", secrets.token_urlsafe(50).encode()).decode()
)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "gerion",
    "apikeys",
    "findings",
]

MIDDLEWARE = [
    # Outermost: request id and access log, so that they cover every response below.
    "gerion.middleware.RequestContextMiddleware",
    # Outside everything that may build a response, problems included: headers on every answer.
    "gerion.middleware.SecurityHeadersMiddleware",
    # Turns every error on /api/ into a problem document, whatever raised it.
    "gerion.middleware.ProblemMiddleware",
    # Before host validation and the HTTPS redirect: load balancers and the container health
    # check probe by IP over plain HTTP.
    "gerion.middleware.HealthCheckMiddleware",
    # Before anything that could read a body (CSRF, forms): a 413 or 411 without reading it.
    "gerion.middleware.BodySizeLimitMiddleware",
    # NUL anywhere a client controls text (query, path, cookies, forms): a 400, never a 500.
    "gerion.middleware.RefuseNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, user and message middleware, for pages only (not on /api/).
    "gerion.pages_only.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "gerion.pages_only.AuthenticationMiddleware",
    "gerion.pages_only.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gerion.urls"
WSGI_APPLICATION = "gerion.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            DATABASE_URL or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
            conn_max_age=env_int("GERION_DB_CONN_MAX_AGE", 60),
            # Reconnect by itself after PostgreSQL comes back, without a restart.
            conn_health_checks=True,
        )
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast when the database is unreachable: a clean 503 beats a hung worker.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "GERION_DB_CONNECT_TIMEOUT", 3
    )
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (shared rate limiting) ---------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Short socket timeouts: if Redis stalls, rate limiting fails open quickly instead of
# holding every request.
REDIS_SOCKET_TIMEOUT = float(os.environ.get("GERION_REDIS_TIMEOUT", "0.5"))
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "gerion",
            "OPTIONS": {
                "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
                # One immediate retry replaces a pooled connection that a Redis restart broke;
                # redis-py's default backoff would stall a request for seconds during an outage.
                "retry": Retry(NoBackoff(), 1),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, sessions ----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- HTTP security ------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (opt in: trusting it blindly lets
# any client claim HTTPS).
if env_bool("GERION_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Cookies are marked Secure whenever HTTPS is enforced; the embedded run serves plain HTTP.
SESSION_COOKIE_SECURE = env_bool("GERION_SECURE_COOKIES", SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
# A staff session lasts a working day, not Django's default two weeks.
SESSION_COOKIE_AGE = env_int("GERION_SESSION_SECONDS", 8 * 3600)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
SECURE_HSTS_SECONDS = env_int("GERION_HSTS_SECONDS", 31536000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Only a commitment once the domain is submitted to the preload list; check --deploy wants it.
SECURE_HSTS_PRELOAD = env_bool("GERION_HSTS_PRELOAD", SECURE_SSL_REDIRECT)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Request size ------------------------------------------------------------------------------
# A finding upload of ~150,000 findings is ~67 MB of JSON; a larger declared Content-Length gets
# a 413 before the body is read (and a body without Content-Length, a 411).
# 100,000 findings as the official CLI sends them take ~130 MB (an SCA finding with its
# vuln_details, ~1.3 kB), the same as a SARIF log ~175 MB: the default leaves room for both.
GERION_MAX_BODY_BYTES = env_int("GERION_MAX_BODY_BYTES", 256 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = GERION_MAX_BODY_BYTES
# Every other request body (sign-in and admin forms, authentication): small, whoever asks.
GERION_MAX_SMALL_BODY_BYTES = env_int("GERION_MAX_SMALL_BODY_BYTES", 64 * 1024)
# Clients behind this many trusted reverse proxies: the client IP is that many hops from the
# right of X-Forwarded-For. 0 trusts no header (REMOTE_ADDR only).
GERION_TRUSTED_PROXY_COUNT = env_int("GERION_TRUSTED_PROXY_COUNT", 0)

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies after collectstatic; no manifest, so a bare checkout (tests, a first
    # run) serves the same pages straight from the app folders.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- JWT -----------------------------------------------------------------------------------------
GERION_JWT_SIGNING_KEY = os.environ.get("GERION_JWT_SIGNING_KEY", "")
GERION_JWT_RETIRED_KEYS = env_list("GERION_JWT_RETIRED_KEYS", "")
GERION_JWT_DEV_KEY_PATH = DATA_DIR / "jwt-signing-key.pem"
GERION_JWT_ISSUER = os.environ.get("GERION_JWT_ISSUER", "https://api.gerion.dev")
GERION_JWT_AUDIENCE = os.environ.get("GERION_JWT_AUDIENCE", "gerion-api")
GERION_JWT_LIFETIME_SECONDS = 1800
# JWKS responses may be cached this long; rotation must keep a retired key published for at
# least the token lifetime plus this.
GERION_JWKS_MAX_AGE = env_int("GERION_JWKS_MAX_AGE", 300)

# --- Rate limits of POST /api/v1/auth/m2m/authenticate (SPEC: 30 requests/s, burst 10) --------
GERION_AUTH_RATE_PER_SECOND = float(os.environ.get("GERION_AUTH_RATE_PER_SECOND", "30"))
GERION_AUTH_BURST = env_int("GERION_AUTH_BURST", 10)
# Failed key attempts one client IP may make per minute before it gets 429s.
GERION_AUTH_FAILURES_PER_MINUTE = env_int("GERION_AUTH_FAILURES_PER_MINUTE", 60)
# Failed sign-ins (staff pages and admin) per client address, as a django-ratelimit rate; past it,
# every sign-in from that address is refused with a 429 until the window ends (gerion/login.py).
# The same rate applies to a browser that signed in as that user before, on its own.
GERION_LOGIN_FAILURE_RATE = os.environ.get("GERION_LOGIN_FAILURE_RATE", "10/5m")
# Failed sign-ins per username from anywhere (a guess spread over many addresses); past it, that
# username is refused from every browser that has not signed in as it before.
GERION_LOGIN_USERNAME_FAILURE_RATE = os.environ.get("GERION_LOGIN_USERNAME_FAILURE_RATE", "20/15m")
# last_used_at is written at most once per key per this many seconds.
GERION_LAST_USED_RESOLUTION_SECONDS = 60
# How long a worker may use an API key's state it keeps between authentications without reading
# it again, as a safety net only: every change made through the service renews the key's epoch
# in Redis, which stops the kept state at once (apikeys.state_cache). 0 turns keeping off.
GERION_KEY_STATE_MAX_AGE = float(os.environ.get("GERION_KEY_STATE_MAX_AGE", "10"))

# --- Staff pages: triage service levels ------------------------------------------------------
# Days a finding of each severity may stay open (counted from the day it was first seen, UTC)
# before it is overdue; a severity left out has no SLA. GERION_SLA_DAYS="CRITICAL=7,HIGH=30".
GERION_SLA_DAYS: dict[str, int] = {
    severity.strip().upper(): int(days)
    for severity, _, days in (
        item.partition("=")
        for item in env_list("GERION_SLA_DAYS", "CRITICAL=7,HIGH=30,MEDIUM=90,LOW=180")
    )
}
# The most findings one bulk triage may change ("all N matching"): one transaction holds them.
GERION_BULK_TRIAGE_MAX = env_int("GERION_BULK_TRIAGE_MAX", 100_000)

# --- Django REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.authentication.ApiKeyJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "gerion.problems.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    # Only the header parsing of simplejwt's JWTAuthentication is used; tokens are signed and
    # verified in apikeys/tokens.py (RS256 with kid).
    "AUTH_HEADER_TYPES": ("Bearer",),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gerion API",
    "DESCRIPTION": (
        "Machine-to-machine authentication (API key to RS256 JWT), JWKS, and scanner findings. "
        "Every error is an RFC 9457 problem document with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "ApiKeyBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The API key itself, as the official CLI sends it",
            },
        }
    },
}

# --- Logging: one JSON object a line on stdout, with the request id -------------------------
LOG_LEVEL = os.environ.get("GERION_LOG_LEVEL", "INFO").upper()
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "gerion.logging.RequestContextFilter"},
        # A refused Host (and every other SuspiciousOperation): one brief WARNING, no traceback.
        "suspicious_requests": {"()": "gerion.logging.SuspiciousRequestFilter"},
    },
    "formatters": {"json": {"()": "gerion.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_context", "suspicious_requests"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log line replaces Django's "Not Found: /path" warnings.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
