"""A local stand-in for Anthropic's Messages API (``POST /v1/messages``) on loopback.

No test may call the real API, so the real ``anthropic`` SDK is pointed at this server with
``base_url`` and exercises its own request building, response parsing, error mapping,
timeouts and retries. Replies are scripted: each request takes the next ``Reply`` (status,
a JSON-able or raw body, an optional delay and headers), and every request is recorded
(path, headers, JSON body) for assertions. When the script runs out the server answers 500.

Bounded: it binds 127.0.0.1 on an ephemeral port, serves on daemon threads, answers at
most ``max_requests`` requests, reads at most ``max_body`` bytes of a request, caps every
delay at its remaining lifetime, and shuts itself down after ``lifetime_s`` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL_NAME = "propose_strategies"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a dict or list is sent as JSON, str or bytes as they are."""

    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    """A Messages API response body holding ``content`` blocks."""
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": "claude-standin",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 50},
    }


def tool_use(tool_input: Any, name: str = TOOL_NAME) -> Reply:
    """A reply that calls ``name`` with ``tool_input`` (any JSON value, valid or not)."""
    block = {"type": "tool_use", "id": "toolu_standin", "name": name, "input": tool_input}
    return Reply(body=message([block], stop_reason="tool_use"))


def strategies(*items: dict[str, Any]) -> Reply:
    """A well-formed ``propose_strategies`` call with these items."""
    return tool_use({"strategies": list(items)})


def text(words: str) -> Reply:
    """A reply with no tool call, only text."""
    return Reply(body=message([{"type": "text", "text": words}]))


def error(status: int, kind: str, detail: str) -> Reply:
    """An API error in Anthropic's shape; retried ones come back after 10 ms, not seconds."""
    body = {"type": "error", "error": {"type": kind, "message": detail}}
    return Reply(status=status, body=body, headers={"retry-after-ms": "10"})


class AnthropicStandIn:
    """Serve scripted Messages API replies on 127.0.0.1 (use as a context manager)."""

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        lifetime_s: float = 60.0,
        max_requests: int = 50,
        max_body: int = 4_000_000,
    ) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[Recorded] = []
        self.lifetime_s = lifetime_s
        self.max_requests = max_requests
        self.max_body = max_body
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def start(self) -> AnthropicStandIn:
        self._started = time.monotonic()
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AnthropicStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            if len(self.requests) >= self.max_requests:
                return error(429, "rate_limit_error", "stand-in request budget spent")
            self.requests.append(recorded)
            if not self.replies:
                return error(500, "api_error", "the stand-in has no scripted reply left")
            return self.replies.popleft()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > server.max_body:
                    self._send(error(413, "request_too_large", "request body too large"))
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server._next(Recorded(self.path, headers, body))
                left = server.lifetime_s - (time.monotonic() - server._started)
                time.sleep(max(0.0, min(reply.delay_s, left)))
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if isinstance(reply.body, bytes | str):
                    payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                else:
                    payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.send_header("request-id", "req_standin")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
