"""The tool registry: what the model may call, and what each call becomes. Pure.

Built-ins: `end_call` (the model decides the conversation is over) and
`transfer_call(to)` (offered only when TRANSFER_NUMBERS lists somewhere to go). User
tools come from TOOLS_FILE (tools_file.py). `decide()` turns one `ToolCall` into a
decision for the call engine: end the call, transfer, run a webhook, or `Answer` at once
with a result the model hears -- every refusal (unknown tool, arguments that are not
JSON or miss a required field, a number not on the allow-list, a call cut short by a
barge-in) is such an answer, so the model can tell the caller why and go on.

Arguments are checked against the top level of the tool's schema (an object, required
properties present, declared JSON types and enums); deeper checks are the webhook's.

Layer: call control (pure: no threads, no I/O).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mediasrv.backends.base import ToolSpec
from mediasrv.protocol.toolcalls import ToolCall

from .tools_file import TransferTarget, WebhookTool

JsonObj = dict[str, Any]

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
END_CALL_SCHEMA: JsonObj = {
    "type": "object",
    "properties": {"reason": {"type": "string",
                              "description": "why the call is over, in a few words"}},
    "required": [],
}
END_CALL_DESCRIPTION = (
    "End the phone call. Use it only when the conversation is over: the caller said "
    "goodbye, asked to hang up, or has nothing more to ask. Say a short goodbye; the line "
    "is closed once the caller has heard it.")
# What the model is told when the engine carries out an end_call or a transfer_call: the
# goodbye or handover line it then speaks is the line the exit waits for (exits.py).
END_CALL_ACCEPTED = json.dumps({"ok": True, "next": "Say a short goodbye now. The call "
                                                    "ends when the caller has heard it."})
TRANSFER_ACCEPTED = json.dumps({"ok": True, "next": "Tell the caller in one short sentence "
                                                    "that you are transferring them now."})


@dataclass(frozen=True, slots=True)
class EndCall:
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Transfer:
    call_id: str
    target: TransferTarget


@dataclass(frozen=True, slots=True)
class RunWebhook:
    call_id: str
    tool: WebhookTool
    arguments: JsonObj


@dataclass(frozen=True, slots=True)
class Answer:
    """A result to hand the model at once (`output` is JSON text); `refused` says why."""

    call_id: str
    output: str
    refused: str = ""


Decision = EndCall | Transfer | RunWebhook | Answer


def refusal(call_id: str, why: str) -> Answer:
    """Return an `Answer` telling the model the call was not carried out, and why."""
    return Answer(call_id, json.dumps({"ok": False, "error": why}), refused=why)


class ToolRegistry:
    """The tools of one server: built-ins by settings, user tools from TOOLS_FILE."""

    def __init__(self, transfer_targets: tuple[TransferTarget, ...] = (),
                 webhooks: tuple[WebhookTool, ...] = (), end_call: bool = True) -> None:
        self._targets = transfer_targets
        self._webhooks = {tool.name: tool for tool in webhooks}
        self._end_call = end_call
        self._specs = self._build_specs()

    def specs(self) -> tuple[ToolSpec, ...]:
        """Return the tools as the seam offers them to any backend (no URLs, no headers)."""
        return self._specs

    def chat_tools(self) -> list[JsonObj]:
        """Return `tools` for a Chat Completions request (functions wrapped once)."""
        return [{"type": "function", "function": {"name": s.name, "description":
                 s.description, "parameters": s.parameters}} for s in self._specs]

    def decide(self, call: ToolCall) -> Decision:
        """Turn one model call into what the engine does; see the module docstring."""
        if not call.complete:
            return refusal(call.call_id, "the call was cut off before its arguments were "
                                         "complete (the caller interrupted); ask again if "
                                         "it is still needed")
        spec = next((s for s in self._specs if s.name == call.name), None)
        if spec is None:
            names = ", ".join(s.name for s in self._specs) or "none"
            return refusal(call.call_id, f"there is no tool named {call.name!r}; the tools "
                                         f"are: {names}")
        arguments = _arguments(call.arguments)
        if isinstance(arguments, str):
            return refusal(call.call_id, f"{call.name}: {arguments}")
        if call.name == TRANSFER_CALL:  # its own refusal names the allowed destinations
            return self._transfer(call.call_id, arguments.get("to"))
        problem = argument_problem(arguments, spec.parameters)
        if problem:
            return refusal(call.call_id, f"{call.name}: {problem}")
        if call.name == END_CALL:
            return EndCall(call.call_id, str(arguments.get("reason", "")))
        return RunWebhook(call.call_id, self._webhooks[call.name], arguments)

    def _transfer(self, call_id: str, to: Any) -> Decision:
        wanted = to.strip().lower() if isinstance(to, str) else ""
        for target in self._targets:
            if wanted in (target.number, target.label):
                return Transfer(call_id, target)
        allowed = ", ".join(t.spoken() for t in self._targets)
        return refusal(call_id, f"transfer refused: {to!r} is not an allowed transfer "
                                f"destination (allowed: {allowed}); tell the caller you "
                                "cannot transfer them there")

    def _build_specs(self) -> tuple[ToolSpec, ...]:
        specs: list[ToolSpec] = []
        if self._end_call:
            specs.append(ToolSpec(END_CALL, END_CALL_DESCRIPTION, END_CALL_SCHEMA))
        if self._targets:
            specs.append(self._transfer_spec())
        specs.extend(ToolSpec(t.name, t.description, t.parameters)
                     for t in self._webhooks.values())
        return tuple(specs)

    def _transfer_spec(self) -> ToolSpec:
        choices = [t.label or t.number for t in self._targets]
        listing = ", ".join(t.spoken() for t in self._targets)
        return ToolSpec(
            TRANSFER_CALL,
            "Transfer the caller to a person. Use it when the caller asks for a person or "
            "for something you cannot do. Allowed destinations: " + listing + ". Say one "
            "short sentence first; the transfer starts once the caller has heard it.",
            {"type": "object",
             "properties": {"to": {"type": "string", "enum": choices,
                                   "description": "where to transfer the caller"}},
             "required": ["to"]})


def _arguments(text: str) -> JsonObj | str:
    """Return the decoded arguments, or why they cannot be used."""
    if not text.strip():
        return {}  # models send "" for a call without parameters
    try:
        value = json.loads(text)
    except ValueError:
        return "the arguments are not valid JSON"
    if not isinstance(value, dict):
        return "the arguments must be a JSON object"
    return value


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


def argument_problem(arguments: JsonObj, schema: JsonObj) -> str | None:
    """Return why `arguments` do not fit the top level of `schema`, or None."""
    properties: JsonObj = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in arguments]
    if missing:
        return f"missing required argument(s) {missing}"
    if schema.get("additionalProperties") is False:
        extra = sorted(set(arguments) - set(properties))
        if extra:
            return f"unknown argument(s) {extra}"
    for name, value in arguments.items():
        prop = properties.get(name)
        if not isinstance(prop, dict):
            continue
        if "enum" in prop and value not in prop["enum"]:
            return f"argument {name!r}: {value!r} is not one of {prop['enum']}"
        kind = prop.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind else []
        if kinds and not any(_is_type(value, k) for k in kinds):
            return f"argument {name!r}: expected {' or '.join(kinds)}"
    return None


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("number", "integer"):
        return False  # JSON true is not a number, though Python's bool is an int
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PY_TYPES.get(kind, (object,)))
