"""Bedrock backends checked at the boto3 boundary with botocore's Stubber: model ids, request bodies,
response parsing, token accounting, throttling then success, and the access-denied path."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from conftest import make_observation, photo_frame
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable, StageError
from pipeline.records import Action, ChatReply, Frame, PersonObservation, SceneCaption
from settings import Settings

botocore = pytest.importorskip("botocore")
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _settings(**kw) -> Settings:
    return Settings(bedrock_region="us-east-1", **kw)


def _body(obj) -> dict:
    data = json.dumps(obj).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def _expect(model_id: str) -> dict:
    return {"modelId": model_id, "body": ANY, "contentType": "application/json",
            "accept": "application/json"}


def _capture(backend) -> list[dict]:
    """Request bodies as sent, decoded."""
    sent: list[dict] = []
    backend.invoker.client.meta.events.register(
        "provide-client-params.bedrock-runtime.InvokeModel",
        lambda params, **_: sent.append(json.loads(params["body"])))
    return sent


def _frame() -> Frame:
    return photo_frame("images/basketball1.png", frame_number=40, t_s=4.0)


def _obs(obj_id: int, action: Action) -> PersonObservation:
    return make_observation(40, 4.0, obj_id, xyxy=(0, 0, 10, 10), keypoints=(), action=action)


def test_scene_sends_the_frame_as_jpeg_and_counts_tokens():
    scene = load_backend("scene", "bedrock", _settings())
    assert scene.name == "bedrock" and scene.model_id == HAIKU
    sent = _capture(scene)
    frame = _frame()
    with Stubber(scene.invoker.client) as stub:
        stub.add_response("invoke_model", _body({
            "id": "msg_1", "type": "message", "role": "assistant", "model": HAIKU,
            "content": [{"type": "text", "text": "Two men pass a basketball on a court."}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 812, "output_tokens": 11}}),
            _expect(HAIKU))
        cap = scene.describe(frame, [_obs(1, Action.STANDING), _obs(2, Action.WALKING)])
        stub.assert_no_pending_responses()
    assert isinstance(cap, SceneCaption)
    assert cap.text == "Two men pass a basketball on a court." and cap.source == "bedrock"
    assert (cap.frame_number, cap.t_s) == (40, 4.0)
    body = sent[0]
    assert body["anthropic_version"] == "bedrock-2023-05-31" and body["max_tokens"] > 0
    assert isinstance(body["system"], str)
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    image, text = msg["content"]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/jpeg"
    jpg = base64.b64decode(image["source"]["data"])
    assert jpg[:3] == b"\xff\xd8\xff"  # a JPEG
    import cv2

    decoded = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == frame.image.shape[:2]  # small frame: not resized
    assert text["type"] == "text" and "2 people" in text["text"]
    assert scene.usage.snapshot() == {HAIKU: {"calls": 1, "input_tokens": 812, "output_tokens": 11}}


def test_throttling_is_retried_with_backoff_then_succeeds():
    chat = load_backend("scene", "bedrock", _settings())  # same invoker type as chat
    waits: list[float] = []
    chat.invoker.sleep = waits.append
    with Stubber(chat.invoker.client) as stub:
        for _ in range(2):
            stub.add_client_error("invoke_model", service_error_code="ThrottlingException",
                                  service_message="Too many requests", http_status_code=429)
        stub.add_response("invoke_model", _body({"content": [{"type": "text", "text": "ok"}],
                                                 "usage": {"input_tokens": 5, "output_tokens": 1}}),
                          _expect(HAIKU))
        cap = chat.describe(_frame(), [])
        stub.assert_no_pending_responses()
    assert cap.text == "ok"
    assert len(waits) == 2 and 0 < waits[0] <= waits[1] * 2 and all(w <= 8 for w in waits)
    assert chat.usage.snapshot()[HAIKU]["calls"] == 1


def test_throttling_gives_up_after_max_attempts():
    from pipeline.backends import bedrock

    scene = load_backend("scene", "bedrock", _settings())
    scene.invoker.sleep = lambda s: None
    with Stubber(scene.invoker.client) as stub:
        for _ in range(bedrock.MAX_ATTEMPTS):
            stub.add_client_error("invoke_model", service_error_code="ThrottlingException",
                                  http_status_code=429)
        with pytest.raises(StageError, match="ThrottlingException.*after 5 attempts") as e:
            scene.describe(_frame(), [])
    assert "\n" not in str(e.value)


def test_access_denied_is_a_one_line_backend_error():
    scene = load_backend("scene", "bedrock", _settings())
    with Stubber(scene.invoker.client) as stub:
        stub.add_client_error(
            "invoke_model", service_error_code="AccessDeniedException", http_status_code=403,
            service_message="You don't have access to the model with the specified model ID.")
        with pytest.raises(BackendUnavailable, match="Model access") as e:
            scene.describe(_frame(), [])
    msg = str(e.value)
    assert HAIKU in msg and "us-east-1" in msg and "\n" not in msg


def test_claude_chat_satisfies_the_answer_protocol():
    from pipeline.backends.bedrock import load_bedrock_chat
    from pipeline.backends.protocols import ChatModel

    chat = load_bedrock_chat(_settings())
    assert isinstance(chat, ChatModel)
    sent = _capture(chat)
    with Stubber(chat.invoker.client) as stub:
        stub.add_response("invoke_model", _body({
            "content": [{"type": "text", "text": "A man fell at 00:05 [event 3]."}],
            "usage": {"input_tokens": 120, "output_tokens": 14}}), _expect(HAIKU))
        reply = chat.complete("SYSTEM RULES", "Who fell?")
    assert reply == ChatReply(text="A man fell at 00:05 [event 3].", input_tokens=120, output_tokens=14)
    assert sent[0]["system"] == "SYSTEM RULES"
    assert sent[0]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Who fell?"}]}]


def test_titan_embeddings_request_and_parse():
    emb = load_backend("embedder", "titan", _settings())
    assert emb.dim == 1024 and emb.name == TITAN
    sent = _capture(emb)
    rng = np.random.default_rng(0)
    vecs = [rng.normal(size=1024), rng.normal(size=1024)]
    with Stubber(emb.invoker.client) as stub:
        for v, n in zip(vecs, (4, 6)):
            stub.add_response("invoke_model", _body({"embedding": (v / np.linalg.norm(v)).tolist(),
                                                     "inputTextTokenCount": n}), _expect(TITAN))
        out = emb.embed(["a person falls", "two people fight near the door"])
    assert out.shape == (2, 1024) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], vecs[0] / np.linalg.norm(vecs[0]), atol=1e-6)
    assert sent == [{"inputText": "a person falls", "dimensions": 1024, "normalize": True},
                    {"inputText": "two people fight near the door", "dimensions": 1024, "normalize": True}]
    assert emb.usage.snapshot()[TITAN] == {"calls": 2, "input_tokens": 10, "output_tokens": 0}


def test_usage_counter_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.backends.bedrock import UsageCounter

    u = UsageCounter()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda _: u.add("m", 3, 2), range(2000)))
    assert u.snapshot() == {"m": {"calls": 2000, "input_tokens": 6000, "output_tokens": 4000}}
    assert (u.input_tokens, u.output_tokens) == (6000, 4000)


def test_without_region_is_a_one_line_error():
    with pytest.raises(BackendUnavailable, match="AWS_BEDROCK_REGION") as e:
        load_backend("scene", "bedrock", Settings())
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="AWS_BEDROCK_REGION"):
        load_backend("embedder", "titan", Settings())
