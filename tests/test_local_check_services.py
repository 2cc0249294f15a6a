"""scripts/check_services.py: one line per service, stand-ins when keys are unset, no keys
ever printed. Runs the script as a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mediasrv.localservices import LocalDeepgram

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_services.py"
KEYS = ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "OPENAI_REALTIME_URL",
        "DEEPGRAM_URL", "OPENAI_BASE_URL", "ELEVENLABS_URL", "ELEVENLABS_VOICE_ID",
        "DEEPGRAM_MODEL", "OPENAI_CHAT_MODEL", "ELEVENLABS_MODEL", "AGENT_BACKEND")


def run(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in KEYS}
    return subprocess.run([sys.executable, str(SCRIPT)], env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_with_no_keys_every_service_is_checked_against_its_stand_in() -> None:
    result = run()
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["realtime", "OK"], ["deepgram", "OK"], ["chat", "OK"], ["elevenlabs", "OK"]]
    assert all("local stand-in" in line for line in lines)
    assert result.returncode == 0


def test_a_refused_key_fails_its_line_and_is_never_printed() -> None:
    with LocalDeepgram() as dg:
        dg.start()
        result = run(DEEPGRAM_API_KEY="dg-secret-value-123", DEEPGRAM_URL=dg.url)
    deepgram = next(line for line in result.stdout.splitlines() if line.startswith("deepgram"))
    assert deepgram.split()[:2] == ["deepgram", "FAIL"] and "401" in deepgram
    assert "dg-secret-value-123" not in result.stdout + result.stderr
    assert result.returncode == 1


def test_the_checks_use_mediasrvs_own_settings_and_query() -> None:
    with LocalDeepgram() as dg:
        dg.start()
        result = run(DEEPGRAM_API_KEY=dg.api_key, DEEPGRAM_URL=dg.url, DEEPGRAM_MODEL="whisper")
    deepgram = next(line for line in result.stdout.splitlines() if line.startswith("deepgram"))
    # the stand-in knows no model "whisper": the handshake carried DEEPGRAM_MODEL
    assert deepgram.split()[:2] == ["deepgram", "FAIL"] and "400" in deepgram
    assert dg.stats()["counts"].get("params_refused") == 1


def test_a_setting_mediasrv_would_refuse_stops_the_checks_in_words() -> None:
    result = run(OPENAI_BASE_URL="api.openai.com")
    assert result.returncode == 2
    assert result.stdout.strip() == ("configuration error: OPENAI_BASE_URL: 'api.openai.com' is "
                                     "not a URL like http://HOST or https://HOST")
