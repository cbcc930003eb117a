"""HTTP endpoints of the auth API: token exchange and JWKS."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys import errors
from apikeys.models import CLIENT_ID_PATTERN
from apikeys.ratelimit import failed_attempt
from apikeys.services import m2m_authenticate
from apikeys.signing_keys import get_keyset
from gerion.net import client_ip
from gerion.problems import ProblemError
from gerion.schema import problem_responses

MAX_BODY_BYTES = 4096


def presented_api_key(request: Request) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>` as the official CLI
    sends it. Both present and different: an empty (malformed) key."""
    header_key = request.headers.get("X-API-Key")
    bearer = None
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = value.strip()
    if header_key is not None and bearer is not None and header_key.strip() != bearer:
        return ""
    key = header_key if header_key is not None else bearer
    return key.strip() if key is not None else None


TokenResponse = inline_serializer(
    "TokenResponse",
    {
        "access_token": serializers.CharField(help_text="RS256 JWT for Authorization: Bearer"),
        "token_type": serializers.ChoiceField(choices=["bearer"]),
        "expires_in": serializers.IntegerField(help_text="Seconds (1800)"),
        "client_id": serializers.CharField(),
        "api_key_id": serializers.CharField(),
    },
)


class JSONWhateverTheAccept(BaseContentNegotiation):
    """The token endpoint answers JSON to every client, as OAuth token endpoints do (RFC 6749
    5.1): no Accept header to parse on the hottest path, and never a 406 the CI cannot use."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> None:
        return None  # the body is read raw

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class AuthenticateView(APIView):
    """POST /api/v1/auth/m2m/authenticate. The request costs about its RSA signature, so DRF
    does only what this endpoint uses: no authenticators (the API key is the service's to
    check), no permission or throttle classes (the token bucket is the service's), no
    content negotiation, and the answer is serialised once, straight into the response."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []
    parser_classes = []  # the body is read raw: any JSON is accepted whatever its content type
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONWhateverTheAccept

    def perform_authentication(self, request: Request) -> None:
        """Nothing to authenticate here (DRF would otherwise build an anonymous user)."""

    @extend_schema(
        operation_id="m2m_authenticate",
        summary="Trade an API key for a 30-minute JWT",
        # Security requirement objects (drf-spectacular types this as names only).
        auth=cast(Any, [{"ApiKeyHeader": []}, {"ApiKeyBearer": []}]),
        request={
            "application/json": inline_serializer(
                "Authenticate",
                # ECMA-262 has no \Z: the schema says $, the validator (models) \Z.
                {"client_id": serializers.RegexField(CLIENT_ID_PATTERN.removesuffix(r"\Z") + "$")},
            )
        },
        responses={
            200: OpenApiResponse(TokenResponse, "A signed token"),
            **problem_responses(400, 401, 404, 413, 429),
        },
        examples=[OpenApiExample("request", {"client_id": "my-jenkins-runner"}, request_only=True)],
    )
    def post(self, request: Request) -> HttpResponse:
        # {"client_id": ...} is tiny: refuse big bodies before reading them, so anonymous
        # clients cannot make workers buffer megabytes.
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
            raise ProblemError(
                f"The body must be at most {MAX_BODY_BYTES} bytes.",
                status=413,
                code="payload_too_large",
            )
        try:
            issued = m2m_authenticate(
                presented_key=presented_api_key(request),
                body=request.body,
                client_ip=client_ip(request),
            )
        except errors.CredentialRejected as exc:
            raise failed_attempt(request, exc) from None
        # RFC 6749 5.1: token responses must not be cached.
        return HttpResponse(
            orjson.dumps(issued.as_response()),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


class JWKSetRenderer(JSONRenderer):
    media_type = "application/jwk-set+json"


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """A verifier asking for text/html or anything else still gets the key set, not a 406."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        try:
            chosen: tuple[BaseRenderer, str] = super().select_renderer(
                request, renderers, format_suffix
            )
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
        return chosen


class JWKSView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    renderer_classes = [JWKSetRenderer, JSONRenderer]
    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(
        operation_id="jwks",
        summary="Public keys that verify our tokens (RFC 7517)",
        auth=[],
        responses={
            200: inline_serializer(
                "JWKSet",
                {
                    "keys": serializers.ListField(
                        child=serializers.DictField(child=serializers.CharField())
                    )
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        # Retired keys stay published until their tokens expire; max-age is short enough that
        # verifiers pick up a rotation well within a token's lifetime.
        return Response(
            get_keyset().jwks,
            headers={"Cache-Control": f"public, max-age={settings.GERION_JWKS_MAX_AGE}"},
        )
