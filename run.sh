#!/usr/bin/env bash
# Set everything up (.venv) and run the main job: analyse a video with the offline default models,
# store videos/events/embeddings in the embedded PostgreSQL (var/pg) and highlights in var/storage,
# then run one search. Usage: ./run.sh [VIDEO_PATH_OR_S3_URI]
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
video=${1:-$(bash scripts/sample_video.sh)}
out=output/$(basename "${video%.*}")
echo "analysing $video -> $out" >&2
.venv/bin/python -m pipeline run --input "$video" --output "$out"
.venv/bin/python -m pipeline search "a person falls down" --top-k 5
echo "done. Create the first account (.venv/bin/python -m pipeline users add admin --role admin)," \
     "then browse the results with: .venv/bin/streamlit run app.py" >&2
