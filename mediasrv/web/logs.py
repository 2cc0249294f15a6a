"""Logging set-up: text or JSON lines (each call's lines carry its sid: mediasrv.call.observer).

Layer: web.

Every formatted line passes through `_scrub`: the configured secrets (API key, auth
token) are replaced by `***` whatever logged them -- our code, a library, a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import IO

REDACTED = "***"


class _Scrubbing(logging.Formatter):
    secrets: tuple[str, ...] = ()

    def scrub(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


class TextFormatter(_Scrubbing):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))


class JsonFormatter(_Scrubbing):
    """One JSON object per line (newlines inside messages are escaped by json.dumps)."""

    def format(self, record: logging.LogRecord) -> str:
        call_sid = getattr(record, "call_sid", None)
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "call_sid": None if call_sid in (None, "-") else call_sid,
            "msg": self.scrub(record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = self.scrub(self.formatException(record.exc_info))
        return json.dumps(doc)


def configure_logging(
    level: str, fmt: str, *, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> logging.Handler:
    """Configure the root logger once (idempotent: replaces our previous handler)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: _Scrubbing = JsonFormatter() if fmt == "json" else TextFormatter()
    # Longest first, so a secret containing another is replaced whole.
    formatter.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    handler.setFormatter(formatter)
    for old in [h for h in root.handlers if getattr(h, "_mediasrv", False)]:
        root.removeHandler(old)
    handler._mediasrv = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # twilio-python logs every REST request and response (9 lines each) at INFO; our own
    # [REST] line says what was done. Its warnings and errors still show.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return handler
