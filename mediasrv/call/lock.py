"""The call lock: a `threading.Lock` that knows which thread holds it.

Layer: call.

`threading.Lock.locked()` says that *some* thread holds a lock, which is not what a
helper means when it asserts "my caller holds the call lock", nor what a command means
when it asserts "nobody here holds it while I send". `held()` answers for the current
thread, so both halves of the lock rule (core.py) are asserted where they matter.
"""

from __future__ import annotations

import threading


class CallLock:
    """A non-reentrant lock with an owner; use it as a context manager."""

    __slots__ = ("_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = 0  # thread ident of the holder, 0 when free

    def __enter__(self) -> CallLock:
        self._lock.acquire()
        self._owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner = 0
        self._lock.release()

    def held(self) -> bool:
        """Tell whether the current thread holds the lock."""
        return self._owner == threading.get_ident()
