"""The tool registry, TOOLS_FILE and TRANSFER_NUMBERS validation, the tools payloads. Pure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mediasrv.callctl.tools import (
    Answer,
    EndCall,
    RunWebhook,
    ToolRegistry,
    Transfer,
)
from mediasrv.callctl.tools_file import (
    TransferTarget,
    load_tools_file,
    parse_tools,
    parse_transfer_numbers,
)
from mediasrv.errors import ConfigError
from mediasrv.protocol.toolcalls import ToolCall

ORDER_TOOL: dict[str, Any] = {
    "name": "look_up_order", "description": "Find an order by its number.",
    "parameters": {"type": "object",
                   "properties": {"order": {"type": "integer"},
                                  "channel": {"type": "string", "enum": ["web", "phone"]}},
                   "required": ["order"]},
    "url": "https://tools.example.com/order?key=secret-in-query",
    "headers": {"Authorization": "Bearer very-secret"}}
TARGETS = parse_transfer_numbers("sales=+15551230001, +15551230002")


def tools_text(*tools: dict[str, Any]) -> str:
    return json.dumps({"tools": list(tools)})


def registry(**kw: Any) -> ToolRegistry:
    return ToolRegistry(TARGETS, parse_tools(tools_text(ORDER_TOOL)), **kw)


def error_of(answer: Any) -> str:
    assert isinstance(answer, Answer) and answer.refused
    body = json.loads(answer.output)
    assert body["ok"] is False
    return str(body["error"])


# -- TRANSFER_NUMBERS -----------------------------------------------------------------------


def test_transfer_numbers_take_plain_and_named_entries() -> None:
    assert TARGETS == (TransferTarget("+15551230001", "sales"), TransferTarget("+15551230002"))


@pytest.mark.parametrize("text, words", [
    ("555-1234", "E.164"), ("+15551230001,+15551230001", "twice"),
    ("Sales Team=+15551230001", "a name is")])
def test_a_bad_transfer_number_stops_start_up_naming_the_entry(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_transfer_numbers(text)


# -- TOOLS_FILE -----------------------------------------------------------------------------


def test_a_valid_tools_file_gives_webhook_tools() -> None:
    (tool,) = parse_tools(tools_text(ORDER_TOOL))
    assert (tool.name, tool.url) == ("look_up_order", ORDER_TOOL["url"])
    assert tool.headers == (("Authorization", "Bearer very-secret"),)


def test_header_values_and_the_url_query_stay_out_of_repr_and_log_urls() -> None:
    (tool,) = parse_tools(tools_text(ORDER_TOOL))
    assert "very-secret" not in repr(tool)
    assert tool.url_for_logs() == "https://tools.example.com/order"


@pytest.mark.parametrize("change, words", [
    ({"name": "bad name"}, "tool 1: name"),
    ({"name": "end_call"}, "built-in"),
    ({"url": "http://tools.example.com/x"}, "must be https://"),
    ({"url": None}, "url: required"),
    ({"description": ""}, "description"),
    ({"parameters": {"type": "string"}}, "parameters: must be a JSON-schema object"),
    ({"parameters": {"type": "object", "properties": {"a": {"type": "text"}}}},
     "properties.a.type"),
    ({"parameters": {"type": "object", "properties": {}, "required": ["a"]}},
     r"required: \['a'\] not in properties"),
    ({"headers": {"Content-Type": "text/plain"}}, "set by mediasrv"),
    ({"timeout": 3}, "unknown field"),
])
def test_a_bad_tool_stops_start_up_naming_the_tool_and_field(change: dict[str, Any],
                                                            words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        parse_tools(tools_text({**ORDER_TOOL, **change}))
    assert str(err.value).startswith("TOOLS_FILE: tool 1")


def test_plain_http_is_allowed_to_a_loopback_webhook() -> None:
    (tool,) = parse_tools(tools_text({**ORDER_TOOL, "url": "http://127.0.0.1:8080/t"}))
    assert tool.url == "http://127.0.0.1:8080/t"


def test_two_tools_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_tools(tools_text(ORDER_TOOL, ORDER_TOOL))


@pytest.mark.parametrize("text", ["[]", "{not json", '{"tools": {}}', '{"tools": [], "x": 1}'])
def test_a_tools_file_of_the_wrong_shape_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="TOOLS_FILE"):
        parse_tools(text)


def test_a_missing_tools_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*nope.json"):
        load_tools_file(tmp_path / "nope.json")


# -- decisions ------------------------------------------------------------------------------


def test_end_call_becomes_an_end_call_decision_with_its_reason() -> None:
    decision = registry().decide(ToolCall("c1", "end_call", '{"reason": "caller is done"}'))
    assert decision == EndCall("c1", "caller is done")


def test_end_call_with_empty_arguments_is_accepted() -> None:
    assert registry().decide(ToolCall("c1", "end_call", "")) == EndCall("c1", "")


def test_transfer_to_an_allowed_name_or_number_becomes_a_transfer() -> None:
    reg = registry()
    assert reg.decide(ToolCall("c1", "transfer_call", '{"to": "Sales"}')) == \
        Transfer("c1", TARGETS[0])
    assert reg.decide(ToolCall("c2", "transfer_call", '{"to": "+15551230002"}')) == \
        Transfer("c2", TARGETS[1])


def test_transfer_elsewhere_is_refused_with_the_allowed_destinations() -> None:
    answer = registry().decide(ToolCall("c1", "transfer_call", '{"to": "+19005550000"}'))
    error = error_of(answer)
    assert "not an allowed transfer destination" in error
    assert "sales (+15551230001)" in error and "+15551230002" in error


def test_a_user_tool_call_becomes_a_webhook_run_with_decoded_arguments() -> None:
    decision = registry().decide(ToolCall("c1", "look_up_order", '{"order": 42}'))
    assert isinstance(decision, RunWebhook)
    assert (decision.tool.name, decision.arguments) == ("look_up_order", {"order": 42})


@pytest.mark.parametrize("arguments, words", [
    ('{"order": ', "not valid JSON"), ("[1]", "must be a JSON object"),
    ("{}", "missing required argument(s) ['order']"),  # plain `in`, not a regex
    ('{"order": "42"}', "expected integer"), ('{"order": true}', "expected integer"),
    ('{"order": 1, "channel": "fax"}', "is not one of"),
])
def test_bad_arguments_are_refused_with_a_reason_the_model_hears(arguments: str,
                                                                words: str) -> None:
    answer = registry().decide(ToolCall("c1", "look_up_order", arguments))
    assert words in error_of(answer)


def test_an_unknown_tool_is_refused_naming_the_tools_there_are() -> None:
    error = error_of(registry().decide(ToolCall("c1", "launch_rocket", "{}")))
    assert "no tool named 'launch_rocket'" in error and "look_up_order" in error


def test_a_call_cut_off_by_a_barge_in_is_not_run() -> None:
    decision = registry().decide(ToolCall("c1", "end_call", "{}", complete=False))
    assert "cut off" in error_of(decision)


# -- payloads ------------------------------------------------------------------------------


def test_transfer_is_offered_only_when_there_are_transfer_numbers() -> None:
    assert [s.name for s in ToolRegistry().specs()] == ["end_call"]
    assert [s.name for s in registry().specs()] == ["end_call", "transfer_call",
                                                    "look_up_order"]


def test_a_webhook_tool_is_offered_with_its_description_and_parameters() -> None:
    spec = registry().specs()[2]
    assert (spec.name, spec.description, spec.parameters) == (
        "look_up_order", "Find an order by its number.", ORDER_TOOL["parameters"])


def test_chat_tools_wrap_each_function_once() -> None:
    tool = registry().chat_tools()[1]
    assert set(tool) == {"type", "function"}
    assert tool["function"]["name"] == "transfer_call"
    assert tool["function"]["parameters"]["properties"]["to"]["enum"] == \
        ["sales", "+15551230002"]


def test_no_payload_carries_a_webhook_url_or_header() -> None:
    specs = [(s.name, s.description, s.parameters) for s in registry().specs()]
    text = json.dumps([specs, registry().chat_tools()])
    assert "tools.example.com" not in text and "very-secret" not in text
