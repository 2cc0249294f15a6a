"""The cascade's built-in stand-ins, started once per process for services without a key.

Layer: web.

Like the built-in Realtime backend (app.local_backend_url): a cascade service whose key
is unset (and whose URL is left at its default) is served by its local stand-in from
mediasrv.localservices, on loopback, started on first use and logged loudly, so an
operator never mistakes an offline answer for the real service. The Deepgram stand-in
recognises speech with pocketsphinx (real words, ~0.3 s of CPU per second of speech);
benchmarks run the stand-ins as their own processes instead (scripts/bench.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()  # stand-ins start once per process, whichever call asks first
_running: dict[str, Any] = {}


def local_service(service: str) -> tuple[str, str]:
    """Start the stand-in of `service` (deepgram, chat, elevenlabs) once; return (URL, key).

    The URL is what the matching setting would hold: DEEPGRAM_URL, OPENAI_BASE_URL or
    ELEVENLABS_URL.
    """
    from mediasrv.localservices import LocalChat, LocalDeepgram, LocalElevenLabs

    with _lock:
        standin = _running.get(service)
        if standin is None:
            maker: Any = {"deepgram": LocalDeepgram, "chat": LocalChat,
                          "elevenlabs": LocalElevenLabs}[service]
            standin = maker().start(host="127.0.0.1", port=0)
            _running[service] = standin
    url = standin.base_url if service != "deepgram" else standin.url
    return str(url), str(standin.api_key)


def stop_local_services() -> None:
    """Stop every stand-in started here (tests; a server process just exits)."""
    with _lock:
        running = list(_running.values())
        _running.clear()
    for standin in running:
        standin.stop()
