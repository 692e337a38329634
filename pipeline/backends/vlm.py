"""Per-person actions from an image-text-to-text model (``--vlm-path``: a transformers checkpoint folder).

FastVLM (``FastVlmForConditionalGeneration``, native in transformers 5) is the production model;
any model ``AutoModelForImageTextToText`` + ``AutoProcessor`` load works (LLaVA, Qwen2-VL, ...).
Every person crop of a frame goes into ONE batched greedy ``generate`` call (left padding, fp16 on
CUDA) with a prompt that asks for one word of the action vocabulary. The answer is parsed to the
first action word (or synonym) it contains; the confidence is the geometric-mean probability of the
generated tokens up to that word (from the generation scores). No action word: ``unknown``, 0.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.errors import BackendUnavailable
from pipeline.records import Action, ActionEstimate, Frame, PersonDetections, PersonObservation
from pipeline.backends.torch_common import require_dir, resolve_device

log = logging.getLogger("va.backends.vlm")

MAX_NEW_TOKENS = 6
BOX_MARGIN = 0.1  # grow person boxes by 10 % per side: hands and objects at the edge matter
FLAG, ENV = "--vlm-path", "VA_VLM_PATH"

# The vocabulary the prompt offers, and the words that map to each action (first match wins).
VOCAB = ("standing", "walking", "running", "sitting", "lying", "falling", "fighting", "grabbing",
         "paying", "theft")
SYNONYMS: dict[Action, tuple[str, ...]] = {
    Action.THEFT: ("theft", "stealing", "steals", "steal", "shoplifting", "shoplifts", "concealing"),
    Action.PAYING: ("paying", "pays", "pay", "payment", "checkout", "cashier"),
    Action.GRABBING: ("grabbing", "grabs", "grab", "reaching", "reaches", "picking", "taking"),
    Action.FALLING: ("falling", "falls", "fall", "fell", "tripping", "collapsing"),
    Action.LYING: ("lying", "lies", "laying", "lie", "lay"),
    Action.VIOLENT: ("fighting", "fights", "fight", "punching", "hitting", "kicking", "violent"),
    Action.RUNNING: ("running", "runs", "run", "jogging"),
    Action.SITTING: ("sitting", "sits", "sit", "seated"),
    Action.WALKING: ("walking", "walks", "walk"),
    Action.STANDING: ("standing", "stands", "stand"),
}
_WORD_TO_ACTION = {w: a for a, words in SYNONYMS.items() for w in words}
_WORD_RE = re.compile(r"[a-z]+")

PROMPT = ("What is this person doing? Answer with exactly one word from this list: "
          + ", ".join(VOCAB) + ".")


def parse_action(text: str) -> Action | None:
    """The first action word in ``text`` (case-insensitive), or None."""
    for word in _WORD_RE.findall(text.lower()):
        if word in _WORD_TO_ACTION:
            return _WORD_TO_ACTION[word]
    return None


def expand_boxes(xyxy: np.ndarray, width: int, height: int, margin: float = BOX_MARGIN) -> np.ndarray:
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    out = np.stack([xyxy[:, 0] - margin * w, xyxy[:, 1] - margin * h,
                    xyxy[:, 2] + margin * w, xyxy[:, 3] + margin * h], 1)
    out = np.clip(np.round(out), 0, [width, height, width, height]).astype(int)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out


class VlmActionRecognizer:
    name = "vlm"

    def __init__(self, model: Any, processor: Any, device: Any):
        self.model = model
        self.processor = processor
        self.device = device
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"  # decoder-only batched generation
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.prompt = self._prompt_text()
        self._lock = threading.Lock()

    def _prompt_text(self) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        for owner in (self.processor, self.tokenizer):
            if getattr(owner, "chat_template", None):
                try:
                    return owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                except Exception as e:  # noqa: BLE001 - a template that does not take image parts
                    log.debug("chat template of %s unusable (%s)", type(owner).__name__, e)
        token = getattr(self.processor, "image_token", None) or "<image>"
        return f"{token}\n{PROMPT}\nAnswer:"

    def recognize(self, frame: Frame, persons: PersonDetections,
                  history: Mapping[int, Sequence[PersonObservation]]) -> list[ActionEstimate]:
        if len(persons) == 0:
            return []
        boxes = expand_boxes(persons.xyxy, frame.width, frame.height)
        crops = [frame.image[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes]
        return self.generate(crops)

    def generate(self, crops: Sequence[np.ndarray]) -> list[ActionEstimate]:
        """One batched greedy generate over all crops -> parsed actions with confidences."""
        import torch

        with self._lock, torch.inference_mode():
            inputs = self.processor(images=list(crops), text=[self.prompt] * len(crops),
                                    return_tensors="pt", padding=True)
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            if "pixel_values" in inputs and self.model.dtype != torch.float32:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            out = self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                      output_scores=True, return_dict_in_generate=True,
                                      pad_token_id=self.tokenizer.pad_token_id)
            n_in = inputs["input_ids"].shape[1]
            new = out.sequences[:, n_in:]
            logp = torch.stack([s.float().log_softmax(-1) for s in out.scores], 1)  # (N,T,V)
            tok_logp = logp.gather(2, new[:, : logp.shape[1], None]).squeeze(2).cpu().numpy()
            new = new.cpu().numpy()
        return [self._parse_one(new[i], tok_logp[i]) for i in range(len(crops))]

    def _parse_one(self, tokens: np.ndarray, logp: np.ndarray) -> ActionEstimate:
        special = set(self.tokenizer.all_special_ids)
        for t in range(len(tokens)):
            text = self.tokenizer.decode(tokens[: t + 1], skip_special_tokens=True)
            action = parse_action(text)
            if action is not None:
                keep = [j for j in range(t + 1) if int(tokens[j]) not in special]
                conf = float(np.exp(np.mean(logp[keep]))) if keep else 0.0
                return ActionEstimate(action=action, confidence=float(np.clip(conf, 0.0, 1.0)))
        log.debug("vlm answer %r has no action word", self.tokenizer.decode(tokens, skip_special_tokens=True))
        return ActionEstimate(Action.UNKNOWN, 0.0)


def load_vlm_actions(settings: Any) -> VlmActionRecognizer:
    path = require_dir(settings.vlm_path, what="the vlm action recognizer", flag=FLAG, env=ENV,
                       must_contain="config.json")
    device = resolve_device(settings)
    try:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as e:
        raise BackendUnavailable(f"the vlm backend needs transformers ({e}); install the requirements") from e
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds for a foreign folder
        if "Weights only load failed" in str(e) and "GLOBAL" in str(e):
            raise BackendUnavailable(
                f"the weights in {path} hold Python objects besides tensors; they are not loaded "
                f"(that would run code from the file): pass a checkpoint folder with "
                f".safetensors weights to {FLAG}") from None
        first = (str(e).splitlines() or [""])[0][:140]
        raise BackendUnavailable(
            f"{path} cannot be loaded as an image-text-to-text model ({type(e).__name__}: {first}); "
            f"pass a transformers checkpoint folder (config.json, weights, processor and tokenizer "
            f"files) such as FastVLM-0.5B to {FLAG}") from None
    model.eval().to(device)
    log.info("vlm %s (%s) on %s", path.name, type(model).__name__, device)
    return VlmActionRecognizer(model, processor, device)
