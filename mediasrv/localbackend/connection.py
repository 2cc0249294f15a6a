"""One client WebSocket of the local backend: the thread shell around RealtimeSession.

Layer: stand-ins.

The connection's reader thread does the handshake, reads frames and feeds them to the
session; the backend's pacer thread calls `on_timer` when the session's next audio delta
is due. Both produce frames under the connection's one lock (`_lock`, which guards the
wsproto state, the session and the outgoing queue) and write them with `_flush`, which
takes `_send_lock` first and pops the queue second: frames leave in exactly the order the
session produced them, and no socket write ever happens under `_lock`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from mediasrv.clock import Clock

from .options import BackendOptions, BackendStats
from .prompts import PromptBank
from .session import CloseAction, RealtimeSession, Step
from .wire import beta_disabled_event, error_event

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
RECV_BYTES = 65536


@dataclass(frozen=True)
class Handshake:
    """What to answer an upgrade request: 101 or an HTTP error, and in which mode."""

    status: int
    model: str = ""
    beta: bool = False


def decide_handshake(target: str, headers: list[tuple[bytes, bytes]], model: str) -> Handshake:
    """Decide how to answer an upgrade request. Any or no Authorization is accepted."""
    url = urlsplit(target)
    if url.path != REALTIME_PATH:
        return Handshake(404)
    chosen = parse_qs(url.query).get("model", [model])[0]
    beta = any(name.lower() == b"openai-beta" and b"realtime" in value.lower()
               for name, value in headers)
    return Handshake(101, chosen, beta)


@dataclass(frozen=True)
class Context:
    """What every connection of one backend shares."""

    options: BackendOptions
    bank: PromptBank
    stats: BackendStats
    clock: Clock
    # Ask the pacer for an on_timer call at a deadline; None cancels any pending call.
    arm: Callable[[Connection, float | None], None]
    gone: Callable[[Connection], None]  # tell the backend this connection ended


class Connection:
    """A client socket, its wsproto state and its Realtime session."""

    def __init__(self, sock: socket.socket, number: int, ctx: Context) -> None:
        self.name = f"mediasrv-backend-conn-{number}"
        self._sock = sock
        self._ctx = ctx
        self._ws = WSConnection(ConnectionType.SERVER)
        self._lock = threading.Lock()  # the one lock: _ws, _session, _pending, _text
        self._send_lock = threading.Lock()  # serialises socket writes in queue order
        self._pending: list[bytes] = []
        self._text: list[str] = []  # fragments of a text message not yet finished
        self._session: RealtimeSession | None = None
        self._dead = threading.Event()  # set once the socket is being torn down
        # Daemon so a backend that is never stopped cannot hang interpreter exit;
        # LocalBackend.stop() still joins it.
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def on_timer(self, now: float) -> float | None:
        """Send the deltas due by `now` (pacer thread); return the next deadline."""
        with self._lock:
            if self._session is None or self._dead.is_set():
                return None
            abrupt = self._deliver(self._session.tick(now))
            deadline = self._session.next_deadline()
        self._flush(abrupt)
        return deadline

    def shutdown(self) -> None:
        """Say goodbye (1001) if the socket is writable right now, then tear it down."""
        with self._lock:
            if self._ws.state is ConnectionState.OPEN:
                self._pending.append(self._ws.send(CloseConnection(1001, "server shutting down")))
        if self._send_lock.acquire(timeout=0.05):  # never wait on a stalled writer
            try:
                with self._lock:
                    data = b"".join(self._pending)
                    self._pending.clear()
                self._sock.send(data, socket.MSG_DONTWAIT)
            except OSError:
                pass
            finally:
                self._send_lock.release()
        self._drop()

    # -- reader thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._read_loop()
        except Exception:  # safety net: a bug here must not kill the process silently
            log.exception("unexpected error")
        finally:
            self._finish()

    def _read_loop(self) -> None:
        while not self._dead.is_set():
            try:
                data = self._sock.recv(RECV_BYTES)
            except TimeoutError:
                if self._ws.state in (ConnectionState.LOCAL_CLOSING, ConnectionState.CLOSED):
                    return  # we said goodbye and the client never answered
                continue  # an idle client is fine; the timeout only bounds writes
            except OSError:
                return
            with self._lock:
                try:
                    self._ws.receive_data(data or None)
                    events = list(self._ws.events())
                except RemoteProtocolError as exc:
                    log.info("websocket protocol error: %s", exc)
                    if exc.event_hint is not None:  # e.g. a 400 answer to a bad upgrade
                        self._pending.append(self._ws.send(exc.event_hint))
                    events = []
                    self._dead.set()
            for ev in events:
                self._on_ws_event(ev)
            self._flush(False)
            if not data or self._ws.state is ConnectionState.CLOSED:
                return

    def _on_ws_event(self, ev: Event) -> None:
        if isinstance(ev, Request):
            self._on_request(ev)
        elif isinstance(ev, TextMessage):
            self._on_text(ev)
        elif isinstance(ev, BytesMessage):
            with self._lock:
                self._ctx.stats.error_sent("invalid_value")
                self._deliver(Step((error_event(
                    "invalid_value", "Binary frames are not supported; send JSON text frames."),)))
        elif isinstance(ev, Ping):
            with self._lock:
                self._pending.append(self._ws.send(ev.response()))
        elif isinstance(ev, CloseConnection):
            with self._lock:
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._pending.append(self._ws.send(ev.response()))

    def _on_request(self, ev: Request) -> None:
        options = self._ctx.options
        if options.fault == "no_handshake":
            log.warning("fault injection: upgrade request left unanswered")
            return
        decision = decide_handshake(ev.target, list(ev.extra_headers), options.model)
        if options.handshake_delay_s and self._dead.wait(options.handshake_delay_s):
            return  # torn down while it waited
        if decision.status != 101:
            log.info("rejected upgrade to %s (%d)", ev.target, decision.status)
            with self._lock:
                reject = RejectConnection(status_code=decision.status,
                                          headers=[(b"content-length", b"0")])
                self._pending.append(self._ws.send(reject))
                self._dead.set()
            return
        with self._lock:
            self._pending.append(self._ws.send(AcceptConnection()))
            if decision.beta:
                log.info("OpenAI-Beta header: beta_api_shape_disabled, closing 4000")
                self._ctx.stats.error_sent("beta_api_shape_disabled")
                self._deliver(Step((beta_disabled_event(),),
                                   CloseAction(4000, "beta_api_shape_disabled")))
                return
            self._session = RealtimeSession(options, self._ctx.bank, self._ctx.stats,
                                            decision.model)
            self._ctx.stats.session_opened()
            log.info("session %s opened (model %s)", self._session.id, decision.model)
            self._deliver(self._session.open())

    def _on_text(self, ev: TextMessage) -> None:
        with self._lock:
            self._text.append(ev.data)
            if not ev.message_finished or self._session is None:
                return
            text = "".join(self._text)
            self._text.clear()
            abrupt = self._deliver(self._session.handle(text, self._ctx.clock.now()))
            deadline = self._session.next_deadline()
        self._flush(abrupt)
        self._ctx.arm(self, deadline)

    # -- shared by both threads ---------------------------------------------------------

    def _deliver(self, step: Step) -> bool:
        """Queue a step's frames (lock held); return True if the socket must be dropped."""
        assert self._lock.locked()
        if self._ws.state is not ConnectionState.OPEN:
            log.debug("%s%d events dropped: websocket not open", self._who(), len(step.events))
            return False
        for ev in step.events:
            self._pending.append(self._ws.send(TextMessage(json.dumps(ev))))
        if step.close is None:
            return False
        if step.close.abrupt:
            return True
        self._pending.append(self._ws.send(CloseConnection(step.close.code, step.close.reason)))
        return False

    def _flush(self, abrupt: bool) -> None:
        with self._send_lock:
            with self._lock:
                data = b"".join(self._pending)
                self._pending.clear()
            if data:
                try:
                    self._sock.sendall(data)
                except OSError as exc:  # includes a write timeout: the client stopped reading
                    if not self._dead.is_set():
                        log.warning("%ssend failed, dropping the connection: %s", self._who(), exc)
                    abrupt = True
        if abrupt or self._dead.is_set():
            self._drop()

    def _who(self) -> str:
        # The log format names the thread: name the connection only from another thread.
        return "" if threading.current_thread() is self.thread else f"{self.name}: "

    def _drop(self) -> None:
        self._dead.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv()
        except OSError:
            pass

    def _finish(self) -> None:
        self._dead.set()
        self._ctx.arm(self, None)
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            self._ctx.stats.session_closed()
            log.info("session %s closed", session.id)
        self._sock.close()
        self._ctx.gone(self)
