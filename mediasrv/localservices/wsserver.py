"""A threaded WebSocket server shell for the stand-ins: acceptor, connections, one pacer.

The same shape as `mediasrv.localbackend` (whose `Pacer` it reuses): wsproto for the
protocol, one reader thread per client blocked in recv(), one pacer thread for the whole
server that calls `on_timer` when a session's next deadline is due. What a service
decides lives in its pure session (`WsSession`); this module only moves bytes and
injects faults (`common.Fault`), so every stand-in gets the same failure modes.

Threads (named "mediasrv-<service>-..."): accept, pacer, conn-N. Each connection has one
lock (`_lock`: wsproto state, session, outgoing queue) and a send lock taken first by
`_flush`, so frames leave in the order the session produced them and no socket write
happens under `_lock` (the localbackend invariant).
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

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

from mediasrv.clock import Clock, RealClock
from mediasrv.localbackend.server import Pacer

from .common import GARBAGE, Fault, Stats, Step

log = logging.getLogger(__name__)

RECV_BYTES = 65536
LISTEN_BACKLOG = 256  # room for 100+ benchmark calls connecting at once
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


class WsServer:
    """Listens, accepts, and runs one `WsConnection` per client of `service`."""

    def __init__(self, name: str, service: WsService, stats: Stats, fault: Fault | None = None,
                 clock: Clock | None = None, socket_timeout_s: float = 2.0) -> None:
        self.name = name
        self._service = service
        self._stats = stats  # the shell counts the faults it injects ("fault_...")
        self._fault = fault
        self._clock = clock or RealClock()
        self._socket_timeout_s = socket_timeout_s  # a client that stops reading is dropped
        self._pacer = Pacer(self._clock)
        self._pacer.thread.name = f"mediasrv-{name}-pacer"
        self._lock = threading.Lock()  # guards _conns and _stopping
        self._conns: set[WsConnection] = set()
        self._numbers = itertools.count(1)
        self._stopping = False
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()  # wakes the acceptor on stop()
        # Daemon so a server that is never stopped cannot hang interpreter exit; stop() joins.
        self._acceptor = threading.Thread(target=self._accept_loop,
                                          name=f"mediasrv-{name}-accept", daemon=True)
        self.host = ""
        self.port = 0

    def start(self, host: str = "127.0.0.1", port: int = 0) -> WsServer:
        """Listen on host:port (0 = any free port), start the threads, return self."""
        self._listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self.host, self.port = host, self._listener.getsockname()[1]
        self._pacer.thread.start()
        self._acceptor.start()
        log.info("local %s stand-in listening on ws://%s:%d (fault=%s)", self.name, self.host,
                 self.port, self._fault)
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Close every connection and the listener; join all threads within `timeout`."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            conns = list(self._conns)
        self._wake_w.send(b"x")
        for conn in conns:
            conn.shutdown()
        self._pacer.stop()
        deadline = self._clock.now() + timeout
        threads = [self._acceptor, self._pacer.thread, *(conn.thread for conn in conns)]
        for thread in threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - self._clock.now()))
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            log.warning("local %s stand-in stop: threads still running: %s", self.name, alive)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept_one(self._listener)

    def _accept_one(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # the client went away between select() and accept()
        sock.settimeout(self._socket_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames, no batching
        with self._lock:
            if self._stopping:
                sock.close()
                return
            conn = WsConnection(sock, f"mediasrv-{self.name}-conn-{next(self._numbers)}",
                                self._service, self._stats, self._fault, self._clock,
                                self._pacer.arm, self._gone)
            self._conns.add(conn)
        conn.thread.start()

    def _gone(self, conn: WsConnection) -> None:
        with self._lock:
            self._conns.discard(conn)


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


class WsStandIn:
    """Base of the WebSocket stand-ins: one `WsServer`, its stats, start/stop."""

    def __init__(self, server: WsServer, stats: Stats) -> None:
        self._server = server
        self._stats = stats

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on host:port (0 = any free port) and return self."""
        self._server.start(host, port)
        return self

    def stop(self) -> None:
        """Close every connection; join the threads within 1 s."""
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"ws://{self._server.host}:{self._server.port}"

    def stats(self) -> dict[str, Any]:
        """Return a snapshot of the counters ({"counts": ..., "records": ...})."""
        return self._stats.snapshot()

    def wait_for(self, counter: str, at_least: int = 1, timeout: float = 3.0) -> bool:
        """Block until a counter reaches `at_least` (a barrier for tests); False on timeout."""
        return self._stats.wait_for(counter, at_least, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
