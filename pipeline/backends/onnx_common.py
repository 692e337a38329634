"""The one place that opens an ONNX model on the CPU, for every ONNX backend (MoveNet MultiPose,
MoveNet Thunder, YOLOv5s proposals, the YOLOv5s backbone cut, HSE-FaceRes, the MiniLM embedder).

Two runtimes (``VA_RUNTIME``): Intel's OpenVINO (the default; it reads the ONNX files directly)
and onnxruntime (for machines without OpenVINO). Both are driven through the same small session
interface (``run(output_names, feeds)``, ``get_inputs()``, ``get_outputs()``: onnxruntime's), so
the backends do not know which one runs. OpenVINO compiles one model per input shape (static
shapes are what its CPU kernels are fastest at), kept in memory (a few shapes per model) and on
disk (``CACHE_DIR`` under ``VA_DATA_DIR``, so a second process does not compile again).
``VA_PRECISION``: ``auto`` (the default) runs the models of ``AUTO_BF16`` in bfloat16 where the CPU
computes it natively (AMX or AVX512_BF16 in /proc/cpuinfo), everything else in float32;
``VA_PRECISION_MODELS`` sets a model's own; onnxruntime always runs float32.

Offline: ``import openvino`` starts its telemetry (package ``openvino-telemetry``, a dependency of
``openvino``): without a consent file in ~/intel it writes a client id there and sends an "import"
event to Google Analytics from a forked process. ``import_openvino`` imports it as if that package
were not installed, which makes OpenVINO use its own no-op stub: nothing is written or sent
(tests/test_onnx_common.py watches every socket, forked processes included).
"""
from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pipeline.errors import BackendUnavailable
from settings import PRECISION_MODELS

log = logging.getLogger(__name__)

RUNTIMES = ("openvino", "onnxruntime")
PRECISIONS = ("auto", "f32", "bf16")
#: Compiled shapes an OpenVINO session keeps in memory (a video's frame, its tiles, the dense
#: pass's; a worker that sees many video sizes recompiles the oldest from the disk cache).
MAX_SHAPES = 8
CACHE_SUBDIR = "openvino-cache"
#: The disk cache's size cap: compiled blobs are 5-30 MB each (per model, shape and precision);
#: beyond this the least recently used are removed when a process first opens the folder.
MAX_CACHE_BYTES = 1 << 30
_PRUNED: set = set()
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: The ONNX models, by the key each backend opens its session with (``cpu_session(model=...)``):
#: a precision can be set per model (``VA_PRECISION_MODELS=backbone=f32,thunder=bf16``).
MODELS = PRECISION_MODELS
#: What ``auto`` (the default) runs in bfloat16 where the CPU computes it natively; the others
#: run in float32. The violence classifier's grouped CV chose it (models/violence.md): the backbone
#: at bf16 keeps 0.810 accuracy / 0.861 precision; MultiPose, Thunder or YOLOv5s at bf16 move the
#: keypoint features (all at bf16: 0.764; all but the backbone: 0.784).
AUTO_BF16: frozenset = frozenset({"backbone"})


def cpu_bf16(cpuinfo: str | None = None) -> bool:
    """True where the CPU computes bfloat16 natively (AMX or AVX512_BF16 in its flags)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in _BF16_FLAGS)
    return False


@dataclass(frozen=True)
class CpuInference:
    """How ONNX models run on the CPU: runtime, precision, threads, OpenVINO's disk cache."""

    threads: int = 2
    runtime: str = "openvino"
    precision: str = "auto"  # settings.Settings.precision
    cache_dir: Path | None = None
    #: per-model overrides of ``precision``: ((model, "f32" | "bf16"), ...)
    per_model: tuple = ()

    @classmethod
    def from_settings(cls, settings: Any, threads: int | None = None) -> "CpuInference":
        data_dir = getattr(settings, "data_dir", None)
        return cls(threads=int(threads or getattr(settings, "cpu_threads", 2) or 2),
                   runtime=getattr(settings, "runtime", "openvino"),
                   precision=getattr(settings, "precision", "auto"),
                   cache_dir=Path(data_dir) / CACHE_SUBDIR if data_dir else None,
                   per_model=parse_per_model(getattr(settings, "precision_models", "")))

    def precision_of(self, model: str = "") -> str:
        """f32 or bf16: what ``model`` (one of MODELS; "" for none in particular) computes in."""
        if self.runtime != "openvino":
            return "f32"
        p = dict(self.per_model).get(model, self.precision)
        if p == "auto":
            return "bf16" if cpu_bf16() and model in AUTO_BF16 else "f32"
        return p

    @property
    def effective_precision(self) -> str:
        """f32, bf16, or mixed: what the models compute in."""
        ps = {self.precision_of(m) for m in MODELS}
        return ps.pop() if len(ps) == 1 else "mixed"

    def describe(self) -> str:
        """e.g. "openvino f32", "openvino bf16", "openvino bf16 backbone=f32" (the models
        that differ from the most common precision)."""
        ps = {m: self.precision_of(m) for m in MODELS}
        base = max(("f32", "bf16"), key=lambda p: (list(ps.values()).count(p), p == "f32"))
        rest = " ".join(f"{m}={p}" for m, p in ps.items() if p != base)
        return f"{self.runtime} {base}" + (f" {rest}" if rest else "")


