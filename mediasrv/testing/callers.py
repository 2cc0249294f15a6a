"""A caller talking over the bot's prompt, frame by frame: where they start, and the tally.

Layer: testing. No server, no threads, like `mediasrv.testing.frames`, whose `simulate`
runs each placement. The rules every table of the frame harness (scripts/bargein_eval.py,
scripts/holdout_eval.py, scripts/prefix_eval.py) counts by:

- the caller's speech is their frames over -45 dBFS (the emulator's onset level), taken
  at the clip's natural level whatever gain it is played at (`speech_frames`);
- a barge-in from their first speech frame to `DETECT_SLACK_FRAMES` after their last is
  theirs (detected, latency from the start of that first frame at Twilio to the
  decision); before it, early (our echo taken for the caller); none by then, a miss;
- the caller is placed every 0.37 s (1.13 s quick) into the prompt, steps that are not a
  multiple of 20 ms, so onsets fall on varied phases of the tick (`offsets_for`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import Line
from mediasrv.emulator.script import ONSET_DBFS, frame_levels_dbfs, load_8k
from mediasrv.testing.frames import (
    DETECT_SLACK_FRAMES,
    FRAME,
    TICK,
    Floats,
    MakePolicy,
    Net,
    simulate,
)

# The recorded callers, breaths and non-speech (tests/audio/MANIFEST.md): a checkout's.
AUDIO = Path(__file__).resolve().parents[2] / "tests" / "audio"


def caller_clips() -> dict[str, Floats]:
    """Return the recorded callers (`catalogue.CALLERS`), each cut to its listed length."""
    return {f: load_8k(AUDIO / f)[: int(n * 8000)] for f, n in cat.CALLERS}


def speech_frames(caller: Floats) -> tuple[int, int]:
    """Return the first and last frame over -45 dBFS (the caller at natural level)."""
    loud = np.flatnonzero(frame_levels_dbfs(caller) > ONSET_DBFS)
    return int(loud[0]), int(loud[-1])


@dataclass
class Tally:
    ms: list[float] = field(default_factory=list)
    misses: int = 0
    early: int = 0

    def add(self, other: Tally) -> None:
        self.ms += other.ms
        self.misses += other.misses
        self.early += other.early

    def line(self) -> str:
        n = len(self.ms) + self.misses + self.early
        if not self.ms:
            return f"detected 0/{n}   misses {self.misses:3d}  early {self.early:2d}"
        p50, p95 = np.percentile(self.ms, [50, 95])
        return (f"detected {len(self.ms):3d}/{n:<3d} p50 {p50:5.0f} p95 {p95:5.0f} "
                f"max {max(self.ms):5.0f} ms   misses {self.misses:3d}  early {self.early:2d}")


def caller_runs(
    make: MakePolicy, bot: bytes, caller: Floats, offsets: Iterable[float], line: Line,
    net: Net, span: tuple[int, int],
) -> Tally:
    """Place the caller at each offset (s into the bot's prompt); tally barge-ins.

    `span`: the clip's first and last speech frames, taken at its natural level (as the
    emulator's onset is), whatever gain `caller` carries."""
    tally = Tally()
    first, last = span
    for offset in offsets:
        start = int(offset * 8000)
        near = np.zeros(start + caller.size + 8000)
        near[start : start + caller.size] += caller
        run = simulate(make, bot, near, line, net)
        onset, end = (start + first * FRAME) // FRAME, (start + (last + 1) * FRAME) // FRAME
        if not run.barge_ins or run.barge_ins[0][0] > end + DETECT_SLACK_FRAMES:
            tally.misses += 1
        elif run.barge_ins[0][0] < onset:
            tally.early += 1
        else:  # from the start of the caller's first speech frame at Twilio to the decision
            tally.ms.append(round((run.barge_ins[0][1] - onset * TICK) * 1000, 1))
    return tally


def offsets_for(bot: bytes, quick: bool) -> list[float]:
    length = len(bot) / 8000
    step = 1.13 if quick else 0.37  # not a multiple of 20 ms: onsets fall on varied phases
    return [float(t) for t in np.arange(0.3, length - 2.0, step)]
