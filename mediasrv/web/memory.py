"""glibc's allocator, tuned for the worker: two malloc arenas, and start-up's freed memory
handed back once (`malloc_trim(0)`).

Layer: web.

Two arenas (`limit_malloc_arenas`, from gunicorn's post_fork): see gunicorn.conf.py.

Loading the two ONNX models and running the end-of-turn model once (so the first
caller's pause does not pay for it) allocates and frees ~10 MB of scratch memory beyond
what the models keep: the graphs' protobufs, optimiser copies, the first run's features.
glibc keeps freed memory inside the process for reuse; the server will never need that
much again at once, so it stays resident for the process's life. `malloc_trim(0)` gives
the free pages of every malloc arena back (measured on the gunicorn worker at idle:
docs/performance.md). Called once, at the end of `create_app`: later frees are the
calls' own, which the next calls reuse.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class LibC(Protocol):
    def malloc_trim(self, pad: int) -> int: ...
    def mallopt(self, param: int, value: int) -> int: ...


_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def glibc() -> LibC | None:
    """Return the C library if it is glibc (it has malloc_trim), else None (musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int, libc: LibC | None = None) -> bool:
    """Cap glibc's malloc arenas at `arenas`; return whether it could (not glibc: no)."""
    libc = libc if libc is not None else glibc()
    if libc is None:
        return False  # musl, macOS: their allocators do not work this way
    libc.mallopt(_M_ARENA_MAX, arenas)
    return True


def release_freed_memory(libc: LibC | None = None) -> bool:
    """Give the free pages of glibc's malloc arenas back; return whether it could."""
    libc = libc if libc is not None else glibc()
    if libc is None:
        log.debug("not glibc: freed memory stays with the allocator")
        return False
    libc.malloc_trim(0)
    return True
