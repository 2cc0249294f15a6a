"""Value objects and counters shared by the three cascade stand-ins. Pure, except `Stats`.

Layer: stand-ins.

A stand-in session never does I/O: every input returns a `Step` (frames to send, in
order, and maybe a close), and the thread shell sends it. `Fault` describes what the
shell injects for tests of the bridge's failure handling; the sessions never see it.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from mediasrv.errors import ConfigError

JsonObj = dict[str, Any]

FaultKind = Literal["refuse", "no_handshake", "close_mid_stream", "stall", "garbage",
                    "error_mid_stream"]
FAULT_KINDS: frozenset[str] = frozenset(
    {"refuse", "no_handshake", "close_mid_stream", "stall", "garbage", "error_mid_stream"}
)
RECORD_LIMIT = 1000  # records kept per name: a stand-in run for hours must not grow
GARBAGE = "\x00{not json: local stand-in fault injection"  # no peer can parse this


@dataclass(frozen=True)
class Fault:
    """A failure the shell injects (`None` in a service's options = behave).

      refuse            the handshake / request is answered with HTTP `status`
      no_handshake      TCP is accepted, the request is never answered
      close_mid_stream  after `after` server messages the TCP connection is dropped
                        without a close frame (a network failure)
      stall             after `after` server messages nothing more is sent; the
                        connection stays open and input is still read
      garbage           after `after` server messages one unparseable text frame (and,
                        on WebSockets, one binary frame) goes out; the stream then goes on
      error_mid_stream  chat only: after `after` chunks an SSE `error` object, then end
    """

    kind: FaultKind
    after: int = 3
    status: int = 503

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"fault must be one of {sorted(FAULT_KINDS)}, got {self.kind!r}")
        if self.after < 0:
            raise ConfigError(f"fault.after must be >= 0, got {self.after}")
        if not 400 <= self.status <= 599:
            raise ConfigError(f"fault.status must be an HTTP error status, got {self.status}")


@dataclass(frozen=True)
class CloseAction:
    """End the connection: a close frame `code`/`reason`, or drop TCP if `abrupt`."""

    code: int
    reason: str
    abrupt: bool = False


Frame = str | bytes  # a text frame (already-serialised JSON) or a binary frame


@dataclass(frozen=True)
class Step:
    """What to send, in order, and whether to close afterwards."""

    frames: tuple[Frame, ...] = ()
    close: CloseAction | None = None


class Outbox:
    """Collects a session's frames until the shell takes them as one `Step`."""

    def __init__(self) -> None:
        self._frames: list[Frame] = []
        self._close: CloseAction | None = None

    def send(self, message: JsonObj) -> None:
        self._frames.append(json.dumps(message, separators=(",", ":")))

    def close(self, code: int, reason: str) -> None:
        if self._close is None:  # the first reason to close wins
            self._close = CloseAction(code, truncate_reason(reason))

    @property
    def closing(self) -> bool:
        return self._close is not None

    def take(self) -> Step:
        step = Step(tuple(self._frames), self._close)
        self._frames = []
        return step


def truncate_reason(reason: str) -> str:
    """Cut a close reason to the 123 UTF-8 bytes a close frame can carry (RFC 6455 5.5)."""
    data = reason.encode("utf-8")[:123]
    return data.decode("utf-8", errors="ignore")


def request_id() -> str:
    """Return a fresh UUID string, the id shape Deepgram uses."""
    return str(uuid.uuid4())


def short_id(prefix: str) -> str:
    """Return an OpenAI-shaped id (`chatcmpl-...`, `call_...`)."""
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass
class Stats:
    """Counters and small records shared by all sessions of one stand-in; thread-safe."""

    counts: Counter[str] = field(default_factory=Counter)
    records: dict[str, list[Any]] = field(default_factory=dict)
    # Guards both fields; held only for an increment or an append. Waited on by tests
    # (`wait_for`) as a barrier: "the server has done X" without polling.
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n
            self._lock.notify_all()

    def wait_for(self, name: str, at_least: int = 1, timeout: float = 3.0) -> bool:
        """Block until counter `name` reaches `at_least` (True) or `timeout` passes (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.counts[name] >= at_least, timeout)

    def record(self, name: str, value: Any) -> None:
        """Append `value` to the record list `name` (what tests inspect afterwards)."""
        with self._lock:
            items = self.records.setdefault(name, [])
            items.append(value)
            if len(items) > RECORD_LIMIT:
                del items[: len(items) - RECORD_LIMIT]

    def snapshot(self) -> dict[str, Any]:
        """Return a copy: {"counts": {...}, "records": {...}}."""
        with self._lock:
            return {"counts": dict(self.counts),
                    "records": {name: list(items) for name, items in self.records.items()}}
