"""Settings, read from the environment once and validated at start-up.

Layer: web.

Every variable is documented in README.md ("Configuration"); keep that table and
`_SPEC` below in step (tests/test_settings.py checks the ranges). A bad value raises
ConfigError in words: "PORT: 'abc' is not a whole number". Each variable's range is
checked here and only here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode, urlsplit

from mediasrv.callctl.tools_file import (
    E164,
    TransferTarget,
    WebhookTool,
    load_tools_file,
    parse_transfer_numbers,
)
from mediasrv.errors import ConfigError

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise voice assistant on a phone call. Keep answers short. "
    "If the caller starts speaking while you are talking, stop immediately: do not finish "
    "the sentence, never talk over the caller, wait until they have finished, then answer "
    "only what they said."
)
DEFAULT_GREETING = "Hello! How can I help you today?"
DEFAULT_VOICEMAIL = (
    "Hello, this is an automated call. Sorry we missed you; please call us back. Goodbye."
)
TURN_MODES = ("local", "server")
TURN_MODELS = ("smart-turn", "off")  # the end-of-turn model in local mode; off = END_SILENCE_MS
SERVER_VAD_TYPES = ("server_vad", "semantic_vad")  # OpenAI's turn_detection.type
EAGERNESS = ("low", "medium", "high", "auto")  # semantic_vad's (auto = medium)
AGENT_BACKENDS = ("realtime", "cascade")
DEFAULT_DEEPGRAM_URL = "wss://api.deepgram.com/v1/listen"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_ELEVENLABS_URL = "wss://api.elevenlabs.io"


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 5050
    openai_api_key: str = ""
    openai_realtime_model: str = "gpt-realtime-2.1"
    openai_realtime_url: str = ""
    openai_voice: str = "marin"
    instructions: str = DEFAULT_INSTRUCTIONS
    greeting: str = DEFAULT_GREETING
    public_url: str = ""
    twilio_auth_token: str = ""
    twilio_account_sid: str = ""
    drain_timeout_ms: int = 500
    log_level: str = "INFO"
    log_format: str = "text"
    turn_detection: str = "local"
    prebuffer_ms: int = 60
    tx_lead_ms: int = 160
    mark_interval_ms: int = 200
    append_batch_ms: int = 100
    end_silence_ms: int = 500
    min_utterance_ms: int = 300
    turn_model: str = "smart-turn"
    turn_check_silence_ms: int = 200
    # 80 ms: the check's own 60-140 ms is spent while the silence grows to the check
    # silence (README, Turn-taking); 0 turns it off.
    turn_early_check_ms: int = 80
    turn_max_silence_ms: int = 1500
    turn_model_threshold: float = 0.9
    barge_in_min_ms: int = 100
    echo_window_ms: int = 500
    echo_erl_db: float = 6.0
    echo_cancel: bool = True
    silence_timeout_s: float = 15.0
    max_call_s: float = 1800.0
    max_calls: int = 50
    server_vad_threshold: float = 0.6
    server_vad_silence_ms: int = 500
    server_vad_type: str = "server_vad"
    server_vad_eagerness: str = "auto"
    input_transcription_model: str = "gpt-4o-mini-transcribe"
    openai_connect_timeout_s: float = 3.0
    openai_stall_timeout_s: float = 4.0
    ws_max_message_bytes: int = 64 * 1024
    web_concurrency: int = 1
    graceful_timeout_s: float = 30.0
    shutdown_goodbye_s: float = 10.0
    instance_path: str = ""
    busy_redirects: int = 2
    # Call control (README "Call control"). TRANSFER_NUMBERS and TOOLS_FILE hold what
    # was read from them: the allow-list, and the webhook tools of the file.
    transfer_numbers: tuple[TransferTarget, ...] = ()
    twilio_caller_id: str = ""
    tools_file: tuple[WebhookTool, ...] = ()
    tool_timeout_s: float = 8.0
    dtmf_barge_in: bool = False
    dtmf_inter_digit_ms: int = 2000
    record_calls: bool = False
    recordings_dir: str = "recordings"
    twilio_recording: str = "off"
    twilio_api_base_url: str = ""
    prewarm_timeout_s: float = 10.0
    voicemail_message: str = DEFAULT_VOICEMAIL
    agent_backend: str = "realtime"
    deepgram_api_key: str = ""
    deepgram_url: str = DEFAULT_DEEPGRAM_URL
    deepgram_model: str = "nova-3"
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    # Non-reasoning: its first token is never held back by hidden reasoning (README).
    openai_chat_model: str = "gpt-4.1-mini"
    elevenlabs_api_key: str = ""
    elevenlabs_url: str = DEFAULT_ELEVENLABS_URL
    elevenlabs_voice_id: str = ""
    elevenlabs_model: str = "eleven_flash_v2_5"

    @property
    def cascade(self) -> bool:
        return self.agent_backend == "cascade"

    def stand_in(self, service: str) -> bool:
        """Tell whether a cascade service is the built-in stand-in: no key, default URL."""
        key, url, default = {
            "deepgram": (self.deepgram_api_key, self.deepgram_url, DEFAULT_DEEPGRAM_URL),
            "chat": (self.openai_api_key, self.openai_base_url, DEFAULT_OPENAI_BASE_URL),
            "elevenlabs": (self.elevenlabs_api_key, self.elevenlabs_url,
                           DEFAULT_ELEVENLABS_URL),
        }[service]
        return not key and url == default

    @property
    def local_backend(self) -> bool:
        """True when no API key is set and the built-in backend is used."""
        return not self.openai_api_key and not self.openai_realtime_url

    def realtime_url(self) -> str:
        """Return the Realtime WebSocket URL to dial (empty for the local backend)."""
        if self.openai_realtime_url:
            return self.openai_realtime_url
        if not self.openai_api_key:
            return ""
        query = urlencode({"model": self.openai_realtime_model})
        return f"wss://api.openai.com/v1/realtime?{query}"

    def stream_url(self, request_host: str) -> str:
        """Return the wss:// URL Twilio should stream to."""
        if self.public_url:
            parts = urlsplit(self.public_url)
            return f"wss://{parts.netloc}{self.instance_path}/media"
        return f"wss://{request_host}{self.instance_path}/media"

    @property
    def signatures_enabled(self) -> bool:
        return bool(self.twilio_auth_token and self.public_url)

    @property
    def rest_hangup_enabled(self) -> bool:
        """End calls through the REST API too (the call sid is trusted only when signed)."""
        return bool(self.twilio_account_sid and self.signatures_enabled)

    @property
    def rest_enabled(self) -> bool:
        """Use the Twilio REST API (hang-up, transfer, recording, AMD): the same rule."""
        return self.rest_hangup_enabled

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line."""
        return tuple(s for s in (self.openai_api_key, self.twilio_auth_token,
                                 self.deepgram_api_key, self.elevenlabs_api_key) if s)


class _Parser:
    """Turn one variable's raw text into a value, or raise ValueError with a predicate.

    The predicate completes "<NAME>: <value> ..." ("is not a whole number"). `limits` is
    the valid range as the README's configuration table shows it.
    """

    limits = "text"

    def __call__(self, raw: str) -> Any:
        return raw


class _Number(_Parser):
    """A whole number (`whole`) or any number within [lo, hi]: the one range check."""

    def __init__(self, lo: float, hi: float, *, whole: bool) -> None:
        self.lo, self.hi, self.whole = lo, hi, whole
        self.limits = f"{int(lo)} to {int(hi)}" if whole else f"{lo:g} to {hi:g}"

    def __call__(self, raw: str) -> float | int:
        try:
            value: float | int = int(raw.strip()) if self.whole else float(raw.strip())
        except ValueError:
            raise ValueError("is not a whole number" if self.whole else "is not a number") from None
        if not self.lo <= value <= self.hi:  # also false for nan
            raise ValueError(f"is out of range ({self.limits})")
        return value


class _Choice(_Parser):
    def __init__(self, *options: str) -> None:
        self.options = options
        self.limits = ", ".join(options)

    def __call__(self, raw: str) -> str:
        value = raw.strip().lower()
        if value not in self.options:
            raise ValueError(f"is not one of {self.limits}")
        return value


class _Url(_Parser):
    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes
        self.limits = " or ".join(f"{s}://HOST" for s in schemes)

    def __call__(self, raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in self.schemes or not parts.netloc:
            raise ValueError(f"is not a URL like {self.limits}")
        return raw.strip().rstrip("/")


class _Pattern(_Parser):
    """Text that must match a pattern whole: a proxy's path prefix, an id in a URL path."""

    def __init__(self, pattern: str, limits: str, wrong: str) -> None:
        self._pattern = re.compile(pattern)
        self.limits = limits
        self._wrong = wrong

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not self._pattern.fullmatch(value):
            raise ValueError(self._wrong)
        return value


