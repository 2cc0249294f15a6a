"""What the parts of one call share: its settings, its one lock and the state behind it.

Layer: call.

Threads of a call (all end when `closing` is set; every blocking wait has a bound):

- rx loop: the flask-sock handler thread running `Call.run`: reads Twilio, runs the
  turn policy on every inbound frame, sends caller audio to the backend (call.py,
  uplink.py);
- mediasrv-rt-<sid>: the backend's reader; hands each event to responses.py;
- mediasrv-tx-<sid>: the paced tx loop, the *only* thread that writes to Twilio:
  frames, marks, probes and barge-in's `clear` (tx.py);
- mediasrv-watch-<sid>: the watcher: ticks the supervisor and call control at their
  next deadline or when woken (watcher.py);
- on demand: a webhook tool's thread (mediasrv-tool-<sid>-N), a Twilio REST request
  (mediasrv-rest-<sid>: a transfer, Twilio's recording), the recorder's writer
  (mediasrv-rec-<sid>); each bounded by its own timeout and joined at the end (control.py,
  recording.py);
- and, shared by all calls of the process, mediasrv-turn-model: the end-of-turn model's
  worker (turn_checks.py), whose answers the rx loop takes back.

The lock rule. State that must change together -- the response ledger, the playback
ledger, the supervisor, the playout buffer's overflow and generation, and call control's
keypad, tool tracker and exit -- lives behind `lock`, the one call lock. A thread
decides under it (a pure call returning a plan), flips the `threading.Event` flags that
must change with that decision, and releases it; then it sends, logs and starts threads.
Nothing blocks while holding it: no socket, no full queue (queue operations under it are
`*_nowait`; a `queue.Queue`'s own mutex is taken inside it for an instant, never the
other way round). Both halves are asserted: helpers named `*_locked` assert that their
thread holds the lock (`CallLock.held`), and `backend` asserts that a command goes out
with it released. The backend's own lock (backends/realtime) is a leaf: it is never held
while calling out, and the call never holds its lock when it calls the backend, so the
two are never nested. There is no lock around Twilio: only the tx thread writes to it,
so nothing else ever waits on Twilio, and the backend's reader hands a barge-in to the
tx thread through the playout buffer.

Read without the lock, on purpose: the Events (`closing`, `ai_speaking`); the playout
buffer's generation (an int written under the lock; a stale read lets at most the
frame in the tx thread's hand out, before the `clear` it sends next); the writer's
`last_sent_at` (written by the tx thread alone; at most one frame stale); counters with
one writer that `Call.stats()` reports (bad inputs, flood drops, tx stats); `backend`,
set once before any other thread of the call starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mediasrv.backends.base import Backend, EventSink
from mediasrv.call.lock import CallLock
from mediasrv.call.observer import NULL_OBSERVER, CallLog, Observer
from mediasrv.call.playout import PlayoutBuffer
from mediasrv.call.recording import Recording
from mediasrv.call.turn_checks import CheckRunner
from mediasrv.callctl.tools import RunWebhook, ToolRegistry
from mediasrv.callctl.tools_file import TransferTarget
from mediasrv.callctl.webhook import ToolResult, WebhookRunner
from mediasrv.clock import Clock
from mediasrv.policy.ledger import ResponseLedger
from mediasrv.policy.playback import Playback
from mediasrv.policy.supervisor import Supervisor, SupervisorConfig
from mediasrv.policy.turns import TurnConfig
from mediasrv.protocol.twilio import Start


@dataclass(frozen=True)
class CallConfig:
    """The settings one call runs with (built from the web layer's Settings)."""

    turn_detection: str = "local"  # "local": our VAD ends turns; "server": the backend's
    greeting: str = ""  # what the AI is asked to say first ("" = no greeting)
    prebuffer_ms: int = 60
    tx_lead_ms: int = 160  # audio kept queued at Twilio while more is ready (tx.py)
    mark_interval_ms: int = 200
    append_batch_ms: int = 100
    drain_timeout_ms: int = 500
    silence_timeout_s: float = 15.0
    max_call_s: float = 1800.0
    stall_timeout_s: float = 4.0
    ws_max_message_bytes: int = 64 * 1024
    turn: TurnConfig = field(default_factory=TurnConfig)
    tool_timeout_s: float = 8.0
    dtmf_barge_in: bool = False
    dtmf_inter_digit_ms: int = 2000
    recordings_dir: str = ""  # RECORD_CALLS: where to write ("" = no recording)

    @property
    def server_turns(self) -> bool:
        return self.turn_detection == "server"


class TwilioSocket(Protocol):
    def send(self, data: str) -> None: ...

    def receive(self, timeout: float) -> str | bytes | None:
        """Return a message, None on timeout; raise PeerClosed when the socket is gone."""
        ...


class OpenBackend(Protocol):
    """Make (not start) the call's backend; its events go to `events`. `call_sid` lets
    the web layer hand over a session it opened for this call at /voice (pre-warm)."""

    def __call__(self, events: EventSink, *, closing: threading.Event, name: str,
                 logger: CallLog, call_sid: str) -> Backend: ...


class ToolRunner(Protocol):
    """Runs webhook tools off the call's threads (callctl/webhook.py)."""

    def run(self, decision: RunWebhook) -> None: ...

    def close(self, timeout: float = 2.0) -> None: ...


# (call sid, timeout s, where results go) -> the runner of one call
ToolRunnerFactory = Callable[[str, float, Callable[[ToolResult], None]], ToolRunner]


@dataclass
class CallDeps:
    config: CallConfig
    clock: Clock
    open_backend: OpenBackend
    prompts: Mapping[str, bytes] = field(default_factory=dict)
    observer: Observer = NULL_OBSERVER
    check_start: Callable[[Start], str | None] = lambda start: None  # reason to refuse
    # Ends the call at Twilio (REST) when the server hangs up; None = closing the socket only.
    hang_up: Callable[[str], None] | None = None
    # Runs the end-of-turn model's checks (the process's worker); None: no model.
    turn_checks: CheckRunner | None = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)  # end_call only by default
    tool_runner: ToolRunnerFactory = WebhookRunner
    # REST: update the live call with <Dial> to the target (raises on failure); None = no
    # transfers. Start Twilio's own recording of a call; None = off.
    transfer: Callable[[str, TransferTarget], None] | None = None
    start_recording: Callable[[str], None] | None = None


