"""Amazon Bedrock: Claude 3 Haiku scene descriptions and chat answers, Titan Text v2 embeddings.

* One ``bedrock-runtime`` client per backend, built inside the factory (boto3 is imported there),
  with botocore timeouts (``CONNECT_TIMEOUT_S`` / ``READ_TIMEOUT_S``) and botocore's own retries
  off: ``BedrockInvoker`` retries throttling and transient errors itself with exponential backoff
  and jitter (``MAX_ATTEMPTS``), so every attempt is counted and logged once.
* Token counts from each response's ``usage`` (Claude) or ``inputTextTokenCount`` (Titan) go into
  the backend's ``usage`` (a thread-safe ``UsageCounter``); a job reads ``usage.snapshot()`` when it
  ends and stores it.
* AccessDenied (model access not enabled), missing credentials and unknown models are one-line
  ``BackendUnavailable`` errors naming the fix; other failures are ``StageError``.

The engine decides the cadence (a scene every ``SCENE_EVERY_SAMPLES`` sampled frames); this
module describes whatever frame it is given.
"""
from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from pipeline.errors import BackendUnavailable, StageError
from pipeline.records import ChatReply, Frame, PersonObservation, SceneCaption

log = logging.getLogger("va.backends.bedrock")

ANTHROPIC_VERSION = "bedrock-2023-05-31"
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
RETRYABLE = {"ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException",
             "ModelNotReadyException", "InternalServerException", "ModelTimeoutException"}
SCENE_MAX_TOKENS = 160
CHAT_MAX_TOKENS = 400
IMAGE_MAX_SIDE = 1024  # downscale frames before upload (fewer image tokens, same gist)
TITAN_DIM = 1024

SCENE_SYSTEM = ("You write short, factual captions of surveillance-camera frames for a searchable "
                "event log. Describe only what is visible: the place, how many people, what they are "
                "doing (standing, walking, sitting, lying on the floor, falling, fighting, reaching for "
                "or taking items, paying) and where in the frame. No speculation about identity.")


