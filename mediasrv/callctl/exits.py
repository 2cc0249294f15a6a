"""The spoken exits of a call: hang up after a goodbye, transfer after a handover line.

Pure state machines (no threads, `now` as an argument, actions returned as values):

    end call:  SPEAKING --line_heard--> HANGING_UP --hung_up--> ENDED
    transfer:  SPEAKING --line_heard--> UPDATING --update_done(ok)--> AWAITING_STOP
               --stream_stopped--> TRANSFERRED;  update_done(failed) --> FAILED (the
               conversation goes on: the model is told why)

Both wait until the line was *heard* (the playback ledger says so, or a barge-in cut it:
a caller talking over "goodbye" is leaving too), bounded by SPEAK_MAX_S so lost marks
never hold a line open. The engine says when the line was asked for (`line_requested`:
the answer after the tool's result); from then on the AI is busy -- the request in
flight, its audio queued or not yet confirmed played -- and `observe(now, ai_busy)` takes
the first moment it is not as the line heard.

A transfer is done when Twilio ends the media stream with `stop` after the REST update
(PROTOCOLS-2 6): that `stop` is the transfer succeeding, not a hang-up, so it must never
be answered with `status=completed`; `stream_stopped()` says which it was. If no `stop`
comes within STOP_WAIT_S of a successful update the call was redirected anyway, so the
engine closes its end.

Layer: call control (pure: no threads, no I/O; `now` as an argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .tools_file import TransferTarget

# The goodbye or handover line is a sentence or two; 20 s covers a slow voice and a late
# mark, and bounds a line whose marks never come back.
SPEAK_MAX_S = 20.0
# Twilio stops the stream about as soon as it runs the new TwiML; 10 s is far beyond that.
STOP_WAIT_S = 10.0


class ExitState(Enum):
    SPEAKING = "speaking"
    HANGING_UP = "hanging_up"
    UPDATING = "updating"
    AWAITING_STOP = "awaiting_stop"
    TRANSFERRED = "transferred"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the media stream (and complete the call through REST when configured)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SendTransfer:
    """Update the live call with `<Dial>` TwiML to `target` (REST)."""

    target: TransferTarget
    note: str = ""


@dataclass(frozen=True, slots=True)
class CloseStream:
    """End our side of a stream Twilio should have stopped; no REST hang-up."""

    reason: str


@dataclass(frozen=True, slots=True)
class Resume:
    """The exit failed: give the model `output` (JSON text) and let the call go on."""

    output: str
    reason: str


ExitAction = HangUp | SendTransfer | CloseStream | Resume


class _SpokenExit:
    """Shared part: a line is spoken, then something happens once it has been heard."""

    def __init__(self, now: float) -> None:
        self.state = ExitState.SPEAKING
        self._deadline: float | None = now + SPEAK_MAX_S
        self._requested = False

    def next_deadline(self) -> float | None:
        return self._deadline

    def line_requested(self) -> None:
        """The line was asked for: the AI is busy with it from now until it was heard."""
        self._requested = True

    def observe(self, now: float, ai_busy: bool) -> ExitAction | None:
        """Take the AI's state: once nothing of the requested line is left, it was heard."""
        if not self._requested or ai_busy:
            return None
        return self.line_heard(now)

    def line_heard(self, now: float) -> ExitAction | None:
        """The goodbye or handover line has played (or was cut by a barge-in)."""
        if self.state is not ExitState.SPEAKING:
            return None
        return self._after_line(now, "")

    def tick(self, now: float) -> ExitAction | None:
        if self._deadline is None or now < self._deadline:
            return None
        if self.state is ExitState.SPEAKING:
            return self._after_line(now, f"line not confirmed heard within {SPEAK_MAX_S:g} s")
        return self._timed_out(now)

    def _after_line(self, now: float, note: str) -> ExitAction:
        raise NotImplementedError

    def _timed_out(self, now: float) -> ExitAction | None:
        self._deadline = None
        return None


class EndCallExit(_SpokenExit):
    """The model called `end_call`: say goodbye, wait until heard, hang up."""

    def __init__(self, reason: str, now: float) -> None:
        super().__init__(now)
        self.reason = reason

    def _after_line(self, now: float, note: str) -> ExitAction:
        self.state = ExitState.HANGING_UP
        self._deadline = None
        why = "goodbye heard" if not note else f"goodbye {note}"
        return HangUp(f"end_call ({self.reason or 'no reason given'}): {why}")

    def hung_up(self) -> None:
        self.state = ExitState.ENDED

    def stream_stopped(self) -> str:
        """Return the end reason when Twilio stopped the stream during this exit."""
        self.state = ExitState.ENDED
        return "caller hung up during the goodbye"


class TransferExit(_SpokenExit):
    """The model called `transfer_call`: handover line, heard, REST update, `stop`."""

    def __init__(self, target: TransferTarget, now: float) -> None:
        super().__init__(now)
        self.target = target

    def _after_line(self, now: float, note: str) -> ExitAction:
        self.state = ExitState.UPDATING
        self._deadline = None  # the REST request is bounded by its own timeout
        return SendTransfer(self.target, note)

    def update_done(self, ok: bool, reason: str, now: float) -> ExitAction | None:
        """The REST update returned: success waits for `stop`, failure resumes the call."""
        if self.state is not ExitState.UPDATING:
            return None  # `stop` came first: already transferred
        if ok:
            self.state = ExitState.AWAITING_STOP
            self._deadline = now + STOP_WAIT_S
            return None
        self.state = ExitState.FAILED
        return Resume(
            '{"ok": false, "error": "the transfer failed; tell the caller you could not '
            'transfer them and offer to help another way"}',
            f"transfer to {self.target.spoken()} failed: {reason}")

    def stream_stopped(self) -> str:
        """Return the end reason for a `stop` during this exit (transfer or hang-up)."""
        if self.state in (ExitState.UPDATING, ExitState.AWAITING_STOP,
                          ExitState.TRANSFERRED):
            self.state = ExitState.TRANSFERRED
            self._deadline = None
            return f"transferred to {self.target.spoken()}"
        self.state = ExitState.ENDED
        return "caller hung up before the transfer"

    @property
    def transferred(self) -> bool:
        return self.state is ExitState.TRANSFERRED

    def _timed_out(self, now: float) -> ExitAction | None:
        self._deadline = None
        if self.state is not ExitState.AWAITING_STOP:
            return None
        self.state = ExitState.TRANSFERRED
        return CloseStream(f"transfer to {self.target.spoken()}: no stop from Twilio "
                           f"within {STOP_WAIT_S:g} s of the update; closing our end")
