"""One settings object, read once from environment variables and passed explicitly.

Nothing else in the project reads ``os.environ``. Names follow the seed where it had them
(POSTGRES_*, S3_BUCKET_*, AWS_BEDROCK_REGION); the rest are ``VA_*``. An unknown ``VA_*`` name is
an error, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = REPO_ROOT / "models"


class SettingsError(ValueError):
    """A setting has a value the program cannot use. The message names the variable and the fix."""


#: Fields read from the seed's own names (below), not from VA_<FIELD>.
SEED_FIELDS = frozenset({"s3_bucket_videos", "s3_bucket_highlights", "s3_endpoint_url",
                         "aws_region", "database_url", "bedrock_region"})
#: VA_* names read elsewhere (the tests' database), accepted here so they are not typos.
EXTRA_VA_NAMES = frozenset({"VA_TEST_DATABASE_URL"})


def _env_name(f) -> str:
    return "VA_" + f.name.upper()


def _parse(f, name: str, raw: str):
    """A field's value from its variable, by the field's type and metadata (min, choices)."""
    kind = str(f.type).split("|")[0].strip()
    if kind == "bool":
        return _bool(name, raw)
    if kind == "int":
        return _int(name, raw, minimum=f.metadata.get("min"), maximum=f.metadata.get("max"))
    if kind == "float":
        return _float(name, raw, minimum_exclusive=f.metadata.get("above"))
    if kind == "Path":
        return Path(raw).expanduser()
    if f.metadata.get("upper"):
        raw = raw.strip().upper()
    choices = f.metadata.get("choices")
    if choices and raw not in choices:
        raise SettingsError(f"{name}={raw!r} is not supported; use {' or '.join(choices)}")
    return raw


def _bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; set it to 1 or 0")


def _float(name: str, raw: str, minimum_exclusive: float | None = None) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; set it to e.g. 1.5") from None
    if v != v or (minimum_exclusive is not None and v <= minimum_exclusive):
        raise SettingsError(f"{name}={raw!r} must be a number above {minimum_exclusive}")
    return v


def _int(name: str, raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        v = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; set it to a whole number") from None
    if minimum is not None and v < minimum:
        raise SettingsError(f"{name}={v} is below {minimum}; set it to {minimum} or more")
    if maximum is not None and v > maximum:
        raise SettingsError(f"{name}={v} is above {maximum}; set it to {maximum} or less")
    return v


#: Every 1000th frame is one frame every 33 s at 30 fps: beyond that the engine cannot track
#: anyone or time any event (and a typo such as 20000 would sample one frame of a film).
MAX_FRAME_SKIP = 1000
#: The ONNX models whose precision VA_PRECISION_MODELS can set (pipeline/backends/onnx_common.py)
PRECISION_MODELS = ("movenet", "thunder", "yolov5s", "backbone", "faceres", "minilm")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    # --- analysis ---------------------------------------------------------------------------
    #: Sampled frames per second of video (the seed's rate: every 20th frame of 30 fps video).
    sample_fps: float = field(default=1.5, metadata={"above": 0.0})
    #: Analyse every Nth frame: when set (VA_FRAME_SKIP, --frame-skip) it wins over sample_fps.
    frame_skip: int | None = field(default=None, metadata={"min": 1, "max": MAX_FRAME_SKIP})
    device: str = field(default="cpu", metadata={"choices": ("cpu", "cuda")})
    cpu_threads: int = field(default=2, metadata={"min": 1})  # inference threads (CPU backends)
    #: What runs the ONNX models on the CPU (pipeline/backends/onnx_common.py): Intel's OpenVINO
    #: or onnxruntime (for machines without OpenVINO).
    runtime: str = field(default="openvino", metadata={"choices": ("openvino", "onnxruntime")})
    #: auto: the models validated at bfloat16 (onnx_common.AUTO_BF16: the violence backbone) run
    #: in it where the CPU computes it natively (AMX or AVX512_BF16), the rest in float32.
    #: OpenVINO only; onnxruntime computes in float32 (models/violence.md, README "Speed").
    precision: str = field(default="auto", metadata={"choices": ("auto", "f32", "bf16")})
    #: Per-model overrides of ``precision`` (OpenVINO), e.g. "backbone=f32,thunder=bf16"; models:
    #: movenet, thunder, yolov5s, backbone, faceres, minilm (pipeline/backends/onnx_common.py).
    precision_models: str = field(default="", metadata={"example": "backbone=f32"})
    detector: str = "movenet"  # movenet | yolo
    proposals: str = "yolov5"  # yolov5 | none: second detector for the dense passes (MoveNet only)
    objects: str = "yolov5"  # yolov5 | none: COCO objects on the sampled frames (pipeline/objects.py)
    attributes: str = "age_gender"  # age_gender | faceres | mivolo
    orientation: str = "keypoints"  # keypoints | mebow
    action: str = "posture_trees"  # posture_trees | pose_rules | vlm
    violence: str = "learned"  # learned (models/violence.json) | rule (the limb-speed baseline)
    scene: str = "template"  # template | bedrock | openai
    embedder: str = "minilm"  # minilm | titan
    answerer: str = "auto"  # auto | extractive | bedrock | openai
    models_dir: Path = DEFAULT_MODELS_DIR
    detector_weights: Path | None = None  # YOLOv8 person+face .pt
    mivolo_checkpoint: Path | None = None
    mivolo_with_persons: bool = True  # feed body crops too when the checkpoint has a body branch
    mebow_cfg: Path | None = None
    mebow_weights: Path | None = None
    vlm_path: Path | None = None
    faceres_path: Path | None = None
    # --- storage ----------------------------------------------------------------------------
    data_dir: Path = REPO_ROOT / "var"
    library_dir: Path | None = None  # local folder of videos offered in the UI
    s3_bucket_videos: str | None = None
    s3_bucket_highlights: str | None = None
    s3_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    # --- database ---------------------------------------------------------------------------
    database_url: str | None = None  # None -> embedded PostgreSQL under data_dir/pg
    # --- cloud models -----------------------------------------------------------------------
    bedrock_region: str | None = None
    bedrock_claude_model: str = "anthropic.claude-3-haiku-20240307-v1:0"
    bedrock_embed_model: str = "amazon.titan-embed-text-v2:0"
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: str | None = None
    # --- jobs (services/jobs/jobs.py, services/jobs/worker.py, services/jobs/batch.py) -----------------------
    #: local: the app runs a worker itself | external: workers run elsewhere (pipeline worker)
    workers: str = field(default="local", metadata={"choices": ("local", "external")})
    #: queue: procrastinate workers | batch: one AWS Batch job per video
    executor: str = field(default="queue", metadata={"choices": ("queue", "batch")})
    worker_concurrency: int = field(default=1, metadata={"min": 1})  # jobs a local worker runs
    max_attempts: int = field(default=3, metadata={"min": 1})  # runs started per job, at most
    #: A worker silent this long (seconds) is dead: its job is retried by another worker.
    stalled_after_s: int = field(default=15, metadata={"min": 5})
    batch_job_queue: str | None = None
    batch_job_definition: str | None = None
    #: Set by an AWS Batch submission in the container environment (``pipeline run``).
    job_video_id: int | None = field(default=None, metadata={"min": 1})
    job_source: str | None = None
    # --- access (services/access/access.py) ----------------------------------------------------------
    #: A signed-in session with no page shown or action taken for this long must sign in again.
    session_idle_minutes: int = field(default=30, metadata={"min": 1, "max": 7 * 24 * 60})
    # --- misc -------------------------------------------------------------------------------
    log_level: str = field(default="INFO", metadata={"choices": LOG_LEVELS, "upper": True})

    def frame_skip_for(self, fps: float) -> int:
        """The frame skip of a video at ``fps``: ``frame_skip`` when given, else the skip that
        samples closest to ``sample_fps`` (10 fps -> 7, 25 fps -> 17, 30 fps -> 20)."""
        if self.frame_skip is not None:
            return int(self.frame_skip)
        if not fps or fps <= 0 or self.sample_fps <= 0:
            return 1
        return max(1, int(round(float(fps) / float(self.sample_fps))))

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def s3_enabled(self) -> bool:
        return bool(self.s3_bucket_videos or self.s3_bucket_highlights)

    @property
    def bedrock_enabled(self) -> bool:
        return bool(self.bedrock_region)

    @property
    def openai_enabled(self) -> bool:
        return bool(self.openai_base_url)

    def __post_init__(self) -> None:
        """Values set in code or by flags (``with_overrides``) obey the bounds the environment
        does: a bad value is one line naming the variable and the fix."""
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or isinstance(v, bool):
                continue
            if isinstance(v, int):
                lo, hi = f.metadata.get("min"), f.metadata.get("max")
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    _int(_env_name(f), str(v), lo, hi)
            elif isinstance(v, str) and f.metadata.get("choices"):
                if v not in f.metadata["choices"]:
                    raise SettingsError(f"{_env_name(f)}={v!r} is not supported; use "
                                        f"{' or '.join(f.metadata['choices'])}")
        for part in filter(None, (p.strip() for p in self.precision_models.split(","))):
            model, _, prec = part.partition("=")
            if model.strip() not in PRECISION_MODELS or prec.strip() not in ("auto", "f32", "bf16"):
                raise SettingsError(f"VA_PRECISION_MODELS: {part!r} is not model=precision; use "
                                    f"one of {', '.join(PRECISION_MODELS)} = f32, bf16 or auto")
        if self.runtime == "onnxruntime" and self.precision == "bf16":
            raise SettingsError("VA_PRECISION=bf16 needs VA_RUNTIME=openvino (onnxruntime computes "
                                "in float32 on the CPU); set VA_PRECISION=auto or f32")

    def with_overrides(self, **kw) -> "Settings":
        """A copy with some fields replaced (CLI flags, UI options)."""
        clean = {k: v for k, v in kw.items() if v is not None}
        known = {f.name for f in fields(self)}
        bad = sorted(set(clean) - known)
        if bad:
            raise SettingsError(f"unknown setting(s) {bad}; known: {sorted(known)}")
        return replace(self, **clean)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        kw: dict = {}

        def get(name: str) -> str | None:
            v = env.get(name)
            return v if v not in (None, "") else None

        known_va = {_env_name(f) for f in fields(cls) if f.name not in SEED_FIELDS}
        known_va |= EXTRA_VA_NAMES
        unknown = sorted(k for k in env if k.startswith("VA_") and k not in known_va)
        if unknown:
            raise SettingsError(
                f"unknown environment variable(s) {unknown}; known VA_* names: {sorted(known_va)}"
            )
        for f in fields(cls):
            if f.name in SEED_FIELDS or (v := get(_env_name(f))) is None:
                continue
            kw[f.name] = _parse(f, _env_name(f), v)

        # Seed names.
        kw["s3_bucket_videos"] = get("S3_BUCKET_VIDEOS")
        kw["s3_bucket_highlights"] = get("S3_BUCKET_HIGHLIGHTS")
        kw["s3_endpoint_url"] = get("S3_ENDPOINT_URL") or get("AWS_ENDPOINT_URL_S3") or get("AWS_ENDPOINT_URL")
        if (v := get("AWS_REGION") or get("AWS_DEFAULT_REGION")) is not None:
            kw["aws_region"] = v
        kw["bedrock_region"] = get("AWS_BEDROCK_REGION")
        kw["database_url"] = get("DATABASE_URL") or _postgres_url_from_parts(get)
        if kw.get("executor") == "batch" and not (kw.get("batch_job_queue")
                                                  and kw.get("batch_job_definition")):
            raise SettingsError("VA_EXECUTOR=batch needs VA_BATCH_JOB_QUEUE and "
                                "VA_BATCH_JOB_DEFINITION (the AWS Batch job queue and job "
                                "definition to submit to)")
        return cls(**kw)


def _postgres_url_from_parts(get) -> str | None:
    host = get("POSTGRES_HOST")
    if host is None:
        return None
    from urllib.parse import quote

    user = get("POSTGRES_USER") or "postgres"
    password = get("POSTGRES_PASSWORD")
    port = get("POSTGRES_PORT") or "5432"
    db = get("POSTGRES_DB") or "postgres"
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"postgresql://{auth}@{host}:{port}/{quote(db, safe='')}"
