"""The tree shows the layers: no module of mediasrv imports from a layer above its own.

Read with `ast` from the source (nothing is imported), so the check also covers imports
inside functions. Each folder's docstring says what may live there; this is the part a
machine can hold it to.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mediasrv"

# The layer of each top-level part of mediasrv (a folder, or a module of the base).
LAYER_OF = {
    "__init__": "base", "audio": "base", "clock": "base", "errors": "base",
    "protocol": "protocol", "models": "models", "policy": "policy", "backends": "backends",
    "call": "call", "localbackend": "standins", "localservices": "standins", "web": "web",
    "wsgi": "entry", "lifecycle": "entry", "emulator": "emulator", "testing": "testing",
    "callctl": "call",
}
# What each layer may import (besides itself).
MAY_IMPORT = {
    "base": set(),
    "protocol": {"base"},
    "models": {"base"},
    "policy": {"base", "models"},
    "backends": {"base", "protocol", "models", "policy"},
    "call": {"base", "protocol", "models", "policy", "backends"},
    "standins": {"base", "protocol"},
    "web": {"base", "protocol", "models", "policy", "backends", "call", "standins"},
    "entry": {"base", "web"},
    "emulator": {"base", "protocol"},
    "testing": set(LAYER_OF.values()),
}
# The call speaks to its backend only through the seam, never to one backend.
CALL_MAY_IMPORT_OF_BACKENDS = {"mediasrv.backends", "mediasrv.backends.base"}
# Pure layers: decisions and wire formats take time and bytes as arguments.
NO_IO = {"protocol", "policy"}
IO_MODULES = {"threading", "socket", "time", "queue", "selectors", "flask", "websocket",
              "simple_websocket", "wsproto", "asyncio"}


def modules() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> str | None:
    """Return the layer of module `mediasrv.x.y` (None outside mediasrv)."""
    parts = name.split(".")
    if parts[0] != "mediasrv":
        return None
    return LAYER_OF[parts[1] if len(parts) > 1 else "__init__"]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) of every import in the file."""
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from mediasrv.policy import vad` names a module
                sub = f"{base}.{alias.name}"
                if PACKAGE.parent.joinpath(*sub.split(".")).with_suffix(".py").exists():
                    yield node.lineno, sub


def violations(path: Path) -> list[str]:
    own = layer(dotted(path))
    assert own is not None
    found = []
    for line, name in imports(path):
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        other = layer(name)
        if other is None:
            if own in NO_IO and name.split(".")[0] in IO_MODULES:
                found.append(f"{where}: {own} is pure, imports {name}")
            continue
        if other != own and other not in MAY_IMPORT[own]:
            found.append(f"{where}: {own} imports {name} ({other})")
        if own == "call" and other == "backends" and name not in CALL_MAY_IMPORT_OF_BACKENDS:
            found.append(f"{where}: the call imports {name}, not the seam mediasrv.backends.base")
    return found


def test_every_module_of_mediasrv_has_a_layer() -> None:
    for path in modules():
        assert layer(dotted(path)) is not None, path


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_docstring_names_its_layer(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Layer:" in doc, f"{path}: its docstring does not say its layer ('Layer: ...')"
