"""Running scenario calls for real: the server, the Realtime backend, logs, outcomes.

Layer: testing.

    with BackendPool() as backends, LogCapture() as logs:
        settings = scenario_settings(scenario, "local", backends.url_for(scenario))
        with LocalServer(settings) as server:
            [outcome] = run_calls([(server.base_url, scenario, "local")], logs, backends)
        outcome.purposes      # ["greeting", "answer"]: responses created, by purpose
        outcome.truths()      # per clear: what had played vs the server's truncate point

The server is the real WSGI app (create_app) on loopback; the Realtime backend is the
built-in local backend, started here with `record_sessions` so a call's outcome carries
what the backend received (appends, VAD starts, truncates) with their times. Outcomes
also carry the bridge's log lines for their call (records stamped with the call sid,
plus the unstamped lines its rx thread wrote) with their call times.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.serving import BaseWSGIServer, make_server

from mediasrv.emulator.call import CallOptions, EmulatedCall
from mediasrv.emulator.metrics import CallResult, item_of
from mediasrv.emulator.scenarios import AUDIO_DIR, Scenario
from mediasrv.emulator.truth import ClearTruth, clear_truths
from mediasrv.localbackend import BackendOptions, LocalBackend
from mediasrv.localbackend.options import SessionRecord
from mediasrv.web.app import create_app
from mediasrv.web.settings import Settings, load_settings

END_WAIT_S = 5.0  # after the emulated call ends, how long the server side may take to end


# --- the Realtime backends ---------------------------------------------------------


class BackendPool:
    """Recording local backends, one per greeting a scenario needs; stopped together.

    The usual greeting's backend starts at once (so a test's leak check sees its threads
    as the fixture's); others start when a scenario first asks for them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _backends (calls may be set up in parallel)
        self._backends: dict[tuple[tuple[str, Any], ...], LocalBackend] = {}
        self.url_with()

    def url_for(self, scenario: Scenario) -> str:
        """Return the URL of a backend that greets as `scenario` needs (started once)."""
        return self.url_with(greeting_prompts=scenario.greeting_prompts)

    def url_with(self, **options: Any) -> str:
        """Return the URL of a recording backend with these BackendOptions (started once),
        e.g. a tool plan or a handshake delay."""
        key = tuple(sorted({"greeting_prompts": ("greeting",), **options}.items()))
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                backend = LocalBackend(BackendOptions(**dict(key), record_sessions=True))
                backend.start(host="127.0.0.1", port=0)
                self._backends[key] = backend
            return backend.url

    def record_for(self, item_ids: Sequence[str]) -> SessionRecord | None:
        """Return the session record holding any of these assistant items."""
        with self._lock:
            backends = list(self._backends.values())
        for backend in backends:
            for item in item_ids:
                rec = backend.session_record(item)
                if rec is not None:
                    return rec
        return None

    def stop(self) -> None:
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.stop()

    def __enter__(self) -> BackendPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the server --------------------------------------------------------------------


def scenario_settings(
    scenario: Scenario, mode: str, backend_url: str = "", env: Mapping[str, str] | None = None
) -> Settings:
    """Return the server settings for `scenario` in turn mode `mode`."""
    extra = {"openai_realtime_url": backend_url} if backend_url else {}
    return load_settings(
        {} if env is None else env, turn_detection=mode, **extra, **scenario.overrides
    )



class LocalServer:
    """The real WSGI app (create_app) on a loopback port, served by werkzeug threads.

    `settings` may be a function of the server's own base URL (for PUBLIC_URL: the
    origin Twilio signs with), called once the port is bound.
    """

    def __init__(self, settings: Settings | Callable[[str], Settings],
                 host: str = "127.0.0.1") -> None:
        self._server: BaseWSGIServer = make_server(host, 0, self._wsgi, threaded=True)
        self.settings = settings(self.base_url) if callable(settings) else settings
        self.app = create_app(self.settings)
        # Daemon: an interrupted run must not hang on it; stop() shuts it down and joins.
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mediasrv-e2e-http", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)  # bound before the app exists

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests and join the serving thread (calls end on their own)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- log capture -------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    mono: float  # time.monotonic() when logged: the emulator's clock
    thread: str
    call_sid: str | None
    logger: str
    message: str


