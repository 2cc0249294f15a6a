"""The webhook tool runner against a local HTTP server: results, failures, cancelling."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mediasrv.callctl.tools import RunWebhook
from mediasrv.callctl.tools_file import WebhookTool
from mediasrv.callctl.webhook import MAX_RESULT_BYTES, ToolResult, WebhookRunner
from mediasrv.localservices.httpserve import HttpRequest, HttpResponse, LoopbackHttpServer

WAIT_S = 3.0
SID = "CA" + "ab" * 16
SCHEMA = {"type": "object", "properties": {"order": {"type": "integer"}}}


class Webhook:
    """A local webhook whose answer the test sets; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.answer: Callable[[HttpRequest], HttpResponse | None] = \
            lambda r: HttpResponse(200, b'{"status": "shipped"}')
        self.entered = threading.Event()
        self.server = LoopbackHttpServer("test-webhook", self._handle).start()

    def _handle(self, request: HttpRequest) -> HttpResponse | None:
        self.requests.append(request)
        self.entered.set()
        return self.answer(request)

    def tool(self, query: str = "?key=query-secret") -> WebhookTool:
        return WebhookTool("look_up_order", "Find an order.", SCHEMA,
                           f"{self.server.url}/order{query}",
                           (("Authorization", "Bearer header-secret"),))


@pytest.fixture
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.server.stop()


@pytest.fixture
def runner() -> Iterator[tuple[WebhookRunner, queue.Queue[ToolResult]]]:
    results: queue.Queue[ToolResult] = queue.Queue()
    tool_runner = WebhookRunner(SID, timeout_s=WAIT_S, on_result=results.put)
    yield tool_runner, results
    tool_runner.close()


def run(runner: tuple[WebhookRunner, queue.Queue[ToolResult]], tool: WebhookTool,
        arguments: dict[str, Any] | None = None) -> ToolResult:
    tool_runner, results = runner
    tool_runner.run(RunWebhook("call_1", tool, arguments or {"order": 42}))
    return results.get(timeout=WAIT_S)


def test_the_webhook_gets_the_call_sid_tool_and_arguments_and_its_headers(
        hook: Webhook, runner: Any) -> None:
    run(runner, hook.tool())
    (request,) = hook.requests
    assert (request.method, request.path, request.query) == ("POST", "/order",
                                                             "key=query-secret")
    assert json.loads(request.body) == {"call_sid": SID, "call_id": "call_1",
                                        "tool": "look_up_order", "arguments": {"order": 42}}
    assert request.headers["authorization"] == "Bearer header-secret"
    assert request.headers["content-type"] == "application/json"


def test_a_json_answer_goes_to_the_model_compacted(hook: Webhook, runner: Any) -> None:
    result = run(runner, hook.tool())
    assert (result.call_id, result.tool, result.outcome) == ("call_1", "look_up_order", "ok")
    assert result.output == '{"status":"shipped"}'


def test_an_http_error_becomes_a_clear_result(hook: Webhook, runner: Any) -> None:
    hook.answer = lambda r: HttpResponse(500, b'{"error": "db down"}')
    result = run(runner, hook.tool())
    assert result.outcome == "http_error"
    assert json.loads(result.output) == {"ok": False,
                                         "error": "the tool look_up_order failed (HTTP 500)"}


def test_an_answer_that_is_not_json_becomes_a_clear_result(hook: Webhook,
                                                          runner: Any) -> None:
    hook.answer = lambda r: HttpResponse(200, b"<html>oops</html>", "text/html")
    result = run(runner, hook.tool())
    assert result.outcome == "bad_json" and "not JSON" in json.loads(result.output)["error"]


def test_an_oversized_answer_is_refused(hook: Webhook, runner: Any) -> None:
    hook.answer = lambda r: HttpResponse(200, b'"' + b"x" * MAX_RESULT_BYTES + b'"')
    result = run(runner, hook.tool())
    assert result.outcome == "too_large"


def test_a_webhook_slower_than_the_timeout_gives_a_timeout_result(hook: Webhook) -> None:
    results: queue.Queue[ToolResult] = queue.Queue()
    tool_runner = WebhookRunner(SID, timeout_s=0.5, on_result=results.put)
    hook.answer = lambda r: (hook.server.stopping.wait(30), HttpResponse(200))[1]
    result = run((tool_runner, results), hook.tool())
    tool_runner.close()
    assert result.outcome == "timeout"
    assert json.loads(result.output)["error"] == \
        "the tool look_up_order did not answer within 0.5 s"


def test_an_unreachable_webhook_gives_a_clear_result(runner: Any) -> None:
    closed = LoopbackHttpServer("test-webhook", lambda r: HttpResponse(200)).start()
    url = closed.url
    closed.stop()
    tool = WebhookTool("look_up_order", "Find an order.", SCHEMA, f"{url}/order")
    result = run(runner, tool)
    assert result.outcome == "unreachable" and "could not be reached" in result.output


def test_closing_cancels_a_running_call_and_drops_its_result(hook: Webhook) -> None:
    results: queue.Queue[ToolResult] = queue.Queue()
    tool_runner = WebhookRunner(SID, timeout_s=30.0, on_result=results.put)
    hook.answer = lambda r: (hook.server.stopping.wait(30), HttpResponse(200))[1]
    tool_runner.run(RunWebhook("call_1", hook.tool(), {}))
    assert hook.entered.wait(WAIT_S)
    tool_runner.close(timeout=WAIT_S)  # joins the tool's thread: the barrier
    assert results.empty()


def test_logs_name_the_tool_and_outcome_but_no_secret_or_argument(
        hook: Webhook, runner: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        run(runner, hook.tool(), {"order": 987654321})
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("mediasrv.callctl"))  # not the test server's
    assert "[TOOL] look_up_order: ok" in ours
    for secret in ("query-secret", "header-secret", "987654321"):
        assert secret not in ours
