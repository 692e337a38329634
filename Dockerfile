# The GPU worker image: AWS Batch jobs (VA_EXECUTOR=batch: the app submits one job per video and
# the container runs `python -m pipeline run`, taking the video from VA_JOB_VIDEO_ID /
# VA_JOB_SOURCE) and queue workers on GPU machines (`docker run --gpus all IMAGE worker --device
# cuda`). The job definition (or `docker run -e`) supplies DATABASE_URL, S3_BUCKET_VIDEOS,
# S3_BUCKET_HIGHLIGHTS, AWS_REGION and any VA_* backend settings; the image holds the code, the
# pinned requirements and the models.
#
#   docker build -t video-analysis-worker .
#
# Heavy backends' weights (YOLOv8, MiVOLO, MEBOW, a VLM) are not in the repository: copy them
# under models/heavy/ before building and point the settings at them, e.g.
# VA_DETECTOR_WEIGHTS=/app/models/heavy/yolov8x_person_face.pt.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# torch/torchvision first, as CUDA 12.6 builds; then the rest exactly as pinned.
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install torch==2.14.1 torchvision==0.29.1 \
        --index-url https://download.pytorch.org/whl/cu126 \
 && /opt/venv/bin/pip install -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH VA_DEVICE=cuda

COPY models/ models/
COPY settings.py ./
COPY pipeline/ pipeline/
COPY db/ db/
COPY services/ services/
# The offline models load at build time (nothing downloads when a job starts).
RUN VA_DEVICE=cpu python -c "from settings import Settings; \
from pipeline.backends.registry import load_backends; load_backends(Settings())"

ENTRYPOINT ["python", "-m", "pipeline"]
CMD ["run", "--quiet"]
