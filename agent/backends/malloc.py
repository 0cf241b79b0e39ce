"""glibc's allocator, tuned for a long-running agent with many threads.

Two calls, both no-ops where the C library is not glibc (musl has neither):

- ``limit_arenas(n)``: glibc gives threads that contend for the heap an
  arena of their own, up to 8 per core, and memory freed in one arena is
  never used by another.  The agent's collectors each run on a thread and
  free what a collection built, so the arenas' free lists add up: at 4096
  interfaces, 2 arenas instead of 16 held 6 MB less.
- ``trim()``: ``malloc_trim(0)`` gives back to the kernel the free pages
  inside the arenas (glibc only returns the top of the main heap by
  itself).  After a large relayout (4096 interfaces' keys rebuilt) that is
  another 5-6 MB.

The measurement behind both is in docs/benchmarks.md ("Memory per series").
"""
from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # <malloc.h>


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter already runs on
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None
    return libc


def limit_arenas(count: int) -> bool:
    """At most ``count`` malloc arenas from now on; True if glibc took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count))


def trim() -> bool:
    """Return the arenas' free pages to the kernel; True if any were."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
