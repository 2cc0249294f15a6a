"""The OpenAI chat stand-in: pure answer planning and stream timing, and the HTTP server
over real loopback sockets with http.client (every read bounded by a socket timeout)."""

from __future__ import annotations

import http.client
import json
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mediasrv.localservices import ChatOptions, Fault, LocalChat
from mediasrv.localservices.chat_stream import ChatStream, Pace, plan_answer
from mediasrv.localservices.chat_wire import validate

WAIT_S = 3.0
LOOKUP = {"type": "function", "function": {
    "name": "look_up_order", "description": "Find an order",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]}}}


def body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4.1-mini", "stream": True,
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": text}], **extra}


# -- pure --------------------------------------------------------------------------------


def test_the_answer_repeats_the_last_user_message() -> None:
    assert plan_answer(validate(json.dumps(body("what time is it")).encode(), None)).text == \
        "You said: what time is it"


def test_a_spoken_tool_name_calls_that_tool_with_the_users_text() -> None:
    answer = plan_answer(validate(json.dumps(body("please look up order 42", tools=[LOOKUP]))
                                  .encode(), None))
    assert answer.tool is not None and answer.tool.name == "look_up_order"
    assert json.loads(answer.tool.arguments) == {"query": "please look up order 42"}


def test_a_string_argument_with_an_enum_gets_the_value_the_user_named() -> None:
    transfer = {"type": "function", "function": {
        "name": "transfer_call", "description": "Transfer the caller",
        "parameters": {"type": "object", "required": ["to"], "properties": {
            "to": {"type": "string", "enum": ["billing", "sales"]}}}}}
    answer = plan_answer(validate(json.dumps(body("Transfer call to sales, please.",
                                                  tools=[transfer])).encode(), None))
    assert answer.tool is not None and json.loads(answer.tool.arguments) == {"to": "sales"}


def test_tool_choice_none_never_calls_a_tool() -> None:
    req = validate(json.dumps(body("look up order 42", tools=[LOOKUP], tool_choice="none"))
                   .encode(), None)
    assert plan_answer(req).tool is None


def test_stream_events_are_due_after_ttft_then_at_the_token_rate() -> None:
    req = validate(json.dumps(body("one two three")).encode(), None)
    stream = ChatStream(req, plan_answer(req), Pace(ttft_s=0.5, tokens_per_s=10.0), 100.0, 0)
    assert stream.next_deadline() == 100.5
    assert len(stream.due(100.5)) == 2  # the role chunk and the first token together
    assert stream.next_deadline() == pytest.approx(100.6)
    assert stream.due(100.59) == []


# -- over real sockets -------------------------------------------------------------------


@pytest.fixture
def start_chat() -> Iterator[Callable[..., LocalChat]]:
    started: list[LocalChat] = []

    def start(**options: Any) -> LocalChat:
        options.setdefault("pace", Pace(ttft_s=0.01, tokens_per_s=1000.0))
        chat = LocalChat(ChatOptions(**options)).start()
        started.append(chat)
        return chat

    yield start
    for chat in started:
        chat.stop()


class Client:
    """An http.client connection to a stand-in, closed by the test's `clients` list."""

    def __init__(self, chat: LocalChat) -> None:
        host = chat.base_url.split("//")[1].split("/")[0]
        self.conn = http.client.HTTPConnection(host, timeout=WAIT_S)
        self.key = chat.api_key

    def post(self, doc: Any, key: str | None = None,
             path: str = "/v1/chat/completions") -> http.client.HTTPResponse:
        headers = {"Content-Type": "application/json"}
        if key != "":
            headers["Authorization"] = f"Bearer {key or self.key}"
        self.conn.request("POST", path, json.dumps(doc), headers)
        return self.conn.getresponse()

    def get(self, path: str) -> http.client.HTTPResponse:
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.key}"})
        return self.conn.getresponse()


@pytest.fixture
def client(start_chat: Callable[..., LocalChat]) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**options: Any) -> Client:
        made.append(Client(start_chat(**options)))
        return made[-1]

    yield make
    for c in made:
        c.conn.close()


def events(response: http.client.HTTPResponse) -> list[Any]:
    """Parse an SSE body into its `data:` payloads (JSON, or the string "[DONE]")."""
    out: list[Any] = []
    for block in response.read().decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_a_stream_is_a_role_chunk_content_deltas_finish_usage_and_done(
        client: Callable[..., Client]) -> None:
    response = client().post(body(stream_options={"include_usage": True}))
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    chunks = events(response)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    assert text == "You said: hello there"
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 4
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])


def test_without_include_usage_no_chunk_carries_usage(client: Callable[..., Client]) -> None:
    chunks = events(client().post(body()))
    assert all("usage" not in c for c in chunks[:-1])
    assert all(c["choices"] for c in chunks[:-1])


