#!/usr/bin/env bash
# Run the test suite (sets up .venv and Debian's chromium for the browser test if missing).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; the browser test will FAIL (it needs /usr/bin/chromium)" >&2
fi
if ! command -v ffmpeg >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then  # makes the rotated/cut test clips
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg) >/dev/null 2>&1 \
    || echo "warning: could not install ffmpeg; the tests that build clips with it will FAIL" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
