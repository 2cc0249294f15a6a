"""OpenAI Chat Completions request validation and error bodies (PROTOCOLS-2 4a). Pure.

Layer: stand-ins.

`validate()` turns a request body into a `ChatRequest` or raises `ApiError`, whose
`body()` is the JSON the real API answers: `{"error": {message, type, param, code}}`.
Message texts copy the real API's where they are known (including its spelling of
"preceeding"); the rest follow its style.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .common import JsonObj

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
TOP_KEYS = frozenset({"model", "messages", "stream", "stream_options", "tools", "tool_choice",
                      "parallel_tool_calls", "max_completion_tokens", "max_tokens",
                      "temperature", "top_p", "n", "stop", "user", "seed", "service_tier",
                      "store", "metadata", "frequency_penalty", "presence_penalty",
                      "response_format", "logprobs", "top_logprobs", "logit_bias",
                      "reasoning_effort", "prompt_cache_key", "safety_identifier",
                      "verbosity", "modalities", "prediction", "audio"})
MESSAGE_KEYS = {"system": {"content", "name"}, "developer": {"content", "name"},
                "user": {"content", "name"}, "tool": {"content", "tool_call_id"},
                "function": {"content", "name"},
                "assistant": {"content", "name", "tool_calls", "refusal", "audio",
                              "function_call"}}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
STREAM_OPTION_KEYS = frozenset({"include_usage", "include_obfuscation"})
PARSE_ERROR = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)")
NO_KEY = ("You didn't provide an API key. You need to provide your API key in an "
          "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
          "as the password field (with blank username) if you're accessing the API from your "
          "browser and are prompted for a username and password. You can obtain an API key "
          "from https://platform.openai.com/account/api-keys.")
WRONG_KEY = ("Incorrect API key provided: ********. You can find your API key at "
             "https://platform.openai.com/account/api-keys.")


class ApiError(Exception):
    """An error the API answers with `status` and the standard error object."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": self.kind,
                                     "param": self.param, "code": self.code}}).encode()


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a valid request the stand-in uses."""

    model: str
    messages: list[JsonObj]
    stream: bool
    include_usage: bool
    include_obfuscation: bool
    tools: list[JsonObj]
    tool_choice: Any


def check_auth(header: str | None, key: str) -> None:
    """Raise 401 unless `Authorization: Bearer <key>`."""
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, NO_KEY)
    if header[7:].strip() != key:
        raise ApiError(401, WRONG_KEY, code="invalid_api_key")


def check_model(model: str, models: frozenset[str] | None) -> None:
    """Raise 404 model_not_found if `models` is a set and `model` is not in it."""
    if models is not None and model not in models:
        raise ApiError(404, f"The model `{model}` does not exist or you do not have access "
                            "to it.", code="model_not_found")


def validate(raw: bytes, models: frozenset[str] | None) -> ChatRequest:
    """Parse and validate a `/v1/chat/completions` body, or raise ApiError."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, PARSE_ERROR) from exc
    if not isinstance(body, dict):
        raise ApiError(400, PARSE_ERROR)
    for key in body:
        if key not in TOP_KEYS:
            raise ApiError(400, f"Unrecognized request argument supplied: {key}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter")
    messages = _messages(body.get("messages"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is not None and not stream:
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is "
                            "enabled.", "stream_options")
    options = _stream_options(options or {})
    tools = _tools(body.get("tools", []))
    check_model(model, models)
    return ChatRequest(model, messages, stream, options.get("include_usage", False),
                       options.get("include_obfuscation", True), tools,
                       body.get("tool_choice", "auto" if tools else "none"))


def _messages(value: Any) -> list[JsonObj]:
    if value is None:
        raise ApiError(400, "Missing required parameter: 'messages'.", "messages",
                       "missing_required_parameter")
    if not isinstance(value, list):
        raise _bad_type("messages", "an array", value)
    if not value:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum "
                            "length 1, but got an empty array instead.", "messages",
                       "empty_array")
    for i, msg in enumerate(value):
        _message(i, msg)
    _check_tool_pairs(value)
    return value


