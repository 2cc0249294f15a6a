"""One client WebSocket of a stand-in: wsproto state, its session, the injected fault.

Layer: stand-ins.

The connection's reader thread does the handshake (asking the service for a session or
a rejection), reads frames and feeds them to the session; the server's pacer thread
calls `on_timer` when the session's next deadline is due. Both produce frames under the
connection's one lock (`_lock`: wsproto state, session, outgoing queue) and write them
with `_flush`, which takes `_send_lock` first and pops the queue second: frames leave in
the order the session produced them and no socket write happens under `_lock` (the
localbackend invariant). Faults (`common.Fault`) are applied to the outgoing frames here,
so every WebSocket stand-in gets the same failure modes, counted as "fault_*" stats.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from mediasrv.clock import Clock

from .common import GARBAGE, Fault, Stats, Step

log = logging.getLogger(__name__)

RECV_BYTES = 65536
Headers = list[tuple[str, str]]  # lower-cased names, decoded values


class WsSession(Protocol):
    """A stand-in's per-connection state machine; pure, time comes in as `now`."""

    def on_text(self, text: str, now: float) -> Step: ...

    def on_binary(self, data: bytes, now: float) -> Step: ...

    def tick(self, now: float) -> Step: ...

    def next_deadline(self) -> float | None: ...

    def ended(self) -> None: ...


