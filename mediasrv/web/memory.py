"""Hand the memory start-up freed back to the system: glibc's `malloc_trim(0)`, once.

Layer: web.

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


def glibc() -> LibC | None:
    """Return the C library if it is glibc (it has malloc_trim), else None (musl, macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_freed_memory(libc: LibC | None = None) -> bool:
    """Give the free pages of glibc's malloc arenas back; return whether it could."""
    libc = libc if libc is not None else glibc()
    if libc is None:
        log.debug("not glibc: freed memory stays with the allocator")
        return False
    libc.malloc_trim(0)
    return True
