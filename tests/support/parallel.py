"""Calls started at the same moment, each in its own thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def at_once(calls: list[Callable[[], Any]]) -> list[tuple[Any, float]]:
    """Run the calls together (a barrier releases them at once); return, in order, each one's
    result and how long it took. Each thread closes its own database connection at the end."""
    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results: list[tuple[Any, float]] = [(None, 0.0)] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            results[index] = (call(), time.monotonic() - started)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
