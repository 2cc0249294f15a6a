"""What the turn policy takes and gives: its settings, the turn events, one frame's step,
and the inbound audio it holds back before it gives it on.

Layer: policy. Plain data and book-keeping; `mediasrv.policy.turns` decides (split out of
it, which re-exports the settings, events and step). `HeldAudio` and `skip_reason` moved here
when turns.py outgrew 400 lines (issue 14): they keep no turn state of their own beyond
the held frames, and say what goes into a `TurnStep` and an `UtteranceSkipped`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

from mediasrv.audio import FRAME_MS
from mediasrv.errors import check_range
from mediasrv.policy.endturn import CheckRequest, EndTurnConfig


@dataclass(frozen=True, slots=True)
class TurnConfig:
    end_silence_ms: int = 500  # trailing silence that ends a turn
    min_utterance_ms: int = 300  # shorter is a cough, a click, "uh"
    barge_in_min_ms: int = 100  # caller speech needed to cut the bot off
    echo_window_ms: int = 500  # echo tail after our last sent frame
    erl_db: float = 6.0  # worst echo return loss we must survive (speakerphone)
    # Echo delays the guard and the canceller search, counted from when a frame plays: the
    # issue's 300 ms paths plus a 30 ms tail plus the network round trip (~60 ms) already
    # reach ~390 ms, past the 400 ms this was.
    echo_path_ms: int = 500
    # Cancel our own echo (see mediasrv.policy.aec) and measure this call's echo path (see
    # mediasrv.policy.echo): off, the guard falls back to the fixed worst case `erl_db`.
    echo_cancel: bool = True
    # Audio held inside the echo window and forwarded once the caller is recognised:
    # `prefix_ms` before the utterance's first frame that could be the caller, and all
    # since (`HeldAudio.release`), up to `prefix_max_ms`. A quiet caller over a loud
    # echo is recognised late (frame harness, -20 dB on the bad line: up to 1.5 s after
    # the onset) but heard as possibly the caller sooner. scripts/prefix_eval.py, onsets
    # forwarded at -20 / -10 dB on the bad line: 133, 140 of 142, 145 at 500 ms; 136, 145
    # at 700 (a fixed 500 ms ring: 119, 135), for 600 ms of what came before the caller
    # (p50; the fixed ring 320 ms, a fixed 1.5 s ring 1.3 s for 142, 145).
    prefix_ms: int = 700
    prefix_max_ms: int = 2000
    vad_onset_ms: int = 100  # see VadConfig.onset_ms
    # The end-of-turn model's policy (TURN_MODEL=smart-turn); None: the fixed
    # `end_silence_ms` ends every turn (TURN_MODEL=off, and server mode).
    end_turn: EndTurnConfig | None = None

    def __post_init__(self) -> None:
        # The fields that come from settings were checked there (mediasrv.web.settings),
        # once; these are the policy's own.
        check_range("echo_path_ms", self.echo_path_ms, 40, 1000)
        check_range("prefix_ms", self.prefix_ms, 0, 3000)
        check_range("prefix_max_ms", self.prefix_max_ms, self.prefix_ms, 3000)
        check_range("vad_onset_ms", self.vad_onset_ms, FRAME_MS, 500)


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    at: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    at: float
    speech_ms: int


@dataclass(frozen=True, slots=True)
class EndOfUtterance:
    at: float
    duration_s: float
    echo_blocked: bool


@dataclass(frozen=True, slots=True)
class UtteranceSkipped:
    at: float
    reason: str  # "closing" | "echo" | "too_short"
    duration_s: float
    barged: bool = False  # it cut the AI off (a BargeIn of this utterance was sent)


TurnEvent = UtteranceStarted | BargeIn | EndOfUtterance | UtteranceSkipped


@dataclass(frozen=True, slots=True)
class TurnStep:
    forward: bytes  # mu-law to send to OpenAI now (may be empty)
    events: tuple[TurnEvent, ...] = ()
    check: CheckRequest | None = None  # run the end-of-turn model on this, then report


def skip_reason(closing: bool, echo: bool, duration_s: float, min_utterance_ms: int) -> str | None:
    """Return why an utterance that ended is no turn (`UtteranceSkipped.reason`), or None."""
    if closing:
        return "closing"
    if echo:
        return "echo"
    if duration_s * 1000.0 < min_utterance_ms:
        return "too_short"
    return None


# Held audio before the frame that recognised the caller counted in their turn: as much
# as when `min_utterance_ms` was measured (what `HeldAudio.release` adds is mostly our echo).
_HELD_AS_HEARD_MS = 500


class HeldAudio:
    """Inbound frames held back inside the echo window until the caller is recognised (then
    some go out with them: `release`) or the window ends without them (`drop`)."""

    def __init__(self, config: TurnConfig) -> None:
        self._prefix_ms = config.prefix_ms
        self._frames: deque[bytes] = deque(maxlen=max(1, config.prefix_max_ms // FRAME_MS - 1))

    def __len__(self) -> int:
        return len(self._frames)

    def hold(self, frame: bytes) -> None:
        self._frames.append(frame)

    def drop(self) -> None:
        self._frames.clear()

    def heard_ms(self) -> int:
        """Return how much of the held audio counts in the caller's turn once they are
        recognised (`_HELD_AS_HEARD_MS` at most)."""
        return FRAME_MS * min(len(self._frames), _HELD_AS_HEARD_MS // FRAME_MS)

    def release(self, audio_ms: int, first_caller_ms: int | None) -> bytes:
        """Return the held frames that go out with the caller, and forget them all:
        `prefix_ms` up to this utterance's first frame that could be the caller
        (`first_caller_ms`, audio time), and all since: a quiet caller is recognised up
        to 1.5 s late, and a fixed ring that long sends 1.3 s of our echo before every
        barge-in (TurnConfig.prefix_ms)."""
        frames = self._frames
        first = audio_ms if first_caller_ms is None else first_caller_ms
        count = (self._prefix_ms + audio_ms - first) // FRAME_MS - 1  # -1: now
        send = max(0, min(len(frames), count))
        held = b"".join(islice(frames, len(frames) - send, None))
        frames.clear()
        return held