class UsageCounter:
    """Thread-safe per-model call and token counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, dict[str, int]] = {}

    def add(self, model: str, input_tokens: int = 0, output_tokens: int = 0) -> None:
        with self._lock:
            row = self._by_model.setdefault(model, {"calls": 0, "input_tokens": 0, "output_tokens": 0})
            row["calls"] += 1
            row["input_tokens"] += int(input_tokens or 0)
            row["output_tokens"] += int(output_tokens or 0)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {m: dict(r) for m, r in self._by_model.items()}

    @property
    def input_tokens(self) -> int:
        return sum(r["input_tokens"] for r in self.snapshot().values())

    @property
    def output_tokens(self) -> int:
        return sum(r["output_tokens"] for r in self.snapshot().values())


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff for attempt 1, 2, ..."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def make_client(settings: Any):
    region = getattr(settings, "bedrock_region", None)
    if not region:
        raise BackendUnavailable("Bedrock backends need a region; set AWS_BEDROCK_REGION (e.g. us-east-1) "
                                 "or choose --scene template / VA_EMBEDDER=minilm")
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise BackendUnavailable(f"Bedrock needs boto3 ({e}); install the requirements") from e
    cfg = Config(region_name=region, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                 retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.client("bedrock-runtime", config=cfg)


@dataclass
class BedrockInvoker:
    """``invoke_model`` with JSON in and out, retries, token accounting and one-line errors."""

    client: Any
    stage: str
    usage: UsageCounter
    sleep: Callable[[float], None] = time.sleep

    def invoke(self, model_id: str, body: Mapping[str, Any]) -> dict:
        from botocore.exceptions import (
            BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
            NoCredentialsError, ReadTimeoutError,
        )

        region = self.client.meta.region_name
        payload = json.dumps(body).encode("utf-8")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                resp = self.client.invoke_model(modelId=model_id, body=payload,
                                                contentType="application/json",
                                                accept="application/json")
                return json.loads(resp["body"].read())
            except NoCredentialsError:
                raise BackendUnavailable(
                    "no AWS credentials for Bedrock; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                    "AWS_PROFILE (or use an instance role)") from None
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                msg = e.response.get("Error", {}).get("Message", "")
                if code == "AccessDeniedException":
                    raise BackendUnavailable(
                        f"Bedrock denied access to {model_id} in {region} ({msg[:100]}); enable this "
                        f"model under 'Model access' in the Bedrock console for these credentials, "
                        f"or choose another backend") from None
                if code in ("ResourceNotFoundException", "UnrecognizedClientException"):
                    raise BackendUnavailable(
                        f"Bedrock rejected {model_id} in {region} ({code}: {msg[:100]}); check the "
                        f"model id and AWS_BEDROCK_REGION") from None
                if code in RETRYABLE and attempt < MAX_ATTEMPTS:
                    wait = backoff_s(attempt)
                    log.warning("bedrock %s %s (attempt %d/%d); retrying in %.1fs", model_id, code,
                                attempt, MAX_ATTEMPTS, wait)
                    self.sleep(wait)
                    continue
                raise StageError(self.stage, f"Bedrock {model_id} failed ({code}: {msg[:120]})"
                                 + (f" after {attempt} attempts" if code in RETRYABLE else "")) from None
            except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as e:
                if attempt < MAX_ATTEMPTS:
                    self.sleep(backoff_s(attempt))
                    continue
                raise StageError(self.stage, f"Bedrock {model_id} in {region} did not answer "
                                 f"({type(e).__name__}) after {attempt} attempts; check the network "
                                 f"or raise READ_TIMEOUT_S") from None
            except BotoCoreError as e:
                raise StageError(self.stage, f"Bedrock {model_id} failed ({type(e).__name__}: "
                                 f"{str(e)[:120]})") from None
        raise AssertionError("unreachable")


def jpeg_b64(image_rgb: np.ndarray, max_side: int = IMAGE_MAX_SIDE, quality: int = 85) -> str:
    import cv2

    h, w = image_rgb.shape[:2]
    s = max_side / max(h, w)
    img = image_rgb if s >= 1 else cv2.resize(image_rgb, (round(w * s), round(h * s)),
                                              interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise StageError("scene", "could not encode the frame as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def scene_prompt(observations: Sequence[PersonObservation]) -> str:
    n = len({o.obj_id for o in observations})
    acts: dict[str, int] = {}
    for o in observations:
        acts[o.action.value] = acts.get(o.action.value, 0) + 1
    hint = ", ".join(f"{k} {v}" for k, v in sorted(acts.items())) or "none"
    return (f"Describe this frame in one or two sentences. The detector found {n} "
            f"{'person' if n == 1 else 'people'} (actions: {hint}); correct it if the image shows "
            f"otherwise.")


def claude_text(resp: Mapping[str, Any]) -> tuple[str, int, int]:
    parts = [c.get("text", "") for c in resp.get("content", []) if c.get("type") == "text"]
    usage = resp.get("usage") or {}
    return ("".join(parts).strip(), int(usage.get("input_tokens", 0)),
            int(usage.get("output_tokens", 0)))


class ClaudeScene:
    """SceneDescriber: the frame as a base64 JPEG to Claude 3 (messages API)."""

    name = "bedrock"

    def __init__(self, invoker: BedrockInvoker, model_id: str):
        self.invoker = invoker
        self.model_id = model_id
        self.usage = invoker.usage

    def describe(self, frame: Frame, observations: Sequence[PersonObservation]) -> SceneCaption:
        body = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": SCENE_MAX_TOKENS,
            "temperature": 0.0,
            "system": SCENE_SYSTEM,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                             "data": jpeg_b64(frame.image)}},
                {"type": "text", "text": scene_prompt(observations)},
            ]}],
        }
        text, tin, tout = claude_text(self.invoker.invoke(self.model_id, body))
        self.usage.add(self.model_id, tin, tout)
        if not text:
            raise StageError("scene", f"Bedrock {self.model_id} returned no text")
        return SceneCaption(frame_number=frame.frame_number, t_s=frame.t_s, text=text, source=self.name)


class ClaudeChat:
    """ChatModel (``protocols.py``): ``complete(system, user) -> ChatReply``."""

    name = "bedrock"

    def __init__(self, invoker: BedrockInvoker, model_id: str, max_tokens: int = CHAT_MAX_TOKENS):
        self.invoker = invoker
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.usage = invoker.usage

    def complete(self, system: str, user: str) -> ChatReply:
        body = {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": self.max_tokens,
                "temperature": 0.0, "system": system,
                "messages": [{"role": "user", "content": [{"type": "text", "text": user}]}]}
        text, tin, tout = claude_text(self.invoker.invoke(self.model_id, body))
        self.usage.add(self.model_id, tin, tout)
        return ChatReply(text=text, input_tokens=tin, output_tokens=tout)


class TitanEmbedder:
    """Embedder: Titan Text Embeddings v2, 1024-d, normalised by the service (and checked here)."""

    dim = TITAN_DIM

    def __init__(self, invoker: BedrockInvoker, model_id: str):
        self.invoker = invoker
        self.model_id = model_id
        self.name = model_id  # stored with each vector
        self.usage = invoker.usage

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):  # Titan v2 takes one text per call
            resp = self.invoker.invoke(self.model_id, {"inputText": t or " ", "dimensions": self.dim,
                                                       "normalize": True})
            v = np.asarray(resp.get("embedding") or [], np.float32)
            if v.shape != (self.dim,):
                raise StageError("embed", f"{self.model_id} returned a {v.shape} vector, expected "
                                 f"({self.dim},)")
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
            self.usage.add(self.model_id, int(resp.get("inputTextTokenCount", 0)), 0)
        return out


def _invoker(settings: Any, stage: str) -> BedrockInvoker:
    return BedrockInvoker(client=make_client(settings), stage=stage, usage=UsageCounter())


def load_bedrock_scene(settings: Any) -> ClaudeScene:
    return ClaudeScene(_invoker(settings, "scene"), settings.bedrock_claude_model)


def load_bedrock_chat(settings: Any) -> ClaudeChat:
    return ClaudeChat(_invoker(settings, "answer"), settings.bedrock_claude_model)


def load_titan_embedder(settings: Any) -> TitanEmbedder:
    return TitanEmbedder(_invoker(settings, "embed"), settings.bedrock_embed_model)