class LogCapture(logging.Handler):
    """Keep the `mediasrv` loggers' INFO lines; wait for a call's end line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._cond = threading.Condition()  # guards _lines; notified on every line
        self._lines: list[LogLine] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = LogLine(
            time.monotonic(),
            record.threadName or "",
            getattr(record, "call_sid", None),
            record.name,
            record.getMessage(),
        )
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def __enter__(self) -> LogCapture:
        logging.getLogger("mediasrv").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("mediasrv").removeHandler(self)

    def for_call(self, call_sid: str) -> list[LogLine]:
        """Return the call's lines: stamped with its sid, or unstamped from its threads."""
        with self._cond:
            lines = list(self._lines)
        threads = {x.thread for x in lines if x.call_sid == call_sid}
        return [
            x for x in lines
            if x.call_sid == call_sid or (x.call_sid is None and x.thread in threads)
        ]

    def wait_call_ended(self, call_sid: str, timeout: float) -> bool:
        """Wait until the server logged the end of the call; False on timeout."""
        def ended() -> bool:
            return any(
                x.call_sid == call_sid and x.message.startswith(f"[{call_sid}] call ended:")
                for x in self._lines
            )

        with self._cond:
            return self._cond.wait_for(ended, timeout)


# --- running calls and reading outcomes ---------------------------------------------


_CREATED = re.compile(r"response (\S+) created \((\S+)\)")
_DONE = re.compile(r"response (\S+) done: (\S+)")
_BARGE = re.compile(r"\[BARGE-IN\] trigger=(\S+) .*response=(\S+) .*cancel=(\S+)")
_ENDED = re.compile(r"call ended: reason=(.*) duration=")
_CALLER_SAID = re.compile(r"\[TRANSCRIPT\] caller: \(([\d.]+) s of caller audio\)")


