"""One way to open an ONNX model on the CPU for every ONNX backend (MoveNet, YOLOv5 proposals,
MoveNet Thunder, HSE-FaceRes): a missing or unreadable file is a ``BackendUnavailable`` whose
message names the file and the fix."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.errors import BackendUnavailable


def cpu_session(path: Path, threads: int, what: str, fix: str,
                graph: Callable[[Path], bytes] | None = None):
    """An onnxruntime ``InferenceSession`` on the CPU for ``path`` (or for ``graph(path)``, a
    serialised model derived from it, e.g. a network cut after its backbone).

    ``what`` names the model in errors ("MoveNet weights"), ``fix`` says what the user should do.
    Threads do not spin between ops: on a shared 2-core machine spinning threads steal the CPU
    the decoder and the other stages need."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(f"{what} {path} are missing; {fix}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    # converted TF graphs warn about a deprecated resize attribute at load (harmless, and the
    # session's own level does not cover load-time messages)
    ort.set_default_logger_severity(3)
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # no arena and no memory-pattern plan: each run allocates what it needs and gives it back
    # (the arena keeps every session's largest activations for the whole process; pipeline/heap
    # returns the freed pages). vtest.avi, CLI with storing, 2 cores: peak RSS 850 -> 719 MB
    # from this alone, wall time the same within run-to-run noise.
    so.enable_cpu_mem_arena = False
    so.enable_mem_pattern = False
    try:
        model = str(path) if graph is None else graph(path)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise BackendUnavailable(f"{what} {path} are unreadable ({first}); {fix}") from None
