"""One phone call: its lifecycle and the rx loop that reads Twilio.

Layer: call.

`Call.run` is the rx loop (the flask-sock handler thread): it waits for `start`, builds
the parts of the call and starts its threads (see core.py for all of them and the lock
rule), then reads Twilio until the call ends: caller audio to the uplink, mark echoes to
the playback ledger, keys to call control, `stop` to the end -- a hang-up, unless call
control caused it (a transfer, a voicemail redirect). Other threads end a call with
`end(reason)`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from mediasrv.call.control import Control
from mediasrv.call.core import CallConfig, CallCore, CallDeps, TwilioSocket
from mediasrv.call.observer import CallLog
from mediasrv.call.outbound import BargeIn, TxReports
from mediasrv.call.playout import EchoReference
from mediasrv.call.responses import Responses
from mediasrv.call.tx import TwilioWriter, TxLoop
from mediasrv.call.uplink import Uplink
from mediasrv.call.watcher import Watcher
from mediasrv.errors import PeerClosed, TwilioProtocolError
from mediasrv.policy.playback import MarkOutcome
from mediasrv.policy.turns import BargeIn as BargeInEvent
from mediasrv.policy.turns import EndOfUtterance, TurnEvent, UtteranceSkipped, UtteranceStarted
from mediasrv.protocol.twilio import Dtmf, Mark, Media, Start, Stop, TwilioMessages, parse_twilio

log = logging.getLogger("mediasrv.call")  # one logger for all parts of a call

START_TIMEOUT_S = 10.0
_RECEIVE_S = 0.1  # how long one read of Twilio may block before `closing` is looked at
_JOIN_S = 1.0  # how long the call's threads may take to end once it closes


@dataclass(frozen=True)
class CallStats:
    """A snapshot of one call's counters and queues (metrics, tests)."""

    answers: int  # answers asked for: the caller's turns
    barge_ins: int
    dead_air_events: int
    bad_inputs: int
    flood_dropped: int  # caller frames beyond the inbound budget
    tx_late_frames: int
    tx_underruns: int
    queued_frames: int  # in the playout buffer's bounded queue
    overflow_frames: int  # beyond it
    twilio_backlog: int  # Twilio messages received by the socket, not yet read
    ai_speaking: bool
    unheard_audio: bool  # marks sent whose echo has not come back
    heard_ms: dict[str, float]  # per item: what mark echoes confirmed the caller heard
    uplink_batch_bytes: int  # caller audio waiting for the next append


