"""The local Twilio REST API stand-in (Calls, Recordings) on loopback HTTP.

    with LocalTwilioRest(TwilioRestOptions(numbers={"+15550001111": Callee("machine_end_beep")}),
                         media=emulator).start() as rest:
        rest.base_url      # http://127.0.0.1:<port>  (what TWILIO_API_BASE_URL holds)
        rest.account_sid, rest.auth_token
        rest.wait_for("callbacks"); rest.stats()["records"]["requests"]

The account (twilio_rest_state.py) decides; this shell moves bytes. Request handlers run
on the HTTP server's threads and only touch the account under `_lock`; what the account
asks for (callbacks, TwiML fetches, stream stops) goes, in order, to one worker thread,
"mediasrv-twiliorest-events", which also runs the call timeline (`next_deadline()` /
`tick()`). Callbacks are form POSTs signed with X-Twilio-Signature exactly as Twilio signs
them (the stand-in's auth token), so the server's signature checks are exercised.

`MediaParty` is the seam to whoever holds the calls' media streams (the emulator:
mediasrv/emulator/party.py): when a call's TwiML is replaced or the call ends, Twilio
ends the running `<Connect><Stream>` with `stop` and closes it (PROTOCOLS-2 6); the
stand-in tells the media party to do that. Faults (`RestFault`) answer 5xx, answer
slowly, stall or drop the connection, for chosen operations; "connection refused" is a
stopped stand-in.

Layer: stand-ins.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlencode

from mediasrv.clock import Clock, RealClock
from mediasrv.errors import ConfigError

from .common import Stats
from .httpserve import HttpRequest, HttpResponse, LoopbackHttpServer
from .twilio_rest_records import Callee, Effect, RunTwiml, StopStream, Webhook
from .twilio_rest_state import TwilioAccount
from .twilio_rest_wire import Params, Route, TwilioError, check_auth, parse_form, route, sign

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_TOKEN = "local-twilio-auth-token"  # not a secret: the stand-in is loopback-only
OPERATIONS = frozenset({"calls.create", "calls.update", "calls.fetch", "recordings.create",
                        "recordings.update"})
MAX_TWIML_FETCH = 64 * 1024


class MediaParty(Protocol):
    """Holds the calls' media streams (mediasrv.emulator.party.EmulatorParty)."""

    def run_twiml(self, call_sid: str, twiml: str) -> None:
        """The call now runs `twiml` (open the stream of a <Connect><Stream>, ...)."""

    def stop_stream(self, call_sid: str, reason: str) -> None:
        """Send `stop` on the call's media stream and close it."""


class NoMedia:
    """No media party: stream stops and TwiML runs are only recorded."""

    def run_twiml(self, call_sid: str, twiml: str) -> None:
        pass

    def stop_stream(self, call_sid: str, reason: str) -> None:
        pass


@dataclass(frozen=True)
class RestFault:
    """A failure injected for `operations` (empty = all), after `after` good requests,
    for `count` requests (None = every one):

      status  answer `status` (5xx) with Twilio's error shape
      slow    answer normally after `delay_s`
      stall   never answer (until the stand-in stops)
      drop    close the connection without an answer
    """

    kind: Literal["status", "slow", "stall", "drop"]
    status: int = 503
    delay_s: float = 2.0
    operations: frozenset[str] = frozenset()
    after: int = 0
    count: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("status", "slow", "stall", "drop"):
            raise ConfigError(f"fault kind {self.kind!r}: status, slow, stall or drop")
        if not self.operations <= OPERATIONS:
            raise ConfigError(f"fault operations must be in {sorted(OPERATIONS)}")
        if not 500 <= self.status <= 599 or self.delay_s < 0 or self.after < 0:
            raise ConfigError("fault: status 5xx, delay_s >= 0, after >= 0")


@dataclass(frozen=True)
class TwilioRestOptions:
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_TOKEN
    numbers: Mapping[str, Callee] = field(default_factory=dict)
    fault: RestFault | None = None
    callback_timeout_s: float = 5.0
    stall_max_s: float = 60.0


