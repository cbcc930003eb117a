"""A protected view that needs write:findings, to test bearer authentication before the
findings API exists."""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import HasScope, principal_of
from gerion.urls import urlpatterns as project_urlpatterns


class Protected(APIView):
    permission_classes = [HasScope]
    required_scope = "write:findings"

    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        return Response({"client_id": principal.client_id, "scopes": sorted(principal.scopes)})


urlpatterns = [path("api/v1/_test/protected", Protected.as_view()), *project_urlpatterns]
