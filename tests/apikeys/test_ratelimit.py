"""The token bucket (capacity 10, 30 tokens/s), in Redis and in process, on an injected clock."""

import logging
import math

import pytest
import redis
from django.conf import settings

from apikeys.ratelimit import FailOpenBucket, LocalTokenBucket, RedisTokenBucket
from tests.support.servers import free_port


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(params=["redis", "local"])
def bucket_factory(request, redis_client):
    def make(clock, capacity=10, rate=30.0):
        if request.param == "redis":
            return RedisTokenBucket(redis_client, capacity, rate, clock=clock)
        return LocalTokenBucket(capacity, rate, clock=clock)

    return make


def test_a_burst_of_eleven_lets_ten_through(bucket_factory):
    clock = FakeClock()
    bucket = bucket_factory(clock)
    decisions = [bucket.take("key:a") for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert decisions[-1].retry_after == pytest.approx(1 / 30, abs=1e-3)
    assert decisions[-1].retry_after_header == "1"


def test_tokens_refill_at_thirty_a_second(bucket_factory):
    clock = FakeClock()
    bucket = bucket_factory(clock)
    for _ in range(10):
        assert bucket.take("key:a").allowed
    assert not bucket.take("key:a").allowed
    clock.advance(1 / 30 + 1e-4)
    assert bucket.take("key:a").allowed
    assert not bucket.take("key:a").allowed
    clock.advance(1.0)  # a full second refills to capacity, not beyond
    assert sum(bucket.take("key:a").allowed for _ in range(15)) == 10


def test_a_client_steady_at_25_per_second_never_sees_a_429(bucket_factory):
    clock = FakeClock()
    bucket = bucket_factory(clock)
    refused = 0
    for _ in range(25 * 60):  # one minute at 25 req/s
        refused += not bucket.take("key:steady").allowed
        clock.advance(1 / 25)
    assert refused == 0


def test_a_client_at_40_per_second_is_held_to_about_30(bucket_factory):
    clock = FakeClock()
    bucket = bucket_factory(clock)
    allowed = 0
    for _ in range(40 * 10):
        allowed += bucket.take("key:greedy").allowed
        clock.advance(1 / 40)
    assert 300 <= allowed <= 311  # 10 s at 30/s plus the initial burst of 10


def test_buckets_are_independent(bucket_factory):
    clock = FakeClock()
    bucket = bucket_factory(clock)
    for _ in range(10):
        bucket.take("key:a")
    assert not bucket.take("key:a").allowed
    assert bucket.take("key:b").allowed
    assert bucket.take("ip:203.0.113.1").allowed


def test_redis_state_expires_once_the_bucket_would_be_full(redis_client):
    bucket = RedisTokenBucket(redis_client, 10, 30.0, clock=FakeClock())
    bucket.take("key:ttl")
    ttl_ms = redis_client.pttl("gerion:rl:key:ttl")
    assert 0 < ttl_ms <= math.ceil(10 / 30 * 1000) + 1000


def test_when_redis_is_unreachable_the_limiter_fails_open_to_local_buckets(caplog):
    dead = redis.Redis(host="127.0.0.1", port=free_port(), **settings.CACHES["default"]["OPTIONS"])
    clock = FakeClock()
    bucket = FailOpenBucket(
        RedisTokenBucket(dead, 10, 30.0, clock=clock),
        LocalTokenBucket(10, 30.0, clock=clock),
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="apikeys.ratelimit"):
        decisions = [bucket.take("key:a") for _ in range(11)]
    # Authentication goes on, still limited, per process.
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # logged once per outage, not once per request


def test_the_shared_bucket_resumes_when_redis_returns(redis_client):
    class Flaky:
        capacity, rate = 10, 30.0

        def __init__(self):
            self.down = True
            self.real = RedisTokenBucket(redis_client, 10, 30.0, clock=clock)

        def take(self, key, watch=None):
            return self.start_take(key, watch)()

        def start_take(self, key, watch=None):
            if self.down:
                raise redis.ConnectionError("down")
            return self.real.start_take(key, watch)

    clock = FakeClock()
    primary = Flaky()
    bucket = FailOpenBucket(primary, LocalTokenBucket(10, 30.0, clock=clock), clock=clock)
    assert bucket.take("key:x").allowed
    primary.down = False
    clock.advance(2.5)
    assert bucket.take("key:x").allowed
    assert redis_client.exists("gerion:rl:key:x")  # the second take went to Redis


@pytest.fixture
def own_redis(tmp_path):
    """A throwaway Redis server: these tests flush its scripts and kill its connections."""
    import subprocess
    import time

    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, **settings.CACHES["default"]["OPTIONS"])
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield client
    process.terminate()
    process.wait(timeout=10)


def test_a_script_redis_forgot_is_loaded_again_and_counted_once(own_redis):
    bucket = RedisTokenBucket(own_redis, 10, 30.0, clock=FakeClock())
    assert bucket.take("key:a").allowed
    own_redis.script_flush()  # what a Redis restart does to the script cache
    assert bucket.take("key:a").allowed
    assert float(own_redis.hget("gerion:rl:key:a", "tokens")) == 8  # two takes, not three


def test_a_pooled_connection_redis_dropped_is_replaced_without_an_error(own_redis):
    bucket = RedisTokenBucket(own_redis, 10, 30.0, clock=FakeClock())
    assert bucket.take("key:a").allowed
    own_redis.client_kill_filter(_type="normal", skipme=False)  # every client, ours too
    assert bucket.take("key:a").allowed
    assert float(own_redis.hget("gerion:rl:key:a", "tokens")) == 8
