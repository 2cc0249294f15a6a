"""What a call reports, and to whom: log lines stamped with its sid, and an Observer that counts.

Layer: call. The web layer's Metrics implements `Observer`; tests and scripts use
`NullObserver`.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Protocol


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefix every line with the call sid; JSON output carries it as a field.

    One adapter per call, handed to everything that logs for the call (turn policy,
    realtime client); `bind` stamps the sid on all of them once `start` brings it.
    """

    def bind(self, call_sid: str) -> None:
        self.extra = {"call_sid": call_sid}

    def process(self, msg: str, kwargs: MutableMapping[str, Any]) -> tuple[str, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {})["call_sid"] = extra.get("call_sid", "-")
        return f"[{extra.get('call_sid', '-')}] {msg}", kwargs



class Observer(Protocol):
    def call_started(self) -> None: ...
    def call_ended(self, reason: str) -> None: ...
    def barge_in(self, latency_ms: float) -> None: ...
    def drain(self, outcome: str) -> None: ...
    def backend_error(self, code: str) -> None: ...
    def reconnect(self) -> None: ...
    def bad_input(self) -> None: ...
    def response_latency(self, ms: float) -> None: ...


class NullObserver:
    """Counts nothing (tests, scripts)."""

    def call_started(self) -> None:
        pass

    def call_ended(self, reason: str) -> None:
        pass

    def barge_in(self, latency_ms: float) -> None:
        pass

    def drain(self, outcome: str) -> None:
        pass

    def backend_error(self, code: str) -> None:
        pass

    def reconnect(self) -> None:
        pass

    def bad_input(self) -> None:
        pass

    def response_latency(self, ms: float) -> None:
        pass


NULL_OBSERVER: Observer = NullObserver()
