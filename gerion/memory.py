"""Giving memory back to the operating system after a large request (glibc only).

A 100 MB upload allocates several hundred MB in a worker for a second or two. glibc keeps
what is freed for later use, in per-thread arenas, so each gthread thread that ever served an
upload would keep its own peak: a worker's resident size would climb with every large upload
it serves and never come down. These make it come down. Elsewhere (macOS, musl) they do
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 (glibc has it; others do not)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune_allocator() -> None:
    """For a worker process, before it serves: at most two malloc arenas whatever the number
    of threads, and blocks of 1 MiB or more mapped on their own (returned when freed) rather
    than kept in an arena; glibc would otherwise raise that threshold after the first large
    free."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 2)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 8 << 20)


# Below this, a request leaves too little behind to be worth walking the heap for (a trim
# costs milliseconds; most CI uploads are a few kilobytes).
WORTH_TRIMMING = 8 << 20


def release_free_memory(*, after_body_of: int) -> None:
    """After a request whose body had `after_body_of` bytes: return freed memory to the
    operating system now if that body was large enough to matter."""
    if _LIBC is not None and after_body_of >= WORTH_TRIMMING:
        _LIBC.malloc_trim(0)
