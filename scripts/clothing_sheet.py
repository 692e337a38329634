"""Contact sheet of clothing colours, for checking the names by eye: each track's clearest
sample cropped, its upper (shoulders-hips) and lower (hips-knees) regions outlined, and the
colour names the engine gave the track written under it.

    python scripts/clothing_sheet.py CLIP [CLIP ...] --out tmp/clothing_sheet.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import numpy as np
    from PIL import Image, ImageDraw

    from pipeline import clothing
    from pipeline.media import crop_box
    from pipeline.run import run_video
    from pipeline.sampling import probe_video, read_frames
    from settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("tmp/clothing_sheet.png"))
    ap.add_argument("--max-tracks", type=int, default=8, help="per clip, the longest tracks")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    tiles = []
    for clip in args.clips:
        result = run_video(clip, Path("tmp/clothing_sheet_out") / clip.stem, settings)
        names = {}
        for e in result.events:
            names.setdefault(e.obj_id, (e.upper_colour.value, e.lower_colour.value))
        by_track: dict[int, list] = {}
        for o in result.observations:
            by_track.setdefault(o.obj_id, []).append(o)
        info = probe_video(clip)
        tracks = sorted(by_track, key=lambda t: -len(by_track[t]))[:args.max_tracks]
        for oid in tracks:
            best = max(by_track[oid], key=clothing.clarity)
            frame = read_frames(clip, best.frame_number, best.frame_number, 1, info=info)[0]
            image = frame.image.copy()
            x0, y0, x1, y1 = best.xyxy
            crop = crop_box(image, (x0, y0, x1 - x0, y1 - y0))
            if crop is None:
                continue
            upper, lower = clothing.body_parts(best.xyxy, best.keypoints)
            ox, oy = max(0, int(x0 - 0.1 * (x1 - x0))), max(0, int(y0 - 0.05 * (y1 - y0)))
            img = Image.fromarray(np.ascontiguousarray(crop))
            scale = 200 / max(1, img.height)
            img = img.resize((max(1, int(img.width * scale)), 200))
            draw = ImageDraw.Draw(img)
            for (rx, ry, rw, rh), colour in ((upper, (255, 0, 255)), (lower, (0, 255, 255))):
                box = [(rx - ox) * scale, (ry - oy) * scale, (rx + rw - ox) * scale,
                       (ry + rh - oy) * scale]
                draw.rectangle(box, outline=colour, width=2)
            tile = Image.new("RGB", (max(img.width, 150), 236), "white")
            tile.paste(img, (0, 0))
            up, low = names.get(oid, ("?", "?"))
            text = ImageDraw.Draw(tile)
            text.text((2, 202), f"{clip.stem[:16]} #{oid}", fill="black")
            text.text((2, 218), f"up {up} / low {low}", fill="black")
            tiles.append(tile)
    if not tiles:
        print("no person tracks found", file=sys.stderr)
        return 1
    cols = 6
    w = max(t.width for t in tiles)
    sheet = Image.new("RGB", (cols * w, ((len(tiles) + cols - 1) // cols) * 236), "grey")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * 236))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{len(tiles)} tracks -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