def parse_per_model(text: str) -> tuple:
    """"backbone=f32,thunder=bf16" -> (("backbone", "f32"), ("thunder", "bf16")); ValueError
    naming the bad part otherwise."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        model, _, prec = part.partition("=")
        model, prec = model.strip(), prec.strip()
        if model not in MODELS or prec not in PRECISIONS:
            raise ValueError(f"{part!r}: use model=precision with model one of "
                             f"{', '.join(MODELS)} and precision one of {', '.join(PRECISIONS)}")
        out.append((model, prec))
    return tuple(out)


@dataclass(frozen=True)
class SubGraph:
    """A part of an ONNX model: from its input ``input_name`` (height and width free) to the
    tensors ``outputs`` (e.g. YOLOv5s cut after its backbone, or before its decoding head)."""

    input_name: str
    outputs: tuple[str, ...]
    name: str


def cpu_session(path: Path, threads: "int | CpuInference", what: str, fix: str,
                cut: SubGraph | None = None, static_shapes: bool = True,
                model: str = ""):
    """A session on the CPU for ``path`` (or for the part ``cut`` of it). ``threads`` is a
    ``CpuInference`` (the factories build it from Settings) or a thread count (the defaults
    otherwise).

    ``what`` names the model in errors ("MoveNet weights"), ``fix`` says what the user should do.
    ``static_shapes=False`` compiles one model for every input shape (OpenVINO's dynamic shapes;
    for the text embedder, whose batch and token count change with every call). ``model`` is
    its key in MODELS: its precision (``CpuInference.precision_of``). OpenVINO cuts the graph it
    read itself (``_read_cut``: nothing but the nodes kept, no second copy of the file in
    memory); onnxruntime is given the cut as a serialised ONNX model (``onnx_subgraph``)."""
    cpu = threads if isinstance(threads, CpuInference) else CpuInference(threads=int(threads))
    if cpu.runtime not in RUNTIMES:
        raise BackendUnavailable(f"unknown runtime {cpu.runtime!r}; set VA_RUNTIME to "
                                 f"{' or '.join(RUNTIMES)}")
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(f"{what} {path} are missing; {fix}")
    try:
        if cpu.runtime == "onnxruntime":
            return _ort_session(str(path) if cut is None else onnx_subgraph(path, cut), cpu)
        return OpenVinoSession(str(path) if cut is None else _read_cut(path, cut), cpu,
                               static_shapes=static_shapes, precision=cpu.precision_of(model),
                               reload=None if cut is None else (lambda: _read_cut(path, cut)))
    except ImportError as e:
        raise BackendUnavailable(
            f"the {cpu.runtime} runtime is not installed ({e}); install the requirements "
            f"(pip install -r requirements.txt) or set VA_RUNTIME to the other of "
            f"{' / '.join(RUNTIMES)}") from None
    except Exception as e:  # both runtimes raise their own parse/compile error types
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise BackendUnavailable(f"{what} {path} are unreadable ({first}); {fix}") from None


def onnx_subgraph(path: Path, cut: SubGraph) -> bytes:
    """The serialised ONNX graph of the part ``cut`` of ``path``: every node its outputs need
    and nothing else, its input [1, "h", "w", 3]."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(path))
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    input_name, outputs = cut.input_name, list(cut.outputs)
    need, keep, stack = set(), set(), list(outputs)
    while stack:
        tensor = stack.pop()
        if tensor in need:
            continue
        need.add(tensor)
        node = producer.get(tensor)
        if node is not None and id(node) not in keep:
            keep.add(id(node))
            stack += list(node.input)
    graph = helper.make_graph(
        [n for n in g.node if id(n) in keep], cut.name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [i for i in g.initializer if i.name in need])
    sub = helper.make_model(graph, opset_imports=m.opset_import)
    sub.ir_version = m.ir_version
    return sub.SerializeToString()


