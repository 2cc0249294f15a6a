"""Frame-by-frame calls for the turn policy: the bot's frames out, the line's audio back.

Layer: testing. No server and no threads: the real `TurnPolicy` is driven directly, in
seconds, through the emulator's own line model (mediasrv/emulator/line.py) and with the
prompts the backend really plays. Used by scripts/bargein_eval.py (issue 9's frame-level
harness), by the sections' runners beside this module (callers.py, moves.py,
after_caller.py, repeated.py) and by tests that need the whole line (hiss, dispersion, the
long greeting). `why` describes the echo guard's state at a barge-in, for the tables;
`under` loops a sound under the bot's turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.audio import ULAW_DECODE
from mediasrv.emulator.line import Line, LineModel
from mediasrv.policy.turns import (
    BargeIn,
    EndOfUtterance,
    TurnPolicy,
    TurnStep,
    UtteranceStarted,
)

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"
FRAME = 160
TICK = 0.020
# A barge-in up to 0.5 s after the caller's last speech frame is still theirs.
DETECT_SLACK_FRAMES = 25

Floats = npt.NDArray[np.float64]
MakePolicy = Callable[[], TurnPolicy]


def prompt(*names: str) -> bytes:
    """Return shipped prompts, concatenated, as whole mu-law frames (what tx sends)."""
    data = b"".join((PROMPTS / f"{name}.ulaw").read_bytes() for name in names)
    return data[: len(data) // FRAME * FRAME]


def bots() -> dict[str, bytes]:
    return {"greeting": prompt("greeting"), "long_answer": prompt("long_answer")}


@dataclass
class Run:
    barge_ins: list[tuple[int, float]] = field(default_factory=list)  # (capture frame, now)
    starts: int = 0
    turns: int = 0

    def counts(self) -> tuple[int, int, int]:
        """Return the tables' barge-ins / starts / turns."""
        return len(self.barge_ins), self.starts, self.turns


@dataclass(frozen=True)
class Net:
    down_ms: float = 30.0
    up_ms: float = 30.0
    # The rx loop stalls (a loaded machine) from `stall_at_s` for `stall_ms`: what arrives
    # meanwhile is read in one burst at its end, each frame timed by when it arrived (as
    # the uplink's stream clock times it), while the tx thread goes on sending.
    stall_at_s: float = 0.0
    stall_ms: float = 0.0
    # Twilio's playout and the server's clock of it part `gap_ms` at `gap_at_s` (server
    # time, from the frame sent then on): positive, the playout ran dry that long where the
    # server saw no gap (network jitter past the prebuffer, a late send); negative, the
    # server stamps a pause Twilio did not make (its buffer held more than the server knew).
    gap_at_s: float = 0.0
    gap_ms: float = 0.0

    def stalled(self, now: float) -> bool:
        return self.stall_at_s <= now < self.stall_at_s + self.stall_ms / 1000.0

    def unseen(self, now: float) -> int:
        """Return how many samples later than the server's stamps a frame sent at `now`
        plays (negative: earlier)."""
        return int(round(self.gap_ms * 8)) if self.gap_ms and now >= self.gap_at_s else 0


def send(policy: TurnPolicy, played: Floats, frame: bytes, i: int, down: int,
         phase: int = 0, unseen: int = 0) -> None:
    """Send server frame `i` at its tick (`phase` samples later) as the echo reference and
    place it on Twilio's playout `down` samples on (and `unseen` later: see `Net.gap_ms`)."""
    policy.on_sent(frame, (i + 1) * TICK + (phase + max(-unseen, 0)) / 8000)
    start = (i + 1) * FRAME + down + phase + max(unseen, 0)
    played[start : start + FRAME] = ULAW_DECODE[np.frombuffer(frame, np.uint8)] / 32768


