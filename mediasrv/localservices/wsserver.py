"""The threaded WebSocket server shell of the stand-ins: acceptor, connections, one pacer.

Layer: stand-ins.

The same shape as `mediasrv.localbackend` (whose `Pacer` it reuses): one reader thread
per client (`wsconnection.WsConnection`) blocked in recv(), one pacer thread for the
whole server that wakes a connection when its session's next deadline is due, and an
acceptor. What a service decides lives in its pure session; this shell only moves bytes.

Threads (named "mediasrv-<service>-..."): accept, pacer, conn-N.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
from typing import Any, Self

from mediasrv.clock import Clock, RealClock
from mediasrv.localbackend.server import Pacer

from .common import Fault, Stats
from .wsconnection import Headers, Opened, Rejected, WsConnection, WsService, WsSession

__all__ = ["Headers", "Opened", "Rejected", "WsServer", "WsService", "WsSession", "WsStandIn"]

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 256  # room for 100+ benchmark calls connecting at once


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
