"""The Flask app: POST /voice (TwiML), WS /media (the call), POST /amd, GET /healthz,
GET /metrics.

Layer: web.

`/voice` reserves the call's slot and pre-warms its AI session (prewarm.py); `/amd` takes
Twilio's answering-machine result of an outbound call (rest.py: a machine gets the
voicemail message, then a hang-up).

`/healthz` is liveness (200 while the process serves); `/healthz?ready=1` is readiness
(503 while draining or at MAX_CALLS). See health.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simple_websocket
from flask import Flask, Response, jsonify, request
from flask_sock import Sock
from twilio.request_validator import RequestValidator

from mediasrv import __version__
from mediasrv.backends.realtime.client import Connector, ws_connector
from mediasrv.call import Call, CallDeps
from mediasrv.call.observer import CallLog
from mediasrv.call.turn_checks import THREAD_NAME as TURN_MODEL_THREAD
from mediasrv.clock import Clock, RealClock
from mediasrv.models import vad_silero
from mediasrv.protocol.twilio import Start
from mediasrv.web import handoff
from mediasrv.web.admission import Admission
from mediasrv.web.amd import AmdAction, amd_action
from mediasrv.web.health import BackendHealth, readiness
from mediasrv.web.logs import configure_logging
from mediasrv.web.memory import release_freed_memory
from mediasrv.web.metrics import Metrics
from mediasrv.web.prewarm import Prewarm
from mediasrv.web.settings import Settings
from mediasrv.web.shutdown import Shutdown
from mediasrv.web.twilio_socket import TwilioWs, server_options
from mediasrv.web.wiring import (
    call_config,
    cascade_backend,
    cascade_services,
    realtime_backend,
    tool_registry,
    turn_checks,
)

if TYPE_CHECKING:
    from mediasrv.web.rest import TwilioRest

log = logging.getLogger(__name__)
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
# Message size caps. Above WS_MAX_MESSAGE_BYTES the call drops the message with a logged
# reason and goes on (parse_twilio); simple-websocket's own cap *closes* the socket
# (1009), so it is set far higher, only to bound the memory one message can take.
WS_HARD_MAX_BYTES = 2 * 1024 * 1024


def stream_token(auth_token: str, call_sid: str) -> str:
    """Return the per-call token (stateless, so any worker can check it)."""
    mac = hmac.new(auth_token.encode(), f"mediasrv-stream:{call_sid}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def load_prompts(folder: Path = PROMPTS_DIR) -> dict[str, bytes]:
    """Read the bridge's own pre-rendered prompts (raw 8 kHz mu-law)."""
    return {p.stem: p.read_bytes() for p in folder.glob("*.ulaw")}


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    connect_realtime: Connector | None = None,
    metrics: Metrics | None = None,
    twilio_http_client: Any = None,
    release_memory: Callable[[], object] = release_freed_memory,
) -> Flask:
    """Build the app; starts the local Realtime backend when no API key is set.

    Ends with `release_memory()`: what loading and warming the models freed goes back
    to the system (memory.py), so the idle process holds only what it keeps.
    """
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets)
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = server_options(
        max(WS_HARD_MAX_BYTES, 2 * settings.ws_max_message_bytes))
    sock = Sock(app)
    clock = clock or RealClock()
    metrics = metrics or Metrics()
    registry = Admission(settings.max_calls, clock)
    backend_health = BackendHealth(clock)
    rest = twilio_rest(settings, metrics, twilio_http_client)
    _warn_call_control(settings)
    tools = tool_registry(settings)
    config = call_config(settings)
    if settings.cascade:
        log.info("agent backend: cascade (Deepgram -> %s -> ElevenLabs)",
                 settings.openai_chat_model)
        open_backend = cascade_backend(cascade_services(settings), settings, clock,
                                       tools.specs())
    else:
        connect = backend_health.track(connect_realtime or _default_connector(settings))
        open_backend = realtime_backend(connect, settings, tools.specs())
    checks = turn_checks(settings)
    # Every call's VAD runs on this one session: loaded now, in the serving process, so
    # the first calls neither wait for it nor count it as their own memory.
    vad_silero.load_session()
    prewarm = None
    if settings.prewarm_timeout_s > 0:
        prewarm = Prewarm(open_backend, settings.prewarm_timeout_s, settings.max_calls, clock)
        open_backend = prewarm.open_backend
    validator = None
    if settings.signatures_enabled:
        validator = RequestValidator(settings.twilio_auth_token)
    if validator is None:
        log.warning(
            "!!! TWILIO_AUTH_TOKEN and PUBLIC_URL are not both set: requests are NOT checked "
            "for Twilio signatures and anyone can open a call. Set both in production. !!!"
        )
    prompts = load_prompts()
    release_memory()  # after the models' warm-up, before any call
    shutdown = Shutdown(registry, clock, settings.graceful_timeout_s, settings.shutdown_goodbye_s,
                        metrics)
    app.extensions["mediasrv"] = {
        "registry": registry, "metrics": metrics, "settings": settings, "shutdown": shutdown,
        "backend_health": backend_health, "prewarm": prewarm, "rest": rest,
    }

    @app.post("/voice")
    def voice() -> Response:
        if validator is not None and not _valid_webhook(validator, settings):
            log.warning("/voice: bad or missing X-Twilio-Signature: 403")
            return Response("forbidden", status=403)
        answer = voice_answer(request.form.get("CallSid", ""),
                              request.args.get(handoff.HANDOFF_PARAM))
        return Response(answer.twiml, mimetype="text/xml")

    def voice_answer(call_sid: str, counter: str | None) -> handoff.VoiceAnswer:
        why = registry.reserve(call_sid)
        if why is None:
            params = {}
            if validator is not None and call_sid:
                params["token"] = stream_token(settings.twilio_auth_token, call_sid)
            if prewarm is not None and call_sid:
                prewarm.open(call_sid)
            return handoff.stream(settings.stream_url(request.host), params)
        # Handing off needs instance routing: without it the proxy may stream anywhere.
        answer = handoff.refuse(
            why, handoffs=handoff.handoffs_so_far(counter),
            max_handoffs=settings.busy_redirects if settings.instance_path else 0,
            public_url=settings.public_url)
        log.warning("/voice %s: %s: %s", call_sid or "(no CallSid)", answer.outcome.value,
                    answer.detail)
        if answer.outcome is handoff.Outcome.BUSY:
            metrics.calls_rejected.inc()
        else:
            metrics.calls_handed_off.inc()
        return answer

    @app.before_request
    def guard_media() -> Response | None:
        if request.path != "/media":
            return None
        if validator is not None:
            signature = request.headers.get("X-Twilio-Signature", "")
            if not validator.validate(settings.stream_url(request.host), {}, signature):
                log.warning("/media: bad or missing X-Twilio-Signature on upgrade: 403")
                return Response("forbidden", status=403)
        why = registry.may_open()
        if why is not None:
            log.warning("/media: upgrade refused (503): %s", why)
            metrics.calls_rejected.inc()
            return Response("busy", status=503)
        return None

    def check_start(start: Start) -> str | None:
        if validator is None:
            return None
        expected = stream_token(settings.twilio_auth_token, start.call_sid)
        given = start.custom_parameters.get("token", "")
        if not hmac.compare_digest(expected, given):
            return "per-call token missing or wrong in start.customParameters"
        return None

    @sock.route("/media")
    def media(ws: simple_websocket.Server) -> None:
        def admit(start: Start) -> str | None:  # the call sid is known only from `start`
            return check_start(start) or registry.claim(call, start.call_sid)

        deps = CallDeps(config, clock, open_backend, prompts, metrics, admit,
                        rest.hang_up if rest else None, checks, tools,
                        transfer=rest.transfer if rest else None,
                        start_recording=rest.start_recording
                        if rest and settings.twilio_recording == "dual" else None)
        call = Call(TwilioWs(ws), deps)
        if not registry.add(call):
            return
        try:
            call.run()
        finally:
            registry.remove(call)
            metrics.call_finished(call)

    @app.post("/amd")
    def amd() -> Response:
        """Twilio's asynchronous answering-machine result for an outbound call."""
        if validator is not None and not _valid_webhook(validator, settings):
            log.warning("/amd: bad or missing X-Twilio-Signature: 403")
            return Response("forbidden", status=403)
        call_sid = request.form.get("CallSid", "")
        answered = request.form.get("AnsweredBy", "")
        action = amd_action(answered)
        call_log = CallLog(logging.getLogger("mediasrv.call"), {"call_sid": call_sid or "-"})
        call_log.info("[AMD] answered by %s: %s", answered or "?", action.value)
        if action is AmdAction.AGENT or not call_sid:
            return Response(status=204)
        if rest is None:
            call_log.warning("[AMD] cannot act without the REST API (TWILIO_ACCOUNT_SID and "
                             "signed requests)")
            return Response(status=204)
        call = next((c for c in registry.active() if c.call_sid == call_sid), None)
        if call is not None:
            call.redirected("voicemail left" if action is AmdAction.VOICEMAIL
                            else f"answered by {answered}: hung up")
        try:
            if action is AmdAction.VOICEMAIL:
                rest.voicemail(call_sid)
            else:
                rest.hang_up(call_sid)
        except Exception as exc:  # Twilio still ends the call when the stream closes
            call_log.warning("[AMD] REST update failed: %s", exc.__class__.__name__)
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness (always 200); with ?ready=1, readiness (503 when it cannot take a call)."""
        slots = registry.usage()
        active = slots.calls + slots.opening
        not_ready = readiness(slots.draining, active, settings.max_calls,
                              reserved=slots.held - active)
        backend = backend_health.state()
        body = jsonify(
            status="ok",
            ready=not not_ready,
            not_ready_because=not_ready,
            version=__version__,
            active_calls=active,
            reserved_calls=slots.reserved,
            free_slots=slots.free,
            max_calls=settings.max_calls,
            draining=slots.draining,
            instance_path=settings.instance_path or None,
            backend="cascade" if settings.cascade
            else "local" if settings.local_backend else "openai",
            backend_reachable=backend.reachable,
            backend_checked_s_ago=None if backend.checked_at is None
            else round(clock.now() - backend.checked_at, 1),
            backend_error=backend.error,
            threads=_thread_counts(),
        )
        if request.args.get("ready") and not_ready:
            body.status_code = 503
        return body

    @app.get("/metrics")
    def metrics_view() -> Response:
        metrics.set_active(registry.active())
        metrics.reserved_calls.set(registry.usage().reserved)
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    return app


def twilio_rest(settings: Settings, metrics: Metrics, http_client: Any) -> TwilioRest | None:
    """Return the REST actions when the REST API may be used, else None.

    Imported here, not at the top: the twilio REST client and requests cost ~5 MB of
    every worker's memory, and most deployments (no TWILIO_ACCOUNT_SID) never use them.
    """
    if not settings.rest_enabled:
        return None
    from mediasrv.web.rest import TwilioRest

    return TwilioRest(settings, metrics, http_client)


def _thread_counts() -> dict[str, int]:
    """Threads of this process by role: leaks show up here (the soak reads it)."""
    names = [t.name for t in threading.enumerate()]
    backend = sum(1 for n in names if n.startswith("mediasrv-backend-"))
    model = sum(1 for n in names if n.startswith(TURN_MODEL_THREAD))  # one per process
    calls = sum(1 for n in names if n.startswith("mediasrv-")) - backend - model
    pool = sum(1 for n in names if n.startswith("ThreadPoolExecutor"))  # gunicorn gthread
    return {"total": len(names), "call": calls, "backend": backend, "turn_model": model,
            "http_pool": pool}


def _warn_call_control(settings: Settings) -> None:
    """Say at start-up which call-control settings cannot work as configured."""
    if settings.rest_enabled:
        return
    needs = "needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and PUBLIC_URL (the REST API)"
    if settings.transfer_numbers:
        log.warning("TRANSFER_NUMBERS is set but transfers %s: no transfer tool", needs)
    if settings.twilio_recording == "dual":
        log.warning("TWILIO_RECORDING=dual %s: Twilio will not record", needs)


def _valid_webhook(validator: RequestValidator, settings: Settings) -> bool:
    url = settings.public_url + request.full_path.rstrip("?")
    params: dict[str, Any] = request.form.to_dict(flat=True)
    return bool(validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")))


_backend_lock = threading.Lock()  # the local backend is started once per process
_backend: Any = None


def _default_connector(settings: Settings) -> Connector:
    if not settings.local_backend:
        url = settings.realtime_url()
        model = settings.openai_realtime_model
        log.info("realtime backend: %s (model %s)", url.split("?")[0], model)
        return ws_connector(url, settings.openai_api_key, settings.openai_connect_timeout_s)
    url = local_backend_url()
    log.info("realtime backend: BUILT-IN LOCAL echo-test backend at %s (no OPENAI_API_KEY)", url)
    return ws_connector(url, "", settings.openai_connect_timeout_s)


def local_backend_url() -> str:
    """Start the built-in backend on loopback once per process; return its URL."""
    global _backend
    with _backend_lock:
        if _backend is None:
            from mediasrv.localbackend import BackendOptions, LocalBackend

            _backend = LocalBackend(BackendOptions()).start(host="127.0.0.1", port=0)
        return str(_backend.url)


def local_backend() -> Any:
    """Return the running built-in LocalBackend (its `stats()`), or None if not started."""
    with _backend_lock:
        return _backend


