"""The local Deepgram live STT stand-in: `/v1/listen` on a loopback WebSocket.

Layer: stand-ins.

    with LocalDeepgram(DeepgramOptions(recognizer="canned")).start() as dg:
        dg.url        # ws://127.0.0.1:<port>/v1/listen
        dg.api_key    # what to send as `Authorization: Token <key>`
        dg.stats()    # {"counts": {"results_final": 2, ...}, "records": {"finals": [...]}}

Pure decisions are in `deepgram_wire.py` (handshake, messages) and `deepgram_session.py`
(the per-connection state machine); this module wires them to the threaded shell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from mediasrv.clock import Clock
from mediasrv.errors import ConfigError

from . import deepgram_wire as wire
from .common import Fault, Stats
from .deepgram_session import DeepgramSession, SessionConfig
from .recognizer import CannedRecognizer, DecoderPool, Recognizer, SphinxRecognizer
from .wsserver import Headers, Opened, Rejected, WsServer, WsStandIn

log = logging.getLogger(__name__)

DEFAULT_KEY = "local-deepgram-key"  # not a secret: the stand-in is loopback-only


@dataclass(frozen=True)
class DeepgramOptions:
    """How the stand-in recognises speech, which key it accepts, which fault it injects.

    recognizer: "pocketsphinx" (real words, ~0.2-0.3 s CPU per speech second) or "canned"
    (`canned_transcripts` in turn, one per final segment; near-zero CPU, for benchmarks).
    """

    api_key: str = DEFAULT_KEY
    recognizer: Literal["pocketsphinx", "canned"] = "pocketsphinx"
    canned_transcripts: tuple[str, ...] = ("yes I would like to check on my order please",)
    session: SessionConfig = field(default_factory=SessionConfig)
    fault: Fault | None = None
    socket_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if self.recognizer not in ("pocketsphinx", "canned"):
            raise ConfigError(f"recognizer must be pocketsphinx or canned, got "
                              f"{self.recognizer!r}")
        if not self.api_key:
            raise ConfigError("api_key must not be empty")


class DeepgramService:
    """Decides each upgrade to `/v1/listen` and builds its session."""

    def __init__(self, options: DeepgramOptions, stats: Stats) -> None:
        self._options = options
        self._stats = stats
        self._pool = DecoderPool()

    def open(self, target: str, headers: Headers, now: float) -> Opened | Rejected:
        path, query = wire.split_target(target)
        if path != wire.LISTEN_PATH:
            return Rejected(404, wire.error_body("NOT_FOUND", f"No route for {path}."))
        if not wire.check_auth(headers, frozenset({self._options.api_key})):
            self._stats.add("auth_refused")
            return Rejected(401, wire.error_body("INVALID_AUTH", "Invalid credentials."),
                            [("content-type", "application/json")])
        try:
            params = wire.parse_params(query)
        except wire.ParamError as exc:
            log.info("deepgram stand-in: handshake refused (400): %s", exc)
            self._stats.add("params_refused")
            self._stats.record("refusals", str(exc))
            return Rejected(400, wire.error_body("Bad Request", str(exc)),
                            [("content-type", "application/json"), ("dg-error", str(exc))])
        created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        session = DeepgramSession(params, self._recognizer(), self._options.session,
                                  self._stats, now, created)
        log.info("deepgram stand-in: session %s opened (model %s, interim %s, endpointing %s)",
                 session.request_id, params.model, params.interim_results,
                 params.endpointing_ms)
        return Opened(session)

    def _recognizer(self) -> Recognizer:
        if self._options.recognizer == "canned":
            return CannedRecognizer(self._options.canned_transcripts)
        return SphinxRecognizer(self._pool)


class LocalDeepgram(WsStandIn):
    """A local, offline Deepgram live-transcription server."""

    def __init__(self, options: DeepgramOptions | None = None,
                 clock: Clock | None = None) -> None:
        self.options = options or DeepgramOptions()
        stats = Stats()
        server = WsServer("deepgram", DeepgramService(self.options, stats), stats,
                          self.options.fault, clock, self.options.socket_timeout_s)
        super().__init__(server, stats)

    @property
    def url(self) -> str:
        return f"{self.base_url}{wire.LISTEN_PATH}"

    @property
    def api_key(self) -> str:
        return self.options.api_key
