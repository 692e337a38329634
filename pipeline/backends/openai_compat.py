"""An OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp server, Ollama, LM Studio,
OpenAI itself): scene descriptions with the frame as an ``image_url`` data URI, and chat answers.

``VA_OPENAI_BASE_URL`` is the server's base, with or without the trailing ``/v1``
(``http://127.0.0.1:8000`` and ``http://127.0.0.1:8000/v1`` both work); ``VA_OPENAI_MODEL`` names
the model; ``VA_OPENAI_API_KEY`` is sent as a Bearer token when set. Retries with backoff on 429
and 5xx (honouring ``Retry-After``) and on connection errors; token counts from ``usage`` go to the
backend's ``usage`` (a ``UsageCounter``).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

from pipeline.errors import BackendUnavailable, StageError
from pipeline.records import ChatReply, Frame, PersonObservation, SceneCaption
from pipeline.backends.bedrock import (
    CHAT_MAX_TOKENS, MAX_ATTEMPTS, SCENE_MAX_TOKENS, SCENE_SYSTEM, UsageCounter, backoff_s, jpeg_b64,
    scene_prompt,
)

log = logging.getLogger("va.backends.openai")

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0  # local VLM servers can be slow on the first request
RETRY_STATUS = {429, 500, 502, 503, 504}


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


class OpenAICompatClient:
    def __init__(self, settings: Any, stage: str, *, sleep: Callable[[float], None] = time.sleep):
        if not getattr(settings, "openai_base_url", None):
            raise BackendUnavailable("the openai backend needs a server; set VA_OPENAI_BASE_URL "
                                     "(e.g. http://127.0.0.1:8000/v1) or choose --scene template")
        if not getattr(settings, "openai_model", None):
            raise BackendUnavailable("the openai backend needs a model name; set VA_OPENAI_MODEL to "
                                     "a model the server at VA_OPENAI_BASE_URL serves")
        import httpx

        self.url = chat_url(settings.openai_base_url)
        self.model = settings.openai_model
        self.stage = stage
        self.sleep = sleep
        self.usage = UsageCounter()
        headers = {"Content-Type": "application/json"}
        if getattr(settings, "openai_api_key", None):
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(READ_TIMEOUT_S,
                                                                         connect=CONNECT_TIMEOUT_S))

    def chat(self, messages: list[dict], max_tokens: int) -> ChatReply:
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": 0.0}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                r = self._http.post(self.url, json=body)
            except httpx.TransportError as e:
                if attempt < MAX_ATTEMPTS:
                    self.sleep(backoff_s(attempt))
                    continue
                raise StageError(self.stage, f"{self.url} did not answer ({type(e).__name__}) after "
                                 f"{attempt} attempts; is the server running?") from None
            if r.status_code in RETRY_STATUS and attempt < MAX_ATTEMPTS:
                wait = _retry_after(r.headers.get("retry-after")) or backoff_s(attempt)
                log.warning("%s answered %d (attempt %d/%d); retrying in %.1fs", self.url,
                            r.status_code, attempt, MAX_ATTEMPTS, wait)
                self.sleep(wait)
                continue
            if r.status_code in (401, 403):
                raise BackendUnavailable(f"{self.url} refused the request ({r.status_code}); set a valid "
                                         f"VA_OPENAI_API_KEY")
            if r.status_code == 404:
                raise BackendUnavailable(f"{self.url} or model {self.model!r} not found (404); check "
                                         f"VA_OPENAI_BASE_URL and VA_OPENAI_MODEL")
            if r.status_code >= 400:
                raise StageError(self.stage, f"{self.url} answered {r.status_code}: "
                                 f"{r.text[:160].replace(chr(10), ' ')}")
            return self._parse(r)
        raise AssertionError("unreachable")

    def _parse(self, r) -> ChatReply:
        try:
            data = r.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise StageError(self.stage, f"{self.url} returned no chat completion "
                             f"({r.text[:120].replace(chr(10), ' ')})") from None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        usage = data.get("usage") or {}
        reply = ChatReply(text=(content or "").strip(),
                          input_tokens=int(usage.get("prompt_tokens", 0) or 0),
                          output_tokens=int(usage.get("completion_tokens", 0) or 0))
        self.usage.add(self.model, reply.input_tokens, reply.output_tokens)
        return reply

    def close(self) -> None:
        self._http.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return min(30.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None


class OpenAIScene:
    name = "openai"

    def __init__(self, client: OpenAICompatClient):
        self.client = client
        self.usage = client.usage

    def describe(self, frame: Frame, observations: Sequence[PersonObservation]) -> SceneCaption:
        messages = [
            {"role": "system", "content": SCENE_SYSTEM},
            {"role": "user", "content": [
                {"type": "image_url",
                 "image_url": {"url": "data:image/jpeg;base64," + jpeg_b64(frame.image)}},
                {"type": "text", "text": scene_prompt(observations)},
            ]},
        ]
        reply = self.client.chat(messages, SCENE_MAX_TOKENS)
        if not reply.text:
            raise StageError("scene", f"{self.client.url} returned an empty description")
        return SceneCaption(frame_number=frame.frame_number, t_s=frame.t_s, text=reply.text,
                            source=self.name)


class OpenAIChat:
    """ChatModel (``protocols.py``)."""

    name = "openai"

    def __init__(self, client: OpenAICompatClient, max_tokens: int = CHAT_MAX_TOKENS):
        self.client = client
        self.max_tokens = max_tokens
        self.usage = client.usage

    def complete(self, system: str, user: str) -> ChatReply:
        return self.client.chat([{"role": "system", "content": system},
                                 {"role": "user", "content": user}], self.max_tokens)


def load_openai_scene(settings: Any) -> OpenAIScene:
    return OpenAIScene(OpenAICompatClient(settings, "scene"))


def load_openai_chat(settings: Any) -> OpenAIChat:
    return OpenAIChat(OpenAICompatClient(settings, "answer"))
