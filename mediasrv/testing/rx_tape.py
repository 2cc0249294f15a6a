"""A call's rx loop on tape: what it fed its turn policy, saved, and replayed offline.

Layer: testing (benchmarks and tests only; the server never imports it).

The turn policy is pure: time comes in as `now`. So everything a call's rx loop gave it --
the frames sent to the caller with when they play, the cut a `clear` made, every inbound
frame with when it was fed and whether AI audio was playing, the end-of-turn model's
answers, gaps -- replays offline into a fresh `TurnPolicy` the same way, frame for frame,
with the echo guard and the canceller open to inspection. Recorded from calls of the
end-to-end harness (in-process servers: `taping` swaps the rx loop's policy class for one
that writes a tape), this is how a failure seen once end to end is taken apart
(scripts/rx_capture.py, scripts/rx_replay.py; docs/turn-taking.md, "Stalls of the tx
thread"), and how it becomes a regression test (tests/test_echo_cut.py).

Tape format (`.npz`): `kind` (int8: SENT, CUT, FED, CHECK, CHECK_FAILED, GAP), `t` (the
event's time, float64: playout time for SENT and CUT, `now` otherwise), `flags` (int8: 1 AI
audio playing, 2 closing), `frames` (uint8, n x 160: the mu-law frame of SENT and FED),
`value` (float64: the model's probability, the gap's ms), `seq` (int64: the check's
number), `config` (the TurnConfig as JSON; absent: the caller supplies one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mediasrv.audio import FRAME_BYTES
from mediasrv.policy.endturn import EndTurnConfig
from mediasrv.policy.turn_types import TurnConfig, TurnStep
from mediasrv.policy.turns import TurnPolicy

SENT, CUT, FED, CHECK, CHECK_FAILED, GAP = range(6)
PLAYING, CLOSING = 1, 2
_NO_FRAME = bytes(FRAME_BYTES)


@dataclass
class Tape:
    """One call's rx-loop events, in the order the rx loop made them."""

    config: TurnConfig | None = None
    call_sid: str = ""
    kind: list[int] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    # The turn events the live policy returned, (type name, time): not saved, for checking
    # that a replay makes the same ones (`events_of`).
    live: list[tuple[str, float]] = field(default_factory=list)

    def add(self, kind: int, t: float, frame: bytes = _NO_FRAME, flags: int = 0,
            value: float = 0.0, seq: int = 0) -> None:
        self.kind.append(kind)
        self.t.append(t)
        self.flags.append(flags)
        self.frames.append(frame)
        self.value.append(value)
        self.seq.append(seq)

    def save(self, path: Path) -> None:
        config = json.dumps(dataclasses.asdict(self.config)) if self.config else ""
        np.savez_compressed(
            path, kind=np.array(self.kind, np.int8), t=np.array(self.t, np.float64),
            flags=np.array(self.flags, np.int8),
            frames=np.frombuffer(b"".join(self.frames), np.uint8).reshape(-1, FRAME_BYTES),
            value=np.array(self.value, np.float64), seq=np.array(self.seq, np.int64),
            config=np.array(config))

    @classmethod
    def load(cls, path: Path) -> Tape:
        z = np.load(path)
        n = len(z["kind"])
        tape = cls(config=turn_config(json.loads(str(z["config"])))
                   if "config" in z and str(z["config"]) else None)
        tape.kind, tape.t = [int(k) for k in z["kind"]], [float(t) for t in z["t"]]
        tape.flags = [int(f) for f in z["flags"]]
        tape.frames = [f.tobytes() for f in z["frames"]]
        tape.value = [float(v) for v in z["value"]] if "value" in z else [0.0] * n
        tape.seq = [int(s) for s in z["seq"]] if "seq" in z else [0] * n
        return tape


def turn_config(d: dict[str, Any]) -> TurnConfig:
    """Return the TurnConfig a tape's JSON holds."""
    end_turn = d.pop("end_turn", None)
    return TurnConfig(**d, end_turn=EndTurnConfig(**end_turn) if end_turn else None)


Observer = Callable[[TurnPolicy, int, float, TurnStep | None], None]


def events_of(step: TurnStep | None, t: float) -> list[tuple[str, float]]:
    """Return a step's turn events as (type name, time)."""
    return [(type(e).__name__, t) for e in step.events] if step is not None else []


def fresh_policy(tape: Tape, config: TurnConfig | None = None,
                 logger: Any = None) -> TurnPolicy:
    """Return a new TurnPolicy for the tape (`config`, else the tape's own)."""
    config = config or tape.config
    if config is None:
        raise ValueError("the tape holds no TurnConfig: pass one")
    return TurnPolicy(config, logger=logger or logging.LoggerAdapter(
        logging.getLogger("mediasrv.replay"), {}))