def test_a_tool_call_streams_by_index_with_id_and_name_only_first(
        client: Callable[..., Client]) -> None:
    chunks = events(client().post(body("look up order 42", tools=[LOOKUP])))
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[:-1]
             if c["choices"][0]["delta"].get("tool_calls")]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "look_up_order"
    assert all("id" not in call and "name" not in call["function"] for call in calls[1:])
    assert {call["index"] for call in calls} == {0}
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"query": "look up order 42"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_tool_result_is_answered_with_what_the_tool_returned(
        client: Callable[..., Client]) -> None:
    doc = body("look up order 42", tools=[LOOKUP])
    doc["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "look_up_order", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}]
    chunks = events(client().post(doc))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == "The tool look_up_order returned: shipped."


def test_a_non_streaming_request_gets_a_chat_completion(client: Callable[..., Client]) -> None:
    response = client().post(body(stream=False))
    doc = json.loads(response.read())
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["content"] == "You said: hello there"


@pytest.mark.parametrize(("change", "status", "code", "param"), [
    ({"temperatur": 1}, 400, None, None),
    ({"model": None}, 400, None, None),
    ({"messages": []}, 400, "empty_array", "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_value",
     "messages[0].role"),
    ({"messages": [{"role": "user"}]}, 400, "missing_required_parameter",
     "messages[0].content"),
    ({"messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]}, 400, None,
     "messages.[0].role"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                         "function": {"name": "f",
                                                                      "arguments": "{}"}}]},
                   {"role": "user", "content": "x"}]}, 400, None, "messages.[0].role"),
    ({"stream": False, "stream_options": {"include_usage": True}}, 400, None,
     "stream_options"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, 400,
     "invalid_value", "tools[0].function.name"),
])
def test_invalid_requests_get_the_real_apis_error_object(
        client: Callable[..., Client], change: dict[str, Any], status: int,
        code: str | None, param: str | None) -> None:
    doc = {k: v for k, v in {**body(), **change}.items() if v is not None}
    response = client().post(doc)
    error = json.loads(response.read())["error"]
    assert (response.status, error["code"], error["param"], error["type"]) == \
        (status, code, param, "invalid_request_error")


@pytest.mark.parametrize(("key", "code"), [("", None), ("sk-wrong", "invalid_api_key")])
def test_a_missing_or_wrong_bearer_key_gets_401(client: Callable[..., Client], key: str,
                                               code: str | None) -> None:
    response = client().post(body(), key=key)
    error = json.loads(response.read())["error"]
    assert (response.status, error["code"]) == (401, code)
    assert "sk-wrong" not in error["message"]


def test_an_unknown_model_gets_404_model_not_found(client: Callable[..., Client]) -> None:
    c = client(models=frozenset({"gpt-4.1-mini"}))
    response = c.post({**body(), "model": "gpt-nonexistent"})
    assert (response.status, json.loads(response.read())["error"]["code"]) == \
        (404, "model_not_found")
    assert c.get("/v1/models/gpt-4.1-mini").status == 200


def test_fault_refuse_answers_with_its_status(client: Callable[..., Client]) -> None:
    response = client(fault=Fault("refuse", status=429)).post(body())
    assert response.status == 429
    assert json.loads(response.read())["error"]["type"] == "server_error"


def test_fault_close_mid_stream_ends_the_body_without_the_last_chunk(
        client: Callable[..., Client]) -> None:
    response = client(fault=Fault("close_mid_stream", after=2)).post(body())
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert info.value.partial.count(b"data: ") == 2


def test_fault_error_mid_stream_sends_an_error_object_then_ends(
        client: Callable[..., Client]) -> None:
    chunks = events(client(fault=Fault("error_mid_stream", after=2)).post(body()))
    assert len(chunks) == 3 and chunks[-1]["error"]["type"] == "server_error"


def test_fault_garbage_inserts_an_unparseable_event(client: Callable[..., Client]) -> None:
    response = client(fault=Fault("garbage", after=1)).post(body())
    with pytest.raises(ValueError):
        events(response)


def test_fault_stall_withholds_the_rest_of_the_stream(
        start_chat: Callable[..., LocalChat]) -> None:
    chat = start_chat(fault=Fault("stall", after=2))
    host, port = chat.base_url.split("//")[1].split("/")[0].split(":")
    payload = json.dumps(body()).encode()
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + chat.api_key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(payload)
                     + payload)
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(65536)
        assert chat.wait_for("fault_stalls")  # the barrier: the handler decided to stall
        assert select.select([sock], [], [], 0)[0] == []



def test_fault_no_handshake_never_answers_the_request(
        start_chat: Callable[..., LocalChat]) -> None:
    chat = start_chat(fault=Fault("no_handshake"))
    c = Client(chat)
    c.conn.timeout = 0.5
    with pytest.raises(TimeoutError):
        c.post(body())
    assert chat.wait_for("fault_unanswered")
    c.conn.close()