class _NoBackend:
    """The backend of a call that has not started: nothing can be sent."""

    connected = False
    waiting_for = ""

    def start(self) -> None:
        pass

    def append_audio(self, audio: bytes) -> bool:
        return False

    def commit(self) -> bool:
        return False

    def request_response(self, request_id: str, purpose: str, instructions: str) -> bool:
        return False

    def cancel(self, response_id: str) -> bool:
        return False

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> bool:
        return False

    def tool_result(self, call_id: str, output: str) -> bool:
        return False

    def caller_text(self, text: str) -> bool:
        return False

    def reconnect(self, reason: str) -> None:
        pass

    def close(self, timeout: float) -> list[str]:
        return []


NO_BACKEND: Backend = _NoBackend()


class CallCore:
    """The state the parts of one call share; see the module docstring for the lock rule."""

    def __init__(self, deps: CallDeps, log: CallLog) -> None:
        cfg = deps.config
        self.config = cfg
        self.clock = deps.clock
        self.log = log
        self.observer = deps.observer
        self.prompts = deps.prompts
        self.started_at = deps.clock.now()
        self.lock = CallLock()  # the one call lock: guards the four below
        self.ledger = ResponseLedger()
        self.playback = Playback()
        self.supervisor = Supervisor(
            SupervisorConfig(cfg.silence_timeout_s, cfg.max_call_s, cfg.stall_timeout_s,
                             cfg.drain_timeout_ms / 1000.0),
            self.started_at,
        )
        self.playout = PlayoutBuffer(self.lock)
        self.closing = threading.Event()
        self.ai_speaking = threading.Event()  # set with a response's audio; cleared by its drain
        self.watcher_wake = threading.Event()
        self.recording = Recording(cfg.recordings_dir, log)
        self._backend: Backend = NO_BACKEND

    @property
    def backend(self) -> Backend:
        """The call's backend, for commands: sent with the call lock released (asserted)."""
        assert not self.lock.held(), "a backend command under the call lock"
        return self._backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self._backend = backend  # once, before the call's other threads start

    def connected_locked(self) -> bool:
        """Tell whether the backend is connected (a flag read; no backend lock is taken)."""
        return self._backend.connected

    def wake(self) -> None:
        """Ask the watcher to look again now (something its supervisor judges changed)."""
        self.watcher_wake.set()

    def close(self) -> None:
        """Set `closing` and wake every thread that sleeps on something else."""
        self.closing.set()
        self.playout.wake.set()
        self.watcher_wake.set()

    def ai_playing(self) -> bool:
        """Tell whether AI audio still plays at the caller: queued here or unheard at Twilio."""
        if self.ai_speaking.is_set():
            return True
        with self.lock:
            return self.playout.queued_locked() > 0 or self.playback.has_unheard()

    def network_echo_delay(self) -> float:
        """Return the part of our echo's delay the network accounts for (s), taken off the
        echo reference's time so the guard's bounded delay search (500 ms) covers the
        line's own echo path (measured: a 300 ms path behind 120 ms of network fell
        outside it on a loaded machine). See Playback.network_echo_delay."""
        with self.lock:
            return self.playback.network_echo_delay()

    def ai_playing_locked(self) -> bool:
        assert self.lock.held()
        return (self.ai_speaking.is_set() or self.playout.queued_locked() > 0
                or self.playback.has_unheard())
