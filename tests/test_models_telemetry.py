"""onnxruntime's telemetry stays off in the server: no files under $HOME, no extra fds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_loading_the_models_writes_nothing_under_home(tmp_path: Path) -> None:
    unset = ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    code = ("import os\n"
            "from mediasrv.models import turn_model, vad_silero\n"
            "vad_silero.load_session(); turn_model.load_session()\n"
            "print(os.environ['ORT_DISABLE_TELEMETRY'])\n"
            "print(sorted(os.readlink('/proc/self/fd/' + f) for f in os.listdir('/proc/self/fd')"
            " if os.path.exists('/proc/self/fd/' + f)))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0] == "1"
    assert not [p for p in out[1:] if str(tmp_path) in p or ".onnxruntime" in p], out
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*")] == []
