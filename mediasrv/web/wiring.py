"""From settings to the parts of a call: its CallConfig and the backend it opens.

Layer: web. The only place where the environment's Settings meet the call and the
backend: neither of those imports this layer, they take their own config objects.
"""

from __future__ import annotations

import threading

from mediasrv.backends.base import Backend, EventSink, ToolSpec
from mediasrv.backends.realtime.backend import RealtimeBackend, RealtimeConfig
from mediasrv.backends.realtime.client import Connector
from mediasrv.call.core import CallConfig, OpenBackend
from mediasrv.call.observer import CallLog
from mediasrv.call.turn_checks import CheckRunner, shared_turn_checks
from mediasrv.callctl.tools import ToolRegistry
from mediasrv.models import turn_model
from mediasrv.policy.endturn import EndTurnConfig
from mediasrv.policy.turns import TurnConfig
from mediasrv.protocol import realtime as wire
from mediasrv.web.settings import Settings


def call_config(s: Settings) -> CallConfig:
    """Return what one call needs to know of the settings."""
    return CallConfig(
        turn_detection=s.turn_detection,
        greeting=s.greeting,
        prebuffer_ms=s.prebuffer_ms,
        mark_interval_ms=s.mark_interval_ms,
        append_batch_ms=s.append_batch_ms,
        drain_timeout_ms=s.drain_timeout_ms,
        silence_timeout_s=s.silence_timeout_s,
        max_call_s=s.max_call_s,
        stall_timeout_s=s.openai_stall_timeout_s,
        ws_max_message_bytes=s.ws_max_message_bytes,
        turn=TurnConfig(
            end_silence_ms=s.end_silence_ms,
            min_utterance_ms=s.min_utterance_ms,
            barge_in_min_ms=s.barge_in_min_ms,
            echo_window_ms=s.echo_window_ms,
            erl_db=s.echo_erl_db,
            echo_cancel=s.echo_cancel,
            end_turn=end_turn_config(s),
        ),
        tool_timeout_s=s.tool_timeout_s,
        dtmf_barge_in=s.dtmf_barge_in,
        dtmf_inter_digit_ms=s.dtmf_inter_digit_ms,
        recordings_dir=s.recordings_dir if s.record_calls else "",
    )


def uses_turn_model(s: Settings) -> bool:
    """Tell whether calls run the end-of-turn model (local mode, TURN_MODEL=smart-turn)."""
    return s.turn_detection == "local" and s.turn_model == "smart-turn"


def end_turn_config(s: Settings) -> EndTurnConfig | None:
    """Return the end-of-turn policy of every call; None: the fixed END_SILENCE_MS."""
    if not uses_turn_model(s):
        return None
    return EndTurnConfig(
        check_silence_ms=s.turn_check_silence_ms,
        max_silence_ms=s.turn_max_silence_ms,
        threshold=s.turn_model_threshold,
        fallback_silence_ms=s.end_silence_ms,
        # A pause longer than the check silence was already judged "not the end"; heard
        # at full length it lowers the model's answer for the finished sentence after it
        # (measured: scripts/eot_eval.py --sweep), so the model hears it that short.
        max_pause_heard_ms=s.turn_check_silence_ms,
    )


def turn_checks(s: Settings) -> CheckRunner | None:
    """Return the process's end-of-turn worker when calls use the model, else None.

    The model file is loaded here, at start-up, so a missing or broken file stops the
    server with its reason instead of failing every check; the worker starts here too,
    in the process that serves (gunicorn loads the app after forking), so the process's
    thread count is the same before its first call and after its last (the soak's check).
    """
    if not uses_turn_model(s):
        return None
    turn_model.load_session()
    return shared_turn_checks().start()


def tool_registry(s: Settings) -> ToolRegistry:
    """Return the tools every call offers: end_call, transfer_call when it can work
    (an allow-list and the REST API), the TOOLS_FILE webhooks."""
    return ToolRegistry(s.transfer_numbers if s.rest_enabled else (), s.tools_file)


def realtime_config(s: Settings, tools: tuple[ToolSpec, ...] = ()) -> RealtimeConfig:
    """Return the Realtime session settings (`session.update`) of every call."""
    turn = None
    if s.turn_detection == "server" and s.server_vad_type == "semantic_vad":
        turn = wire.semantic_vad(s.server_vad_eagerness)
    elif s.turn_detection == "server":
        turn = wire.server_vad(s.server_vad_threshold, s.server_vad_silence_ms)
    return RealtimeConfig(
        model=s.openai_realtime_model,
        instructions=s.instructions,
        voice=s.openai_voice,
        transcription_model=s.input_transcription_model,
        turn_detection=turn,
        tools=tools,
    )


def realtime_backend(connect: Connector, s: Settings,
                     tools: tuple[ToolSpec, ...] = ()) -> OpenBackend:
    """Return how each call opens its Realtime backend through `connect`."""
    config = realtime_config(s, tools)

    def open_backend(events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog, call_sid: str) -> Backend:
        return RealtimeBackend(connect, config, events, closing=closing, name=name,
                               logger=logger)

    return open_backend
