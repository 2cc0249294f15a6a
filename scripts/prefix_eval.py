"""Measure whether the caller's first syllable reaches the backend: the held prefix.

Inside the echo window inbound frames are held until the caller is recognised; then what
was held goes out with them (`TurnPolicy._forward`). A quiet caller over a loud echo is
recognised late, and if the onset has left the ring by then the backend hears them from
the middle of a word. Frame by frame, on the callers of scripts/bargein_eval.py (same
lines, gains, bots and offsets), per detection:

- delay: the caller's onset (first speech frame at natural level) -> the frame at which
  the held audio was released (the caller recognised);
- whether the onset frame is in what the policy forwarded;
- the cost: how much audio from before the onset (our echo, line noise) went out with
  the caller (p50 / p95 ms) and how loud it is (its RMS, median over detections, dBFS).

`--set prefix_ms=P --set prefix_max_ms=P` is a fixed ring of P ms (the rule before
issue 9's late callers); the defaults reach `prefix_ms` back from the caller's first
frame, up to `prefix_max_ms`.

    PYTHONPATH=. .venv/bin/python scripts/prefix_eval.py [--quick] [--set FIELD=VALUE ...]
        [--gains -10,-20] [--lines 'handset,bad line']
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mediasrv.audio import FRAME_BYTES, ULAW_DECODE
from mediasrv.emulator import catalogue as cat
from mediasrv.policy.turns import TurnConfig, TurnPolicy, TurnStep
from mediasrv.testing.callers import caller_clips, offsets_for, speech_frames
from mediasrv.testing.frames import FRAME, Floats, bots, simulate


def _bargein_eval() -> ModuleType:
    """Import scripts/bargein_eval.py (its `--set` parsing: the same settings)."""
    path = Path(__file__).with_name("bargein_eval.py")
    spec = importlib.util.spec_from_file_location("bargein_eval", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BE = _bargein_eval()


class Recorder(TurnPolicy):
    """The real policy, noting per inbound frame what it forwarded."""

    def __init__(self, config: TurnConfig) -> None:
        super().__init__(config)
        self.frames: list[bytes] = []
        self.releases: list[int] = []  # frames at which held audio went out
        self.forwarded: set[int] = set()

    def feed(self, frame_ulaw: bytes, now: float, *, ai_playing: bool,
             closing: bool) -> TurnStep:
        k = len(self.frames)
        self.frames.append(frame_ulaw)
        step = super().feed(frame_ulaw, now, ai_playing=ai_playing, closing=closing)
        n = len(step.forward) // FRAME_BYTES
        self.forwarded.update(range(k - n + 1, k + 1))
        if n > 1:
            self.releases.append(k)
        return step


@dataclass
class Cell:
    runs: int = 0
    delay_ms: list[int] = field(default_factory=list)  # onset -> release, per detection
    onset_sent: int = 0
    before_ms: list[int] = field(default_factory=list)  # forwarded before the onset
    before_db: list[float] = field(default_factory=list)  # its RMS, when there was some


def rms_dbfs(frames: list[bytes]) -> float:
    x = ULAW_DECODE[np.frombuffer(b"".join(frames), np.uint8)].astype(np.float64) / 32768
    return float(10 * np.log10(max(float(np.mean(x**2)), 1e-12)))


def place(config: TurnConfig, bot: bytes, caller: Floats, offset: float, line_name: str,
          span: tuple[int, int], cell: Cell) -> None:
    """Play `bot` with `caller` coming in `offset` s into it; add a detection to `cell`."""
    start = int(offset * 8000)
    near = np.zeros(start + caller.size + 8000)
    near[start : start + caller.size] += caller
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder(config))
        return made[-1]

    run = simulate(make, bot, near, cat.line_of(cat.LINES[line_name]))
    cell.runs += 1
    onset = (start + span[0] * FRAME) // FRAME
    if not run.barge_ins or run.barge_ins[0][0] < onset:
        return  # missed or early: bargein_eval counts those
    rec, barge = made[0], run.barge_ins[0][0]
    release = max([k for k in rec.releases if k <= barge], default=barge)
    cell.delay_ms.append((release - onset) * 20)
    cell.onset_sent += onset in rec.forwarded
    before = sorted(k for k in rec.forwarded if k < onset and k > onset - 200)
    cell.before_ms.append(len(before) * 20)
    if before:
        cell.before_db.append(rms_dbfs([rec.frames[k] for k in before]))


def summary(cell: Cell) -> str:
    n = len(cell.delay_ms)
    if not n:
        return f"detected 0/{cell.runs}"
    d50, d95 = np.percentile(cell.delay_ms, [50, 95])
    b50, b95 = np.percentile(cell.before_ms, [50, 95])
    level = f"{np.median(cell.before_db):.1f}" if cell.before_db else "-"
    return (f"detected {n}/{cell.runs}; onset -> release p50 {d50:.0f} p95 {d95:.0f} max "
            f"{max(cell.delay_ms)} ms, > 500 ms {sum(x > 500 for x in cell.delay_ms)}; onset "
            f"sent {cell.onset_sent}/{n}; before it p50 {b50:.0f} p95 {b95:.0f} ms at "
            f"{level} dBFS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer caller offsets")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--gains", default="-10,-20")
    parser.add_argument("--lines", default="handset,bad line")
    args = parser.parse_args()
    settings: dict[str, Any] = {k: int(v) for k, v in BE.parse_sets(args.set).items()}
    config = TurnConfig(**settings)
    print(f"prefix_ms={config.prefix_ms} prefix_max_ms={config.prefix_max_ms}")
    t0 = time.perf_counter()
    callers = caller_clips()
    for gain in (float(g) for g in args.gains.split(",")):
        for line_name in args.lines.split(","):
            cell = Cell()
            for bot in bots().values():
                for pcm in callers.values():
                    for offset in offsets_for(bot, args.quick):
                        place(config, bot, pcm * 10 ** (gain / 20), offset, line_name,
                              speech_frames(pcm), cell)
            print(f"  caller {gain:4.0f} dB  {line_name:9s} {summary(cell)}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
