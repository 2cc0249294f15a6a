"""End-to-end helpers: the real app on loopback, recording Realtime backends, the emulator.

Each e2e module gets a `BackendPool` from the `backends` fixture (conftest.py). `run_all`
starts one real server per scenario and turn mode, pointed at the pool's backend for that
scenario, and places all the calls at once: a test of several scenarios takes as long as
the longest.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

from mediasrv.emulator.scenarios import Scenario
from mediasrv.emulator.truth import ClearTruth
from mediasrv.testing.harness import (
    BackendPool,
    LocalServer,
    LogCapture,
    Outcome,
    run_calls,
    scenario_settings,
)

TRUNCATE_TOLERANCE_MS = 20.0  # one frame: issue 9's target for audio_end_ms vs what played
MAX_LATE_MS = 150.0  # emulator slip that voids a call (echo path 160 ms -> 310 ms)
ATTEMPTS = 2


def run_all(scenarios: Sequence[Scenario], backends: BackendPool) -> list[Outcome]:
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
        for o in _place(todo, backends):
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


def _place(jobs: Sequence[tuple[Scenario, str]], backends: BackendPool) -> list[Outcome]:
    with LogCapture() as logs, ExitStack() as stack:
        specs = []
        for scenario, mode in jobs:
            settings = scenario_settings(scenario, mode, backends.url_for(scenario))
            server = stack.enter_context(LocalServer(settings))
            specs.append((server.base_url, scenario, mode))
        outcomes = run_calls(specs, logs, backends)
    for o in outcomes:
        if _void(o):
            late = o.summary["emulator"]["tx_late_max_ms"]
            print(f"{o.label}: void, the emulator fell {late} ms behind real time")
    return outcomes


def run(scenario: Scenario, backends: BackendPool) -> dict[str, Outcome]:
    """Run one scenario in each of its modes at once; return outcomes by mode."""
    return {o.mode: o for o in run_all([scenario], backends)}


def answers(o: Outcome) -> list[float]:
    """Return when each answer response was created (call time)."""
    return o.answers()


def check_barge_in(o: Outcome, clear_index: int = 0) -> ClearTruth:
    """Assert one barge-in was clean; return the emulator's truth for its clear.

    Clean: none of the interrupted response's audio was heard after the clear, and the
    item it interrupted got exactly one truncate. How exact that truncate is, is the
    business of the truncation tests (`check_truncations`).
    """
    s, why = o.summary, o.describe()
    clear = s["clears"][clear_index]
    assert clear["heard_after_ms"] == 0.0, why
    truth = o.truths()[clear_index]
    cut = [c for c in truth.items if c.dropped_ms > 0 or c.audio_end_ms is not None]
    assert len(cut) == 1 and cut[0].audio_end_ms is not None, f"{truth}\n{why}"
    return truth


def check_truncations(o: Outcome) -> list[float]:
    """Assert every item a clear interrupted was truncated within one frame of what had
    played when the clear reached Twilio; return the signed errors (ms).

    Mark echoes leave the emulator from its paced thread, so they reach the server late
    by as much as that thread slipped: the tolerance grows by the measured slip. The
    emulator dates the `clear` by its arrival at the socket (emulator/stamps.py), not by
    when its busy reader got to it, so no read delay of its own is forgiven: a clear
    that left late (Nagle held one 15-20 ms on the tests' server) is an error here.
    """
    why = o.describe()
    tolerance = TRUNCATE_TOLERANCE_MS + float(o.summary["emulator"]["tx_late_max_ms"])
    errors = []
    for truth in o.truths():
        for cut in truth.items:
            assert cut.error_ms is not None, f"clear {truth.index}: {cut} never truncated\n{why}"
            assert -tolerance <= cut.error_ms <= tolerance, (
                f"clear {truth.index}: item {cut.item_id} truncated at {cut.audio_end_ms} ms, "
                f"{cut.played_ms} ms had played when the clear reached Twilio "
                f"(error {cut.error_ms:+.1f} ms, tolerance {tolerance:.1f} ms)\n{why}"
            )
            errors.append(cut.error_ms)
    return errors