class LocalTwilioRest:
    """See the module docstring."""

    def __init__(self, options: TwilioRestOptions | None = None,
                 media: MediaParty | None = None, clock: Clock | None = None) -> None:
        self.options = options or TwilioRestOptions()
        self._media = media or NoMedia()
        self._clock = clock or RealClock()
        wall_offset = time.time() - self._clock.now()  # resource dates are wall time
        self._account = TwilioAccount(self.options.account_sid, self.options.numbers,
                                      wall_offset=wall_offset)
        self._lock = threading.Lock()  # guards _account, _fault and _fault_seen
        self._fault = self.options.fault
        self._fault_seen = 0
        self._stats = Stats()
        self._work: queue.Queue[tuple[Effect, ...] | None] = queue.Queue()
        self._http = LoopbackHttpServer("twiliorest", self._handle, clock=self._clock)
        self._worker: threading.Thread | None = None

    # -- lifecycle and test surface --------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self._http.start(host, port)
        # Daemon so a never-stopped stand-in cannot hang exit; stop() joins it.
        self._worker = threading.Thread(target=self._run_worker, daemon=True,
                                        name="mediasrv-twiliorest-events")
        self._worker.start()
        log.info("local Twilio REST stand-in at %s (account %s)", self.base_url,
                 self.account_sid)
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._http.stop(timeout)
        self._work.put(None)  # None ends the worker's queue
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._http.url

    @property
    def account_sid(self) -> str:
        return self.options.account_sid

    @property
    def auth_token(self) -> str:
        return self.options.auth_token

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def wait_for(self, counter: str, at_least: int = 1, timeout: float = 3.0) -> bool:
        """Block until a counter reaches `at_least` (a test barrier); False on timeout."""
        return self._stats.wait_for(counter, at_least, timeout)

    def set_fault(self, fault: RestFault | None) -> None:
        with self._lock:
            self._fault, self._fault_seen = fault, 0

    def call(self, sid: str) -> dict[str, Any]:
        """Return what the stand-in knows of a call (status, dialled numbers, said text)."""
        with self._lock:
            record = self._account.calls[sid]
            return {"status": record.status, "dialed": list(record.dialed),
                    "said": list(record.said), "answered_by": record.answered_by,
                    "stream_live": record.stream_live, "recordings": list(record.recordings)}

    # -- the world: the media party reports what the caller and the server did -------------

    def inbound_call(self, call_sid: str, from_: str, to: str) -> None:
        with self._lock:
            self._account.inbound_call(call_sid, from_, to, self._clock.now())

    def caller_hung_up(self, call_sid: str) -> None:
        with self._lock:
            effects = self._account.caller_hung_up(call_sid, self._clock.now())
        self._work.put(effects)

    def stream_ended(self, call_sid: str) -> None:
        """The server closed the call's media stream; the call goes on after </Connect>."""
        with self._lock:
            effects = self._account.stream_ended(call_sid, self._clock.now())
        self._work.put(effects)

    # -- requests (HTTP server threads) ----------------------------------------------------

    def _handle(self, request: HttpRequest) -> HttpResponse | None:
        self._stats.add("requests")
        try:
            check_auth(request.headers.get("authorization"), self.account_sid,
                       self.auth_token)
            where = route(request.method, request.path, self.account_sid)
            params = Params(parse_form(request.body, request.headers.get("content-type", "")))
        except TwilioError as exc:
            return self._error(exc, request, "")
        self._stats.record("requests", {"operation": where.operation, "sid": where.call_sid,
                                        "form": params.form})
        self._stats.add(where.operation)
        fault = self._take_fault(where.operation)
        if fault is not None:
            answer = self._apply_fault(fault)
            if answer is not True:
                return answer
        try:
            with self._lock:
                reply, effects = self._dispatch(where, params)
        except TwilioError as exc:
            return self._error(exc, request, where.operation)
        self._work.put(effects)  # also wakes the worker for a new timer
        return HttpResponse(reply.status, json.dumps(reply.body).encode())

    def _dispatch(self, where: Route, p: Params) -> tuple[Any, tuple[Effect, ...]]:
        assert self._lock.locked()
        now, account = self._clock.now(), self._account
        if where.operation == "calls.create":
            return account.create_call(p, now)
        if where.operation == "calls.fetch":
            return account.fetch_call(where.call_sid), ()
        if where.operation == "calls.update":
            return account.update_call(where.call_sid, p, now)
        if where.operation == "recordings.create":
            return account.create_recording(where.call_sid, p, now)
        return account.update_recording(where.call_sid, where.recording_sid, p, now)

    def _error(self, exc: TwilioError, request: HttpRequest, operation: str) -> HttpResponse:
        log.info("twilio stand-in: %d %d %s", exc.status, exc.code, exc.message[:160])
        self._stats.add(f"error_{exc.code}")
        self._stats.record("errors", {"operation": operation, "path": request.path,
                                      "status": exc.status, "code": exc.code,
                                      "message": exc.message})
        headers = (("WWW-Authenticate", 'Basic realm="Twilio API"'),) if exc.status == 401 \
            else ()
        return HttpResponse(exc.status, exc.body(), headers=headers)

    def _take_fault(self, operation: str) -> RestFault | None:
        with self._lock:
            fault = self._fault
            if fault is None or (fault.operations and operation not in fault.operations):
                return None
            self._fault_seen += 1
            n = self._fault_seen - fault.after
            if n <= 0 or (fault.count is not None and n > fault.count):
                return None
            return fault

    def _apply_fault(self, fault: RestFault) -> HttpResponse | None | Literal[True]:
        """Return the faulty answer (None = drop), or True to go on normally."""
        self._stats.add(f"fault_{fault.kind}")
        log.warning("twilio stand-in: fault injection: %s", fault.kind)
        if fault.kind == "status":
            error = TwilioError(fault.status, 20500, "Internal Server Error (local stand-in "
                                                     "fault injection)")
            return HttpResponse(fault.status, error.body())
        if fault.kind == "slow":
            self._http.stopping.wait(fault.delay_s)
            return True
        if fault.kind == "stall":
            self._http.stopping.wait(self.options.stall_max_s)
        return None

    # -- the worker: timeline and effects, in order ----------------------------------------

    def _run_worker(self) -> None:
        while True:
            with self._lock:
                deadline = self._account.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - self._clock.now())
            try:
                item = self._work.get(timeout=wait)
            except queue.Empty:
                item = ()
            if item is None:
                return
            with self._lock:
                due = self._account.tick(self._clock.now())
            for effect in (*item, *due):
                try:
                    self._carry_out(effect)
                except Exception:  # safety net: one bad effect must not end the timeline
                    log.exception("twilio stand-in: effect %r failed", effect)

    def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, StopStream):
            self._stats.record("stops", {"call_sid": effect.call_sid, "reason": effect.reason})
            self._stats.add("stops")
            self._media.stop_stream(effect.call_sid, effect.reason)
        elif isinstance(effect, RunTwiml):
            self._stats.record("twiml", {"call_sid": effect.call_sid, "twiml": effect.twiml})
            self._stats.add("twiml")
            self._media.run_twiml(effect.call_sid, effect.twiml)
        else:
            self._webhook(effect)

    def _webhook(self, hook: Webhook) -> None:
        params = dict(hook.params)
        url = hook.url if hook.method == "POST" else \
            hook.url + ("&" if "?" in hook.url else "?") + urlencode(params)
        signed = sign(self.auth_token, url, params if hook.method == "POST" else {})
        data = urlencode(params).encode() if hook.method == "POST" else None
        request = urllib.request.Request(url, data=data, method=hook.method, headers={
            "X-Twilio-Signature": signed, "User-Agent": "TwilioProxy/1.1",
            "Content-Type": "application/x-www-form-urlencoded"})
        status, body = 0, b""
        try:
            with urllib.request.urlopen(request, timeout=self.options.callback_timeout_s) as r:
                status, body = r.status, r.read(MAX_TWIML_FETCH)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except OSError as exc:
            log.warning("twilio stand-in: %s callback to %s failed: %s", hook.kind, url, exc)
        self._stats.record("callbacks", {"kind": hook.kind, "call_sid": hook.call_sid,
                                         "url": hook.url, "method": hook.method,
                                         "params": params, "status": status})
        self._stats.add(f"callbacks_{hook.kind}")
        if hook.kind == "voice":
            with self._lock:
                more = self._account.voice_answered(hook.call_sid, status,
                                                    body.decode("utf-8", "replace"),
                                                    self._clock.now())
            for effect in more:
                self._carry_out(effect)
        self._stats.add("callbacks")

