"""API key state kept in each worker between authentications, used only when Redis confirms,
on the same round trip as the rate-limit bucket, that it is still current.

Why: an authenticate request costs about its RSA signature plus its round trips, and with
PostgreSQL and Redis idle between requests each round trip costs as much as the signature
again (the peer has to be woken). The key's state (secret hash, status, permissions) changes
rarely; its bucket must be taken on every request anyway. So the state is kept here and checked
against a per-key *epoch* in Redis, which the bucket script reads atomically with the take.

How it stays correct (revocation takes effect at once):
- Every change of a key's state (services: update, revoke, roll, delete, and its successor's
  narrowing of a predecessor) gives the key a new random epoch in Redis, both before its
  transaction commits and right after (`state_changed`). The operator's answer ("revoked")
  leaves only after the second one.
- A state read from the database is tagged with the epoch read from Redis *before* that read.
  A change that commits after the read sets a newer epoch, so the tag no longer matches.
- A request uses a kept state only if the epoch the bucket script returns equals its tag;
  otherwise it reads the database again (and keeps that, tagged with the epoch just seen).
- The secret hash, the one thing checked before the bucket (so that a wrong secret cannot take
  from the key's bucket), never changes for a key, whatever its state.
- Without Redis, or while it is unreachable, nothing is confirmed, so every request reads the
  database, as before this cache. An epoch Redis lost (restart, eviction) is replaced by a new
  one, which matches nothing kept.
- Safety net for what the epochs cannot see (a change made in SQL by hand, or a change whose
  epoch could not reach Redis, which is logged as an error): a kept state is used for at most
  GERION_KEY_STATE_MAX_AGE seconds (default 10), then read again.

Token checks on the findings API use the same kept states: the GET of the key's epoch is sent
before the token's signature is checked and read after, so it costs about nothing more than
the check; a token's claims name the key, and a state is used only for the key the verified
token names. A token check never creates an epoch (authentication does): without one, the state
is read from the database and not kept.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import transaction

from apikeys.models import ApiKey
from apikeys.ratelimit import Watch, redis_client, send_now

logger = logging.getLogger(__name__)

EPOCH_PREFIX = "gerion:key-epoch:"
# An epoch nobody reads for a day is dropped; a missing epoch is re-created with a new value.
EPOCH_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class KeptState:
    api_key: ApiKey  # read with STATE_FIELDS (apikeys.selectors.api_key_state)
    epoch: str  # the key's epoch in Redis just before the read
    read_at: float  # monotonic clock


def new_epoch() -> str:
    return secrets.token_hex(8)


class KeyStateCache:
    """Kept states by lookup id (at most `size`, least recently used dropped) and the epochs in
    Redis that confirm them. Shared by the threads of a worker."""

    def __init__(
        self,
        client: redis.Redis | None,
        *,
        max_age: float,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.max_age, self.size, self.clock = client, max_age, size, clock
        self._kept: OrderedDict[str, KeptState] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.client is not None and self.max_age > 0

    @staticmethod
    def epoch_key(lookup_id: str) -> str:
        return EPOCH_PREFIX + lookup_id

    def watch(self, lookup_id: str) -> Watch | None:
        """What the bucket script should read along with the key's bucket."""
        if not self.enabled:
            return None
        return Watch(self.epoch_key(lookup_id), new_epoch(), EPOCH_TTL_SECONDS)

    def kept(self, lookup_id: str) -> KeptState | None:
        """The kept state of this key, unless it is older than max_age (confirm it before use:
        `confirmed`)."""
        with self._lock:
            state = self._kept.get(lookup_id)
            if state is None:
                return None
            if self.clock() - state.read_at > self.max_age:
                del self._kept[lookup_id]
                return None
            self._kept.move_to_end(lookup_id)
            return state

    def current_epoch(self, lookup_id: str) -> str | None:
        """The key's epoch in Redis (created if missing), to tag a state about to be read from
        the database; None when it cannot be had (no Redis, Redis unreachable)."""
        if not self.enabled:
            return None
        assert self.client is not None
        key, fresh = self.epoch_key(lookup_id), new_epoch()
        try:
            # SET NX GET (Redis 6.2+): stores `fresh` only if missing; returns the old value.
            old = self.client.set(key, fresh, nx=True, get=True, ex=EPOCH_TTL_SECONDS)
        except redis.RedisError:
            return None
        if old is None:
            return fresh
        return old.decode() if isinstance(old, bytes) else str(old)

    def start_epoch_read(self, lookup_id: str) -> Callable[[], str | None]:
        """The key's epoch in Redis (None if missing or unreachable), read in two halves: the
        GET is sent now, and the returned function waits for the answer, so that the caller
        can verify a token meanwhile. It must be called (it gives the connection back)."""
        if not self.enabled:
            return lambda: None
        assert self.client is not None
        try:
            answer = send_now(self.client.connection_pool, "GET", self.epoch_key(lookup_id))
        except redis.RedisError:
            return lambda: None

        def finish() -> str | None:
            try:
                value = answer()
            except redis.RedisError:
                return None
            return value.decode() if isinstance(value, bytes) else None

        return finish

    def keep(self, lookup_id: str, api_key: ApiKey, epoch: str | None) -> None:
        if epoch is None or not self.enabled:
            return
        with self._lock:
            self._kept[lookup_id] = KeptState(api_key, epoch, self.clock())
            self._kept.move_to_end(lookup_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def forget(self, lookup_id: str) -> None:
        with self._lock:
            self._kept.pop(lookup_id, None)

    def renew_epoch(self, lookup_id: str) -> bool:
        """A new epoch for the key: every kept state of it, in every process, stops matching."""
        self.forget(lookup_id)
        if self.client is None:
            return True
        try:
            self.client.set(self.epoch_key(lookup_id), new_epoch(), ex=EPOCH_TTL_SECONDS)
        except redis.RedisError as exc:
            logger.error(
                "api key state change not announced: Redis unreachable (%s); workers that "
                "keep this key's state use it for at most %s s more",
                type(exc).__name__,
                self.max_age,
                extra={"lookup_id": lookup_id},
            )
            return False
        return True


@functools.lru_cache(maxsize=1)
def get_key_state_cache() -> KeyStateCache:
    """The process's cache, as configured (disabled without Redis)."""
    return KeyStateCache(redis_client(), max_age=settings.GERION_KEY_STATE_MAX_AGE)


def state_changed(lookup_id: str) -> None:
    """Call inside the transaction that changes a key's state: its epoch is renewed now (so
    that no process keeps trusting the old state from here on) and again once the change is
    committed (so that a state read between the two, before the commit, is not trusted
    either)."""
    cache = get_key_state_cache()
    cache.renew_epoch(lookup_id)
    transaction.on_commit(lambda: cache.renew_epoch(lookup_id))
