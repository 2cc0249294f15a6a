"""End-to-end helpers: the real app on loopback, the local backend, the emulator, logs.

Each e2e module starts the app's built-in backend in a module fixture (so its threads
exist before the leak detector looks) and stops it afterwards. `run` starts one real
server per turn mode with the scenario's settings and places the scenario's call on
each at once: a test of both modes takes as long as one call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from mediasrv.app import local_backend, local_backend_url, stop_local_backend
from mediasrv.sim.scenarios import LocalServer, LogCapture, Outcome, Scenario, run_calls

TRUNCATE_TOLERANCE_MS = 60  # truncate point vs. what the emulator heard of the item
MAX_LATE_MS = 150.0  # emulator pacing slip that voids a call (echo path 160 ms -> 310 ms)
ATTEMPTS = 2


def module_backend() -> Iterator[Any]:
    """Start the built-in backend for a module's tests; stop it (and its threads) after."""
    local_backend_url()
    yield local_backend()
    stop_local_backend()


def run_all(scenarios: Sequence[Scenario], backend: Any) -> list[Outcome]:
    """Run every scenario in each of its modes at once, each on its own server.

    A call during which the emulator itself fell more than MAX_LATE_MS behind real time
    (the machine starved the test's own caller: its echo and timing are not what the
    scenario says) is void and placed once more; a second void call fails the test.
    """
    jobs = [(scenario, mode) for scenario in scenarios for mode in scenario.modes]
    outcomes: dict[tuple[str, str], Outcome] = {}
    for _ in range(ATTEMPTS):
        todo = [(s, m) for s, m in jobs if _void(outcomes.get((s.name, m)))]
        if not todo:
            break
        for o in _place(todo, backend):
            outcomes[o.scenario.name, o.mode] = o
    result = [outcomes[s.name, m] for s, m in jobs]
    for o in result:
        assert o.result.connected, f"{o.label}: call failed: {o.result.error}"
        assert o.server_ended, f"{o.label}: the server never logged the call's end"
        late = o.summary["emulator"]["tx_late_max_ms"]
        assert not _void(o), f"{o.label}: emulator {late} ms behind real time twice: overloaded"
    return result


def _void(o: Outcome | None) -> bool:
    return o is None or float(o.summary["emulator"]["tx_late_max_ms"]) > MAX_LATE_MS


def _place(jobs: Sequence[tuple[Scenario, str]], backend: Any) -> list[Outcome]:
    with LogCapture() as logs, ExitStack() as stack:
        specs = []
        for scenario, mode in jobs:
            server = stack.enter_context(LocalServer(scenario.settings(mode)))
            specs.append((server.base_url, scenario, mode))
        outcomes = run_calls(specs, logs, backend=backend)
    for o in outcomes:
        if _void(o):
            late = o.summary["emulator"]["tx_late_max_ms"]
            print(f"{o.label}: void, the emulator fell {late} ms behind real time")
    return outcomes


def run(scenario: Scenario, backend: Any) -> dict[str, Outcome]:
    """Run one scenario in each of its modes at once; return outcomes by mode."""
    return {o.mode: o for o in run_all([scenario], backend)}


def answers(o: Outcome) -> list[float]:
    """Return when each answer response was created (call time)."""
    return [c.t for c in o.created() if c.what == "answer"]


def check_barge_in(o: Outcome, clear_index: int = 0) -> dict[str, Any]:
    """Assert one barge-in was clean; return its clear from the summary.

    Clean: the interrupted item was truncated at what the caller heard of it, and none of
    the interrupted response's audio was heard after the clear. The bridge knows what was
    heard from mark echoes; the emulator sends them from its paced thread, so they are
    late by as much as that thread slipped: the tolerance grows by the measured slip.
    """
    s, why = o.summary, o.describe()
    clear = s["clears"][clear_index]
    assert clear["heard_after_ms"] == 0.0, why
    barge = o.barge_ins()[clear_index]
    rid = barge.detail.split()[0].removeprefix("response=")
    item = next(m.name.split(":")[1] for m in o.result.server_marks if m.name.startswith(rid))
    heard = s["heard_ms_per_item"][item]
    cuts = [c for c in o.truncations if c[0] == item]
    assert len(cuts) == 1, f"item {item} truncations {o.truncations}\n{why}"
    tolerance = TRUNCATE_TOLERANCE_MS + float(s["emulator"]["tx_late_max_ms"])
    assert abs(cuts[0][1] - heard) <= tolerance, (
        f"truncated at {cuts[0][1]} ms, heard {heard} ms (tolerance {tolerance} ms)\n{why}"
    )
    return dict(clear)
