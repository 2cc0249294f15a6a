"""The response ledger: which response is asked for, generating, playing, deferred or cut off.

Layer: policy (pure: no threads, sockets or clock; time comes in as `now`).

A call has at most one response in flight at the backend. A request made while one is
pending (asked for, not yet created) or active (created, not yet done) is *deferred*:
the latest wins unless a goodbye is already waiting (it outranks everything). The
response created last is the one *playing*; audio of any other response, or of one
cut off by a barge-in, is dropped.

    request(purpose)  -> Send | Defer | None   None: the call is closing
    on_created(id)    -> its purpose           the pending request is answered
    on_delta(id, now) -> Play | None           None: not the playing response: drop it
    on_done(id)       -> Done                  the deferred purpose to ask for now
    barge_in(playing) -> BargeInPlan | None    cut off what plays (None: nothing does)
    supersede()       -> Superseded | None     a newer answer is owed: drop the unheard one
    on_lost()                                  the backend went away mid-request
    on_session_ready()-> SessionStart          greet, or ask again for what was owed

The call keeps the ledger behind its one lock and carries out what these return after
releasing it (mediasrv.call).
"""

from __future__ import annotations

from dataclasses import dataclass

# Prompts a lost session owed that a new session can say as well. An answer is not asked
# for again: the new session never heard the caller.
RESUMABLE = ("greeting", "idle_prompt", "goodbye")
# A deferred request is replaced by a later one of at least its rank.
_RANK = {"answer": 1, "idle_prompt": 1, "greeting": 1, "after_tool": 1, "goodbye": 2}
# A server commit this soon after our VAD recognised the caller, while they still talk, did
# not end *their* turn: a server VAD commits after the turn's speech and then its end
# silence (at least 500 ms for `server_vad`), so what it ended came before the caller.
# Seen end to end (scripts/scenarios.py --issue9, server mode, a caller 1.15 s into the
# greeting on the handset line): the held prefix sent with the caller's first frames
# carried our greeting's echo and then the greeting's pause, the backend's VAD ended a
# "turn" on them 1-3 ms after our barge-in, and an answer played over the caller for 4 s.
# 300 ms leaves room for the round trip to the real API.
COMMIT_BEFORE_CALLER_S = 0.3
# Responses of our own pre-rendered prompts: the backend never heard of them.
LOCAL_PREFIX = "local_"


@dataclass(frozen=True, slots=True)
class Send:
    """Ask the backend for a response now."""

    request_id: str
    purpose: str
    answer_no: int  # answers asked for in this call so far (the turn number in the log)


@dataclass(frozen=True, slots=True)
class Defer:
    """Another response is in flight: this one is asked for once that one is done."""

    purpose: str


@dataclass(frozen=True, slots=True)
class Play:
    """Play this audio; `first` on the response's first audio."""

    first: bool
    purpose: str


@dataclass(frozen=True, slots=True)
class Done:
    deferred: str | None  # the purpose to ask for now that the backend is free
    live: bool  # the response done is the one playing (not cut off): watch its drain


@dataclass(frozen=True, slots=True)
class BargeInPlan:
    """Cut off `response_id`: clear Twilio, truncate at what was heard, cancel if needed."""

    response_id: str
    cancel: bool  # the backend is still generating it
    local: bool  # one of our own prompts: nothing to truncate or cancel at the backend


@dataclass(frozen=True, slots=True)
class Superseded:
    """The answer in flight will never be heard: cancel `response_id` at the backend now,
    or (None: not created yet) as soon as it is created."""

    response_id: str | None


@dataclass(frozen=True, slots=True)
class LocalPrompt:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class SessionStart:
    first: bool  # the call's first backend session (it greets)
    resume: str | None  # a prompt the lost session owed, to ask for again