def _ort_session(model: "str | bytes", cpu: CpuInference):
    """onnxruntime, float32. Threads do not spin between ops: on a shared 2-core machine
    spinning threads steal the CPU the decoder and the other stages need."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(cpu.threads))
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
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class NodeArg:
    """An input or output of a model: its name and shape (onnxruntime's NodeArg, the parts the
    backends read)."""

    name: str
    shape: tuple


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def import_openvino():
    """``openvino`` with its telemetry off. Its model converter, imported by ``openvino``, falls
    back to a no-op telemetry stub when ``openvino_telemetry`` cannot be imported; a ``None``
    entry in ``sys.modules`` makes that so for this process (nothing here uses the package). If
    something imported the real package first, its telemetry object is told no consent."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino as ov

    telemetry = getattr(sys.modules.get("openvino.tools.ovc"), "telemetry", None)
    if telemetry is not None and hasattr(telemetry, "consent"):
        telemetry.consent = False
    return ov


def prune_cache(folder: Path, max_bytes: int = MAX_CACHE_BYTES) -> None:
    """Once per process and folder: remove the least recently used blobs beyond ``max_bytes``."""
    with _CORE_LOCK:
        if folder in _PRUNED:
            return
        _PRUNED.add(folder)
    files = sorted((f for f in folder.iterdir() if f.is_file()), key=lambda f: f.stat().st_atime)
    total = sum(f.stat().st_size for f in files)
    for f in files:
        if total <= max_bytes:
            break
        total -= f.stat().st_size
        f.unlink(missing_ok=True)


def _core():
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = import_openvino().Core()
        return _CORE


def _read_onnx(model: "str | bytes"):
    """The model through OpenVINO's ONNX frontend alone: ``Core.read_model`` tries every
    frontend on a file it cannot read, and the TensorFlow one prints parse errors to stderr."""
    import io

    _core()  # openvino imported without its telemetry
    from openvino.frontend import FrontEndManager

    fe = FrontEndManager().load_by_framework("onnx")
    src = io.BytesIO(model) if isinstance(model, (bytes, bytearray)) else str(model)
    return fe.convert(fe.load(src))


def release(session: Any) -> None:
    """Free what an idle session or backend holds, where it has a ``release()``
    (``OpenVinoSession.release``, a detector's); onnxruntime's sessions run without their
    arena and hold nothing between calls."""
    fn = getattr(session, "release", None)
    if fn is not None:
        fn()


def _as_model(model: Any):
    """An ONNX file's path or bytes read by OpenVINO; an OpenVINO model as it is."""
    return _read_onnx(model) if isinstance(model, (str, bytes, bytearray)) else model


def _read_cut(path: Path, cut: SubGraph):
    """The part ``cut`` of the ONNX file ``path`` as an OpenVINO model: read whole, then a model
    of its input and the ``cut.outputs`` tensors (the rest is let go). The same nodes as
    ``onnx_subgraph``'s graph (the backbone's maps are bit-identical: tests/test_onnx_common.py),
    without its transient copies of the file (onnx's protobuf and the serialised cut, ~50 MB
    while it is made: vtest's peak, when the backbone was compiled last, fell 18 MB). The input
    stays the file's static shape; each call's shape is set by ``OpenVinoSession``."""
    import openvino as ov

    full = _read_onnx(str(path))
    found = {}
    for op in full.get_ordered_ops():
        for out in op.outputs():
            for name in out.get_names():
                if name in cut.outputs:
                    found.setdefault(name, out)
    missing = [n for n in cut.outputs if n not in found]
    if missing:
        raise ValueError(f"no tensor {missing[0]} in the graph")
    params = [p for p in full.get_parameters() if cut.input_name in p.output(0).get_names()]
    if len(params) != 1:
        raise ValueError(f"no input {cut.input_name} in the graph")
    return ov.Model([found[n] for n in cut.outputs], params, cut.name)


