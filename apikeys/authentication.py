"""DRF authentication and permission for the findings API: Bearer JWT -> API key principal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication

from apikeys.errors import BEARER_CHALLENGE, token_rejected
from apikeys.services import ApiKeyPrincipal, principal_from_token
from gerion.context import client_id_var

if TYPE_CHECKING:  # rest_framework.views imports this module through DRF's settings
    from rest_framework.views import APIView


class ApiKeyJWTAuthentication(JWTAuthentication):
    """simplejwt's header parsing (`Authorization: Bearer <token>`); our verification
    (apikeys.tokens, RS256 with kid) and the key's current state (apikeys.services)."""

    # The principal is an API key, not a Django user: a deliberate departure from simplejwt's
    # (user, Token) signature.
    def authenticate(  # type: ignore[override]
        self, request: Request
    ) -> tuple[ApiKeyPrincipal, dict[str, Any]] | None:
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        try:
            token = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise token_rejected("invalid_token", "The token is malformed.") from exc
        principal = principal_from_token(token=token)
        client_id_var.set(principal.client_id)  # for the access log
        return principal, principal.claims

    def get_raw_token(self, header: bytes) -> bytes | None:
        # RFC 7235 2.1: the scheme is case-insensitive ("bearer" works as well as "Bearer").
        scheme, _, rest = header.partition(b" ")
        if scheme.lower() == b"bearer":
            header = b"Bearer " + rest
        return super().get_raw_token(header)

    def authenticate_header(self, request: Request) -> str:
        return BEARER_CHALLENGE


def principal_of(request: Request) -> ApiKeyPrincipal:
    """The authenticated API key of a request that passed HasScope."""
    user = request.user
    assert isinstance(user, ApiKeyPrincipal)
    return user


class HasScope(BasePermission):
    """Allows the request if its token's key holds the permission the view requires now:
    `required_scope`, a string, or a mapping from HTTP method to string."""

    code = "insufficient_scope"

    def has_permission(self, request: Request, view: APIView) -> bool:
        declared: str | Mapping[str, str] = getattr(view, "required_scope")  # noqa: B009
        required = declared if isinstance(declared, str) else declared.get(request.method or "")
        if required is None:
            return False
        user = request.user
        if not isinstance(user, ApiKeyPrincipal):
            return False
        self.message = f"This API key lacks the '{required}' permission."
        return required in user.scopes
