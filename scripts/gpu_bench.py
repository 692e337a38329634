"""Heavy-stack throughput with random weights at real sizes (run by scripts/gpu_check.sh).

Builds YOLOv8x (person+face), MiVOLO-D1 (face+body, 224), MEBOW HRNet-W32 (192x256) and a
FastVLM-0.5B-sized model (FastViT-HD tower at 1024 px + Qwen2-0.5B decoder), saves each in its
published format, loads them through the product's factories and runs them over a dev clip.
Random detector weights find no real people, so the per-person stages get a fixed set of
``--persons`` boxes per frame (with faces), which is the load that matters.

Prints sampled frames/s per stage, for the whole stack, and the peak GPU memory.
``--small`` swaps in tiny configs of the same code for a CPU smoke test.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_models(tmp: Path, small: bool) -> dict:
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from pipeline.backends.hrnet import HRNetConfig, PoseHighResolutionNet
    from pipeline.backends.mivolo_arch import D1, MiVOLOModel

    torch.manual_seed(0)
    paths = {}
    yaml_name = "yolov8n.yaml" if small else "yolov8x.yaml"
    det = DetectionModel(yaml_name, nc=2, verbose=False)
    det.names = {0: "person", 1: "face"}
    y = YOLO(yaml_name)
    y.model = det
    y.ckpt = {"train_args": {"task": "detect", "imgsz": 640}}
    paths["yolo"] = tmp / "yolov8x_person_face.pt"
    y.save(str(paths["yolo"]))

    arch = (dict(layers=(1, 1, 1, 1), embed_dims=(64, 128, 128, 128), num_heads=(2, 4, 4, 4),
                 mlp_ratio=3.0, stem_hidden_dim=16) if small else D1)
    mv = MiVOLOModel(img_size=224, in_chans=6, num_classes=3, **arch)
    paths["mivolo"] = tmp / "model_imdb_cross_person_4.22_99.46.pth.tar"
    torch.save({"state_dict": mv.state_dict(), "min_age": 1.0, "max_age": 95.0, "avg_age": 48.0,
                "no_gender": False, "with_persons_model": True}, paths["mivolo"])

    ch, nb, mods = ((8, 16, 32, 64), 1, (1, 1, 1)) if small else ((32, 64, 128, 256), 4, (1, 4, 3))
    stages = {f"STAGE{n}": {"NUM_MODULES": m, "NUM_BRANCHES": n, "BLOCK": "BASIC",
                            "NUM_BLOCKS": [nb] * n, "NUM_CHANNELS": list(ch[:n]), "FUSE_METHOD": "SUM"}
              for n, m in zip((2, 3, 4), mods)}
    cfg = {"MODEL": {"NAME": "pose_hrnet", "NUM_JOINTS": 17, "USE_FEATUREMAP": True,
                     "IMAGE_SIZE": [192, 256], "EXTRA": {"FINAL_CONV_KERNEL": 1, **stages}}}
    paths["mebow_cfg"] = tmp / "segm-4_lr1e-3.yaml"
    paths["mebow_cfg"].write_text(yaml.safe_dump(cfg))
    hr = PoseHighResolutionNet(HRNetConfig.from_yaml_dict(cfg))
    paths["mebow_weights"] = tmp / "model_hboe.pth"
    torch.save(hr.state_dict(), paths["mebow_weights"])

    paths["vlm"] = tmp / "fastvlm"
    build_vlm(paths["vlm"], small)
    return paths


def build_vlm(folder: Path, small: bool) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, FastVlmConfig, FastVlmForConditionalGeneration,
                              LlavaProcessor, PreTrainedTokenizerFast)

    words = ["sitting", "<pad>", "<unk>", "<image>", "</s>", "walking", "standing", "lying",
             "falling", "grabbing", "paying", "theft"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    side, patch = (64, 32) if small else (1024, 64)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": side},
                                           crop_size={"height": side, "width": side}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="full",
        image_token="<image>", num_additional_image_tokens=0)
    if small:
        vision = {"model_type": "timm_wrapper", "architecture": "fastvit_t8", "hidden_size": 768,
                  "do_pooling": False, "model_args": {"inference_mode": True}, "num_classes": 0}
        text = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
                "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1,
                "vocab_size": len(words), "max_position_embeddings": 2048}
    else:  # FastVLM-0.5B: FastViT-HD (fastvit_mci3, 3072-d) + Qwen2-0.5B
        vision = {"model_type": "timm_wrapper", "architecture": "fastvit_mci3", "hidden_size": 3072,
                  "do_pooling": False, "model_args": {"inference_mode": True}, "num_classes": 0}
        text = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
                "num_attention_heads": 14, "num_key_value_heads": 2, "num_hidden_layers": 24,
                "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
                "tie_word_embeddings": True}
    text.update(pad_token_id=1, eos_token_id=4, bos_token_id=4)
    cfg = FastVlmConfig(vision_config=vision, text_config=text, image_token_index=3)
    FastVlmForConditionalGeneration(cfg).to(torch.float16 if not small else torch.float32).save_pretrained(folder)
    processor.save_pretrained(folder)


def fixed_persons(width: int, height: int, n: int):
    from pipeline.records import PersonDetections

    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    bw, bh = width / cols, height / rows
    xyxy, faces = [], []
    for i in range(n):
        c, r = i % cols, i // cols
        x1, y1 = c * bw + 0.15 * bw, r * bh + 0.05 * bh
        x2, y2 = x1 + 0.7 * bw, y1 + 0.9 * bh
        xyxy.append([x1, y1, x2, y2])
        fw = 0.35 * (x2 - x1)
        fx = (x1 + x2) / 2 - fw / 2
        faces.append([fx, y1, fx + fw, y1 + fw])
    return PersonDetections(xyxy=np.array(xyxy, np.float32), confidence=np.ones(n, np.float32),
                            keypoints=np.zeros((n, 17, 3), np.float32),
                            face_xyxy=np.array(faces, np.float32))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/testdata/clips/pedestrians/vtest_first20s.mp4"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--frame-skip", type=int, default=5)
    ap.add_argument("--max-frames", type=int, default=40, help="sampled frames to time")
    ap.add_argument("--batch", type=int, default=8, help="frames per detector batch")
    ap.add_argument("--persons", type=int, default=7, help="people per frame (vtest has about 7)")
    ap.add_argument("--small", action="store_true", help="tiny configs (CPU smoke test)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import av
    import torch

    from pipeline.backends.registry import load_backend
    from pipeline.records import Frame
    from settings import Settings

    cuda = args.device == "cuda"
    frames = []
    with av.open(args.clip) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % args.frame_skip == 0:
                frames.append(Frame(i, float(f.time or 0.0), f.to_ndarray(format="rgb24"), len(frames)))
            if len(frames) >= args.max_frames:
                break
    with tempfile.TemporaryDirectory() as td:
        t0 = time.perf_counter()
        paths = build_models(Path(td), args.small)
        print(f"built random models in {time.perf_counter() - t0:.1f}s", flush=True)
        s = Settings(device=args.device, detector_weights=paths["yolo"], mivolo_checkpoint=paths["mivolo"],
                     mebow_cfg=paths["mebow_cfg"], mebow_weights=paths["mebow_weights"], vlm_path=paths["vlm"])
        stages = {
            "detector": load_backend("detector", "yolo", s),
            "attributes": load_backend("attributes", "mivolo", s),
            "orientation": load_backend("orientation", "mebow", s),
            "action": load_backend("action", "vlm", s),
        }

    def sync():
        if cuda:
            torch.cuda.synchronize()

    persons = fixed_persons(frames[0].width, frames[0].height, args.persons)
    # warm-up (cudnn autotune, allocator)
    stages["detector"].detect(frames[: args.batch])
    stages["attributes"].estimate(frames[0], persons)
    stages["orientation"].estimate(frames[0], persons)
    stages["action"].recognize(frames[0], persons, {})
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    secs = {k: 0.0 for k in stages}
    for b in range(0, len(frames), args.batch):
        sync(); t = time.perf_counter()
        stages["detector"].detect(frames[b:b + args.batch])
        sync(); secs["detector"] += time.perf_counter() - t
    for f in frames:
        for key, call in (("attributes", lambda: stages["attributes"].estimate(f, persons)),
                          ("orientation", lambda: stages["orientation"].estimate(f, persons)),
                          ("action", lambda: stages["action"].recognize(f, persons, {}))):
            sync(); t = time.perf_counter()
            call()
            sync(); secs[key] += time.perf_counter() - t
    n = len(frames)
    total = sum(secs.values())
    report = {k: round(n / v, 2) for k, v in secs.items()}
    report["whole_stack"] = round(n / total, 2)
    report["frames"] = n
    report["persons_per_frame"] = args.persons
    report["device"] = torch.cuda.get_device_name(0) if cuda else "cpu"
    report["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    print("sampled frames/s per stage:")
    for k in stages:
        print(f"  {k:12s} {report[k]:8.2f}  ({1000 * secs[k] / n:.1f} ms/frame)")
    print(f"  {'whole stack':12s} {report['whole_stack']:8.2f}   target >= 20 on one H100")
    print(f"peak GPU memory: {report['peak_gpu_mem_gib']} GiB on {report['device']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
