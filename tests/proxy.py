"""A tiny reverse proxy for the scale-out tests: what nginx does in deploy/nginx/nginx.conf.

    /voice...            round robin over the instances (query string kept)
    /i/<name>/<rest>     instance <name>, as /<rest>: the prefix is stripped
    anything else        404

It reads one request head, rewrites its path, and from then on copies bytes both ways
until either side closes: a WebSocket upgrade passes through like any request, its
101 and frames included. One request per connection (the emulator's webhook client
sends `Connection: close`; a stream is one upgrade), which is all the tests need.
Threads are named `mediasrv-proxy-*` so the leak detector checks that they end.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
from collections.abc import Mapping

HEAD_LIMIT = 64 * 1024
INSTANCE_ROUTE = re.compile(rb"^/i/([A-Za-z0-9._~-]+)(/.*)$")


class Proxy:
    """Listen on loopback; route by path to `upstreams` (name -> port)."""

    def __init__(self, upstreams: Mapping[str, int]) -> None:
        self.upstreams = dict(upstreams)
        self._next_voice = itertools.cycle(list(self.upstreams))
        self._voice_lock = threading.Lock()  # connection threads share the round robin
        self.voice_routes: list[str] = []  # which instance got each /voice, in order
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._socks: set[socket.socket] = set()
        self._socks_lock = threading.Lock()  # the accept thread adds, close() shuts them
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name="mediasrv-proxy-accept")

    def __enter__(self) -> Proxy:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accept.join(2.0)
        with self._socks_lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(2.0)

    def _accept_loop(self) -> None:
        n = 0
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            n += 1
            self._track(client)
            thread = threading.Thread(target=self._serve, args=(client,),
                                      name=f"mediasrv-proxy-conn-{n}")
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            head, rest = _read_head(client)
            target = self._route(head)
            if target is None:
                client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            port, new_head = target
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5.0)
            upstream.settimeout(None)
            self._track(upstream)
            upstream.sendall(new_head + rest)
            pump = threading.Thread(target=_copy, args=(upstream, client),
                                    name=f"{threading.current_thread().name}-back")
            pump.start()
            _copy(client, upstream)
            pump.join()
        except (OSError, ValueError):
            pass  # a client or upstream that went away: the test sees it on its side
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()

    def _route(self, head: bytes) -> tuple[int, bytes] | None:
        line, _, headers = head.partition(b"\r\n")
        method, path, version = line.split(b" ", 2)
        if path == b"/voice" or path.startswith(b"/voice?"):
            with self._voice_lock:
                name = next(self._next_voice)
                self.voice_routes.append(name)
            return self.upstreams[name], head
        match = INSTANCE_ROUTE.match(path)
        if match is None or match.group(1).decode() not in self.upstreams:
            return None
        port = self.upstreams[match.group(1).decode()]
        return port, b" ".join((method, match.group(2), version)) + b"\r\n" + headers

    def _track(self, sock: socket.socket) -> None:
        with self._socks_lock:
            self._socks.add(sock)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Return the request head (through the blank line) and any bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > HEAD_LIMIT:
            raise ValueError("no complete request head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _copy(src: socket.socket, dst: socket.socket) -> None:
    """Copy until `src` ends, then end `dst`'s write side so the peer sees EOF."""
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
