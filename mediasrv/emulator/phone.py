"""Twilio's end of one call, as a pure event machine: network, playout, line, microphone.

Layer: emulator.

The shell (call.py) feeds it what the server sent, as read from the socket
(`receive(msg, now)`), sleeps until `next_deadline()` and calls `run_until(now)`, which
returns the messages that have reached the server's side of the network by then.

Inside, every event is applied at its own time, in time order, whatever the shell's
wake-up jitter:
- a server message acts on the playout model when it *arrives* (socket time + transit);
- a mark is echoed when the playout model says its audio has played (not on a frame
  tick), then travels back to the server;
- inbound frame i is captured over stream time [i * 20 ms, (i + 1) * 20 ms) and leaves
  Twilio at the end of that window: the caller's microphone plus the echo of what the
  playout model played in that window (line.py), mu-law encoded; then it travels;
- a key the script presses at stream time s leaves as a `dtmf` message at s.

All times are seconds of call time; stream time s is call time `media_t0 + s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mediasrv.audio import FRAME_BYTES, ULAW_DECODE
from mediasrv.emulator.line import LineModel
from mediasrv.emulator.metrics import TimelineEvent
from mediasrv.emulator.network import Link, NetworkTiming
from mediasrv.emulator.playout import PlayoutModel
from mediasrv.emulator.script import FRAME_S, CallerScript
from mediasrv.emulator.wire import ServerMessage

_NUDGE_S = 1e-7  # a mark that float error left unreleased at its own time is released here


@dataclass(frozen=True)
class Outgoing:
    """A message Twilio sends to the server: inbound `media` frame i, or a mark echo."""

    kind: str  # "media" | "mark" | "dtmf"
    made_at: float  # captured (end of the frame's window), played or pressed, call time
    frame: int = -1
    payload: bytes = b""
    name: str = ""  # the mark's name, or the key pressed
    played: bool = True  # mark echoes only: False when flushed by a clear


@dataclass(frozen=True)
class ClearTiming:
    """A `clear` as read from the socket (`sent_at`, i.e. when the server sent it on
    loopback) and as it reached Twilio's playout (`applied_at`)."""

    sent_at: float
    applied_at: float


class Phone:
    """Twilio's media edge and the caller behind it, for one call. Pure: `now` comes in."""

    def __init__(self, script: CallerScript, network: NetworkTiming, media_t0: float) -> None:
        self.script = script
        self.network = network
        self.media_t0 = media_t0
        self.playout = PlayoutModel()
        self.line = LineModel(script.line) if script.line is not None else None
        self._down: Link[tuple[float, ServerMessage]] = Link(
            network.down_ms, network.jitter_ms, network.seed
        )
        self._up: Link[Outgoing] = Link(network.up_ms, network.jitter_ms, network.seed + 1)
        self._ran_to = float("-inf")  # the latest `now` run_until has reached
        self._next_frame = 0
        self._next_key = 0
        self._echo_idx = 0
        self.sent = bytearray()  # every inbound frame as captured
        self.arrivals: list[tuple[float, int]] = []  # media at the socket: (time, bytes)
        self.clear_timings: list[ClearTiming] = []
        self.timeline: list[TimelineEvent] = []

    # -- inputs ---------------------------------------------------------------------

    def receive(self, msg: ServerMessage, now: float) -> float:
        """Take a server message that reached the socket at `now`; return when it reaches
        Twilio's playout -- no earlier than what the phone has already run to (a message
        dated back to its arrival at the socket may be read after that)."""
        due = self._down.push((now, msg), now, not_before=self._ran_to)
        if msg.event == "media":
            self.arrivals.append((now, len(msg.payload)))
        elif msg.event == "mark":
            self.timeline.append(TimelineEvent(now, "recv mark", msg.name))
        else:
            self.timeline.append(TimelineEvent(now, "recv clear", f"reaches Twilio at {due:.3f}"))
        return due

    def run_until(self, now: float) -> list[tuple[float, Outgoing]]:
        """Apply everything due by `now` in time order; return (arrival, message) pairs
        that have reached the server by `now`."""
        while (t := self._next_internal()) is not None and t <= now:
            self._step(t)
        self._ran_to = max(self._ran_to, now)
        return self._up.pop_due(now)

    # -- queries --------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Return when something next happens (None: script over, nothing in flight)."""
        times = [self._next_internal(), self._up.next_due()]
        return min((t for t in times if t is not None), default=None)

    def finished(self) -> bool:
        """True once every frame of the script was captured and has left for the server."""
        return (self._next_frame >= self.script.n_frames and len(self._up) == 0
                and self._next_key >= len(self.script.keys))

    def frame_end(self, i: int) -> float:
        """Return the call time at which inbound frame i has been captured."""
        return self.media_t0 + (i + 1) * FRAME_S

    # -- internals ------------------------------------------------------------------

    def _next_internal(self) -> float | None:
        times = [self._down.next_due(), self.playout.next_event_time()]
        if self._next_frame < self.script.n_frames:
            times.append(self.frame_end(self._next_frame))
        if self._next_key < len(self.script.keys):
            times.append(self.media_t0 + self.script.keys[self._next_key][0])
        return min((t for t in times if t is not None), default=None)

    def _step(self, t: float) -> None:
        arrival = self._down.next_due()
        mark = self.playout.next_event_time()
        keys = self.script.keys
        if self._next_key < len(keys) and self.media_t0 + keys[self._next_key][0] <= t:
            key = keys[self._next_key][1]
            self._next_key += 1
            self.timeline.append(TimelineEvent(t, "dtmf", key))
            self._up.push(Outgoing("dtmf", t, name=key), t)
        elif arrival is not None and arrival <= t:
            self._apply(*self._down.pop_next())
        elif mark is not None and mark <= t:
            self.playout.advance(t)
            if self.playout.next_event_time() == mark:
                self.playout.advance(t + _NUDGE_S)
        else:
            self._capture(t)
        self._echo_marks()

    def _apply(self, at: float, item: tuple[float, ServerMessage]) -> None:
        sent_at, msg = item
        if msg.event == "media":
            self.playout.receive_media(msg.payload, at)
        elif msg.event == "mark":
            self.playout.receive_mark(msg.name, at)
        else:
            self.playout.receive_clear(at)
            self.clear_timings.append(ClearTiming(sent_at, at))
            dropped = self.playout.clears[-1].dropped_bytes // 8
            self.timeline.append(TimelineEvent(at, "clear at Twilio", f"dropped {dropped} ms"))

    def _capture(self, t: float) -> None:
        i = self._next_frame
        self.playout.advance(t)
        if self.line is None:
            payload = self.script.frame(i)
        else:
            start = self.media_t0 + i * FRAME_S
            played = self.playout.render(start, FRAME_BYTES)
            speaker = ULAW_DECODE[np.frombuffer(played, np.uint8)] / 32768.0
            payload = self.line.process(self.script.mic(i), speaker)
        self.sent += payload
        self._next_frame += 1
        self._up.push(Outgoing("media", t, frame=i, payload=payload), t)

    def _echo_marks(self) -> None:
        echoes = self.playout.echoes
        for e in echoes[self._echo_idx :]:
            self._up.push(Outgoing("mark", e.at, name=e.name, played=e.played), e.at)
        self._echo_idx = len(echoes)
