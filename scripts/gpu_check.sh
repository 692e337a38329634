#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install the requirements into .venv (if absent) and time the
# heavy stack (YOLOv8x, MiVOLO-D1, MEBOW HRNet-W32, FastVLM-0.5B; random weights at real sizes)
# over a dev clip. Prints sampled frames/s per stage and peak GPU memory.
#   scripts/gpu_check.sh [extra gpu_bench.py args, e.g. --persons 10 --json out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements.txt
fi
.venv/bin/python - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA GPU visible to PyTorch; run this on a GPU machine (nvidia-smi should list one)")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
EOF
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
exec .venv/bin/python scripts/gpu_bench.py --device cuda "$@"
