"""Plain websocket-client helpers shared by the tests of the cascade stand-ins."""

from __future__ import annotations

import json
from typing import Any

import websocket

WAIT_S = 3.0  # every socket wait of these tests is bounded by this


class Sockets:
    """The client sockets of one test: opened with a bounded timeout, all closed after."""

    def __init__(self) -> None:
        self._open: list[websocket.WebSocket] = []

    def connect(self, url: str, header: list[str], timeout: float = WAIT_S
                ) -> websocket.WebSocket:
        ws = websocket.create_connection(url, header=header, timeout=timeout)
        self._open.append(ws)
        return ws

    def close_all(self) -> None:
        for ws in self._open:
            ws.close()
            ws.shutdown()  # close() skips the socket once a server close frame was read


def until_close(ws: websocket.WebSocket) -> tuple[list[dict[str, Any]], int | None, str]:
    """Read until the server closes; return the JSON messages and the close code/reason."""
    msgs: list[dict[str, Any]] = []
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return msgs, code, data[2:].decode()
        msgs.append(json.loads(data))
