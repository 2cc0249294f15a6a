"""The README is the quickstart: its commands are the ones CI runs, its links stay inside
the clone, and its run command installs only what the server needs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def requirements(name: str) -> dict[str, str]:
    """Return package -> pinned version of a requirements file (without its -r includes)."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            package, sep, version = line.partition("==")
            assert sep and version, f"{name}: {line!r} is not pinned"
            pins[package.lower()] = version
    return pins


def test_ci_runs_exactly_the_readme_test_command() -> None:
    run, test = shell_blocks(README)[:2]
    ci = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln and ln[0] not in "#"]
    assert ci[-1] == test
    assert "pip install -r requirements-dev.txt" in test


def test_the_run_command_installs_only_the_server_requirements() -> None:
    run = shell_blocks(README)[0]
    assert "pip install -r requirements.txt" in run and run.endswith("gunicorn -c gunicorn.conf.py")
    server, dev = requirements("requirements.txt"), requirements("requirements-dev.txt")
    assert not {"pytest", "hypothesis", "ruff", "mypy", "matplotlib", "psutil"} & set(server)
    assert not set(server) & set(dev)  # dev includes the server's through -r, never twice
    assert (ROOT / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1



def test_readme_links_and_paths_stay_inside_the_clone() -> None:
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target
