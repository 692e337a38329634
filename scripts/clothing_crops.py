"""Candidates for the clothing-colour label set (``datasets/clothing/labels.csv``) and contact
sheets to label them by eye.

    python scripts/clothing_crops.py detect   # people in the surveillance-fight clips (heavy)
    python scripts/clothing_crops.py sheets   # numbered crops, upper/lower regions outlined

``detect`` runs the product's detector (MoveNet MultiPose) on frame ``FRAME`` of every clip of
../shared/datasets/surveillance-fight whose recording is known and not ``EXCLUDED`` (the search
benchmark's), places each person's upper and lower regions with ``pipeline.clothing.body_parts``
and keeps up to ``PER_RECORDING`` people per recording (spread over its clips, largest first)
in var/clothing/candidates.json. ``sheets`` draws var/clothing/sheet_NN.png (git-ignored: no
footage in the repo). The labels themselves are written by hand (see labelling.md).
"""
from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIGHT = ROOT.parent / "shared" / "datasets" / "surveillance-fight"
EXCLUDED = {"7q6KJoSgxmY"}  # fi003 / nofi001's recording: in the search benchmark
FRAME = 25
MIN_BOX_H = 70.0
MIN_CONF = 0.3
PER_RECORDING = 16
OUT = ROOT / "var" / "clothing"


def clips() -> list[tuple[str, str]]:
    """(clip name, source_video) of the usable clips: recording known and not excluded."""
    with open(FIGHT / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    return [(Path(r["clip"]).name, r["source_video"]) for r in rows
            if r["source_video"] and r["source_video"] not in EXCLUDED]


def read_frame(clip: str, frame: int) -> np.ndarray:
    from pipeline.sampling import read_frames

    return read_frames(FIGHT / "clips" / clip, frame, frame, 1)[0].image


def detect() -> None:
    from pipeline.backends.movenet import load_movenet
    from pipeline.clothing import body_parts
    from settings import Settings

    det = load_movenet(Settings())
    found = defaultdict(list)
    for clip, src in clips():
        frame = FRAME
        try:
            image = read_frame(clip, frame)
        except IndexError:  # a short clip: its middle
            from pipeline.sampling import probe_video
            frame = max(0, int(probe_video(FIGHT / "clips" / clip).frame_count) // 2)
            image = read_frame(clip, frame)
        d = det.detect_image(image)
        for i in range(len(d.xyxy)):
            x0, y0, x1, y1 = map(float, d.xyxy[i])
            if y1 - y0 < MIN_BOX_H or float(d.confidence[i]) < MIN_CONF:
                continue
            kps = [tuple(map(float, k)) for k in d.keypoints[i]]
            upper, lower = body_parts((x0, y0, x1, y1), kps)
            found[src].append({"clip": clip, "source_video": src, "frame": frame,
                               "box": [round(v, 1) for v in (x0, y0, x1 - x0, y1 - y0)],
                               "upper": [round(v, 1) for v in upper],
                               "lower": [round(v, 1) for v in lower]})
        print(clip, src, len(d.xyxy), flush=True)
    chosen = []
    for src, rows in sorted(found.items()):
        by_clip = defaultdict(list)
        for r in sorted(rows, key=lambda r: -r["box"][3]):
            by_clip[r["clip"]].append(r)
        queues, picked = [by_clip[c] for c in sorted(by_clip)], []
        while len(picked) < PER_RECORDING and any(queues):  # round robin over the clips
            for q in queues:
                if q and len(picked) < PER_RECORDING:
                    picked.append(q.pop(0))
        chosen += picked
    for i, r in enumerate(chosen):
        r["id"] = i
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "candidates.json").write_text(json.dumps(chosen, indent=0))
    print(len(chosen), "people from", len({r["source_video"] for r in chosen}), "recordings")


def detect_colourful(frames=(5, 45), per_recording: int = 4, total: int = 48) -> None:
    """A second batch for the rarer names: people at other moments (``frames``) whose upper or
    lower region has the largest share of saturated pixels (saturation >= 90, value >= 60),
    at most ``per_recording`` per recording, ``total`` in all; ids from 1000
    (var/clothing/candidates2.json)."""
    from pipeline.backends.movenet import load_movenet
    from pipeline.clothing import body_parts, is_grayscale
    from pipeline.media import region_hsv
    from settings import Settings

    det = load_movenet(Settings())
    found = []
    for clip, src in clips():
        for frame in frames:
            try:
                image = read_frame(clip, frame)
            except IndexError:
                continue
            if is_grayscale(image):
                continue
            d = det.detect_image(image)
            for i in range(len(d.xyxy)):
                x0, y0, x1, y1 = map(float, d.xyxy[i])
                if y1 - y0 < MIN_BOX_H or float(d.confidence[i]) < MIN_CONF:
                    continue
                upper, lower = body_parts((x0, y0, x1, y1), [tuple(map(float, k))
                                                              for k in d.keypoints[i]])
                score = 0.0
                for reg in (upper, lower):
                    hsv = region_hsv(image, reg) if reg[2] > 0 and reg[3] > 0 else None
                    if hsv is not None:
                        score = max(score, float(np.mean((hsv[..., 1] >= 90)
                                                         & (hsv[..., 2] >= 60))))
                found.append((score, {"clip": clip, "source_video": src, "frame": frame,
                                      "box": [round(v, 1) for v in (x0, y0, x1 - x0, y1 - y0)],
                                      "upper": [round(v, 1) for v in upper],
                                      "lower": [round(v, 1) for v in lower]}))
        print(clip, flush=True)
    per, chosen = defaultdict(int), []
    for score, r in sorted(found, key=lambda t: -t[0]):
        if per[r["source_video"]] < per_recording and len(chosen) < total and score > 0.15:
            per[r["source_video"]] += 1
            chosen.append(r)
    for i, r in enumerate(chosen):
        r["id"] = 1000 + i
    (OUT / "candidates2.json").write_text(json.dumps(chosen, indent=0))
    print(len(chosen), "people from", len({r["source_video"] for r in chosen}), "recordings")


def sheets(name: str = "candidates.json", prefix: str = "sheet", per_sheet: int = 12, cols: int = 6, tile_h: int = 300) -> None:
    from PIL import Image, ImageDraw

    rows = json.loads((OUT / name).read_text())
    tiles = []
    for r in rows:
        image = read_frame(r["clip"], r["frame"])
        x, y, w, h = r["box"]
        H, W = image.shape[:2]
        x0, y0 = max(0, int(x - 0.15 * w)), max(0, int(y - 0.05 * h))
        x1, y1 = min(W, int(x + 1.15 * w)), min(H, int(y + 1.05 * h))
        s = tile_h / (y1 - y0)
        img = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).resize(
            (max(1, int((x1 - x0) * s)), tile_h), Image.LANCZOS)
        draw = ImageDraw.Draw(img)
        for part, col in (("upper", (255, 0, 255)), ("lower", (0, 255, 255))):
            px, py, pw, ph = r[part]
            if pw > 0 and ph > 0:
                draw.rectangle([(px - x0) * s, (py - y0) * s, (px + pw - x0) * s,
                                (py + ph - y0) * s], outline=col, width=1)
        tile = Image.new("RGB", (max(img.width, 90) + 6, tile_h + 18), "white")
        tile.paste(img, (0, 0))
        ImageDraw.Draw(tile).text((2, tile_h + 3), f"#{r['id']} {r['clip'][:-4]}", fill="black")
        tiles.append(tile)
    for k in range(0, len(tiles), per_sheet):
        group = tiles[k:k + per_sheet]
        lines = [group[i:i + cols] for i in range(0, len(group), cols)]
        width = max(sum(t.width for t in line) for line in lines)
        sheet = Image.new("RGB", (width, len(lines) * (tile_h + 18)), (200, 200, 200))
        for j, line in enumerate(lines):
            xo = 0
            for t in line:
                sheet.paste(t, (xo, j * (tile_h + 18)))
                xo += t.width
        sheet.save(OUT / f"{prefix}_{k // per_sheet:02d}.png")
    print(len(tiles), "tiles")