@dataclass(frozen=True)
class Rejected:
    """Answer the upgrade with an HTTP error (e.g. 401 with the vendor's JSON body)."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Opened:
    """Accept the upgrade; `step` is what the session says first (often nothing)."""

    session: WsSession
    step: Step = Step()


class WsService(Protocol):
    """Decides each upgrade request: a new session or a rejection."""

    def open(self, target: str, headers: Headers, now: float) -> Opened | Rejected: ...


class WsConnection:
    """One client socket: wsproto state, the session, and the injected fault."""

    def __init__(self, sock: socket.socket, name: str, service: WsService, stats: Stats,
                 fault: Fault | None, clock: Clock,
                 arm: Callable[[WsConnection, float | None], None],
                 gone: Callable[[WsConnection], None]) -> None:
        self.name = name
        self._sock = sock
        self._service = service
        self._stats = stats
        self._fault = fault
        self._clock = clock
        self._arm = arm
        self._gone = gone
        self._ws = WSConnection(ConnectionType.SERVER)
        self._lock = threading.Lock()  # the one lock: _ws, _session, _pending, _parts, _sent
        self._send_lock = threading.Lock()  # serialises socket writes in queue order
        self._pending: list[bytes] = []
        self._parts: list[str | bytes] = []  # fragments of an unfinished message
        self._session: WsSession | None = None
        self._sent = 0  # session frames sent: what the fault's `after` counts
        self._dead = threading.Event()  # set once the socket is being torn down
        # Daemon so a server that is never stopped cannot hang exit; WsServer.stop() joins it.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def on_timer(self, now: float) -> float | None:
        """Send what the session has due by `now` (pacer thread); return the next deadline."""
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
            log.exception("%s: unexpected error", self.name)
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
                    log.info("%s: websocket protocol error: %s", self.name, exc)
                    if exc.event_hint is not None:  # e.g. a 400 answer to a bad upgrade
                        self._pending.append(self._ws.send(exc.event_hint))
                    events = []
                    self._dead.set()
            abrupt = any([self._on_event(ev) for ev in events])
            self._flush(abrupt)
            if not data or self._ws.state is ConnectionState.CLOSED:
                return

    def _on_event(self, ev: Event) -> bool:
        """Handle one wsproto event; return True if the socket must be dropped."""
        if isinstance(ev, Request):
            return self._on_request(ev)
        if isinstance(ev, TextMessage | BytesMessage):
            return self._on_message(ev)
        with self._lock:
            if isinstance(ev, Ping):
                self._pending.append(self._ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._pending.append(self._ws.send(ev.response()))
        return False

    def _on_request(self, ev: Request) -> bool:
        fault = self._fault
        if fault is not None and fault.kind == "no_handshake":
            log.warning("%s: fault injection: upgrade request left unanswered", self.name)
            self._stats.add("fault_handshakes_ignored")
            return False
        if fault is not None and fault.kind == "refuse":
            log.warning("%s: fault injection: upgrade refused with %d", self.name, fault.status)
            self._stats.add("fault_handshakes_refused")
            self._reject(Rejected(fault.status, b'{"error":"fault injection: refused"}'))
            return False
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                   for k, v in ev.extra_headers]
        decision = self._service.open(ev.target, headers, self._clock.now())
        if isinstance(decision, Rejected):
            log.info("%s: upgrade to %s rejected with %d", self.name, ev.target.split("?")[0],
                     decision.status)
            self._reject(decision)
            return False
        with self._lock:
            self._pending.append(self._ws.send(AcceptConnection()))
            self._session = decision.session
            abrupt = self._deliver(decision.step)
            deadline = self._session.next_deadline()
        self._arm(self, deadline)
        return abrupt

    def _reject(self, rejected: Rejected) -> None:
        headers = [(b"content-length", str(len(rejected.body)).encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in rejected.headers]
        with self._lock:
            has_body = bool(rejected.body)
            self._pending.append(self._ws.send(RejectConnection(
                status_code=rejected.status, headers=headers, has_body=has_body)))
            if has_body:
                self._pending.append(self._ws.send(RejectData(rejected.body)))
            self._dead.set()

    def _on_message(self, ev: TextMessage | BytesMessage) -> bool:
        now = self._clock.now()
        with self._lock:
            self._parts.append(ev.data if isinstance(ev.data, str) else bytes(ev.data))
            if not ev.message_finished or self._session is None:
                return False
            parts, self._parts = self._parts, []
            if isinstance(ev, BytesMessage):
                step = self._session.on_binary(b"".join(p for p in parts if isinstance(p, bytes)),
                                               now)
            else:
                step = self._session.on_text("".join(p for p in parts if isinstance(p, str)),
                                             now)
            abrupt = self._deliver(step)
            deadline = self._session.next_deadline()
        self._arm(self, deadline)
        return abrupt

    # -- shared by both threads ---------------------------------------------------------

    def _deliver(self, step: Step) -> bool:
        """Queue a step's frames through the fault (lock held); True = drop the socket."""
        assert self._lock.locked()
        if self._ws.state is not ConnectionState.OPEN:
            return False
        fault = self._fault
        for frame in step.frames:
            if fault is not None and self._sent >= fault.after:
                if fault.kind == "close_mid_stream":
                    log.warning("%s: fault injection: dropping TCP mid-stream", self.name)
                    self._stats.add("fault_tcp_dropped")
                    return True
                if fault.kind == "stall":
                    self._stats.add("fault_frames_withheld")
                    continue  # stalled: never sent, and nothing after it either
                if fault.kind == "garbage" and self._sent == fault.after:
                    log.warning("%s: fault injection: sending garbage frames", self.name)
                    self._stats.add("fault_garbage_sent")
                    self._pending.append(self._ws.send(TextMessage(data=GARBAGE)))
                    self._pending.append(self._ws.send(BytesMessage(data=b"\xff\x00garbage")))
            message = TextMessage(data=frame) if isinstance(frame, str) \
                else BytesMessage(data=frame)
            self._pending.append(self._ws.send(message))
            self._sent += 1
        stalled = fault is not None and fault.kind == "stall" and self._sent >= fault.after
        if step.close is None or stalled:
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
                        log.warning("%s: send failed, dropping the connection: %s",
                                    self.name, exc)
                    abrupt = True
        if abrupt or self._dead.is_set():
            self._drop()

    def _drop(self) -> None:
        self._dead.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv()
        except OSError:
            pass

    def _finish(self) -> None:
        self._dead.set()
        self._arm(self, None)
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.ended()
        self._sock.close()
        self._gone(self)