def replay(tape: Tape, policy: TurnPolicy | None = None, *, cuts: bool = True,
           observe: Observer | None = None) -> TurnPolicy:
    """Feed the tape into `policy` (default: `fresh_policy(tape)`); `observe` sees the
    policy after each event (its kind, time and step). `cuts` False skips what the cuts
    do (the reference as it was before they existed); `observe` still sees them. Return
    the policy."""
    policy = policy or fresh_policy(tape)
    for kind, t, flags, frame, value, seq in zip(tape.kind, tape.t, tape.flags, tape.frames,
                                                 tape.value, tape.seq, strict=True):
        closing = bool(flags & CLOSING)
        step: TurnStep | None = None
        if kind == SENT:
            policy.on_sent(frame, t)
        elif kind == CUT:
            if cuts:
                policy.on_cut(t)
        elif kind == FED:
            step = policy.feed(frame, t, ai_playing=bool(flags & PLAYING), closing=closing)
        elif kind == CHECK:
            step = policy.on_check_result(seq, value, t, closing=closing)
        elif kind == CHECK_FAILED:
            step = policy.on_check_failed(seq, t, closing=closing)
        elif kind == GAP:
            step = policy.feed_gap(int(value), t, closing=closing)
        if observe is not None:
            observe(policy, kind, t, step)
    return policy


class _TapedPolicy(TurnPolicy):
    """A TurnPolicy that writes every call it takes onto a tape (see `taping`)."""

    tapes: list[Tape] = []
    _lock = threading.Lock()

    def __init__(self, config: TurnConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.tape = Tape(config)
        self._logger = kwargs.get("logger")
        with self._lock:
            self.tapes.append(self.tape)

    def _sid(self) -> None:
        if not self.tape.call_sid:
            extra = getattr(self._logger, "extra", None) or {}
            self.tape.call_sid = str(extra.get("call_sid", ""))

    def _live(self, step: TurnStep, now: float) -> TurnStep:
        self.tape.live += events_of(step, now)
        return step

    def on_sent(self, frame_ulaw: bytes, now: float) -> None:
        self.tape.add(SENT, now, frame_ulaw)
        super().on_sent(frame_ulaw, now)

    def on_cut(self, at: float) -> None:
        self.tape.add(CUT, at)
        super().on_cut(at)

    def feed(self, frame_ulaw: bytes, now: float, *, ai_playing: bool,
             closing: bool) -> TurnStep:
        self._sid()
        self.tape.add(FED, now, frame_ulaw, PLAYING * ai_playing + CLOSING * closing)
        step = super().feed(frame_ulaw, now, ai_playing=ai_playing, closing=closing)
        return self._live(step, now)

    def on_check_result(self, seq: int, probability: float, now: float, *,
                        closing: bool = False) -> TurnStep:
        self.tape.add(CHECK, now, flags=CLOSING * closing, value=probability, seq=seq)
        return self._live(super().on_check_result(seq, probability, now, closing=closing), now)

    def on_check_failed(self, seq: int, now: float, *, closing: bool = False) -> TurnStep:
        self.tape.add(CHECK_FAILED, now, flags=CLOSING * closing, seq=seq)
        return self._live(super().on_check_failed(seq, now, closing=closing), now)

    def feed_gap(self, ms: int, now: float, *, closing: bool = False) -> TurnStep:
        self.tape.add(GAP, now, flags=CLOSING * closing, value=float(ms))
        return self._live(super().feed_gap(ms, now, closing=closing), now)


def save_taped(tapes: dict[str, Tape], call_sid: str, folder: Path, stem: str) -> Path | None:
    """Save call `call_sid`'s tape (from `taping`) as FOLDER/STEM.npz, the folder made if
    need be; return the path, or None when that call wrote no tape."""
    tape = tapes.get(call_sid)
    if tape is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.npz"
    tape.save(path)
    return path


@contextlib.contextmanager
def taping() -> Iterator[dict[str, Tape]]:
    """While open, every call the in-process servers start writes a tape; the dict it
    yields maps call sids to the tapes once the block ends. The rx loop's policy class is
    swapped for one that records (`mediasrv.call.uplink.TurnPolicy`), and put back after."""
    from mediasrv.call import uplink

    tapes: dict[str, Tape] = {}
    original = uplink.TurnPolicy
    _TapedPolicy.tapes = []
    setattr(uplink, "TurnPolicy", _TapedPolicy)  # noqa: B010 (a plain assignment: mypy)
    try:
        yield tapes
    finally:
        setattr(uplink, "TurnPolicy", original)  # noqa: B010
        for tape in _TapedPolicy.tapes:
            if tape.call_sid:
                tapes[tape.call_sid] = tape