class Call:
    def __init__(self, ws: TwilioSocket, deps: CallDeps) -> None:
        self.ws = ws
        self.deps = deps
        self.log: CallLog = CallLog(log, {"call_sid": "-"})
        self.config: CallConfig = deps.config
        self._core = core = CallCore(deps, self.log)
        self.closing = core.closing
        self.is_ai_speaking = core.ai_speaking
        self.call_sid = ""
        self.end_reason = ""  # under the call lock: any thread may end the call
        self._caller_ended = False  # the caller (Twilio) ended it: no REST hang-up; locked
        self._bad_inputs = 0  # rx loop only
        self._threads: list[threading.Thread] = []  # rx loop only (started in _setup)
        self._barge_in = BargeIn(core)
        self._responses = Responses(core, self._barge_in)
        self._control = Control(core, deps, self._responses, self._barge_in, self._end_from)
        self._responses.tools = self._control
        self._echo = EchoReference()
        self._uplink = Uplink(core, self._echo, self._on_turn, deps.turn_checks)
        self._tx: TxLoop | None = None
        self._watcher: Watcher | None = None

    # --- lifecycle -------------------------------------------------------------------

    def run(self) -> str:
        """Serve the call on the current thread (the rx loop); return the end reason."""
        start = self._await_start()
        if start is not None:
            refusal = self.deps.check_start(start)
            if refusal:
                self.log.warning("call refused: %s", refusal)
                self.end_reason = refusal
                start = None
        if start is None:
            self.end_reason = self.end_reason or "no start message"
            self._core.close()
            self.log.info("stream ended before the call started: %s", self.end_reason)
            return self.end_reason
        self._setup(start)
        try:
            self._rx_loop()
        finally:
            self._shutdown()
        return self.end_reason

    def end(self, reason: str, *, by_caller: bool = False) -> None:
        """End the call from any thread (the rx loop closes the Twilio socket)."""
        with self._core.lock:
            if not self.end_reason:  # the first ending names it, and says who ended it
                self.end_reason = reason
                self._caller_ended = by_caller
        self._core.close()

    def request_response(self, purpose: str, instructions: str = "") -> bool:
        """Ask the backend for a response now (or once the one in flight is done)."""
        return self._responses.request(purpose, instructions)

    def say_goodbye(self, reason: str) -> bool:
        """Begin a goodbye now (e.g. shutdown); the call hangs up once it has been heard."""
        return self._responses.say_goodbye(reason)

    def redirected(self, reason: str) -> None:
        """Twilio was told to run other TwiML (voicemail): its `stop` is not a hang-up."""
        self._control.redirected(reason)

    def _await_start(self) -> Start | None:
        clock = self._core.clock
        deadline = clock.now() + START_TIMEOUT_S
        while clock.now() < deadline and not self.closing.is_set():
            try:
                data = self.ws.receive(timeout=0.5)
            except PeerClosed:
                self.end_reason = "twilio closed before start"
                return None
            if data is None:
                continue
            try:
                msg = parse_twilio(data, self.config.ws_max_message_bytes)
            except TwilioProtocolError as exc:
                self._bad_input(str(exc))
                continue
            if isinstance(msg, Start):
                return msg
            if isinstance(msg, Stop):
                self.end_reason = "stop before start"
                return None
            if isinstance(msg, Media):
                self._bad_input("media before start: dropped")
        return None

    def _setup(self, start: Start) -> None:
        core = self._core
        self.call_sid = start.call_sid
        self.log.bind(start.call_sid)
        sid = start.call_sid[-8:]
        core.backend = self.deps.open_backend(self._responses.on_event, closing=core.closing,
                                              name=f"mediasrv-rt-{sid}", logger=self.log,
                                              call_sid=start.call_sid)
        core.recording.start(start.call_sid)
        writer = TwilioWriter(self.ws, TwilioMessages(start.stream_sid), core.clock)
        self._tx = TxLoop(core.playout, writer, core.clock, core.closing,
                          TxReports(core, self._barge_in), self._echo,
                          prebuffer_ms=self.config.prebuffer_ms,
                          lead_ms=self.config.tx_lead_ms,
                          mark_interval_ms=self.config.mark_interval_ms)
        self._watcher = Watcher(core, writer, self._responses, self._control, self._end_from)
        for name, target in (("tx", self._tx_run), ("watch", self._watcher.run)):
            # Daemon: never keep a dying process up; they still end on `closing`.
            thread = threading.Thread(target=target, name=f"mediasrv-{name}-{sid}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self.log.info("call started (stream %s, turn detection %s)", start.stream_sid,
                      self.config.turn_detection)
        core.observer.call_started()
        self._control.start(start.call_sid)  # ready for tool calls before any can come
        core.backend.start()

    def _end_from(self, reason: str, by_caller: bool) -> None:
        self.end(reason, by_caller=by_caller)

    def _tx_run(self) -> None:
        assert self._tx is not None
        try:
            self._tx.run()
        except PeerClosed as exc:
            # The rx loop names the ending: a caller's `stop` or close is usually still
            # in its buffer. If it hears nothing for a second, the socket is broken.
            with self._core.lock:
                self._core.supervisor.tx_failed(self._core.clock.now(), str(exc))
            self._core.wake()

    def _shutdown(self) -> None:
        core = self._core
        core.close()
        deadline = core.clock.now() + _JOIN_S
        stuck = core.backend.close(timeout=_JOIN_S) + self._control.close()
        for thread in self._threads:
            thread.join(timeout=max(0.05, deadline - core.clock.now()))
            if thread.is_alive():
                stuck.append(thread.name)
        for name in stuck:
            self.log.error("thread %s did not end within 1 s", name)
        with core.lock:
            by_caller, reason = self._caller_ended, self.end_reason or "unknown"
            answers, barge_ins = core.ledger.answers, core.ledger.barge_ins
        if not by_caller and self.deps.hang_up is not None:
            try:
                self.deps.hang_up(self.call_sid)
                self.log.info("call completed through the Twilio REST API")
            except Exception as exc:  # the socket close still ends the call (PROTOCOLS 1.7)
                self.log.warning("REST hang-up failed: %s", exc.__class__.__name__)
        duration = core.clock.now() - core.started_at
        core.recording.finish(reason, duration)
        self.log.info("call ended: reason=%s duration=%.1fs turns=%d barge_ins=%d",
                      reason, duration, answers, barge_ins)
        core.observer.call_ended(reason)

    # --- the rx loop -------------------------------------------------------------------

    def _rx_loop(self) -> None:
        uplink = self._uplink
        while not self.closing.is_set():
            try:
                data = self.ws.receive(timeout=uplink.receive_timeout(_RECEIVE_S))
            except PeerClosed:
                self.end("twilio socket closed", by_caller=True)
                return
            if data is not None:
                try:
                    self._on_twilio(data, self._core.clock.now())
                except Exception:  # the safety net: one bad message must not end the call
                    self._bad_input("message handler failed (see traceback): dropped")
                    self.log.exception("twilio message handler failed")
            if uplink.checks_out:
                self._take_answers()

    def _take_answers(self) -> None:
        """Act on the end-of-turn model's answers that came back meanwhile."""
        try:
            self._uplink.take_answers(self._core.clock.now())
        except Exception:  # the safety net: the turn then ends at the VAD's cap
            self.log.exception("[TURN] acting on an end-of-turn answer failed")

    def _on_twilio(self, data: str | bytes, now: float) -> None:
        try:
            msg = parse_twilio(data, self.config.ws_max_message_bytes)
        except TwilioProtocolError as exc:
            self._bad_input(str(exc))
            return
        if isinstance(msg, Media):
            if not self._uplink.on_media(msg, now):
                self._bad_input("media faster than real time (flood): dropped")
        elif isinstance(msg, Mark):
            self._on_mark(msg.name, self._uplink.stream_time(now))
        elif isinstance(msg, Stop):
            self.end(self._control.stop_reason() or "caller hung up (stop)", by_caller=True)
        elif isinstance(msg, Dtmf):
            self._control.on_dtmf(msg.digit, now)
        elif isinstance(msg, Start):
            self._bad_input("second start: dropped")

    def _bad_input(self, reason: str) -> None:
        self._bad_inputs += 1
        self._core.observer.bad_input()
        # A flood of garbage must not become a flood of log lines.
        if self._bad_inputs <= 20 or self._bad_inputs % 500 == 0:
            self.log.warning("twilio input dropped (%d so far): %s", self._bad_inputs, reason)

    def _on_mark(self, name: str, now: float) -> None:
        with self._core.lock:
            echo = self._core.playback.on_mark_echo(name, now)
        self._core.wake()  # the last echo of a response may start the silence clock
        if echo.outcome is MarkOutcome.UNKNOWN:
            self._bad_input(f"mark {name[:60]!r} we never sent: dropped")
        elif echo.is_end and echo.item is not None:
            self.log.info("[PLAYED] item %s fully heard (%d ms)", echo.item.item_id,
                          echo.item.heard_ms)

    def _on_turn(self, event: TurnEvent, now: float) -> None:
        core = self._core
        if isinstance(event, UtteranceStarted):
            with core.lock:
                core.supervisor.caller_started(now)
                # The clock, not the frame's capture time: server commits are timed on
                # arrival, and a backlogged rx loop must not age the utterance.
                core.ledger.caller_spoke(core.clock.now())
        elif isinstance(event, BargeInEvent):
            if not self.config.server_turns:
                self._barge_in.trigger("local_vad", now, speech_ms=event.speech_ms)
        elif isinstance(event, EndOfUtterance):
            with core.lock:
                core.supervisor.caller_stopped(now, turn=True)
                core.ledger.caller_stopped()
            if not self.config.server_turns and self._uplink.end_of_turn():
                self._responses.request("answer")
        elif isinstance(event, UtteranceSkipped):
            answer = event.barged and event.reason == "too_short" and not self.config.server_turns
            with core.lock:
                core.supervisor.caller_stopped(now, turn=answer)
                core.ledger.caller_stopped()
            if answer:
                self._answer_after_short_barge_in()
        core.wake()

    def _answer_after_short_barge_in(self) -> None:
        """Answer a turn that cut the AI off and then ended too short to be one.

        It was the caller's (a barge-in needs 100 ms of caller speech), and the AI it cut
        off is silent now: without an answer the caller hears dead air until the idle
        prompt. Seen end to end (scripts/scenarios.py --issue9, -20 dB callers): the
        end-of-turn model ends a turn at a pause, the answer starts, the caller's last
        word (260-280 ms of speech) barges in on it and was dropped as too short -- the
        caller heard "You sai-" and then nothing. Its audio, already sent, joins the turn.
        """
        self.log.info("[TURN] a short utterance cut the AI off: answered, not dropped")
        self._uplink.end_of_turn()
        self._responses.request("answer")

    # --- looking in --------------------------------------------------------------------

    def stats(self) -> CallStats:
        """Return a snapshot of the call's counters and queues."""
        core, tx = self._core, self._tx
        backlog = getattr(self.ws, "backlog", None)
        with core.lock:
            return CallStats(
                answers=core.ledger.answers,
                barge_ins=core.ledger.barge_ins,
                dead_air_events=core.supervisor.dead_air_events,
                bad_inputs=self._bad_inputs,
                flood_dropped=self._uplink.flood_dropped,
                tx_late_frames=tx.stats.late_frames if tx is not None else 0,
                tx_underruns=tx.stats.underruns if tx is not None else 0,
                queued_frames=core.playout.qsize(),
                overflow_frames=core.playout.overflow_len(),
                twilio_backlog=int(backlog()) if callable(backlog) else 0,
                ai_speaking=core.ai_speaking.is_set(),
                unheard_audio=core.playback.has_unheard(),
                heard_ms={i.item_id: i.heard_ms for i in core.playback.items.values()},
                uplink_batch_bytes=self._uplink.batch_bytes,
            )

    def tx_synced(self, timeout: float) -> bool:
        """Wait until the tx thread has handled everything queued in the playout buffer
        before this call; False if not within `timeout`. A test barrier: what it proves
        absent was not going to happen."""
        return self._core.playout.sync().wait(timeout)

    def watcher_synced(self, timeout: float) -> bool:
        """Wait until the watcher has ticked after this call; False if not within
        `timeout`. A test barrier, like `tx_synced`."""
        return self._watcher is not None and self._watcher.barrier().wait(timeout)
