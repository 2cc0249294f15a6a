"""The built-in local Realtime backend: an offline stand-in for the OpenAI Realtime GA API.

Layer: stand-ins. Local servers speaking a real service's wire protocol, for tests and
offline runs. They may import the base modules, mediasrv.protocol and each other; never
the call or the web app (the web app starts them).

    backend = LocalBackend(BackendOptions()).start(host="127.0.0.1", port=0)
    backend.url      # ws://127.0.0.1:<port>/v1/realtime?model=gpt-realtime-2.1
    backend.stats()  # counters snapshot
    backend.stop()   # closes everything, joins its threads within 1 s

It speaks the subset of the GA protocol the bridge uses (PROTOCOLS.md section 2) with
audio/pcmu only, and plays an echo-test agent made of shipped espeak-ng prompts (see
`prompts.py` for what each `response.metadata.purpose` says).

Layout: pure decision code in `wire.py` (shapes, validation), `vad.py`, `session_input.py`,
`response.py`, `prompts.py` and `session.py` (the per-session state machine); thread
shells in `connection.py` (one reader thread per client) and `server.py` (acceptor and
the one pacer thread that streams audio deltas for every session).
"""

from __future__ import annotations

from .options import FAULTS, BackendOptions, BackendStats, Fault
from .server import LocalBackend

__all__ = ["FAULTS", "BackendOptions", "BackendStats", "Fault", "LocalBackend"]
