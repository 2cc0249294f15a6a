"""TOOLS_FILE and TRANSFER_NUMBERS: read once at start-up, refused in words. Pure.

TOOLS_FILE is JSON: {"tools": [{"name", "description", "parameters", "url",
"headers"?}]}. `parameters` is a JSON-schema object (what both APIs take); `url` is the
HTTPS webhook mediasrv POSTs the arguments to (plain http only to a loopback host, for
local development and tests); `headers` (optional) are sent with every POST, e.g. an
`Authorization` for the webhook, and are never logged. Every problem raises ConfigError
naming the tool and the field, e.g. "TOOLS_FILE: tool 2 (look_up_order): url: must be
https:// (http:// only to 127.0.0.1 or localhost)".

TRANSFER_NUMBERS is a comma-separated allow-list: "+15551230001" or, with a name the
model can use, "sales=+15551230001".

Layer: call control (pure but for reading the file at start-up).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mediasrv.errors import ConfigError

JsonObj = dict[str, Any]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what both OpenAI APIs accept
LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # ITU E.164: at most 15 digits
BUILTIN_NAMES = frozenset({"end_call", "transfer_call"})
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
TOOL_KEYS = frozenset({"name", "description", "parameters", "url", "headers"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_TOOLS = 64  # a model offered more tools chooses badly; also bounds the session size
MAX_DESCRIPTION = 1024
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WebhookTool:
    """A user tool: what the model sees, and where its arguments are POSTed."""

    name: str
    description: str
    parameters: JsonObj
    url: str
    # Header values may be credentials: kept out of repr (and so out of any log line).
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def url_for_logs(self) -> str:
        """Return the URL without its query string (which may carry a token)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}" \
               f"{parts.path}"


@dataclass(frozen=True, slots=True)
class TransferTarget:
    number: str
    label: str = ""

    def spoken(self) -> str:
        return f"{self.label} ({self.number})" if self.label else self.number


def parse_transfer_numbers(text: str) -> tuple[TransferTarget, ...]:
    """Parse TRANSFER_NUMBERS; raise ConfigError naming the bad entry."""
    targets: list[TransferTarget] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        label, _, number = raw.rpartition("=")
        label, number = label.strip().lower(), number.strip()
        if not E164.match(number):
            raise ConfigError(f"TRANSFER_NUMBERS: {raw!r}: the number must be E.164, "
                              "like +15551230001")
        if label and not LABEL.match(label):
            raise ConfigError(f"TRANSFER_NUMBERS: {raw!r}: a name is 1-32 letters, digits, "
                              "'-' or '_', starting with a letter")
        if any(t.number == number or (label and t.label == label) for t in targets):
            raise ConfigError(f"TRANSFER_NUMBERS: {raw!r} is listed twice")
        targets.append(TransferTarget(number, label))
    return tuple(targets)


def load_tools_file(path: str | Path) -> tuple[WebhookTool, ...]:
    """Read and validate TOOLS_FILE; raise ConfigError in words."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"TOOLS_FILE: cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("TOOLS_FILE: larger than 1 MiB")
    return parse_tools(data)


def parse_tools(data: bytes | str) -> tuple[WebhookTool, ...]:
    """Validate the text of a tools file; raise ConfigError naming the tool and field."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"TOOLS_FILE: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"tools"} or not isinstance(doc["tools"], list):
        raise ConfigError('TOOLS_FILE: must be an object {"tools": [...]}')
    if len(doc["tools"]) > MAX_TOOLS:
        raise ConfigError(f"TOOLS_FILE: {len(doc['tools'])} tools, at most {MAX_TOOLS}")
    tools: list[WebhookTool] = []
    for number, entry in enumerate(doc["tools"], start=1):
        tool = _tool(entry, number)
        if any(t.name == tool.name for t in tools):
            raise ConfigError(f"TOOLS_FILE: tool {number}: name {tool.name!r} is used twice")
        tools.append(tool)
    return tuple(tools)


def _tool(entry: Any, number: int) -> WebhookTool:
    where = f"TOOLS_FILE: tool {number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be an object")
    name = entry.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ConfigError(f"{where}: name: 1-64 letters, digits, '_' or '-'")
    where = f"{where} ({name})"
    if name in BUILTIN_NAMES:
        raise ConfigError(f"{where}: name: {name!r} is a built-in tool")
    unknown = set(entry) - TOOL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: "
                          f"{sorted(TOOL_KEYS)}")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip() \
            or len(description) > MAX_DESCRIPTION:
        raise ConfigError(f"{where}: description: a non-empty text of at most "
                          f"{MAX_DESCRIPTION} characters (the model decides from it)")
    problem = schema_problem(entry.get("parameters"))
    if problem:
        raise ConfigError(f"{where}: parameters: {problem}")
    return WebhookTool(name, description.strip(), entry["parameters"],
                       _url(entry.get("url"), where), _headers(entry.get("headers"), where))


def _url(url: Any, where: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{where}: url: required, the webhook's https:// URL")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ConfigError(f"{where}: url: must be https:// (http:// only to 127.0.0.1 or "
                      "localhost)")


def _headers(headers: Any, where: str) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9-]{1,64}", k)
            and isinstance(v, str) and "\n" not in v and "\r" not in v
            for k, v in headers.items()):
        raise ConfigError(f"{where}: headers: an object of header names to one-line texts")
    reserved = {k.lower() for k in headers} & {"content-type", "content-length", "host"}
    if reserved:
        raise ConfigError(f"{where}: headers: {sorted(reserved)} are set by mediasrv")
    return tuple(headers.items())


def schema_problem(schema: Any) -> str | None:
    """Return why `schema` is not a usable tool-parameters schema, or None if it is."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return 'must be a JSON-schema object: {"type": "object", "properties": {...}}'
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return "properties: must be an object"
    for key, prop in properties.items():
        if not isinstance(prop, dict):
            return f"properties.{key}: must be an object"
        kind = prop.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if kind is not None and not all(k in JSON_TYPES for k in kinds):
            return f"properties.{key}.type: {kind!r} is not a JSON-schema type"
        if kind is None and not {"enum", "anyOf", "oneOf", "const"} & set(prop):
            return f"properties.{key}: needs a type (or enum/anyOf/oneOf/const)"
        if "enum" in prop and (not isinstance(prop["enum"], list) or not prop["enum"]):
            return f"properties.{key}.enum: must be a non-empty list"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return "required: must be a list of property names"
    missing = [r for r in required if r not in properties]
    if missing:
        return f"required: {missing} not in properties"
    return None
