"""The Twilio REST stand-in's account: calls, recordings, their timeline. Pure.

Every input takes `now` (monotonic seconds) and returns a `Reply` (the HTTP answer) and
`Effect`s for the shell to carry out, in order:

    Webhook      POST (or GET) signed form params to a URL: status, AMD and recording
                 callbacks; kind "voice" is the call's TwiML fetch, answered back through
                 `voice_answered()`
    RunTwiml     the call now runs this document (the media party opens a stream for a
                 <Connect><Stream>, or plays the far end of a <Dial>)
    StopStream   the media party must end this call's media stream with `stop` and close
                 it: the call's TwiML was replaced (a transfer, voicemail) or it ended

An outbound call is queued, rings (`initiated`, `ringing`), and after the callee's
`ring_s` is answered (or busy / no-answer / failed, per number); with AMD the result
comes `amd_s` later: on the TwiML fetch (synchronous) or to AsyncAmdStatusCallback.
Inbound calls enter through `inbound_call()` (the emulator). `next_deadline()` and
`tick(now)` run the timeline. Dates in resources are wall time: `now + wall_offset`.

Layer: stand-ins.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections.abc import Callable, Mapping
from xml.etree.ElementTree import Element, tostring

from .twilio_rest_records import (
    CALL_EVENTS,
    CREATE_KEYS,
    RECORDING_EVENTS,
    RECORDING_KEYS,
    UPDATE_KEYS,
    VERBS,
    Callback,
    Callee,
    CallRecord,
    Effect,
    RecordingRecord,
    Reply,
    RunTwiml,
    StopStream,
    Webhook,
    read_twiml,
)
from .twilio_rest_wire import PARTY, Params, TwilioError, bad_param, not_found


def random_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class TwilioAccount:
    """One account's calls and recordings; see the module docstring."""

    def __init__(self, account_sid: str, numbers: Mapping[str, Callee] | None = None,
                 new_sid: Callable[[str], str] = random_sid, wall_offset: float = 0.0) -> None:
        self.account_sid = account_sid
        self.calls: dict[str, CallRecord] = {}
        self.recordings: dict[str, RecordingRecord] = {}
        self._numbers = dict(numbers or {})
        self._new_sid = new_sid
        self._wall = wall_offset
        self._timers: list[tuple[float, int, str, str]] = []  # (due, n, call sid, step)
        self._n = itertools.count()
        self._steps = {"ring": self._step_ring, "answer": self._step_answer,
                       "sync_amd": self._step_sync_amd, "async_amd": self._step_async_amd}

    # -- REST ------------------------------------------------------------------------------

    def create_call(self, p: Params, now: float) -> tuple[Reply, tuple[Effect, ...]]:
        p.check_known(CREATE_KEYS)
        to, from_ = p.one("To"), p.one("From")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not PARTY.match(to):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ or not PARTY.match(from_):
            raise TwilioError(400, 21213, f"No valid 'From' number is specified: {from_!r}")
        url, twiml = p.url("Url"), p.one("Twiml")
        if not url and not twiml:
            raise TwilioError(400, 21205, "Url or Twiml is required")
        if url and twiml:
            raise TwilioError(400, 32019, "Twiml and Url are both set [stricter than Twilio,"
                                          " which warns and uses Url]")
        if twiml:
            read_twiml(twiml, inline=True)  # refused now rather than at answer
        call = CallRecord(self._new_sid("CA"), self.account_sid, to, from_, "outbound-api",
                          "queued", now + self._wall, url=url, method=p.method("Method"),
                          twiml=twiml, status_callback=self._status_callback(p))
        call.amd = p.choice("MachineDetection", ("Enable", "DetectMessageEnd"))
        if p.choice("AsyncAmd", ("true", "false")) == "true":
            if not call.amd:
                raise bad_param("AsyncAmd needs MachineDetection")
            call.amd_callback = Callback(p.url("AsyncAmdStatusCallback"),
                                         p.method("AsyncAmdStatusCallbackMethod"))
        call.record = p.choice("Record", ("true", "false")) == "true"
        call.recording_options = {k: v for k, v in p.form.items()
                                  if k.startswith("Recording") or k == "Trim"}
        self.calls[call.sid] = call
        self._after(now, call, "ring")
        return Reply(201, call.json()), self._status(call, "initiated", now)

    def update_call(self, sid: str, p: Params, now: float) -> tuple[Reply, tuple[Effect, ...]]:
        p.check_known(UPDATE_KEYS)
        call = self._call(sid)
        status, url, twiml = p.choice("Status", ("completed", "canceled")), p.url("Url"), \
            p.one("Twiml")
        if url and twiml:
            raise TwilioError(400, 32019, "Twiml and Url are both set [stricter than Twilio,"
                                          " which warns and uses Url]")
        if status and (url or twiml):
            raise bad_param("Status cannot be combined with Url or Twiml [stricter]")
        if not (status or url or twiml):
            raise bad_param("nothing to update: give Status, Url or Twiml")
        if not call.live:
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
        verbs = read_twiml(twiml, inline=True) if twiml else ()
        if p.one("StatusCallback"):
            call.status_callback.url = p.url("StatusCallback")
            call.status_callback.method = p.method("StatusCallbackMethod")
        if status:
            ended = self._end_by_status(call, status, now)
            return Reply(200, call.json()), ended
        effects: list[Effect] = []
        if call.stream_live:
            call.stream_live = False
            effects.append(StopStream(call.sid, "the call's TwiML was updated"))
        call.after_stream = ()
        if twiml:
            call.twiml = twiml
            effects += self._run(call, verbs, now, twiml)
        else:
            call.url, call.method = url, p.method("Method")
            effects.append(self._voice_fetch(call, {}))
        return Reply(200, call.json()), tuple(effects)

    def fetch_call(self, sid: str) -> Reply:
        return Reply(200, self._call(sid).json())

    def create_recording(self, call_sid: str, p: Params, now: float
                         ) -> tuple[Reply, tuple[Effect, ...]]:
        p.check_known(RECORDING_KEYS)
        call = self._call(call_sid)
        if call.status != "in-progress":
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot start a recording.")
        rec = self._start_recording(call, p, "StartCallRecordingAPI", now)
        return Reply(201, rec.json()), self._recording_event(rec, "in-progress")

    def update_recording(self, call_sid: str, rec_sid: str, p: Params, now: float
                         ) -> tuple[Reply, tuple[Effect, ...]]:
        p.check_known(frozenset({"Status", "PauseBehavior"}))
        call = self._call(call_sid)
        if rec_sid == "Twilio.CURRENT" and call.recordings:
            rec_sid = call.recordings[-1]
        rec = self.recordings.get(rec_sid)
        if rec is None or rec.call is not call:
            raise not_found(f"/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings/"
                            f"{rec_sid}.json")
        status = p.choice("Status", ("paused", "in-progress", "stopped"))
        p.choice("PauseBehavior", ("skip", "silence"))
        if not status:
            raise bad_param("Status is required")
        if rec.status not in ("in-progress", "paused"):
            raise bad_param(f"recording {rec_sid} is {rec.status}: it cannot change")
        if status == "stopped":
            finished = self._finish_recording(rec, now)
            return Reply(200, rec.json()), finished
        rec.status = status
        return Reply(200, rec.json()), ()

    # -- the world (the media party, the emulator) -----------------------------------------

    def inbound_call(self, call_sid: str, from_: str, to: str, now: float) -> None:
        """Register a call that came in and whose <Connect><Stream> runs now."""
        call = CallRecord(call_sid, self.account_sid, to, from_, "inbound", "in-progress",
                          now + self._wall, started=now + self._wall, stream_live=True)
        self.calls[call_sid] = call

    def caller_hung_up(self, call_sid: str, now: float) -> tuple[Effect, ...]:
        call = self.calls.get(call_sid)
        if call is None or not call.live:
            return ()
        return self._end(call, "completed", now)

    def stream_ended(self, call_sid: str, now: float) -> tuple[Effect, ...]:
        """The server closed the media stream: Twilio goes on after </Connect>."""
        call = self.calls.get(call_sid)
        if call is None or not call.live or not call.stream_live:
            return ()
        call.stream_live = False
        verbs, call.after_stream = call.after_stream, ()
        return self._run(call, verbs, now, "")

    def voice_answered(self, call_sid: str, status: int, body: str, now: float
                       ) -> tuple[Effect, ...]:
        """The call's Url answered: run its TwiML (anything unusable ends the call)."""
        call = self.calls.get(call_sid)
        if call is None or not call.live:
            return ()
        try:
            if not 200 <= status < 300:
                raise TwilioError(502, 11200, f"HTTP retrieval failure: HTTP {status}")
            verbs = read_twiml(body, inline=False)
        except TwilioError as exc:
            call.said.append(f"[application error: {exc.message}]")
            return self._end(call, "completed", now)
        call.twiml = body
        return self._run(call, verbs, now, body)

    # -- the timeline ----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def tick(self, now: float) -> tuple[Effect, ...]:
        effects: list[Effect] = []
        while self._timers and self._timers[0][0] <= now:
            _, _, sid, step = heapq.heappop(self._timers)
            call = self.calls.get(sid)
            if call is not None and call.live:
                effects += self._steps[step](call, now)
        return tuple(effects)

    def _after(self, at: float, call: CallRecord, step: str) -> None:
        heapq.heappush(self._timers, (at, next(self._n), call.sid, step))

    def _callee(self, call: CallRecord) -> Callee:
        return self._numbers.get(call.to, Callee())

    def _step_ring(self, call: CallRecord, now: float) -> tuple[Effect, ...]:
        call.status = "ringing"
        self._after(now + self._callee(call).ring_s, call, "answer")
        return self._status(call, "ringing", now)

    def _step_answer(self, call: CallRecord, now: float) -> tuple[Effect, ...]:
        callee = self._callee(call)
        if callee.outcome != "answer":
            return self._end(call, callee.outcome, now)
        call.status, call.started = "in-progress", now + self._wall
        effects = list(self._status(call, "answered", now))
        if call.record:
            opts = Params(call.recording_options)
            effects += self._recording_event(
                self._start_recording(call, opts, "OutboundAPI", now), "in-progress")
        if call.amd and call.amd_callback is None:  # synchronous: the fetch waits for AMD
            self._after(now + callee.amd_s, call, "sync_amd")
        else:
            effects += self._answer_with_twiml(call, now, {})
            if call.amd:
                self._after(now + callee.amd_s, call, "async_amd")
        return tuple(effects)

    def _step_sync_amd(self, call: CallRecord, now: float) -> tuple[Effect, ...]:
        call.answered_by = self._callee(call).answered_by
        return self._answer_with_twiml(call, now, {"AnsweredBy": call.answered_by})

    def _step_async_amd(self, call: CallRecord, now: float) -> tuple[Effect, ...]:
        callee = self._callee(call)
        call.answered_by = callee.answered_by
        assert call.amd_callback is not None
        if not call.amd_callback.url:
            return ()  # Twilio warns (21262) and sends nothing
        params = {"AccountSid": call.account_sid, "CallSid": call.sid,
                  "AnsweredBy": callee.answered_by,
                  "MachineDetectionDuration": str(round(callee.amd_s * 1000))}
        return (Webhook("amd", call.sid, call.amd_callback.url, call.amd_callback.method,
                        tuple(params.items())),)

    def _answer_with_twiml(self, call: CallRecord, now: float, extra: dict[str, str]
                           ) -> tuple[Effect, ...]:
        if call.twiml:
            return self._run(call, read_twiml(call.twiml, inline=True), now, call.twiml)
        return (self._voice_fetch(call, extra),)

    # -- running TwiML ---------------------------------------------------------------------

    def _run(self, call: CallRecord, verbs: tuple[Element, ...], now: float, doc: str
             ) -> tuple[Effect, ...]:
        """Run verbs until one blocks (<Connect>, <Dial>) or the document ends the call."""
        effects: list[Effect] = [RunTwiml(call.sid, doc)] if doc else []
        for i, verb in enumerate(verbs):
            if verb.tag == "Connect" and verb.find("Stream") is not None:
                call.stream_live, call.after_stream = True, verbs[i + 1:]
                return tuple(effects)
            if verb.tag == "Dial":
                number = (verb.findtext("Number") or verb.text or "").strip()
                call.dialed.append(number)
                return tuple(effects)  # bridged until a party hangs up
            if verb.tag == "Hangup":
                break
            if verb.tag in ("Say", "Play"):
                call.said.append((verb.text or "").strip())
            elif verb.tag not in VERBS:
                call.said.append(f"[not simulated: {tostring(verb, encoding='unicode')}]")
        return tuple(effects) + self._end(call, "completed", now)

    def _voice_fetch(self, call: CallRecord, extra: dict[str, str]) -> Webhook:
        return Webhook("voice", call.sid, call.url, call.method,
                       tuple({**call.params(), **extra}.items()))

    # -- endings, callbacks, recordings ----------------------------------------------------

    def _end_by_status(self, call: CallRecord, status: str, now: float) -> tuple[Effect, ...]:
        if call.status == "in-progress":
            if status == "canceled":
                return ()  # documented: canceled does not affect an in-progress call
            return self._end(call, "completed", now)
        return self._end(call, "canceled", now)  # queued or ringing [assumed for completed]

    def _end(self, call: CallRecord, status: str, now: float) -> tuple[Effect, ...]:
        effects: list[Effect] = []
        if call.stream_live:
            call.stream_live = False
            effects.append(StopStream(call.sid, f"the call ended ({status})"))
        call.status, call.ended = status, now + self._wall
        for rec_sid in call.recordings:
            rec = self.recordings[rec_sid]
            if rec.status in ("in-progress", "paused"):
                effects += self._finish_recording(rec, now)
        return tuple(effects) + self._status(call, "completed", now)

    def _status(self, call: CallRecord, event: str, now: float) -> tuple[Effect, ...]:
        cb = call.status_callback
        if not cb.url or event not in cb.events:
            return ()
        return (Webhook("status", call.sid, cb.url, cb.method,
                        tuple(call.status_params(now + self._wall).items())),)

    def _status_callback(self, p: Params) -> Callback:
        events = p.many("StatusCallbackEvent") or ["completed"]
        unknown = set(events) - set(CALL_EVENTS)
        if unknown:
            raise bad_param(f"StatusCallbackEvent: {sorted(unknown)} not in {CALL_EVENTS}")
        return Callback(p.url("StatusCallback"), p.method("StatusCallbackMethod"),
                        frozenset(events))

    def _start_recording(self, call: CallRecord, p: Params, source: str, now: float
                         ) -> RecordingRecord:
        events = p.many("RecordingStatusCallbackEvent") or ["completed"]
        if set(events) - set(RECORDING_EVENTS):
            raise bad_param(f"RecordingStatusCallbackEvent must be in {RECORDING_EVENTS}")
        channels = p.choice("RecordingChannels", ("mono", "dual"), "mono")
        track = p.choice("RecordingTrack", ("inbound", "outbound", "both"), "both")
        p.choice("Trim", ("trim-silence", "do-not-trim"))
        rec = RecordingRecord(self._new_sid("RE"), call, "in-progress",
                              2 if channels == "dual" else 1, track, source, now + self._wall,
                              Callback(p.url("RecordingStatusCallback"),
                                       p.method("RecordingStatusCallbackMethod"),
                                       frozenset(events)))
        self.recordings[rec.sid] = rec
        call.recordings.append(rec.sid)
        return rec

    def _finish_recording(self, rec: RecordingRecord, now: float) -> tuple[Effect, ...]:
        rec.status, rec.ended = "completed", now + self._wall
        return self._recording_event(rec, "completed")

    def _recording_event(self, rec: RecordingRecord, event: str) -> tuple[Effect, ...]:
        cb = rec.callback
        if not cb.url or event not in cb.events:
            return ()
        return (Webhook("recording", rec.call.sid, cb.url, cb.method,
                        tuple(rec.callback_params().items())),)

    def _call(self, sid: str) -> CallRecord:
        call = self.calls.get(sid)
        if call is None:
            raise not_found(f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json")
        return call