def capture(policy: TurnPolicy, model: LineModel, near: Floats, speaker: Floats, k: int,
            up: float, playing: bool) -> TurnStep:
    """Feed capture frame `k` (the caller's side and what played over it, through the
    line) to the policy at the tick it is read, `up` s after it was captured."""
    due = TICK * np.ceil(((k + 1) * TICK + up) / TICK - 1e-9)
    inbound = model.process(near[k * FRAME : (k + 1) * FRAME], speaker)
    return policy.feed(inbound, float(due), ai_playing=playing, closing=False)


def simulate(
    make: MakePolicy,
    bot: bytes,
    near: Floats,
    line: Line,
    net: Net = Net(),
    *,
    stop_at_barge_in: bool = True,
) -> Run:
    """Play `bot` while `near` (the caller's side, floats) comes back through `line`.

    Server frame i leaves at tick i and plays at Twilio from `(i + 1) * 20 ms + down`;
    capture frame k covers Twilio's samples [k * 160, (k + 1) * 160) and reaches the
    policy at the first tick at or after its end + up.
    """
    policy, model = make(), LineModel(line)
    n = near.size // FRAME
    down, up = int(round(net.down_ms * 8)), net.up_ms / 1000.0
    played = np.zeros(near.size + len(bot) + 2 * FRAME + down + max(net.unseen(np.inf), 0))
    stop_at: int | None = None  # Twilio sample from which nothing plays (clear arrived)
    playing, run, k = True, Run(), 0
    for i in range(n + int(up / TICK) + 2):
        now = (i + 1) * TICK
        playing = playing and (i + 1) * FRAME <= len(bot)
        if playing:
            send(policy, played, bot[i * FRAME : (i + 1) * FRAME], i, down,
                 unseen=net.unseen(now))
        while k < n and (k + 1) * TICK + up <= now and not net.stalled(now):
            speaker = played[k * FRAME : (k + 1) * FRAME]
            if stop_at is not None:
                speaker = np.where(np.arange(k * FRAME, (k + 1) * FRAME) < stop_at, speaker, 0.0)
            step = capture(policy, model, near, speaker, k, up, playing)
            for event in step.events:
                if isinstance(event, BargeIn):
                    run.barge_ins.append((k, now))
                    playing = False  # the bridge clears Twilio: nothing more is sent ...
                    stop_at = int((now + net.down_ms / 1000.0) * 8000)  # ... or played
                    if stop_at_barge_in:
                        return run
                elif isinstance(event, UtteranceStarted):
                    run.starts += 1
                elif isinstance(event, EndOfUtterance):
                    run.turns += 1
            k += 1
    return run


def under(bot: bytes, sound: Floats) -> Floats:
    """Return `sound`, looped, for as long as the bot talks, then 1 s of nothing."""
    over = np.resize(sound, len(bot) + 8000)
    over[len(bot) :] = 0.0
    return over


def why(policy: TurnPolicy) -> str:
    """Return the echo guard's state at a barge-in, for the moves and repeated tables."""
    echo, aec = policy.echo, policy.echo.canceller
    if aec is None:
        return echo.evidence
    coh = "-" if echo.coherence is None else "{:.2f}/{:.2f}".format(*echo.coherence)
    delay = "-" if aec.delay is None else f"{aec.delay / 8:.0f}"
    res_db = 10 * np.log10(max(aec.residual_power, 1e-12))
    est_db = 10 * np.log10(max(aec.echo_power, 1e-12))
    found = aec.residual_lag()
    lag = "-" if found is None else (f"{found.delay / 8:.0f} ms (own {found.own:.1f}, search "
                                     f"{found.search:.1f})")
    return (f"{echo.evidence} res {res_db:.1f} est {est_db:.1f} dB coh {coh} recent "
            f"{aec.recent_coherence():.2f} erle {aec.erle_db:.1f} delay {delay} ms residual's "
            f"lag {lag} level {echo.over_bound_db:+.1f} dB over the bound "
            f"({echo.path.bound_db:.1f} dB)")