class OpenVinoSession:
    """An ONNX model under OpenVINO on the CPU, compiled per input shape on first use (or once
    with dynamic shapes). Thread-safe: each call takes an idle inference request of its shape's
    compiled model, or makes one."""

    def __init__(self, model: "str | bytes | Any", cpu: CpuInference, static_shapes: bool = True,
                 precision: str | None = None,
                 reload: "Callable[[], Any] | None" = None):
        self._model = _as_model(model)
        # A model that can be read again (a file, or ``reload``: the backbone cut made again
        # from its file) drops its ov.Model once compiled (MiniLM 46 MB, MultiPose ~19,
        # YOLOv5s 16, Thunder 15 resident: the graph would otherwise sit beside every compiled
        # model at the run's peak) and reads it again only for a new input shape (a video of
        # another size; MultiPose's tiles letterbox to the frame's shape) or an evicted one.
        self._reload = reload if reload is not None else (
            (lambda: model) if isinstance(model, str) else None)
        self.cpu = cpu
        self.precision = precision or cpu.precision_of()
        self._static = static_shapes
        self._inputs = [NodeArg(p.get_any_name(), tuple(p.get_partial_shape()))
                        for p in self._model.inputs]
        self._outputs = [NodeArg(p.get_any_name(), tuple(p.get_partial_shape()))
                         for p in self._model.outputs]
        self._out_index = {o.name: i for i, o in enumerate(self._outputs)}
        for i, p in enumerate(self._model.outputs):  # any of an output's names
            for n in p.get_names():
                self._out_index.setdefault(n, i)
        self._compiled: OrderedDict[tuple, list] = OrderedDict()  # shape -> [compiled, idle]
        self._lock = threading.Lock()
        self.compiles = 0  # models compiled (or loaded from the disk cache) by this session
        if not self._static:
            self._compiled_for(None)
        elif self._reload is not None:
            self._model = None  # read again at the first call (see above)

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def _config(self) -> dict:
        ov = import_openvino()
        import openvino.properties as props
        import openvino.properties.hint as hints

        cfg = {hints.inference_precision: ov.Type.bf16 if self.precision == "bf16" else ov.Type.f32,
               hints.performance_mode: hints.PerformanceMode.LATENCY,
               props.inference_num_threads: max(1, int(self.cpu.threads)),
               props.num_streams: 1}
        if self.cpu.cache_dir is not None:
            try:
                Path(self.cpu.cache_dir).mkdir(parents=True, exist_ok=True)
                prune_cache(Path(self.cpu.cache_dir))
                cfg[props.cache_dir] = str(self.cpu.cache_dir)
            except OSError as e:  # a read-only data folder: compile every time, still correct
                log.warning("OpenVINO cache folder %s unusable (%s); compiling in memory only",
                            self.cpu.cache_dir, e)
        return cfg

    def _compiled_for(self, key: tuple | None) -> list:
        with self._lock:
            entry = self._compiled.get(key)
            if entry is not None:
                self._compiled.move_to_end(key)
                return entry
        model = self._model if self._model is not None else _as_model(self._reload())
        if key is not None:
            model = model.clone()
            model.reshape({i: list(shape) for i, shape in enumerate(key)})
        compiled = _core().compile_model(model, "CPU", self._config())
        with self._lock:
            entry = self._compiled.setdefault(key, [compiled, []])
            self.compiles += 1
            if self._reload is not None:
                self._model = None
            while len(self._compiled) > MAX_SHAPES:
                self._compiled.popitem(last=False)
            return entry

    def release(self) -> None:
        """Drop the compiled models (their weights and activations: 40-90 MB each) while the
        model is idle; the next call compiles its shape again (from the disk cache: a fraction
        of a second). Only for a model it can read again (a file, or ``reload``)."""
        if self._reload is None:
            return
        with self._lock:
            self._compiled.clear()
            self._model = None

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> list:
        import numpy as np

        arrays = [np.ascontiguousarray(feeds[i.name]) for i in self._inputs]
        key = tuple(a.shape for a in arrays) if self._static else None
        compiled, idle = self._compiled_for(key)
        with self._lock:
            request = idle.pop() if idle else compiled.create_infer_request()
        try:
            result = request.infer(arrays)  # outputs are copied (share_outputs=False)
            idx = (range(len(self._outputs)) if output_names is None else
                   [self._out_index[n] for n in output_names])
            return [result[i] for i in idx]
        finally:
            with self._lock:
                idle.append(request)
