"""A local HTTP server on 127.0.0.1 speaking the OpenAI chat-completions and Anthropic messages APIs.

Tests give it a function ``reply(api, body, attempt) -> Reply`` and drive the real SDK clients
against it; it records every request.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What the server sends: a status, a JSON body (or raw bytes), after a delay."""

    status: int = 200
    body: dict | None = None
    raw: bytes | None = None
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


def chat_completion(text: str, top: dict[str, float] | None = None) -> dict:
    """An OpenAI chat.completion body with optional top logprobs {token: probability}."""
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        entries = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top.items()]
        choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
    return {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "judge", "choices": [choice]}


def anthropic_message(text: str) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "judge",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def prompt_of(api: str, body: dict) -> str:
    """The last user message's text of a request body."""
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


class FakeAPIServer:
    """Context manager: start the server on a free port, stop it on exit.

    Args:
        reply: function (api, body, attempt) -> Reply, where api is "openai" or "anthropic" and
            attempt counts earlier requests with the same prompt.
        latency: seconds added to every response.
    """

    def __init__(self, reply, latency: float = 0.0):
        self.reply = reply
        self.latency = latency
        self.requests: list[dict] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api = "anthropic" if self.path.endswith("/messages") else "openai"
                prompt = prompt_of(api, body)
                with server._lock:
                    attempt = server._attempts.get(prompt, 0)
                    server._attempts[prompt] = attempt + 1
                    server.requests.append(body)
                answer = server.reply(api, body, attempt)
                time.sleep(server.latency + answer.delay)
                data = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
