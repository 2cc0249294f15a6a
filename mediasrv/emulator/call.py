"""One emulated Twilio call: voice webhook, then a Media Stream WebSocket. Thread shell.

Layer: emulator.

What happens at Twilio's end is decided by `phone.Phone` (pure: network transit, the
playout model, the line and its echo, the caller's microphone); this module only moves
bytes and sleeps. Two threads per call, both daemons (an interrupted benchmark or CLI
must not hang on a paced sender; every normal path still ends them through `closing`):

- tx (`mediasrv-sim-tx-<sid>`): the only writer after `start`. Sleeps until the phone's
  next deadline (a frame captured, a message arriving either way, a mark falling due)
  or until rx wakes it, runs the phone up to now and sends what has reached the server
  by then; at the end of the script it sends `stop` and tears the call down.
- rx (`mediasrv-sim-rx-<sid>`): the only reader. Hands every server message to the phone
  with the time it was read (on loopback: when the server sent it) and notices when the
  server hangs up.

Besides the caller's own hang-up (`hangup()`), Twilio itself may end the stream:
`twilio_stop(reason)` sends `stop` as Twilio does when the call's TwiML is replaced (a
transfer, a voicemail) or the call ends (party.py, for the REST stand-in). A call may
also be placed from TwiML Twilio already fetched (`CallOptions.twiml`, an outbound call)
and start its stream `stream_delay_s` after the TwiML was read (Twilio's own setup).

The phone and the timeline are shared by both: one lock, never held across a socket call.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import websocket

from mediasrv.audio import FRAME_BYTES, FRAME_MS
from mediasrv.clock import Clock, RealClock
from mediasrv.emulator import stamps, wire
from mediasrv.emulator.metrics import CallResult, TimelineEvent
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.phone import Outgoing, Phone
from mediasrv.emulator.script import CallerScript

log = logging.getLogger(__name__)

LATE_S = 0.010  # a message sent this far past its time counts as late (emulator overload)
MAX_REDIRECTS = 10  # <Redirect>s followed per call: a server that loops must not hang us


@dataclass(frozen=True)
class CallOptions:
    """How to place the call. Without `post_voice` the stream URL is derived directly."""

    post_voice: bool = True
    voice_path: str = "/voice"
    auth_token: str | None = None  # sign the webhook and the upgrade like Twilio
    public_url: str | None = None  # the origin Twilio would use, e.g. https://x.ngrok.app
    ws_url: str | None = None  # where to connect; default: base_url's host + stream path
    account_sid: str = "AC" + "0" * 32
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    custom_parameters: Mapping[str, str] = field(default_factory=dict)  # no-webhook only
    connect_timeout: float = 5.0
    close_grace: float = 1.0  # after our stop, how long the server gets to close
    network: NetworkTiming = field(default_factory=NetworkTiming)  # server <-> Twilio transit
    clock: Clock = field(default_factory=RealClock)
    call_sid: str | None = None  # Twilio's sid of this call (default: a new random one)
    twiml: str | None = None  # TwiML already fetched: stream to its <Connect><Stream>
    stream_delay_s: float = 0.0  # from the TwiML read to the stream's WebSocket connect
    on_end: Callable[[EmulatedCall], None] | None = None  # told once the result is ready


@dataclass(frozen=True)
class Progress:
    elapsed: float
    frames_sent: int
    media_received: int
    marks_echoed: int
    clears: int


class EmulatedCall:
    """The caller side of one Twilio call against a mediasrv server."""

    def __init__(
        self, base_url: str, script: CallerScript, options: CallOptions | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.script = script
        self.opts = options or CallOptions()
        self.call_sid = self.opts.call_sid or wire.new_sid("CA")
        self.stream_sid = wire.new_sid("MZ")
        self._clock = self.opts.clock
        self._t0 = self._clock.now()
        # Guards the phone and the timeline (rx and tx).
        self._lock = threading.Lock()
        self._wake = threading.Event()  # rx -> tx: a message is in flight: new deadline
        self._stamps: stamps.StampedSocket | None = None  # the socket, when it dates reads
        self._closing = threading.Event()  # the stream is over: both threads end
        self._stop_sent = threading.Event()  # a close after this is not a server hang-up
        self._hangup_req = threading.Event()
        self._twilio_stop = ""  # why Twilio ends the stream (set before _hangup_req)
        self._done = threading.Event()
        self._phone = Phone(script, self.opts.network, 0.0)
        self._timeline: list[TimelineEvent] = []
        self._ws: websocket.WebSocket | None = None
        self._rx: threading.Thread | None = None
        self._tx: threading.Thread | None = None
        self._stream_url = ""
        self._ws_url = ""
        self._params: dict[str, str] = {}
        self._error: str | None = None
        self._hangup_by: str | None = None
        self._hangup_at: float | None = None
        self._ended_at = 0.0
        self._frames_sent = 0
        self._late_max = 0.0
        self._late_frames = 0
        self._marks_echoed = 0
        self._result: CallResult | None = None

    # -- public -----------------------------------------------------------------

    def start(self) -> bool:
        """Place the call and start its threads; return False if it failed to connect."""
        self._t0 = self._clock.now()
        try:
            self._setup()
        except (wire.CallSetupError, websocket.WebSocketException, OSError) as exc:
            self._error = str(exc) or type(exc).__name__
            self._event("failed", self._error)
            log.info("call %s failed to connect: %s", self.call_sid, self._error)
            if self._ws is not None:
                self._ws.shutdown()
            self._finish()
            return False
        sid = self.call_sid[-6:]
        self._rx = threading.Thread(target=self._rx_loop, name=f"mediasrv-sim-rx-{sid}")
        self._tx = threading.Thread(target=self._tx_loop, name=f"mediasrv-sim-tx-{sid}")
        self._rx.daemon = self._tx.daemon = True
        self._rx.start()
        self._tx.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the call to end; return True once its result is ready."""
        if not self._done.wait(timeout):
            return False
        if self._tx is not None:
            self._tx.join(timeout=1.0)  # it sets done as its very last step
        return True

    def hangup(self) -> None:
        """Ask the caller to hang up now (sends `stop` at the next frame)."""
        self._hangup_req.set()
        self._wake.set()

    def twilio_stop(self, reason: str) -> None:
        """End the stream as Twilio does (its TwiML was replaced, or the call ended)."""
        self._twilio_stop = reason or "stream stopped"
        self._event("twilio stop", self._twilio_stop)
        self.hangup()

    def run(self, timeout: float | None = None) -> CallResult:
        """Place the call, wait for it to end, return what happened."""
        if self.start():
            if not self.wait(timeout):
                self.hangup()
                self.wait(self.opts.close_grace + 3.0)
        return self.result()

    @property
    def t0(self) -> float:
        """Return the clock reading that call time 0 stands for (set by `start()`)."""
        return self._t0

    def progress(self) -> Progress:
        """Return counters for a progress line (safe from any thread)."""
        return Progress(
            elapsed=self._clock.now() - self._t0,
            frames_sent=self._frames_sent,
            media_received=len(self._phone.arrivals),
            marks_echoed=self._marks_echoed,
            clears=len(self._phone.clear_timings),
        )

    def result(self) -> CallResult:
        """Return the call's result; only valid once `wait()` returned True."""
        if self._result is None:
            raise RuntimeError("call still running: wait() first")
        return self._result

    # -- setup ------------------------------------------------------------------

    def _setup(self) -> None:
        o = self.opts
        if o.twiml is not None:
            target = wire.parse_twiml(o.twiml)
            self._stream_url, self._params = target.url, target.parameters
        elif o.post_voice:
            params = {
                "CallSid": self.call_sid,
                "AccountSid": o.account_sid,
                "From": o.from_number,
                "To": o.to_number,
            }
            target = wire.parse_twiml(self._fetch_twiml(params))
            self._stream_url, self._params = target.url, target.parameters
        else:
            self._stream_url = wire.public_stream_url(o.public_url, self.base_url)
            self._params = dict(o.custom_parameters)
        self._ws_url = o.ws_url or wire.local_ws_url(self._stream_url, self.base_url)
        if o.stream_delay_s > 0:
            self._clock.sleep_until(self._clock.now() + o.stream_delay_s)
        headers = []
        if o.auth_token:
            sig = wire.signature(o.auth_token, self._stream_url, {})
            headers.append(f"X-Twilio-Signature: {sig}")
        self._ws = websocket.create_connection(
            self._ws_url,
            timeout=o.connect_timeout,
            header=headers,
            enable_multithread=True,
            # pure-Python UTF-8 validation of every frame costs more than the rest of
            # the frame handling; json.loads rejects bad text anyway
            skip_utf8_validation=True,
        )
        self._stamps = self._stamp_reads(self._ws)
        self._ws.settimeout(None)  # blocking reads; teardown unblocks them with abort()
        self._event("connect", f"{self._ws_url} (stream url {self._stream_url})")
        self._ws.send(wire.connected_msg())
        self._ws.send(
            wire.start_msg(1, self.stream_sid, self.call_sid, o.account_sid, self._params)
        )
        with self._lock:
            self._phone = Phone(self.script, o.network, self._now())
        self._event("start", f"{self.stream_sid} params={sorted(self._params)}")
        log.info("call %s connected to %s", self.call_sid, self._ws_url)

    def _fetch_twiml(self, params: Mapping[str, str]) -> str:
        """POST the voice webhook like Twilio; follow `<Redirect>`s with the same call."""
        o = self.opts
        url = (o.public_url or self.base_url).rstrip("/") + o.voice_path  # as Twilio signs it
        for _ in range(MAX_REDIRECTS + 1):
            twiml = wire.post_voice(
                wire.local_http_url(url, self.base_url),
                params,
                signed_url=url,
                token=o.auth_token,
                timeout=o.connect_timeout,
            )
            path = urllib.parse.urlsplit(url)
            where = path.path + (f"?{path.query}" if path.query else "")
            self._event("voice", f"POST {where} -> {len(twiml)} bytes of twiml")
            target = wire.parse_redirect(twiml)
            if target is None:
                return twiml
            url = urllib.parse.urljoin(url, target)
            self._event("redirect", url)
        raise wire.CallSetupError(f"more than {MAX_REDIRECTS} redirects")

    # -- threads ----------------------------------------------------------------

    def _tx_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        seq = 2  # `start` was 1
        try:
            seq = self._pace(ws, seq)
            if not self._closing.is_set():
                self._stop_sent.set()
                ws.send(wire.stop_msg(seq, self.stream_sid, self.call_sid, self.opts.account_sid))
                if self._twilio_stop:
                    self._hang_up_as("twilio", self._twilio_stop)
                else:
                    self._hang_up_as("caller", "stop sent")
                ws.send_close()
                assert self._rx is not None
                self._rx.join(timeout=self.opts.close_grace)  # the server's close
        except (websocket.WebSocketException, OSError) as exc:
            if not self._closing.is_set():
                self._event("error", f"send failed: {exc}")
        except Exception:  # a bug here must not leave the call hanging
            log.exception("call %s: sender crashed", self.call_sid)
        finally:
            self._teardown(ws)

    def _pace(self, ws: websocket.WebSocket, seq: int) -> int:
        """Run the phone on its own deadlines; send what reaches the server, in order."""
        phone = self._phone
        while not self._closing.is_set() and not self._hangup_req.is_set():
            with self._lock:
                wake_at = phone.next_deadline()
                if phone.finished():
                    break
            if wake_at is not None:
                self._clock.sleep_until(self._t0 + wake_at, self._wake)
            else:  # nothing scheduled (cannot happen before the script ends): wait for rx
                self._wake.wait(0.1)
            now = self._now()
            with self._lock:
                self._wake.clear()
                out = phone.run_until(now)
            for due, msg in out:
                late = now - due  # > 0 means this process cannot keep up: results suspect
                self._late_max = max(self._late_max, late)
                self._late_frames += late > LATE_S
                ws.send(self._encode(msg, seq))
                seq += 1
        return seq

    def _encode(self, msg: Outgoing, seq: int) -> str:
        if msg.kind == "dtmf":
            self._event("send dtmf", msg.name)
            return wire.dtmf_msg(seq, self.stream_sid, msg.name)
        if msg.kind == "media":
            self._frames_sent = msg.frame + 1
            i = msg.frame
            return wire.media_msg(seq, self.stream_sid, i + 1, i * FRAME_MS, msg.payload)
        self._marks_echoed += 1
        self._event("echo mark", f"{msg.name} ({'played' if msg.played else 'flushed'})")
        return wire.mark_msg(seq, self.stream_sid, msg.name)

    def _rx_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                opcode, data = ws.recv_data()
                now = self._now()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self._server_closed(now, "close frame")
                    return
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    arrived = now if self._stamps is None else now - stamps.age(self._stamps)
                    self._on_message(data, arrived)
        except (websocket.WebSocketException, OSError) as exc:
            self._server_closed(self._now(), f"connection lost: {type(exc).__name__}")
        except Exception:  # a bug here must not leave the call hanging
            log.exception("call %s: receiver crashed", self.call_sid)
        finally:
            self._closing.set()
            self._wake.set()

    def _stamp_reads(self, ws: websocket.WebSocket) -> stamps.StampedSocket | None:
        """Let rx date each message by its arrival at the socket (stamps.py): only with
        the real clock, whose time the kernel's stamps are on."""
        if not isinstance(self._clock, RealClock) or ws.sock is None:
            return None
        sock = stamps.stamped(ws.sock)
        if sock is not None:
            ws.sock = sock
        return sock

    def _on_message(self, data: bytes, now: float) -> None:
        msg = wire.parse_server_message(data)
        if isinstance(msg, wire.Ignored):
            self._event("ignored", msg.reason)
            return
        if msg.stream_sid != self.stream_sid:
            self._event("bad streamSid", f"{msg.event}: {msg.stream_sid!r}")
        with self._lock:
            self._phone.receive(msg, now)
        self._wake.set()  # its arrival may come before the tx thread's next deadline

    # -- ending -----------------------------------------------------------------

    def _server_closed(self, now: float, how: str) -> None:
        if self._closing.is_set():
            return
        if self._stop_sent.is_set():
            self._event("closed", f"server closed after stop ({how})")
        else:
            self._hang_up_as("server", how, now)

    def _hang_up_as(self, who: str, detail: str, now: float | None = None) -> None:
        with self._lock:
            if self._hangup_by is not None:
                return
            self._hangup_by = who
            self._hangup_at = self._now() if now is None else now
            self._timeline.append(TimelineEvent(self._hangup_at, "hangup", f"{who}: {detail}"))
        log.info("call %s: %s hung up (%s)", self.call_sid, who, detail)

    def _teardown(self, ws: websocket.WebSocket) -> None:
        self._closing.set()
        sock = ws.sock
        if sock is not None:
            # shutdown(RDWR) unblocks rx's recv; close() alone would not. Not ws.abort():
            # it does nothing once send_close() has marked the socket disconnected.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._rx is not None:
            self._rx.join(timeout=2.0)
        ws.shutdown()
        with self._lock:
            self._phone.run_until(self._now())  # what reached Twilio before the end plays
        self._finish()

    def _finish(self) -> None:
        self._ended_at = self._now()
        with self._lock:
            phone = self._phone
            p = phone.playout
            self._result = CallResult(
                call_sid=self.call_sid,
                stream_sid=self.stream_sid,
                stream_url=self._stream_url,
                ws_url=self._ws_url,
                custom_parameters=dict(self._params),
                connected=self._ws is not None and self._error is None,
                error=self._error,
                media_t0=phone.media_t0,
                ended_at=self._ended_at,
                frames_sent=self._frames_sent,
                sent_ulaw=bytes(phone.sent[: self._frames_sent * FRAME_BYTES]),
                timeline=tuple(sorted(self._timeline + phone.timeline, key=lambda e: e.t)),
                media_arrivals=tuple(phone.arrivals),
                heard=p.heard(),
                server_marks=tuple(p.marks),
                echoes=tuple(p.echoes),
                clears=tuple(p.clears),
                speech=self.script.segments,
                hangup_by=self._hangup_by,
                hangup_at=self._hangup_at,
                tx_late_max_ms=round(self._late_max * 1000, 1),
                tx_late_frames=self._late_frames,
                clear_sent=tuple(c.sent_at for c in phone.clear_timings),
                network=phone.network,
            )
        self._done.set()
        if self.opts.on_end is not None:
            try:
                self.opts.on_end(self)
            except Exception:  # the listener's bug must not hide this call's result
                log.exception("call %s: on_end listener failed", self.call_sid)

    # -- helpers ----------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() - self._t0

    def _event(self, event: str, detail: str = "") -> None:
        with self._lock:
            self._timeline.append(TimelineEvent(self._now(), event, detail))
