"""Check credentials and connectivity of every service mediasrv talks to; one line each.

    .venv/bin/python scripts/check_services.py

The settings are mediasrv's own (mediasrv.web.settings: the same variables, defaults and
checks as the server). For each service whose key is set, the cheapest real request that
proves both the key and the path mediasrv uses; for a service that mediasrv would serve
with its built-in local stand-in (no key, URL at its default), the same request against
that stand-in (started here, in-process):

  realtime    WebSocket to the Realtime URL, wait for `session.created`, close (no audio)
  deepgram    WebSocket to DEEPGRAM_URL with the cascade's own query (DEEPGRAM_MODEL),
              `CloseStream` at once, wait for `Metadata` (no audio is billed)
  chat        GET {OPENAI_BASE_URL}/models/{OPENAI_CHAT_MODEL} (free; proves key and model)
  elevenlabs  WebSocket to multi-stream-input with the xi-api-key header, `close_socket` at
              once, wait for the 1000 close (no text, no characters billed)

Keys are never printed: every line is passed through `redact()`, and error bodies are
reduced to their error code. Exit status 0 when every line is OK, 1 otherwise, 2 for a
setting mediasrv itself would refuse.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mediasrv.backends.cascade import stt_wire, tts_wire  # noqa: E402
from mediasrv.errors import ConfigError  # noqa: E402
from mediasrv.localbackend import LocalBackend  # noqa: E402
from mediasrv.localservices import (  # noqa: E402
    DeepgramOptions,
    LocalChat,
    LocalDeepgram,
    LocalElevenLabs,
)
from mediasrv.web.settings import Settings, load_settings  # noqa: E402
from mediasrv.web.wiring import LOCAL_ENDPOINTING_MS, LOCAL_VOICE  # noqa: E402

TIMEOUT_S = 10.0


def redact(text: str, settings: Settings) -> str:
    """Replace every configured key in `text` with ***."""
    for key in settings.secrets:
        text = text.replace(key, "***")
    return text


def ws_check(url: str, header: list[str], first: str | None, until: Callable[[dict], bool],
             ) -> str:
    """Open a WebSocket, send `first`, read until `until(message)` or a close; describe it."""
    ws = websocket.create_connection(url, header=header, timeout=TIMEOUT_S)
    try:
        if first is not None:
            ws.send(first)
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                if code == 1000:
                    return "closed 1000"
                raise RuntimeError(f"closed {code}: {data[2:].decode(errors='replace')[:80]}")
            message = json.loads(data)
            if "error" in message:
                raise RuntimeError(f"error {message.get('error')!r}")
            if until(message):
                return f"got {message.get('type', 'message')}"
    finally:
        ws.close()
        ws.shutdown()


def check_realtime(settings: Settings) -> tuple[str, str]:
    if settings.local_backend:
        with LocalBackend().start() as backend:
            return "local stand-in", ws_check(backend.url, [], None,
                                              lambda m: m.get("type") == "session.created")
    header = [f"Authorization: Bearer {settings.openai_api_key}"] if settings.openai_api_key \
        else []
    url = settings.realtime_url()
    return url.split("?")[0], ws_check(url, header, None,
                                       lambda m: m.get("type") == "session.created")


def check_deepgram(s: Settings) -> tuple[str, str]:
    if s.stand_in("deepgram"):
        with LocalDeepgram(DeepgramOptions(recognizer="canned")).start() as dg:
            return "local stand-in", _deepgram(dg.url, dg.api_key, s)
    return s.deepgram_url, _deepgram(s.deepgram_url, s.deepgram_api_key, s)


def _deepgram(url: str, key: str, s: Settings) -> str:
    listen = stt_wire.listen_url(url, model=s.deepgram_model, endpointing_ms=LOCAL_ENDPOINTING_MS)
    return ws_check(listen, [f"Authorization: Token {key}"], stt_wire.CLOSE_STREAM,
                    lambda m: m.get("type") == "Metadata")


def check_chat(s: Settings) -> tuple[str, str]:
    if s.stand_in("chat"):
        with LocalChat().start() as chat:
            return "local stand-in", _get_model(chat.base_url, chat.api_key, s.openai_chat_model)
    return (f"{s.openai_base_url} model {s.openai_chat_model}",
            _get_model(s.openai_base_url, s.openai_api_key, s.openai_chat_model))


def _get_model(base: str, key: str, model: str) -> str:
    request = urllib.request.Request(f"{base}/models/{model}",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return f"HTTP {response.status}, model {json.loads(response.read())['id']}"
    except urllib.error.HTTPError as exc:
        try:
            code = json.loads(exc.read())["error"].get("code")
        except (ValueError, KeyError, AttributeError):
            code = None
        raise RuntimeError(f"HTTP {exc.code} {code or ''}".strip()) from None


def check_elevenlabs(s: Settings) -> tuple[str, str]:
    if s.stand_in("elevenlabs"):
        with LocalElevenLabs().start() as tts:
            return "local stand-in", _elevenlabs(tts.base_url, tts.api_key, LOCAL_VOICE, s)
    if not s.elevenlabs_voice_id:
        raise RuntimeError("ELEVENLABS_VOICE_ID is not set")
    url = f"{s.elevenlabs_url} voice {s.elevenlabs_voice_id}"
    return url, _elevenlabs(s.elevenlabs_url, s.elevenlabs_api_key, s.elevenlabs_voice_id, s)


def _elevenlabs(base: str, key: str, voice: str, s: Settings) -> str:
    url = tts_wire.stream_url(base, voice_id=voice, model=s.elevenlabs_model)
    return ws_check(url, [f"xi-api-key: {key}"], tts_wire.CLOSE_SOCKET, lambda m: False)


CHECKS: dict[str, Callable[[Settings], tuple[str, str]]] = {
    "realtime": check_realtime, "deepgram": check_deepgram, "chat": check_chat,
    "elevenlabs": check_elevenlabs,
}


def main() -> int:
    """Run every check, print one line per service, return the exit status."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", flush=True)
        return 2
    failed = 0
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            where, result = check(settings)
            line = f"{name:<11} OK    {where}: {result}"
        except websocket.WebSocketBadStatusException as exc:
            failed += 1
            line = f"{name:<11} FAIL  handshake refused: HTTP {exc.status_code}"
        except Exception as exc:  # one line per service, whatever went wrong
            failed += 1
            line = f"{name:<11} FAIL  {type(exc).__name__}: {exc}"
        elapsed_ms = (time.monotonic() - started) * 1000
        print(redact(f"{line} ({elapsed_ms:.0f} ms)", settings), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
