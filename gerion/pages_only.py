"""Middleware that only the pages need, skipped on the API (/api/...).

Sessions, signed-in users and flash messages serve the staff pages and the admin. No API view
reads them (the API authenticates with keys and tokens), yet Django would set up a session
store, a lazy user and message storage, and check them again on the way out, for every API
request. These subclasses are Django's own middleware for every other path.
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from gerion.middleware import is_api_path


class _PagesOnly(MiddlewareMixin):
    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_api_path(request.path):
            return self.get_response(request)  # type: ignore[return-value]
        return super().__call__(request)  # type: ignore[return-value]


class SessionMiddleware(_PagesOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_PagesOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_PagesOnly, messages.MessageMiddleware):
    pass