def _message(i: int, msg: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise _bad_type(where, "an object", msg)
    role = msg.get("role")
    if role is None:
        raise ApiError(400, f"Missing required parameter: '{where}.role'.", f"{where}.role",
                       "missing_required_parameter")
    if role not in ROLES:
        raise ApiError(400, f"Invalid value: '{role}'. Supported values are: 'system', "
                            "'assistant', 'user', 'function', 'tool', and 'developer'.",
                       f"{where}.role", "invalid_value")
    for key in msg:
        if key != "role" and key not in MESSAGE_KEYS[role]:
            raise ApiError(400, f"Unrecognized request argument supplied: {where}.{key}",
                           f"{where}.{key}", "unknown_parameter")
    if "content" not in msg and not (role == "assistant" and msg.get("tool_calls")):
        raise ApiError(400, f"Missing required parameter: '{where}.content'.",
                       f"{where}.content", "missing_required_parameter")
    content = msg.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _bad_type(f"{where}.content", "one of a string or array of objects", content)
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        raise ApiError(400, f"Missing required parameter: '{where}.tool_call_id'.",
                       f"{where}.tool_call_id", "missing_required_parameter")


def _check_tool_pairs(messages: list[JsonObj]) -> None:
    """Every tool message answers the assistant's preceding tool_calls, and all of them."""
    open_ids: dict[str, int] = {}
    for i, msg in enumerate(messages):
        if msg["role"] == "tool":
            if msg["tool_call_id"] not in open_ids:
                raise ApiError(400, "Invalid parameter: messages with role 'tool' must be a "
                                    "response to a preceeding message with 'tool_calls'.",
                               f"messages.[{i}].role")
            del open_ids[msg["tool_call_id"]]
            continue
        if open_ids:
            _unanswered(open_ids)
        if msg["role"] == "assistant" and msg.get("tool_calls"):
            open_ids = {str(call.get("id")): i for call in msg["tool_calls"]
                        if isinstance(call, dict)}
    if open_ids:
        _unanswered(open_ids)


def _unanswered(open_ids: dict[str, int]) -> None:
    index = next(iter(open_ids.values()))
    raise ApiError(400, "An assistant message with 'tool_calls' must be followed by tool "
                        "messages responding to each 'tool_call_id'. The following "
                        f"tool_call_ids did not have response messages: {', '.join(open_ids)}",
                   f"messages.[{index}].role")


def _stream_options(value: Any) -> JsonObj:
    if not isinstance(value, dict):
        raise _bad_type("stream_options", "an object", value)
    for key, item in value.items():
        if key not in STREAM_OPTION_KEYS:
            raise ApiError(400, f"Unrecognized request argument supplied: stream_options.{key}",
                           f"stream_options.{key}", "unknown_parameter")
        if not isinstance(item, bool):
            raise _bad_type(f"stream_options.{key}", "a boolean", item)
    return value


def _tools(value: Any) -> list[JsonObj]:
    if not isinstance(value, list):
        raise _bad_type("tools", "an array", value)
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise ApiError(400, f"Invalid value: '{tool.get('type')}'. Supported values are: "
                                "'function' and 'custom'.", f"{where}.type", "invalid_value")
        function = tool.get("function")
        if not isinstance(function, dict) or "name" not in function:
            raise ApiError(400, f"Missing required parameter: '{where}.function.name'.",
                           f"{where}.function.name", "missing_required_parameter")
        if not isinstance(function["name"], str) or not TOOL_NAME.match(function["name"]):
            raise ApiError(400, f"Invalid '{where}.function.name': string does not match "
                                "pattern. Expected a string that matches the pattern "
                                "'^[a-zA-Z0-9_-]+$'.", f"{where}.function.name",
                           "invalid_value")
    return value


def _bad_type(param: str, expected: str, got: Any) -> ApiError:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             dict: "an object", list: "an array", type(None): "null"}
    return ApiError(400, f"Invalid type for '{param}': expected {expected}, but got "
                         f"{names.get(type(got), 'a value')} instead.", param, "invalid_type")