def write_csv(labels: Path = OUT / "my_labels.txt") -> None:
    """datasets/clothing/labels.csv from the candidates and the names given by eye in
    ``labels`` (lines ``id upper lower``; ``skip`` drops the person). Parts on grayscale or
    infrared frames are left out (the product names no colour there), as are empty regions."""
    from pipeline.clothing import is_grayscale

    names = {}
    for line in labels.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            i, up, low = line.split()
            names[int(i)] = (up, low)
    people = [r for f in ("candidates.json", "candidates2.json") if (OUT / f).is_file()
              for r in json.loads((OUT / f).read_text())]
    rows, gray = [], 0
    for r in people:
        if r["id"] not in names or names[r["id"]][0] == "skip":
            continue
        if is_grayscale(read_frame(r["clip"], r["frame"])):
            gray += 1
            continue
        for part, colour in zip(("upper", "lower"), names[r["id"]]):
            x, y, w, h = r[part]
            if w < 1 or h < 1:
                continue
            rows.append({"clip": r["clip"], "source_video": r["source_video"],
                         "frame": r["frame"], "box_x": r["box"][0], "box_y": r["box"][1],
                         "box_w": r["box"][2], "box_h": r["box"][3], "part": part,
                         "x": x, "y": y, "w": w, "h": h, "colour": colour})
    path = ROOT / "datasets" / "clothing" / "labels.csv"
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    named = [r for r in rows if r["colour"] != "unknown"]
    print(len(rows), "rows,", len(named), "named, from",
          len({r["source_video"] for r in named}), "recordings;", gray,
          "people on grayscale frames left out")


if __name__ == "__main__":
    {"detect": detect, "sheets": sheets, "colourful": detect_colourful,
     "sheets2": lambda: sheets("candidates2.json", "sheet2"), "csv": write_csv}[sys.argv[1]]()
