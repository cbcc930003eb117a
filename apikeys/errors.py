"""The problems the authentication endpoints answer. Codes are stable: clients match on them."""

from __future__ import annotations

from gerion.problems import ProblemError

API_KEY_CHALLENGE = 'ApiKey realm="gerion"'
BEARER_CHALLENGE = 'Bearer realm="gerion"'


class CredentialRejected(ProblemError):
    """No usable API key (none, malformed, unknown, wrong secret): the request was charged to
    its client IP, and counts against that IP's failed-attempt cap."""


def missing_api_key() -> CredentialRejected:
    return CredentialRejected(
        "Send the API key in the X-API-Key header (or Authorization: Bearer <key>).",
        status=401,
        code="missing_api_key",
        headers={"WWW-Authenticate": API_KEY_CHALLENGE},
    )


def invalid_api_key(detail: str = "The API key is invalid.") -> CredentialRejected:
    return CredentialRejected(
        detail, status=401, code="invalid_api_key", headers={"WWW-Authenticate": API_KEY_CHALLENGE}
    )


def api_key_not_found() -> CredentialRejected:
    return CredentialRejected("No API key has this id.", status=404, code="api_key_not_found")


def key_unusable(code: str, detail: str) -> ProblemError:
    """The key verified but may not be used now (revoked, expired, other client_id)."""
    return ProblemError(
        detail, status=401, code=code, headers={"WWW-Authenticate": API_KEY_CHALLENGE}
    )


def rate_limited(retry_after: str, *, without_usable_key: bool = False) -> ProblemError:
    """429. `without_usable_key`: the client IP's bucket ran dry, so it is also a failure."""
    problem_class = CredentialRejected if without_usable_key else ProblemError
    return problem_class(
        "Too many requests; retry after the number of seconds in Retry-After.",
        status=429,
        code="rate_limited",
        headers={"Retry-After": retry_after},
    )


def invalid_body(detail: str, *, errors: list[dict[str, str]] | None = None) -> ProblemError:
    code = "validation_error" if errors else "invalid_json"
    return ProblemError(detail, status=400, code=code, errors=errors)


def token_rejected(code: str, detail: str) -> ProblemError:
    return ProblemError(
        detail,
        status=401,
        code=code,
        headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
    )