@dataclass(frozen=True)
class Timed:
    t: float  # call time (s): the emulator's clock, 0 at the start of the call
    what: str
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """One finished scenario call: the emulator's record, the server's log lines and what
    the Realtime backend received from it (its session record, when recorded)."""

    scenario: Scenario
    mode: str
    result: CallResult
    t0: float  # monotonic time of call time 0
    lines: tuple[LogLine, ...]
    server_ended: bool  # the server logged the call's end
    record: SessionRecord | None = None

    @property
    def truncations(self) -> tuple[tuple[str, int, int], ...]:
        """Return the call's truncates as the backend got them: (item, audio_end_ms, item ms)."""
        if self.record is None:
            return ()
        return tuple((item, end, total) for _, item, end, total in self.record.truncations)

    def truths(self) -> list[ClearTruth]:
        """Return, per clear, what had played against where the server truncated."""
        first: dict[str, int] = {}
        for item, end, _ in self.truncations:
            first.setdefault(item, end)
        return clear_truths(self.result, first)

    def appends(self) -> list[tuple[float, bytes]]:
        """Return what the backend's input buffer received, on call time."""
        if self.record is None:
            return []
        return [(t - self.t0, audio) for t, audio in self.record.appends]

    def vad_starts(self) -> list[float]:
        """Return when the backend's server VAD started speech (call time)."""
        return [] if self.record is None else [t - self.t0 for t, _ in self.record.speech_started]

    def answers(self) -> list[float]:
        """Return when each answer response was created (call time)."""
        return [c.t for c in self.created() if c.what == "answer"]

    @property
    def label(self) -> str:
        return f"{self.scenario.name}[{self.mode}]"

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    def _timed(self, pattern: re.Pattern[str]) -> list[tuple[float, re.Match[str]]]:
        out = []
        for line in self.lines:
            m = pattern.search(line.message)
            if m:
                out.append((line.mono - self.t0, m))
        return out

    def created(self) -> list[Timed]:
        """Return the responses the bridge saw created: (call time, id, purpose)."""
        return [Timed(t, m[2], m[1]) for t, m in self._timed(_CREATED)]

    @property
    def purposes(self) -> list[str]:
        return [c.what for c in self.created()]

    def done(self) -> list[Timed]:
        return [Timed(t, m[2], m[1]) for t, m in self._timed(_DONE)]

    def barge_ins(self) -> list[Timed]:
        """Return barge-ins: (call time, trigger, "response=<id> cancel=<bool>")."""
        return [Timed(t, m[1], f"response={m[2]} cancel={m[3]}") for t, m in self._timed(_BARGE)]

    def clear_read_lags(self) -> list[float]:
        """Return, per clear, how long after the server's [BARGE-IN] log line (written
        right after sending it) it reached the emulator's socket (s): <= 0 when nothing
        held it on the way (Nagle held clears 15-20 ms before the Twilio socket got
        TCP_NODELAY). A health figure: the truth already dates the clear by its arrival."""
        r = self.result
        sent = [r.clear_sent_at(i) for i in range(len(r.clears))]
        return [t - b.t for t, b in zip(sent, self.barge_ins(), strict=False)]

    def count(self, text: str) -> int:
        """Return how many of the call's lines contain `text`."""
        return sum(text in line.message for line in self.lines)

    @property
    def end_reason(self) -> str | None:
        found = self._timed(_ENDED)
        return found[-1][1][1] if found else None

    def caller_said_s(self) -> list[float]:
        """Return the lengths the backend reported for the caller's committed turns."""
        return [float(m[1]) for _, m in self._timed(_CALLER_SAID)]

    def speech_times(self) -> list[tuple[float, float]]:
        """Return (onset, end) of each placed clip with sound, in call time."""
        r = self.result
        return [
            (r.media_t0 + s.onset, r.media_t0 + s.end)
            for s in r.speech
            if s.onset is not None and s.end is not None
        ]

    def describe(self) -> str:
        """Return a compact account of the call for assertion messages."""
        s = self.summary
        keep = ("Barge", "BARGE", "[ECHO]", "created", "done:", "TRIGGER", "UTTERANCE", "SKIPPED",
                "SILENCE", "call ended", "PLAYED", "TRANSCRIPT] caller")
        lines = [
            f"  {line.mono - self.t0:7.3f} {line.message}"
            for line in self.lines
            if any(k in line.message for k in keep)
        ]
        speech = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in self.speech_times())
        cuts = [(c.item_id, c.played_ms, c.audio_end_ms) for t in self.truths() for c in t.items]
        return "\n".join([
            f"{self.label}: responses={s['responses']} clears={s['clears']} "
            f"barge_in_latency_ms={s['barge_in_latency_ms']} hangup={s['hangup']} "
            f"caller sound at {speech or '-'} emulator={s['emulator']} "
            f"network={s['network']} truncations (item, played, audio_end_ms)={cuts}",
            *lines,
        ])


def run_calls(
    specs: Sequence[tuple[str, Scenario, str]],
    logs: LogCapture | None = None,
    backends: BackendPool | None = None,
    audio_dir: Path = AUDIO_DIR,
) -> list[Outcome]:
    """Place one emulated call per (base_url, scenario, mode) at once; wait for all."""
    calls = [
        EmulatedCall(
            url, scenario.script(audio_dir), CallOptions(close_grace=1.0, network=scenario.network)
        )
        for url, scenario, _ in specs
    ]
    for call in calls:
        call.start()
    for call, (_, scenario, _) in zip(calls, specs, strict=True):
        if not call.wait(scenario.timeout_s):
            call.hangup()
            call.wait(5.0)
    outcomes = []
    for call, (_, scenario, mode) in zip(calls, specs, strict=True):
        ended = logs.wait_call_ended(call.call_sid, END_WAIT_S) if logs is not None else False
        result = call.result()
        lines = tuple(logs.for_call(call.call_sid)) if logs is not None else ()
        record = None
        if backends is not None:
            items = list(dict.fromkeys(item_of(m.name) for m in result.server_marks))
            record = backends.record_for(items)
        outcomes.append(Outcome(scenario, mode, result, call.t0, lines, ended, record))
    return outcomes


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (linear), None for no values."""
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values, np.float64), q)), 1)
