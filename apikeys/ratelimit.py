"""Token buckets for POST /api/v1/auth/m2m/authenticate (SPEC: 30 requests/s, burst 10).

A bucket holds up to `capacity` tokens and refills at `rate` tokens a second; each request
takes one or is refused with the time until the next token. With REDIS_URL the bucket lives in
Redis and one Lua script reads, refills and takes atomically, so every worker and machine
shares it. Without Redis (the embedded single-process run) it lives in this process.

If Redis cannot be reached, authentication keeps working: the limiter logs it and falls back
to this process's own buckets (still a limit, just not shared) until Redis answers again;
/readyz reports the outage meanwhile.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis
from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import NoScriptError

from gerion.failures import failure_window
from gerion.problems import ProblemError

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a token is available; 0 when allowed
    # The value of the `watch` key, read in the same atomic step as the take (see take());
    # None when the take did not happen in Redis (no Redis, or Redis unreachable).
    watched: str | None = None

    @property
    def retry_after_header(self) -> str:
        """Retry-After is whole seconds (RFC 9110 10.2.3); never tell a client 0."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class Watch:
    key: str
    initial: str  # stored if the key is missing, and then returned
    ttl_seconds: int


Finish = Callable[[], Decision]


class TokenBucket(Protocol):
    capacity: int
    rate: float

    def take(self, key: str, watch: Watch | None = None) -> Decision:
        """Take a token from `key`'s bucket. With `watch`, also read that Redis key in the same
        step (created with its `initial` value if missing): a caller that must check a value
        kept in Redis on the same request pays one round trip for both."""
        ...

    def start_take(self, key: str, watch: Watch | None = None) -> Finish:
        """take(), split in two: the request is sent now, and the returned function waits for
        the answer, so that the caller can work meanwhile. The caller must call it, whatever
        happens in between (the connection is held until then)."""
        ...


def _refill(tokens: float, last: float, now: float, capacity: int, rate: float) -> float:
    return min(float(capacity), tokens + max(0.0, now - last) * rate)


class LocalTokenBucket:
    """Buckets in this process's memory, guarded by a lock."""

    def __init__(self, capacity: int, rate: float, clock: Clock = time.monotonic) -> None:
        self.capacity, self.rate, self.clock = capacity, rate, clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def start_take(self, key: str, watch: Watch | None = None) -> Finish:
        decision = self.take(key, watch)
        return lambda: decision

    def take(self, key: str, watch: Watch | None = None) -> Decision:
        with self._lock:
            now = self.clock()
            tokens, last = self._state.get(key, (float(self.capacity), now))
            tokens = _refill(tokens, last, now, self.capacity, self.rate)
            if tokens >= 1:
                self._state[key] = (tokens - 1, now)
                self._evict(now)
                return Decision(True, 0.0)
            self._state[key] = (tokens, now)
            return Decision(False, (1 - tokens) / self.rate)

    def _evict(self, now: float) -> None:
        # A bucket full again carries no state; drop those now and then to bound memory.
        if len(self._state) > 10_000:
            full_after = self.capacity / self.rate
            self._state = {k: v for k, v in self._state.items() if now - v[1] < full_after}


# KEYS[1] bucket; ARGV: capacity, rate, now (seconds; negative = use the Redis server's clock,
# which every machine shares), ttl in ms. Optionally KEYS[2], a key to read as well (ARGV[5]:
# its value if missing, ARGV[6]: then its ttl in seconds). Returns {allowed, retry_after as a
# string, the watched value or false}.
_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local watched = false
if KEYS[2] then
  watched = redis.call('GET', KEYS[2])
  if not watched then
    watched = ARGV[5]
    redis.call('SET', KEYS[2], watched, 'EX', ARGV[6])
  end
