"""LocalBackend: the listening socket, the acceptor thread and the shared pacer thread.

Layer: stand-ins.

Threads (all named "mediasrv-backend-..."):
  accept     waits on the listening socket and a wake-up socket; starts connections
  pacer      one for the whole backend: sleeps until the earliest audio-delta deadline of
             any session, then calls that connection's `on_timer`.
  conn-N     one per client, blocked in recv(); costs nothing while the client is quiet

Why one pacer (measured on a 2-core box, Python 3.11): 100 streams waking 50 times a
second cost 1.5% of a core through one heap-driven thread, 11% as 100 sleeping threads.
End to end, one streaming session at speed 5 costs the backend 100-200 us of CPU per
audio delta (JSON + base64 + framing + send), i.e. 0.5-1% of a core per session.
Trade-off: a client that stops reading blocks the pacer in sendall() for at most
`socket_timeout_s`, after which that client is dropped and the others resume.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
from typing import Any, Protocol

from mediasrv.clock import Clock, RealClock

from .connection import Connection, Context
from .options import BackendOptions, BackendStats, SessionRecord
from .prompts import PromptBank

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 256  # room for 100+ sessions connecting at once


class Timed(Protocol):
    """What the pacer wakes: anything with a name and an `on_timer(now) -> next deadline`."""

    name: str

    def on_timer(self, now: float) -> float | None: ...


class Pacer:
    """One thread that wakes each connection when its next deadline is due.

    Generic over `Timed` so the local stand-ins of the cascade services
    (`mediasrv.localservices`) share it.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Guards _heap, _armed and _stopping; waited on for new, earlier deadlines.
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Timed]] = []
        self._armed: dict[Timed, float] = {}  # the one live heap entry per connection
        self._seq = itertools.count()  # tie-breaker: connections are not orderable
        self._stopping = False
        # Daemon for the same reason as connection threads; stop() joins it.
        self.thread = threading.Thread(target=self._run, name="mediasrv-backend-pacer",
                                       daemon=True)

    def arm(self, conn: Timed, deadline: float | None) -> None:
        """Call `conn.on_timer` at `deadline` (or earlier if already armed); None disarms."""
        with self._cond:
            if deadline is None:
                self._armed.pop(conn, None)
                return
            current = self._armed.get(conn)
            if current is not None and current <= deadline:
                return
            self._armed[conn] = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), conn))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _next_due(self) -> Timed | None:
        """Block until a connection is due; return it, or None when stopping."""
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, conn = self._heap[0]
                if self._armed.get(conn) != deadline:
                    heapq.heappop(self._heap)  # superseded by an earlier arm or a disarm
                    continue
                delay = deadline - self._clock.now()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                del self._armed[conn]
                return conn
            return None

    def _run(self) -> None:
        while (conn := self._next_due()) is not None:
            try:
                deadline = conn.on_timer(self._clock.now())
            except Exception:  # safety net: one broken session must not stop all pacing
                log.exception("pacer: %s failed in on_timer", conn.name)
                continue
            self.arm(conn, deadline)


class LocalBackend:
    """A local, offline Realtime GA server for the bridge and its tests."""

    def __init__(self, options: BackendOptions | None = None, clock: Clock | None = None) -> None:
        self.options = options or BackendOptions()
        self._clock = clock or RealClock()
        self._stats = BackendStats()
        self._pacer = Pacer(self._clock)
        self._ctx = Context(self.options, PromptBank.load(self.options.prompts_dir),
                            self._stats, self._clock, self._pacer.arm, self._gone)
        self._lock = threading.Lock()  # guards _conns, _numbers and _stopping
        self._conns: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._stopping = False
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()  # wakes the acceptor on stop()
        self._acceptor = threading.Thread(target=self._accept_loop,
                                          name="mediasrv-backend-accept", daemon=True)
        self._host = ""
        self._port = 0

    def start(self, host: str = "127.0.0.1", port: int = 0) -> LocalBackend:
        """Listen on host:port (0 = any free port), start the threads, return self."""
        self._listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self._host, self._port = host, self._listener.getsockname()[1]
        self._pacer.thread.start()
        self._acceptor.start()
        log.info("local realtime backend listening on %s (fault=%s)", self.url,
                 self.options.fault)
        return self

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self._port}/v1/realtime?model={self.options.model}"

    def stats(self) -> dict[str, Any]:
        """Return a snapshot of the backend's counters."""
        return self._stats.snapshot()

    def session_record(self, item_id: str) -> SessionRecord | None:
        """Return what the session that produced assistant item `item_id` received
        (appends, VAD starts, truncations, with this backend's clock); needs
        `record_sessions`."""
        return self._stats.session_record(item_id)

    def stop(self, timeout: float = 1.0) -> None:
        """Close every connection and the listener; join all threads within `timeout`."""
        with self._lock:
            if self._stopping:
                return  # already stopped: stop() is idempotent
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
            log.warning("local backend stop: threads still running: %s", alive)
        log.info("local realtime backend stopped: %s", self._stats.snapshot())

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
        sock.settimeout(self.options.socket_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # deltas are small frames
        with self._lock:
            if self._stopping:
                sock.close()
                return
            conn = Connection(sock, next(self._numbers), self._ctx)
            self._conns.add(conn)
        conn.start()

    def _gone(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