class ResponseLedger:
    """Per-call response state; the caller serialises access (the call lock)."""

    def __init__(self) -> None:
        self.active_id: str | None = None  # created at the backend, not done
        self.playing_id: str | None = None  # whose audio plays (the last created or prompt)
        self._awaiting: Send | None = None  # a request the backend has not created yet
        self._superseded: str | None = None  # request id to cancel once it is created
        self._deferred: str | None = None
        self._cancelled: set[str] = set()
        self._purposes: dict[str, str] = {}
        self._first_delta_at: dict[str, float] = {}
        self._requests = 0  # numbers request ids and local prompts
        self.answers = 0
        self.barge_ins = 0
        self._sessions = 0
        self._resume: str | None = None
        # "One moment" plays once per outage (dead air, a lost backend), until audio flows.
        self._holding = False
        self._caller_speech = False  # our VAD heard the caller since the last server commit
        self._caller_speaking = False  # ... and its utterance has not ended yet
        self._spoke_at = 0.0  # when our VAD recognised the caller's current utterance

    # --- requests --------------------------------------------------------------------

    def request(self, purpose: str, *, closing: bool) -> Send | Defer | None:
        """Decide whether to ask for a response now, later, or not at all (closing)."""
        if closing:
            return None
        if self._awaiting is not None or self.active_id is not None:
            if self._deferred is None or _RANK.get(purpose, 0) >= _RANK.get(self._deferred, 0):
                self._deferred = purpose
            return Defer(purpose)
        self._requests += 1
        if purpose == "answer":
            self.answers += 1
        self._awaiting = Send(f"mediasrv_req_{self._requests}", purpose, self.answers)
        return self._awaiting

    def request_failed(self, request_id: str) -> None:
        """The request was not sent, or the backend refused it: it will not be created."""
        if self._awaiting is not None and self._awaiting.request_id == request_id:
            self._awaiting = None

    def on_created(self, response_id: str) -> str:
        """Record a response the backend created; return its purpose."""
        purpose = self._awaiting.purpose if self._awaiting is not None else "unsolicited"
        if self._awaiting is not None and self._awaiting.request_id == self._superseded:
            self._cancelled.add(response_id)  # the call cancels it: `is_cancelled`
        self._awaiting = self._superseded = None
        self.active_id = self.playing_id = response_id
        self._purposes[response_id] = purpose
        return purpose

    def on_delta(self, response_id: str, now: float) -> Play | None:
        """Tell whether audio of `response_id` plays (None: drop it)."""
        if not self.is_live(response_id):
            return None
        first = response_id not in self._first_delta_at
        if first:
            self._first_delta_at[response_id] = now
            self._holding = False  # the backend speaks again: a new outage may hold
        return Play(first, self._purposes.get(response_id, ""))

    def on_done(self, response_id: str) -> Done:
        if self.active_id == response_id:
            self.active_id = None
        deferred, self._deferred = self._deferred, None
        return Done(deferred, self.is_live(response_id))

    # --- barge-in and local prompts ----------------------------------------------------

    def barge_in(self, playing: bool) -> BargeInPlan | None:
        """Cut off the playing response if any of its audio is still to be heard."""
        rid = self.playing_id
        if rid is None or rid in self._cancelled or not playing:
            return None
        self._cancelled.add(rid)
        if self._deferred == "answer":
            self._deferred = None  # the caller is talking again: a new answer will follow
        self.barge_ins += 1
        local = rid.startswith(LOCAL_PREFIX)
        return BargeInPlan(rid, cancel=self.active_id == rid and not local, local=local)

    def supersede(self) -> Superseded | None:
        """Drop the answer in flight if a newer answer waits behind it and none of its
        audio has come: the caller went on talking right after a turn end (the end-of-turn
        model or the server's VAD called a pause the end), so the answer to the first part
        would be heard after, or over, the rest. Both user turns stay in the conversation:
        the deferred answer, asked for once this one is done, answers the whole utterance.
        An answer whose audio has begun is the barge-in's to cut (what was heard is
        truncated there)."""
        if self._deferred != "answer":
            return None
        if self._awaiting is not None:
            if self._awaiting.purpose != "answer" or self._superseded is not None:
                return None
            self._superseded = self._awaiting.request_id
            return Superseded(None)
        rid = self.active_id
        if (rid is None or self._purposes.get(rid) != "answer" or rid in self._cancelled
                or rid in self._first_delta_at):
            return None
        self._cancelled.add(rid)
        return Superseded(rid)

    def local_prompt(self, prompt: str) -> LocalPrompt:
        """Make our own pre-rendered prompt the playing response."""
        self._requests += 1
        rid = f"{LOCAL_PREFIX}{prompt}_{self._requests}"
        self.playing_id = rid
        self._purposes[rid] = prompt
        return LocalPrompt(rid, f"local_item_{self._requests}")

    def hold(self) -> bool:
        """Tell whether to play "one moment" (once until the backend's audio flows again)."""
        held, self._holding = self._holding, True
        return not held

    # --- the backend session -------------------------------------------------------------

    def on_lost(self) -> None:
        """The backend went away: nothing is in flight any more; remember what was owed."""
        owed = self._awaiting.purpose if self._awaiting is not None else None
        owed = owed or self._purposes.get(self.active_id or "")
        self._resume = owed if owed in RESUMABLE else None
        self._awaiting = self._superseded = None
        self.active_id = None

    def on_session_ready(self) -> SessionStart:
        self._sessions += 1
        resume, self._resume = self._resume, None
        return SessionStart(self._sessions == 1, resume)

    def caller_spoke(self, now: float) -> None:
        self._caller_speech = self._caller_speaking = True
        self._spoke_at = now

    def caller_stopped(self) -> None:
        self._caller_speaking = False

    def take_caller_speech(self, now: float) -> bool:
        """Tell whether a server-mode commit at `now` ends a turn our VAD heard the caller in.

        A commit inside our utterance (the server's VAD ended a turn at a pause our VAD
        held) leaves the rest of it to the next commit: the continuation is the caller's
        too, and without it the caller heard an answer cut off and then none. A commit
        within `COMMIT_BEFORE_CALLER_S` of the utterance's start ended something before
        the caller (see there): not answered, and the caller's speech waits for the next.
        """
        if self.caller_just_began(now):
            return False
        heard, self._caller_speech = self._caller_speech, self._caller_speaking
        return heard

    def caller_just_began(self, now: float) -> bool:
        """Tell whether the caller's utterance began under `COMMIT_BEFORE_CALLER_S` ago."""
        return self._caller_speaking and now - self._spoke_at < COMMIT_BEFORE_CALLER_S

    # --- queries -------------------------------------------------------------------------

    def is_live(self, response_id: str) -> bool:
        """Tell whether `response_id` is the playing response and was not cut off."""
        return response_id == self.playing_id and response_id not in self._cancelled

    def is_cancelled(self, response_id: str) -> bool:
        return response_id in self._cancelled

    def purpose_of(self, response_id: str) -> str:
        return self._purposes.get(response_id, "")

    def first_delta_at(self, response_id: str) -> float | None:
        return self._first_delta_at.get(response_id)

    def in_flight(self) -> bool:
        """Tell whether a request or a response is in flight at the backend."""
        return self._awaiting is not None or self.active_id is not None

    def wait_reason(self, connected: bool) -> str:
        """Say why the caller is owed audio from the backend ("" when nothing is owed)."""
        if not connected:
            return "backend not connected (connecting, reconnecting or gone)"
        if self._awaiting is not None:
            return f"response.create for {self._awaiting.purpose} not answered by the backend yet"
        if self.active_id is not None:
            return f"response {self.active_id} active but no audio from the backend yet"
        return ""
