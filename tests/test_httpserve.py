"""The loopback HTTP server the stand-ins and the webhook tests share, on real sockets."""

from __future__ import annotations

import http.client
import threading

import pytest

from mediasrv.localservices.httpserve import HttpRequest, HttpResponse, LoopbackHttpServer

WAIT_S = 3.0


def connect(server: LoopbackHttpServer) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=WAIT_S)


def test_the_handler_gets_method_path_query_lowercased_headers_and_body() -> None:
    seen: list[HttpRequest] = []

    def handle(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(201, b'{"ok": true}', headers=(("X-Extra", "1"),))

    with LoopbackHttpServer("test-http", handle).start() as server:
        conn = connect(server)
        conn.request("POST", "/a/b?x=1", body=b"k=v", headers={"X-Thing": "yes"})
        response = conn.getresponse()
        assert (response.status, response.read(), response.getheader("X-Extra")) == \
            (201, b'{"ok": true}', "1")
        conn.close()
    assert (seen[0].method, seen[0].path, seen[0].query, seen[0].body) == \
        ("POST", "/a/b", "x=1", b"k=v")
    assert seen[0].headers["x-thing"] == "yes"


def test_a_post_without_content_length_is_refused_with_411() -> None:
    with LoopbackHttpServer("test-http", lambda r: HttpResponse(200)).start() as server:
        conn = connect(server)
        conn.putrequest("POST", "/")
        conn.endheaders()
        assert conn.getresponse().status == 411
        conn.close()


def test_a_handler_returning_none_drops_the_connection_unanswered() -> None:
    with LoopbackHttpServer("test-http", lambda r: None).start() as server:
        conn = connect(server)
        conn.request("GET", "/")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        conn.close()


def test_stop_wakes_a_handler_waiting_on_stopping_and_joins_its_thread() -> None:
    entered = threading.Event()
    server: LoopbackHttpServer | None = None

    def handle(request: HttpRequest) -> HttpResponse:
        entered.set()
        assert server is not None
        server.stopping.wait(60)  # a stalled fault: only stop() ends it
        return HttpResponse(503)

    server = LoopbackHttpServer("test-http", handle).start()
    conn = connect(server)
    conn.request("GET", "/")
    assert entered.wait(WAIT_S)
    server.stop(timeout=WAIT_S)
    conn.close()
    # the autouse fixture fails this test if a mediasrv-test-http-* thread is left
