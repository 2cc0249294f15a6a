"""When to prompt an idle caller, say goodbye and hang up. Pure: time comes in as `now`.

Layer: policy.

Silence is timed from *confirmed playback*: the clock starts when the AI has nothing
queued, nothing unheard at Twilio and no response in flight -- not at `response.done`,
after which Twilio may still play seconds of audio.

    LISTENING --silence--> (ask "are you still there?") PROMPTED
    PROMPTED  --silence--> (say goodbye) GOODBYE --goodbye played--> hang up
    caller speech in LISTENING/PROMPTED -> LISTENING;  MAX_CALL_S -> GOODBYE
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# If the goodbye's playback is never confirmed (lost marks, dead socket), hang up anyway.
GOODBYE_GRACE_S = 15.0


class Phase(Enum):
    LISTENING = "listening"
    PROMPTED = "prompted"
    GOODBYE = "goodbye"
    ENDED = "ended"


class Action(Enum):
    ASK_STILL_THERE = "ask_still_there"
    SAY_GOODBYE = "say_goodbye"
    HANG_UP = "hang_up"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str


class SilencePolicy:
    def __init__(self, silence_timeout_s: float, max_call_s: float, started: float) -> None:
        self.silence_timeout_s = silence_timeout_s
        self.max_call_s = max_call_s
        self.started = started
        self.phase = Phase.LISTENING
        self.end_reason = ""
        self._idle_since: float | None = started
        self._goodbye_at = 0.0
        self._goodbye_heard = False

    def on_caller_speech(self, now: float) -> None:
        """Caller speech resets the silence clock (not once goodbye has begun)."""
        if self.phase in (Phase.LISTENING, Phase.PROMPTED):
            self.phase = Phase.LISTENING
            self._idle_since = None

    def goodbye(self, now: float, reason: str) -> Decision | None:
        """Begin the goodbye now (e.g. shutdown); None if already ending."""
        if self.phase in (Phase.GOODBYE, Phase.ENDED):
            return None
        self.phase = Phase.GOODBYE
        self.end_reason = reason
        self._goodbye_at = now
        self._goodbye_heard = False
        return Decision(Action.SAY_GOODBYE, reason)

    def tick(self, now: float, *, ai_busy: bool) -> Decision | None:
        """Advance with the AI's playback state; return what to do, if anything."""
        if self.phase is Phase.ENDED:
            return None
        if self.phase is Phase.GOODBYE:
            return self._tick_goodbye(now, ai_busy)
        if now - self.started >= self.max_call_s:
            return self.goodbye(now, "max_call_duration")
        if ai_busy:
            self._idle_since = None
            return None
        if self._idle_since is None:
            self._idle_since = now
            return None
        if now - self._idle_since < self.silence_timeout_s:
            return None
        self._idle_since = None
        if self.phase is Phase.LISTENING:
            self.phase = Phase.PROMPTED
            return Decision(Action.ASK_STILL_THERE, "caller silent")
        return self.goodbye(now, "silence_timeout")

    def next_deadline(self) -> float | None:
        """Return when `tick` may decide something next, if nothing else changes first."""
        if self.phase is Phase.ENDED:
            return None
        if self.phase is Phase.GOODBYE:
            return self._goodbye_at + GOODBYE_GRACE_S
        deadline = self.started + self.max_call_s
        if self._idle_since is not None:
            deadline = min(deadline, self._idle_since + self.silence_timeout_s)
        return deadline

    def _tick_goodbye(self, now: float, ai_busy: bool) -> Decision | None:
        if ai_busy:
            self._goodbye_heard = True  # the goodbye is playing (or still queued)
            return None
        played = self._goodbye_heard
        if played or now - self._goodbye_at >= GOODBYE_GRACE_S:
            self.phase = Phase.ENDED
            why = self.end_reason if played else f"{self.end_reason} (goodbye not confirmed)"
            return Decision(Action.HANG_UP, why)
        return None
