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
    """What the server sends: a status, a JSON body (or raw bytes), after a delay.

    ``trickle=(n, seconds)`` sends the body's first ``n`` bytes one at a time, ``seconds`` apart (a
    server that is slow but never silent for long; pad a JSON body with leading spaces).
    """

    status: int = 200
    body: dict | None = None
    raw: bytes | None = None
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    trickle: tuple[int, float] = (0, 0.0)


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
        self.headers: list[dict] = []  # each request's headers (lower-case names), in arrival order
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
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
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
                    n, gap = answer.trickle
                    for i in range(n):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(gap)
                    self.wfile.write(data[n:])
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


def not_found(api: str, model: str) -> Reply:
    """The 404 a hosted API gives for a model it does not serve."""
    if api == "anthropic":
        return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}})
    message = f"The model `{model}` does not exist or you do not have access to it."
    return Reply(404, {"error": {"message": message, "type": "invalid_request_error", "code": "model_not_found"}})


def judge_api(judge_models: set[str], seed: str = ""):
    """A reply function that behaves like a hosted judge serving only ``judge_models``.

    OpenAI requests asking for logprobs get 20 number tokens with their log-probabilities (centred
    on a score that depends on the prompt, so different responses get different scores); text
    requests get one number. Any other model name gets a 404 ``model_not_found``.
    """
    import hashlib

    def reply(api, body, attempt):
        if body.get("model") not in judge_models:
            return not_found(api, body.get("model"))
        prompt = prompt_of(api, body)
        h = int(hashlib.sha256((seed + prompt).encode()).hexdigest(), 16)
        top = 100 if "100" in prompt else 10 if "10" in prompt else 3
        if api == "anthropic" or not body.get("logprobs"):
            text = str(h % (top + 1))
            return Reply(body=anthropic_message(text) if api == "anthropic" else chat_completion(text))
        # 20 number tokens: half the mass on 0-9 (so 0-10 scales have an answer), half near a centre.
        centre = h % 101
        low = {str(t): (1 + (h >> t) % 3) for t in range(10)}
        near = {str(min(100, 10 + (centre + 7 * k) % 91)): 1 + k % 2 for k in range(10)}
        low_total, near_total = sum(low.values()), sum(near.values())
        probs = {t: 0.5 * w / low_total for t, w in low.items()}
        for t, w in near.items():
            probs[t] = probs.get(t, 0.0) + 0.5 * w / near_total
        return Reply(body=chat_completion(max(probs, key=probs.get), probs))

    return reply
