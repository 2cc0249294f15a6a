"""Shared fixtures: the thread-leak detector every test runs under, the e2e backends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from timing import bound

if TYPE_CHECKING:
    from mediasrv.testing.harness import BackendPool

SHARED_AUDIO = Path(__file__).resolve().parent / "audio"  # copied from ../shared/audio


def _ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("mediasrv-")}


@pytest.fixture(scope="session", autouse=True)
def turn_model_worker() -> Iterator[None]:
    """The process's one end-of-turn worker (mediasrv-turn-model), shared by every call of
    every server a test starts, as in production. Started before the first test, so the
    leak check counts it as the process's, not a test's; stopped and checked after the
    last one."""
    from mediasrv.call.turn_checks import shared_turn_checks, stop_shared_turn_checks

    shared_turn_checks().start()
    yield
    assert stop_shared_turn_checks(timeout=bound(2.0)), "mediasrv-turn-model did not end"


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Fail a test that leaves a `mediasrv-` thread running (fixtures' threads excepted)."""
    before = _ours()
    yield
    deadline = time.monotonic() + bound(2.0)
    left = _ours() - before
    while left and time.monotonic() < deadline:
        for thread in left:
            thread.join(timeout=0.05)
        left = {t for t in _ours() - before if t.is_alive()}
    assert not left, f"threads left running: {sorted(t.name for t in left)}"


@pytest.fixture(scope="module")
def backends() -> Iterator[BackendPool]:
    """The recording local Realtime backends of a module's end-to-end tests.

    Module-scoped, so their threads exist before the leak detector looks at each test,
    and end with the module.
    """
    from mediasrv.testing.harness import BackendPool  # the e2e tests' only: import late

    with BackendPool() as pool:
        yield pool