class _Bool(_Parser):
    limits = "true, false"

    def __call__(self, raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ValueError("is not true or false")


class _Phone(_Parser):
    limits = "+E.164 number"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not E164.match(value):
            raise ValueError("is not an E.164 number like +15551230001")
        return value


class _TransferNumbers(_Parser):
    """The allow-list; `parse_transfer_numbers` names the bad entry (ConfigError)."""

    limits = "+E.164 or NAME=+E.164, comma-separated"

    def __call__(self, raw: str) -> tuple[TransferTarget, ...]:
        return parse_transfer_numbers(raw)


class _ToolsFile(_Parser):
    """Read and check the tools file now; `load_tools_file` names the tool and field."""

    limits = "path of a JSON file"

    def __call__(self, raw: str) -> tuple[WebhookTool, ...]:
        return load_tools_file(raw.strip())


def _int(lo: int, hi: int) -> _Parser:
    return _Number(lo, hi, whole=True)


def _float(lo: float, hi: float) -> _Parser:
    return _Number(lo, hi, whole=False)


_text = _Parser()

# env name -> (field, parser). MIN_UTTERANCE_MS is capped at 600 by the turn-taking spec.
_SPEC: dict[str, tuple[str, _Parser]] = {
    "HOST": ("host", _text),
    "PORT": ("port", _int(1, 65535)),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "OPENAI_REALTIME_MODEL": ("openai_realtime_model", _text),
    "OPENAI_REALTIME_URL": ("openai_realtime_url", _Url("ws", "wss")),
    "OPENAI_VOICE": ("openai_voice", _text),
    "INSTRUCTIONS": ("instructions", _text),
    "GREETING": ("greeting", _text),
    "PUBLIC_URL": ("public_url", _Url("https", "http")),
    "TWILIO_AUTH_TOKEN": ("twilio_auth_token", _text),
    "TWILIO_ACCOUNT_SID": ("twilio_account_sid", _text),
    "DRAIN_TIMEOUT_MS": ("drain_timeout_ms", _int(20, 10_000)),
    "LOG_LEVEL": ("log_level", _Choice("debug", "info", "warning", "error")),
    "LOG_FORMAT": ("log_format", _Choice("text", "json")),
    "TURN_DETECTION": ("turn_detection", _Choice(*TURN_MODES)),
    "PREBUFFER_MS": ("prebuffer_ms", _int(0, 1000)),
    "TX_LEAD_MS": ("tx_lead_ms", _int(20, 1000)),
    "MARK_INTERVAL_MS": ("mark_interval_ms", _int(20, 1000)),
    "APPEND_BATCH_MS": ("append_batch_ms", _int(20, 1000)),
    "END_SILENCE_MS": ("end_silence_ms", _int(200, 3000)),
    "MIN_UTTERANCE_MS": ("min_utterance_ms", _int(60, 600)),
    # The end-of-turn model (local mode; mediasrv.policy.endturn, docs/turn-taking.md).
    # Below 100 ms of silence the model is asked inside words (measured: more splits).
    "TURN_MODEL": ("turn_model", _Choice(*TURN_MODELS)),
    "TURN_CHECK_SILENCE_MS": ("turn_check_silence_ms", _int(100, 1000)),
    "TURN_EARLY_CHECK_MS": ("turn_early_check_ms", _int(0, 1000)),
    "TURN_MAX_SILENCE_MS": ("turn_max_silence_ms", _int(300, 5000)),
    "TURN_MODEL_THRESHOLD": ("turn_model_threshold", _float(0.01, 0.99)),
    "BARGE_IN_MIN_MS": ("barge_in_min_ms", _int(20, 2000)),
    "ECHO_WINDOW_MS": ("echo_window_ms", _int(0, 5000)),
    "ECHO_ERL_DB": ("echo_erl_db", _float(0.0, 60.0)),
    "ECHO_CANCEL": ("echo_cancel", _Bool()),
    "SILENCE_TIMEOUT_S": ("silence_timeout_s", _float(1.0, 3600.0)),
    "MAX_CALL_S": ("max_call_s", _float(5.0, 86_400.0)),
    "MAX_CALLS": ("max_calls", _int(1, 10_000)),
    "SERVER_VAD_THRESHOLD": ("server_vad_threshold", _float(0.0, 1.0)),
    "SERVER_VAD_SILENCE_MS": ("server_vad_silence_ms", _int(500, 5000)),
    "SERVER_VAD_TYPE": ("server_vad_type", _Choice(*SERVER_VAD_TYPES)),
    "SERVER_VAD_EAGERNESS": ("server_vad_eagerness", _Choice(*EAGERNESS)),
    "INPUT_TRANSCRIPTION_MODEL": ("input_transcription_model", _text),
    "OPENAI_CONNECT_TIMEOUT_S": ("openai_connect_timeout_s", _float(0.1, 60.0)),
    "OPENAI_STALL_TIMEOUT_S": ("openai_stall_timeout_s", _float(0.5, 600.0)),
    "WS_MAX_MESSAGE_BYTES": ("ws_max_message_bytes", _int(1024, 1 << 20)),
    # Read by gunicorn.conf.py (`workers`); gunicorn itself also reads it (see there).
    "WEB_CONCURRENCY": ("web_concurrency", _int(1, 64)),
    "GRACEFUL_TIMEOUT_S": ("graceful_timeout_s", _float(1.0, 3600.0)),
    "SHUTDOWN_GOODBYE_S": ("shutdown_goodbye_s", _float(0.0, 600.0)),
    # Scale-out (docs/scaling-out.md): this instance's route on the proxy, and how often
    # a full instance hands a call back to the proxy's /voice before answering busy.
    "INSTANCE_PATH": ("instance_path", _Pattern(
        r"(/[A-Za-z0-9._~-]+)+", "/NAME or /NAME/NAME...",
        "is not a path like /i/a (letters, digits, . _ ~ -)")),
    "BUSY_REDIRECTS": ("busy_redirects", _int(0, 10)),
    # Call control: transfer, tools, keypad, recording, REST, pre-warm, voicemail.
    "TRANSFER_NUMBERS": ("transfer_numbers", _TransferNumbers()),
    "TWILIO_CALLER_ID": ("twilio_caller_id", _Phone()),
    "TOOLS_FILE": ("tools_file", _ToolsFile()),
    "TOOL_TIMEOUT_S": ("tool_timeout_s", _float(0.5, 60.0)),
    "DTMF_BARGE_IN": ("dtmf_barge_in", _Bool()),
    "DTMF_INTER_DIGIT_MS": ("dtmf_inter_digit_ms", _int(300, 10_000)),
    "RECORD_CALLS": ("record_calls", _Bool()),
    "RECORDINGS_DIR": ("recordings_dir", _text),
    "TWILIO_RECORDING": ("twilio_recording", _Choice("off", "dual")),
    "TWILIO_API_BASE_URL": ("twilio_api_base_url", _Url("https", "http")),
    "PREWARM_TIMEOUT_S": ("prewarm_timeout_s", _float(0.0, 60.0)),
    "VOICEMAIL_MESSAGE": ("voicemail_message", _text),
    # The cascade (issue 12): Deepgram -> OpenAI chat -> ElevenLabs. A service whose key
    # is unset (and URL left at its default) is the built-in local stand-in.
    "AGENT_BACKEND": ("agent_backend", _Choice(*AGENT_BACKENDS)),
    "DEEPGRAM_API_KEY": ("deepgram_api_key", _text),
    "DEEPGRAM_URL": ("deepgram_url", _Url("ws", "wss")),
    "DEEPGRAM_MODEL": ("deepgram_model", _text),
    "OPENAI_BASE_URL": ("openai_base_url", _Url("http", "https")),
    "OPENAI_CHAT_MODEL": ("openai_chat_model", _text),
    "ELEVENLABS_API_KEY": ("elevenlabs_api_key", _text),
    "ELEVENLABS_URL": ("elevenlabs_url", _Url("ws", "wss")),
    "ELEVENLABS_VOICE_ID": ("elevenlabs_voice_id", _Pattern(
        r"[A-Za-z0-9_-]{1,64}", "letters, digits, _ and -",
        "is not an id of letters, digits, _ and - (at most 64)")),
    "ELEVENLABS_MODEL": ("elevenlabs_model", _text),
}

# Set but empty keeps the default, except for these, where empty turns the feature off.
EMPTY_MEANS_OFF = ("greeting", "input_transcription_model")


def limits(name: str) -> str:
    """Return the valid values of variable `name` as the README table shows them."""
    return _SPEC[name][1].limits


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from `env` (default os.environ); raise ConfigError naming a bad variable."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, (field, parse) in _SPEC.items():
        raw = source.get(name)
        if raw is None or (raw == "" and field not in EMPTY_MEANS_OFF):
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {_shown(name, raw)} {exc}") from None
    known = {f.name for f in fields(Settings)}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown setting override {key!r}")
    values.update(overrides)
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    settings = Settings(**values)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Raise ConfigError for settings that are valid alone but not together."""
    if settings.turn_check_silence_ms >= settings.turn_max_silence_ms:
        raise ConfigError(
            f"TURN_CHECK_SILENCE_MS ({settings.turn_check_silence_ms}) must be below "
            f"TURN_MAX_SILENCE_MS ({settings.turn_max_silence_ms}): the model is asked "
            "after the first, the second ends the turn whatever it said"
        )
    if settings.turn_early_check_ms >= settings.turn_check_silence_ms:
        raise ConfigError(
            f"TURN_EARLY_CHECK_MS ({settings.turn_early_check_ms}) must be below "
            f"TURN_CHECK_SILENCE_MS ({settings.turn_check_silence_ms}), or 0 (off)"
        )
    semantic = settings.turn_detection == "server" and settings.server_vad_type == "semantic_vad"
    if semantic and settings.local_backend:
        raise ConfigError(
            "SERVER_VAD_TYPE=semantic_vad needs OpenAI's Realtime API (set OPENAI_API_KEY): "
            "the built-in backend has server_vad only"
        )
    if semantic and settings.cascade:
        raise ConfigError(
            "SERVER_VAD_TYPE=semantic_vad is the Realtime API's turn detection: with "
            "AGENT_BACKEND=cascade, server turns are Deepgram's endpointing (server_vad)"
        )
    if settings.instance_path and settings.web_concurrency > 1:
        # The kernel hands the stream to any worker; only the one that answered /voice
        # holds the reservation. One worker per instance; more instances for more cores.
        raise ConfigError(
            f"INSTANCE_PATH needs WEB_CONCURRENCY=1 (is {settings.web_concurrency}): the "
            "worker that reserved a call at /voice must be the one its stream reaches; "
            "run one instance per core instead (docs/scaling-out.md)"
        )
    if settings.cascade and settings.elevenlabs_api_key and not settings.elevenlabs_voice_id:
        raise ConfigError("ELEVENLABS_VOICE_ID: required with ELEVENLABS_API_KEY (the voice "
                          "the cascade speaks with)")


def _shown(name: str, raw: str) -> str:
    # Never echo secrets into logs or error messages.
    if "KEY" in name or "TOKEN" in name:
        return "(hidden)"
    return repr(raw[:80])