end
return {allowed, string.format('%.6f', retry), watched}
"""


class PooledConnection(Protocol):
    """What the bucket uses of a pooled redis-py connection (its methods are untyped)."""

    def send_command(self, *args: Any) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


def send_now(pool: redis.ConnectionPool, *command: Any) -> Callable[[], Any]:
    """Send `command` on a pooled connection now; the returned function reads its answer and
    gives the connection back, so that the caller can work while Redis answers (call it
    whatever happens in between). Sent and read on the connection directly: redis-py's
    generic command path (observability hooks, response callbacks) costs more client time
    than Redis spends on our commands. As with redis-py's retry (settings: once, no
    backoff), a connection that fails is replaced and the command sent once more."""
    pooled = pool.get_connection()
    connection = cast(PooledConnection, pooled)
    try:
        try:
            connection.send_command(*command)
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            connection.send_command(*command)
    except BaseException:
        connection.disconnect()
        pool.release(pooled)
        raise

    def answer() -> Any:
        try:
            try:
                return connection.read_response()
            except (redis.ConnectionError, redis.TimeoutError):
                connection.disconnect()
                connection.send_command(*command)
                return connection.read_response()
        except redis.ResponseError:
            raise  # Redis answered with an error: the connection itself is fine
        except BaseException:
            connection.disconnect()  # never back in the pool with an answer unread
            raise
        finally:
            pool.release(pooled)

    return answer


class RedisTokenBucket:
    """Buckets in Redis, shared by every process; one atomic script call per request."""

    def __init__(
        self,
        client: redis.Redis,
        capacity: int,
        rate: float,
        clock: Clock | None = None,
        prefix: str = "gerion:rl:",
    ) -> None:
        self.capacity, self.rate, self.clock, self.prefix = capacity, rate, clock, prefix
        self._client = client
        self._script = client.register_script(_TAKE_SCRIPT)
        # An idle bucket is full again after capacity/rate seconds; keep it no longer.
        self._ttl_ms = math.ceil(capacity / rate * 1000) + 1000

    def take(self, key: str, watch: Watch | None = None) -> Decision:
        return self.start_take(key, watch)()

    def start_take(self, key: str, watch: Watch | None = None) -> Finish:
        """One EVALSHA (send_now); a script Redis has forgotten (restart, SCRIPT FLUSH) is
        loaded again."""
        now = self.clock() if self.clock is not None else -1
        keys = [self.prefix + key]
        args: list[str | int | float] = [self.capacity, self.rate, now, self._ttl_ms]
        if watch is not None:
            keys.append(watch.key)
            args += [watch.initial, watch.ttl_seconds]
        command = ["EVALSHA", self._script.sha, len(keys), *keys, *args]
        answer = send_now(self._client.connection_pool, *command)

        def finish() -> Decision:
            try:
                allowed, retry, watched = answer()
            except NoScriptError:  # the script did not run: load it and run it
                allowed, retry, watched = self._script(keys=keys, args=args)
            if isinstance(watched, bytes):
                watched = watched.decode()
            return Decision(bool(int(allowed)), float(retry), watched or None)

        return finish


class FailOpenBucket:
    """Redis first; while Redis is unreachable, this process's own buckets (logged once per
    outage, retried every `retry_interval` seconds)."""

    def __init__(
        self,
        primary: TokenBucket,
        fallback: TokenBucket,
        retry_interval: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.primary, self.fallback = primary, fallback
        self.capacity, self.rate = primary.capacity, primary.rate
        self.retry_interval, self.clock = retry_interval, clock
        self._down_until = 0.0

    def take(self, key: str, watch: Watch | None = None) -> Decision:
        return self.start_take(key, watch)()

    def start_take(self, key: str, watch: Watch | None = None) -> Finish:
        if self.clock() < self._down_until:
            return self.fallback.start_take(key)
        try:
            finish = self.primary.start_take(key, watch)
        except redis.RedisError as exc:
            self._down(exc)
            return self.fallback.start_take(key)

        def finish_or_fall_back() -> Decision:
            try:
                decision = finish()
            except redis.RedisError as exc:
                self._down(exc)
                return self.fallback.take(key)
            if self._down_until:
                logger.info("rate limiter: Redis reachable again; shared buckets resumed")
                self._down_until = 0.0
            return decision

        return finish_or_fall_back

    def _down(self, exc: redis.RedisError) -> None:
        if self._down_until == 0.0:
            logger.warning(
                "rate limiter: Redis unreachable (%s); using per-process buckets",
                type(exc).__name__,
            )
        self._down_until = self.clock() + self.retry_interval


@functools.lru_cache(maxsize=1)
def redis_client() -> redis.Redis | None:
    """The process's Redis client for the bucket and the key-state epochs (None without
    REDIS_URL), with the cache's connection options (gerion.settings.CACHES): short timeouts,
    one immediate retry, no backoff."""
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL, **settings.CACHES["default"]["OPTIONS"])


@functools.lru_cache(maxsize=1)
def get_bucket() -> TokenBucket:
    """The process's authentication bucket, as configured."""
    capacity, rate = settings.GERION_AUTH_BURST, settings.GERION_AUTH_RATE_PER_SECOND
    local = LocalTokenBucket(capacity, rate)
    client = redis_client()
    if client is None:
        return local
    return FailOpenBucket(RedisTokenBucket(client, capacity, rate), local)


# --- Failed attempts: a fixed window per client network ------------------------------------------
# The token bucket shapes traffic; this caps how many *failed* key attempts one client network
# may make per minute, so that probing lookup ids or secrets is slow and loud. It is consulted
# only for requests that already failed, so a valid key is never refused because of its
# neighbours.


def failed_attempt(request: HttpRequest, problem: ProblemError) -> ProblemError:
    """Count a failed key attempt; the problem to answer: the failure's own, or a 429 once the
    client network is over its cap for this minute."""
    window = failure_window(
        request,
        group="apikeys.m2m.failed-attempts",
        rate=f"{settings.GERION_AUTH_FAILURES_PER_MINUTE}/m",
        count_this_one=True,
    )
    if window is None or not window.exceeded:
        return problem
    return ProblemError(
        "Too many failed API key attempts from this address; retry after the number of "
        "seconds in Retry-After.",
        status=429,
        code="too_many_failed_attempts",
        headers={"Retry-After": window.retry_after},
    )
