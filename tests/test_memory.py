"""What keeps the idle server small: freed start-up memory handed back once, the end-of-turn
model without onnxruntime's memory pattern, modules only some settings use left unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hardening_live import settings

from mediasrv.errors import PeerClosed
from mediasrv.models import turn_model, vad_silero
from mediasrv.web.app import create_app
from mediasrv.web.memory import limit_malloc_arenas, release_freed_memory

ROOT = Path(__file__).resolve().parents[1]


class FakeLibC:
    def __init__(self) -> None:
        self.trims: list[int] = []

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(pad)
        return 1

    def mallopt(self, param: int, value: int) -> int:
        raise AssertionError("not asked for")


def refused() -> None:
    raise PeerClosed("realtime connect failed: refused")


def test_release_trims_every_arena_to_nothing_once() -> None:
    libc = FakeLibC()
    assert release_freed_memory(libc) is True
    assert libc.trims == [0]  # pad 0: keep nothing spare at the top of the heap


def test_the_app_releases_memory_once_after_the_models_are_loaded_and_warmed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    load, warm = vad_silero.load_session, turn_model.load_warm_session
    monkeypatch.setattr(vad_silero, "load_session",
                        lambda *path, **opts: order.append(f"load {len(path)}")
                        or load(*path, **opts))
    monkeypatch.setattr(turn_model, "load_warm_session", lambda: order.append("warm") or warm())
    create_app(settings(turn_model="smart-turn"), connect_realtime=refused,  # type: ignore[arg-type]
               release_memory=lambda: order.append("release"))
    # The end-of-turn model (loaded through the VAD's loader, by path), then the VAD's.
    assert order == ["warm", "load 1", "load 0", "release"]


def test_the_end_of_turn_model_runs_without_onnxruntime_s_memory_pattern() -> None:
    options = turn_model.load_session().get_session_options()
    assert options.enable_mem_pattern is False
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_the_vad_keeps_its_memory_pattern() -> None:
    options = vad_silero.load_session().get_session_options()
    assert options.enable_mem_pattern is True
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


@pytest.mark.parametrize("module", ["twilio.rest", "mediasrv.backends.cascade"])
def test_the_app_leaves_unimported_what_only_some_settings_use(module: str) -> None:
    # twilio.rest: only with the REST API configured; the cascade: only with
    # AGENT_BACKEND=cascade. A fresh interpreter: this one has imported both for others.
    code = f"import sys, mediasrv.web.app; print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


class FakeMallopt(FakeLibC):
    def __init__(self) -> None:
        super().__init__()
        self.opts: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.opts.append((param, value))
        return 1


def test_the_arena_cap_is_malloc_s_m_arena_max() -> None:
    libc = FakeMallopt()
    assert limit_malloc_arenas(2, libc) is True
    assert libc.opts == [(-8, 2)]  # M_ARENA_MAX in glibc's malloc.h
