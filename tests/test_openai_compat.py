"""OpenAI-compatible backend against a real HTTP server on 127.0.0.1 started by the test."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import photo_frame
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable, StageError
from pipeline.records import Action, ChatReply, Frame, PersonObservation
from settings import Settings


class _Server:
    """Answers /v1/chat/completions from a queue of (status, json) and records requests."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[tuple[int, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": json.loads(self.rfile.read(n))})
                status, payload = outer.replies.pop(0)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str, pin=50, pout=7) -> dict:
    return {"id": "c1", "object": "chat.completion", "model": "local-vlm",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout}}


@pytest.fixture
def server():
    with _Server() as s:
        yield s


def _frame() -> Frame:
    return photo_frame("images/camera.png")


def test_scene_posts_image_data_uri(server):
    server.replies.append((200, _completion("A man operates a camera on a tripod.", 900, 9)))
    scene = load_backend("scene", "openai", Settings(openai_base_url=server.url + "/v1",
                                                     openai_model="local-vlm", openai_api_key="k1"))
    obs = [PersonObservation(frame_number=0, t_s=0.0, obj_id=1, xyxy=(0, 0, 9, 9), det_confidence=0.9,
                             keypoints=(), action=Action.STANDING)]
    cap = scene.describe(_frame(), obs)
    assert cap.text == "A man operates a camera on a tripod." and cap.source == "openai"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer k1"
    body = req["body"]
    assert body["model"] == "local-vlm" and body["max_tokens"] > 0
    assert body["messages"][0]["role"] == "system"
    image, text = body["messages"][1]["content"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:3] == b"\xff\xd8\xff"
    assert "1 person" in text["text"] and "standing" in text["text"]
    assert scene.usage.snapshot() == {"local-vlm": {"calls": 1, "input_tokens": 900, "output_tokens": 9}}


def test_chat_retries_429_then_answers(server):
    from pipeline.backends.openai_compat import load_openai_chat
    from pipeline.backends.protocols import ChatModel

    server.replies += [(429, {"error": "slow down"}), (503, {"error": "busy"}),
                       (200, _completion("Nobody fell [event 2].", 30, 6))]
    chat = load_openai_chat(Settings(openai_base_url=server.url, openai_model="m"))  # no /v1
    assert isinstance(chat, ChatModel)
    chat.client.sleep = lambda s: None
    reply = chat.complete("rules", "did anyone fall?")
    assert reply == ChatReply("Nobody fell [event 2].", 30, 6)
    assert len(server.requests) == 3 and server.requests[-1]["path"] == "/v1/chat/completions"
    assert server.requests[-1]["auth"] is None
    assert server.requests[-1]["body"]["messages"] == [
        {"role": "system", "content": "rules"}, {"role": "user", "content": "did anyone fall?"}]


def test_errors(server):
    server.replies += [(401, {"error": "bad key"}), (400, {"error": "bad request"})]
    from pipeline.backends.openai_compat import load_openai_chat

    chat = load_openai_chat(Settings(openai_base_url=server.url + "/v1/", openai_model="m"))
    with pytest.raises(BackendUnavailable, match="VA_OPENAI_API_KEY"):
        chat.complete("s", "u")
    with pytest.raises(StageError, match="answered 400") as e:
        chat.complete("s", "u")
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="VA_OPENAI_BASE_URL"):
        load_backend("scene", "openai", Settings())
    with pytest.raises(BackendUnavailable, match="VA_OPENAI_MODEL"):
        load_backend("scene", "openai", Settings(openai_base_url=server.url))


def test_server_down_is_a_stage_error():
    import socket

    from pipeline.backends.openai_compat import load_openai_chat

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chat = load_openai_chat(Settings(openai_base_url=f"http://127.0.0.1:{port}", openai_model="m"))
    chat.client.sleep = lambda s: None
    with pytest.raises(StageError, match="did not answer"):
        chat.complete("s", "u")
