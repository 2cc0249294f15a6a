"""The supervisor of one call: every timer it has, on one clock. Pure: time comes in as `now`.

Layer: policy.

What it watches, each a decision of `tick(now, snapshot)`:

- silence: the idle prompt, the goodbye and the hang-up after it (`SilencePolicy`);
- dead air: the caller owed audio and hearing nothing for 2 s (`DeadAirWatch`);
- a stalled backend: a request or response in flight and no backend event for
  `stall_timeout_s`;
- a failed Twilio send: the rx loop is given `TX_FAILURE_GRACE_S` to see why (a caller's
  `stop` is usually still in its buffer) before the call ends on it;
- drains: once a response's audio is all queued, speaking ends when the playout buffer
  is empty, or when no frame has left for `drain_timeout_s`; a watch ends unseen when
  its response stops playing (cut off, or another took its place).

`next_deadline()` says when to tick next if nothing happens; anything that changes the
snapshot (a frame queue emptied, a mark echoed, a response created) is a reason to tick
at once. The aioquic pattern: the shell sleeps until the deadline or an event.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediasrv.policy.drain import DrainOutcome, DrainWatch
from mediasrv.policy.guards import DeadAirWatch
from mediasrv.policy.silence import Decision, SilencePolicy

TX_FAILURE_GRACE_S = 1.0  # after a failed send, how long the rx loop may take to see why


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    silence_timeout_s: float
    max_call_s: float
    stall_timeout_s: float
    drain_timeout_s: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the supervisor judges, read under the call lock at the tick."""

    live_response: str | None  # the response playing now, unless it was cut off
    queued: int  # frames waiting in the playout buffer
    last_sent_at: float | None  # when the last frame left for Twilio
    ai_busy: bool  # a response asked for, in flight, playing, queued or unheard
    wait_reason: str  # why the caller is owed audio from the backend ("" if not)
    backend_busy: bool  # a request or response in flight at the backend
    connected: bool


@dataclass(frozen=True, slots=True)
class Silence:
    decision: Decision  # ask "are you still there?", say goodbye, or hang up


@dataclass(frozen=True, slots=True)
class DeadAir:
    silent_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Stalled:
    reason: str


@dataclass(frozen=True, slots=True)
class TxFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Drained:
    response_id: str
    outcome: DrainOutcome
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class Superseded:
    response_id: str
    elapsed_ms: int


Action = Silence | DeadAir | Stalled | TxFailed | Drained | Superseded


class Supervisor:
    """All of a call's timers; the caller serialises access (the call lock)."""

    def __init__(self, config: SupervisorConfig, started: float) -> None:
        self.config = config
        self.silence = SilencePolicy(config.silence_timeout_s, config.max_call_s, started)
        self._dead_air = DeadAirWatch()
        self.dead_air_events = 0
        self._caller_talking = False  # mid-utterance: the silence clock must not run
        self._backend_heard_at = started
        self._stall_due: float | None = None
        self._tx_failure: tuple[float, str] | None = None
        self._drains: dict[str, DrainWatch] = {}
        self._ever_watched: set[str] = set()  # responses whose drain was ever watched
        self._drain_due: float | None = None

    @property
    def caller_talking(self) -> bool:
        """Tell whether the caller is mid-utterance (not the moment to start talking)."""
        return self._caller_talking

    # --- what happened -------------------------------------------------------------------

    def caller_started(self, now: float) -> None:
        """The caller began an utterance (not echo): silence is not silence."""
        self.silence.on_caller_speech(now)
        self._caller_talking = True

    def caller_stopped(self, now: float, *, turn: bool) -> None:
        """The utterance ended (`turn`: it counts as the caller's turn) or was skipped."""
        if turn or self._caller_talking:
            self.silence.on_caller_speech(now)  # silence is timed from the end of the sound
        self._caller_talking = False

    def backend_heard(self, now: float) -> None:
        """An event came from the backend, or a request went to it: the stall clock restarts."""
        self._backend_heard_at = now

    def tx_failed(self, now: float, reason: str) -> None:
        if self._tx_failure is None:
            self._tx_failure = (now, reason)

    def watch_drain(self, response_id: str, now: float) -> bool:
        """Start watching a response's drain; False if it was already watched (once each)."""
        if response_id in self._ever_watched:
            return False
        self._ever_watched.add(response_id)
        self._drains[response_id] = DrainWatch(response_id, now, self.config.drain_timeout_s)
        return True

    def goodbye(self, now: float, reason: str) -> Decision | None:
        """Begin the goodbye now (shutdown, the backend gone); None if already ending."""
        return self.silence.goodbye(now, reason)

    # --- the clock -----------------------------------------------------------------------

    def tick(self, now: float, snap: Snapshot) -> list[Action]:
        """Judge every timer against the snapshot; return what to do now."""
        actions: list[Action] = []
        if self._tx_failure is not None and now - self._tx_failure[0] >= TX_FAILURE_GRACE_S:
            actions.append(TxFailed(self._tx_failure[1]))
            self._tx_failure = None
        actions.extend(self._tick_drains(now, snap))
        if self._caller_talking:
            self.silence.on_caller_speech(now)  # a long sentence is not silence
        decision = self.silence.tick(now, ai_busy=snap.ai_busy)
        reason = "" if self._caller_talking else snap.wait_reason
        silent = self._dead_air.step(now, reason=reason, last_sent_at=snap.last_sent_at)
        if silent is not None:
            self.dead_air_events += 1
            actions.append(DeadAir(silent, reason))
        actions.extend(self._tick_stall(now, snap))
        if decision is not None:
            actions.append(Silence(decision))
        return actions

    def next_deadline(self) -> float | None:
        """Return when `tick` may decide something next, if nothing else changes first."""
        due = [self.silence.next_deadline(), self._dead_air.next_deadline(), self._stall_due,
               self._drain_due]
        if self._tx_failure is not None:
            due.append(self._tx_failure[0] + TX_FAILURE_GRACE_S)
        return min((d for d in due if d is not None), default=None)

    def _tick_drains(self, now: float, snap: Snapshot) -> list[Action]:
        actions: list[Action] = []
        due: list[float] = []
        for rid, watch in list(self._drains.items()):
            if rid != snap.live_response:
                del self._drains[rid]
                actions.append(Superseded(rid, watch.elapsed_ms(now)))
                continue
            outcome = watch.step(snap.queued, snap.last_sent_at, now)
            if outcome is None:
                due.append(watch.deadline(snap.last_sent_at))
                continue
            del self._drains[rid]
            actions.append(Drained(rid, outcome, watch.elapsed_ms(now)))
        self._drain_due = min(due, default=None)
        return actions

    def _tick_stall(self, now: float, snap: Snapshot) -> list[Action]:
        if not (snap.backend_busy and snap.connected):  # (a reconnect is under way)
            self._stall_due = None
            return []
        self._stall_due = self._backend_heard_at + self.config.stall_timeout_s
        if now < self._stall_due:
            return []
        self._backend_heard_at = now  # once per stall: the reconnect restarts the clock
        self._stall_due = now + self.config.stall_timeout_s
        timeout = self.config.stall_timeout_s
        return [Stalled(f"stalled: no event for {timeout:g} s (OPENAI_STALL_TIMEOUT_S)")]
