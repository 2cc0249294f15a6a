"""What the echo canceller holds per call: its sample rings (aec_dsp.SlotRing), its filter,
the sent frames waiting to join its reference."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_aec import BAD_LINE, echo_run

from mediasrv.policy.aec_dsp import FRAME, SlotRing
from mediasrv.policy.turns import TurnConfig, TurnPolicy

SLOTS = 8


def expected(writes: dict[int, np.ndarray], start: int, n: int) -> np.ndarray:
    """Samples [start, start + n) of the timeline: a slot reads as written while no later
    slot took its place in the ring, as zeros otherwise (never written, or overwritten)."""
    latest: dict[int, int] = {}
    for slot in writes:  # in the order written
        latest[slot % SLOTS] = slot
    out = np.zeros(n, dtype=np.float32)
    for p in range(start, start + n):
        slot = p // FRAME
        if slot >= 0 and latest.get(slot % SLOTS) == slot:
            out[p - start] = writes[slot][p - slot * FRAME]
    return out


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(1, 3), min_size=1, max_size=30),
    back=st.integers(0, SLOTS * FRAME),
    n=st.integers(1, SLOTS * FRAME),
)
def test_a_read_returns_the_timeline_whether_or_not_it_crosses_the_ring_end(
    steps: list[int], back: int, n: int
) -> None:
    ring, writes, slot = SlotRing(SLOTS), {}, -1
    rng = np.random.default_rng(len(steps))
    for step in steps:  # increasing slots, some skipped (a gap), as the timelines write
        slot += step
        writes[slot] = rng.standard_normal(FRAME).astype(np.float32)
        ring.put(slot, writes[slot])
    start = (slot + 1) * FRAME - back
    assert np.array_equal(ring.read(start, n), expected(writes, start, n))


def held_kb(make: object) -> float:
    """Return the kB that what `make()` builds still holds once it returned."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make()  # type: ignore[operator]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept is not None
    return held / 1024


def test_a_ring_holds_each_sample_once() -> None:
    samples_kb = 64 * FRAME * np.dtype(np.float32).itemsize / 1024
    assert held_kb(lambda: SlotRing(64)) < 1.25 * samples_kb  # and their slot numbers


def test_a_canceller_that_learned_a_path_holds_its_filter_taps_once() -> None:
    echo_run(BAD_LINE, echo_loss_db=10.0, frames=60)  # numpy's FFT plans: not per call
    # 222 kB: rings 100 (2 x 64 slots and 2 x 16, float32), the spectra's averages 48, the
    # filter 16 transformed and 8 as taps, the delay search's correlation 13, the last
    # frame's two spectra 32 ... The taps as a slice of their 4096-point transform: 246.
    assert held_kb(lambda: echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)) < 234


def test_a_canceller_that_found_no_echo_holds_no_filter() -> None:
    echo_run(np.zeros(1), echo_loss_db=10.0, frames=60)  # numpy's FFT plans: not per call
    # 118 kB: the rings 100, the delay search's correlation 13 ... A filter and its spectra
    # (72 kB) made before any delay was known: 190.
    assert held_kb(lambda: echo_run(np.zeros(1), echo_loss_db=10.0, frames=200)) < 140


def test_sent_frames_wait_for_the_reference_as_the_frames_they_are() -> None:
    policy = TurnPolicy(TurnConfig())  # cancelling, as configured by default
    frames = [bytes([0x80 + i % 64]) * FRAME for i in range(100)]  # alive anyway (tx's)

    def send() -> TurnPolicy:
        for i, frame in enumerate(frames):  # no inbound frame judged yet: all of them wait
            policy.on_sent(frame, 0.020 * i)
        return policy

    # 8 kB: the queue's entries (the frames are tx's). Decoded at once, the floats and
    # their array waited too: 83 kB.
    assert held_kb(send) < 100 * 250 / 1024
