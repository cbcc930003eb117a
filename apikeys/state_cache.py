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

Token checks on the findings API use the same kept states, confirmed without a round trip:
- Every epoch renewal is also *announced*: PUBLISHed on a Redis channel, in the same round
  trip. Each worker process holds one subscribed connection, and before it uses a kept state
  for a token check it reads, without waiting, whatever announcements have arrived on it
  (a poll of the socket: microseconds), and forgets the states they name. Redis sends an
  announcement to every subscriber before the renewal's caller goes on, so a change the
  operator has seen done has reached each worker's socket before any later request can.
- A state read from the database is marked with how many announcements had been read before
  the read: an announcement of that key read after the mark (the change committed after the
  read, or between the two renewals) makes it untrusted, whichever thread reads it.
- Trust ends with the subscription: if its connection fails or closes (Redis restarted, a
  subscriber too slow for Redis's output buffer), announcements may have been lost, so every
  mark made under it stops counting; a new subscription is tried at most once a second.
- Otherwise, as before: the GET of the key's epoch is sent before the token's signature is
  checked and read after. A token's claims name the key, and a state is used only for the key
  the verified token names. A token check never creates an epoch (authentication does).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from apikeys.models import ApiKey
from apikeys.ratelimit import Watch, redis_client, send_now

logger = logging.getLogger(__name__)

EPOCH_PREFIX = "gerion:key-epoch:"
# An epoch nobody reads for a day is dropped; a missing epoch is re-created with a new value.
EPOCH_TTL_SECONDS = 24 * 3600
# Where every epoch renewal is announced (the message: the key's lookup id).
ANNOUNCEMENTS_CHANNEL = "gerion:key-changed"
RESUBSCRIBE_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class Mark:
    """Where a worker's announcements stood before a state was read from the database."""

    subscription: int  # which subscription (a new one after each failure)
    read: int  # how many announcements had been read on it


@dataclass(frozen=True)
class KeptState:
    api_key: ApiKey  # read with STATE_FIELDS (apikeys.selectors.api_key_state)
    epoch: str | None  # the key's epoch in Redis just before the read (None: none was had)
    read_at: float  # monotonic clock
    mark: Mark | None = None  # None: read while no subscription was live


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
        # The announcements (see the module's docstring): this process's subscribed connection,
        # which subscription it is, how many announcements were read on it, and after which
        # one each key was last announced.
        self._subscriber: Any = None
        self._subscriber_pid = 0
        self._subscription = 0
        self._read = 0
        self._announced: dict[str, int] = {}
        self._next_subscribe_at = 0.0

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

    def announced(self, lookup_id: str) -> KeptState | None:
        """The kept state of this key if the announcements vouch for it: read since this
        worker's subscription began, and no change of the key announced since the read (every
        announcement that has arrived is read first). None sends the caller to the epoch."""
        if not self.enabled:
            return None
        with self._lock:
            if not self._read_announcements():
                return None
            state = self._kept.get(lookup_id)
            if (
                state is None
                or state.mark is None
                or state.mark.subscription != self._subscription
                or self._announced.get(lookup_id, 0) > state.mark.read
                or self.clock() - state.read_at > self.max_age
            ):
                return None
            self._kept.move_to_end(lookup_id)
            return state

    def mark(self) -> Mark | None:
        """To be taken just before a state is read from the database, and given to `keep`."""
        if not self.enabled:
            return None
        with self._lock:
            if not self._read_announcements():
                return None
            return Mark(self._subscription, self._read)

    def _read_announcements(self) -> bool:
        """Read every announcement that has arrived, without waiting; False while there is no
        live subscription (then nothing is vouched for). Called with the lock held."""
        subscriber = self._subscriber
        if subscriber is not None and self._subscriber_pid != os.getpid():
            subscriber = self._subscriber = None  # a fork's copy: the parent's socket
        if subscriber is None:
            return self._subscribe()
        if getattr(subscriber, "_sock", None) is None:
            # Closed: redis-py's can_read would connect it again, unsubscribed and silent.
            self._unsubscribed("connection closed")
            return False
        try:
            while subscriber.can_read(timeout=0):
                message = subscriber.read_response(push_request=True)
                if isinstance(message, list) and len(message) == 3 and message[0] == b"message":
                    self._read += 1
                    lookup_id = message[2].decode()
                    self._announced[lookup_id] = self._read
                    # Not to be confirmed by its epoch either: whatever was announced is
                    # read again.
                    self._kept.pop(lookup_id, None)
                    if len(self._announced) > self.size:
                        self._announced.clear()  # marks older than this stop counting:
                        self._subscription += 1  # as after a failure
        except (redis.RedisError, OSError, UnicodeDecodeError) as exc:
            self._unsubscribed(f"announcements lost ({type(exc).__name__})")
            return False
        return True

    def _subscribe(self) -> bool:
        now = self.clock()
        if now < self._next_subscribe_at:
            return False
        self._next_subscribe_at = now + RESUBSCRIBE_AFTER_SECONDS
        assert self.client is not None
        pool = self.client.connection_pool
        subscriber = pool.connection_class(**pool.connection_kwargs)
        try:
            subscriber.connect()
            subscriber.send_command("SUBSCRIBE", ANNOUNCEMENTS_CHANNEL)
            reply = subscriber.read_response(push_request=True)
            if not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
                raise redis.ConnectionError(f"unexpected answer to SUBSCRIBE: {reply!r}")
        except redis.RedisError:
            subscriber.disconnect()
            return False
        self._subscriber, self._subscriber_pid = subscriber, os.getpid()
        self._subscription += 1
        self._read = 0
        self._announced.clear()
        return True

    def _unsubscribed(self, why: str) -> None:
        logger.warning("api key announcements: %s; states are confirmed by their epochs", why)
        if self._subscriber is not None:
            self._subscriber.disconnect()
        self._subscriber = None
        self._subscription += 1  # every mark made under the old one stops counting
        self._announced.clear()

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

    def keep(
        self, lookup_id: str, api_key: ApiKey, epoch: str | None, mark: Mark | None = None
    ) -> None:
        """Keep a state read from the database, with the epoch read before it and the `mark`
        taken before it (either may be None: then that way cannot vouch for it)."""
        if (epoch is None and mark is None) or not self.enabled:
            return
        with self._lock:
            self._kept[lookup_id] = KeptState(api_key, epoch, self.clock(), mark)
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
            # One round trip: the new epoch, then its announcement to every worker.
            pipeline = self.client.pipeline(transaction=False)
            pipeline.set(self.epoch_key(lookup_id), new_epoch(), ex=EPOCH_TTL_SECONDS)
            pipeline.publish(ANNOUNCEMENTS_CHANNEL, lookup_id)
            pipeline.execute()
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
