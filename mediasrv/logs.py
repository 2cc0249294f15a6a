"""Logging set-up: text or JSON lines, and a per-call adapter stamping the call sid."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefix every line with the call sid; JSON output carries it as a field."""

    def process(self, msg: str, kwargs: MutableMapping[str, Any]) -> tuple[str, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {})["call_sid"] = extra.get("call_sid", "-")
        return f"[{extra.get('call_sid', '-')}] {msg}", kwargs


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "call_sid": getattr(record, "call_sid", None),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(level: str, fmt: str) -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
        )
    for old in [h for h in root.handlers if getattr(h, "_mediasrv", False)]:
        root.removeHandler(old)
    handler._mediasrv = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
