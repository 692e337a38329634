"""Contact sheet of clothing colours, for checking the names by eye: for each stored track of
the analysed videos, its largest sample cropped from the video file with the upper/lower regions
outlined (the box's shares; the engine places them by the keypoints when it has them) and the
colour names stored for the track written under it.

    python scripts/clothing_sheet.py --data-dir var/eval-search --out var/clothing_sheet.png

The videos are read from ../shared/testdata/clips (by name) or their stored local path.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTDATA = ROOT.parent / "shared" / "testdata" / "clips"
TILE_H = 200


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "eval-search")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "clothing_sheet.png")
    ap.add_argument("--min-height", type=float, default=60.0, help="smallest box (px) shown")
    args = ap.parse_args(argv)
    os.environ["VA_DATA_DIR"] = str(args.data_dir.resolve())
    for var in ("DATABASE_URL", "POSTGRES_HOST"):
        os.environ.pop(var, None)
    import numpy as np
    from PIL import Image, ImageDraw

    from db import queries
    from db.records import SearchFilters
    from pipeline.media import CLOTHES_PARTS, crop_box
    from pipeline.sampling import read_frames
    from services import database
    from settings import Settings

    settings = Settings.from_env()
    with database.pooled(settings) as conn:
        videos = {v.video_id: v for v in queries.list_videos(conn)}
        events = queries.list_events(conn, SearchFilters(event_types=("person",)))
    best: dict[tuple[int, int], object] = {}
    for e in events:
        key = (e.video_id, int(e.obj_id or 0))
        if key not in best or e.bbox[3] > best[key].bbox[3]:
            best[key] = e
    tiles = []
    for (vid, oid), e in sorted(best.items()):
        if e.bbox[3] < args.min_height:
            continue
        name = videos[vid].name
        found = list(TESTDATA.rglob(name))
        if not found:
            continue
        image = read_frames(found[0], e.frame_number, e.frame_number, 1)[0].image
        crop = crop_box(image, e.bbox, 0.0, 0.0)
        if crop is None:
            continue
        img = Image.fromarray(np.ascontiguousarray(crop))
        scale = TILE_H / img.height
        img = img.resize((max(1, int(img.width * scale)), TILE_H))
        draw = ImageDraw.Draw(img)
        for (top, bottom), col in zip(CLOTHES_PARTS, ((255, 0, 255), (0, 255, 255))):
            draw.rectangle([0.2 * img.width, top * TILE_H, 0.8 * img.width, bottom * TILE_H],
                           outline=col, width=1)
        tile = Image.new("RGB", (max(img.width, 130), TILE_H + 34), "white")
        tile.paste(img, (0, 0))
        text = ImageDraw.Draw(tile)
        text.text((2, TILE_H + 2), f"{name[:14]} #{oid}", fill="black")
        text.text((2, TILE_H + 18), f"{e.upper_colour.value} / {e.lower_colour.value}",
                  fill="black")
        tiles.append(tile)
    if not tiles:
        print("no person tracks found", file=sys.stderr)
        return 1
    cols = 8
    w = max(t.width for t in tiles)
    sheet = Image.new("RGB", (cols * w, ((len(tiles) + cols - 1) // cols) * (TILE_H + 34)), "grey")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * (TILE_H + 34)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{len(tiles)} tracks -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
