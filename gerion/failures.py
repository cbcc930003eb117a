"""Fixed windows of failed attempts per client network (django-ratelimit on the shared cache).

Used where a count of failures per minute is the right tool, with no burst semantics: failed
API key attempts (apikeys.ratelimit) and failed sign-ins (gerion.login, which also keys windows
by username and by browser). If the cache cannot
be reached the window fails open: the caller goes on as if under the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from gerion.net import client_ip, client_network


@dataclass(frozen=True)
class Window:
    count: int
    limit: int
    seconds_left: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def full(self) -> bool:
        """No failure left in this window: the next one would exceed it."""
        return self.count >= self.limit

    @property
    def retry_after(self) -> str:
        """Seconds until a new window. django-ratelimit's time_left counts to the window's last
        second, which still belongs to the window: one more, or a client that waits exactly
        Retry-After is refused again."""
        return str(max(0, self.seconds_left) + 1)


def failure_window(
    request: HttpRequest,
    *,
    group: str,
    rate: str,
    count_this_one: bool,
    key: str | None = None,
) -> Window | None:
    """The window of `key` (default: this request's client network) in `group` (e.g. rate
    "60/m"), after counting this request as a failure if `count_this_one`; None when the cache
    is unreachable (fail open)."""
    try:
        usage = get_usage(
            request,
            group=group,
            key=lambda _group, req: key if key is not None else client_network(client_ip(req)),
            rate=rate,
            increment=count_this_one,
        )
    except redis.RedisError:
        return None
    if usage is None:
        return None
    return Window(int(usage["count"]), int(usage["limit"]), int(usage["time_left"]))
