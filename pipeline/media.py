"""Pixels for the UI: crops of a person at given frames of a video file, as JPEG bytes."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import numpy as np

Bbox = tuple[float, float, float, float]  # x, y, width, height in pixels


def crop_box(image: np.ndarray, bbox: Bbox, pad_w: float = 0.1,
             pad_h: float = 0.05) -> np.ndarray | None:
    """The box, padded by a share of its width/height and clipped to the image; None when what
    is left is under 4 px a side."""
    x, y, w, h = bbox
    H, W = image.shape[:2]
    x0, y0 = max(0, int(x - pad_w * w)), max(0, int(y - pad_h * h))
    x1, y1 = min(W, int(x + w + pad_w * w)), min(H, int(y + h + pad_h * h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return image[y0:y1, x0:x1]


def jpeg_thumbnail(image: np.ndarray, height_px: int, quality: int = 85) -> bytes:
    """An RGB array as a JPEG at most ``height_px`` high and twice that wide."""
    from PIL import Image

    img = Image.fromarray(image)
    img.thumbnail((height_px * 2, height_px))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def person_crops(path: str | Path, samples: Iterable[tuple[int, Bbox]],
                 height_px: int = 160) -> list[bytes]:
    """JPEG crops of a person at (frame_number, bbox) samples of a local video file; frames that
    cannot be read or boxes too small are skipped. Raises ``PipelineError`` when the file cannot
    be opened."""
    from pipeline.sampling import probe_video, read_frames

    path = Path(path)
    info = probe_video(path)
    out = []
    for frame_number, bbox in samples:
        frames = read_frames(path, frame_number, frame_number, 1, info=info)
        if not frames:
            continue
        crop = crop_box(frames[0].image, bbox)
        if crop is not None:
            out.append(jpeg_thumbnail(crop, height_px))
    return out
