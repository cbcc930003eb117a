"""The project's URLs plus views that fail on purpose, to test the error shape."""

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gerion.urls import handler500
from gerion.urls import urlpatterns as project_urlpatterns

__all__ = ["handler500", "urlpatterns"]


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret-internal-detail: SELECT * FROM apikeys_apikey")


def database_down(request: HttpRequest) -> HttpResponse:
    raise OperationalError("connection to server at 10.0.0.5 failed: password=hunter2")


class _Item(serializers.Serializer[dict[str, object]]):
    title = serializers.CharField(max_length=5)


class _Body(serializers.Serializer[dict[str, object]]):
    name = serializers.CharField()
    items = _Item(many=True)


class ValidatingView(APIView):
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        _Body(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True})


class DrfBoom(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise ValueError("secret-internal-detail")


urlpatterns = [
    path("api/v1/_test/boom", boom),
    path("api/v1/_test/db-down", database_down),
    path("api/v1/_test/validate", ValidatingView.as_view()),
    path("api/v1/_test/drf-boom", DrfBoom.as_view()),
    path("_test/db-down", database_down),
    path("_test/boom", boom),
    *project_urlpatterns,
]
