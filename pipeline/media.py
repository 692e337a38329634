"""Pixels for the UI: crops of a person at given frames of a video file, as JPEG bytes."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

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


#: Upper and lower body as shares of a person box's height (when no keypoints place them).
CLOTHES_PARTS = ((0.15, 0.5), (0.5, 0.85))


def region_hsv(image: np.ndarray, bbox: Bbox) -> np.ndarray | None:
    """The RGB image's pixels inside ``bbox`` (no padding) as OpenCV HSV (H 0-180, S and V
    0-255); None when the region is under 4 px a side."""
    import cv2

    inner = crop_box(image, bbox, 0.0, 0.0)
    if inner is None:
        return None
    return cv2.cvtColor(np.ascontiguousarray(inner), cv2.COLOR_RGB2HSV)


def clothes_histogram(image: np.ndarray, bbox: Bbox) -> np.ndarray | None:
    """Hue-saturation histograms (12x6 each, together summing to 1) of the person's clothes:
    upper body (15-50 % of the box's height) and lower body (50-85 %), each over the middle
    60 % of its width (less background, no floor), so a shirt and trousers of other colours
    count apart. None when a part is under 4 px a side. ``image`` is RGB."""
    import cv2

    x, y, w, h = bbox
    parts = []
    for top, bottom in CLOTHES_PARTS:
        hsv = region_hsv(image, (x + 0.2 * w, y + top * h, 0.6 * w, (bottom - top) * h))
        if hsv is None:
            return None
        hist = cv2.calcHist([hsv], [0, 1], None, [12, 6], [0, 180, 0, 256]).astype(np.float32)
        total = float(hist.sum())
        if total <= 0:
            return None
        parts.append(hist / (2.0 * total))
    return np.concatenate(parts)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two histograms: 0 the same colours, 1 none in common."""
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def _median(hists: Sequence[np.ndarray]) -> np.ndarray:
    return np.median(np.stack(hists), axis=0).astype(np.float32)


def _colour_cut(piece: list[int], hists: Sequence[np.ndarray | None]) -> int | None:
    """Where in ``piece`` the clothes change for good: the cut (at least 2 samples each side)
    whose two sides' median colours differ most, if by more than ``IDENTITY_MAX_COLOUR_DIST``.
    Medians of each side, not consecutive samples: one sample's pose or light is not a cut."""
    from pipeline import thresholds as T

    best, best_d = None, T.IDENTITY_MAX_COLOUR_DIST
    for c in range(2, len(piece) - 1):
        left = [hists[i] for i in piece[:c] if hists[i] is not None]
        right = [hists[i] for i in piece[c:] if hists[i] is not None]
        if len(left) < 2 or len(right) < 2:
            continue
        d = colour_distance(_median(left), _median(right))
        if d > best_d:
            best, best_d = c, d
    return best


def same_person_picks(t_s: Sequence[float], boxes: Sequence[Bbox],
                      hists: Sequence[np.ndarray | None], n: int = 3) -> list[int]:
    """Indices (time order) of up to ``n`` samples of one track that show one person.

    The samples are cut where the box moved faster than a person can between consecutive ones
    (``IDENTITY_MAX_SPEED_BH_S``) and where the clothes' colours change for good
    (``_colour_cut``). The longest piece is the track's person (ties: the one with the largest
    box); its samples far from its median colours are dropped; of the rest, ``n`` neighbouring
    ones around the largest box (the clearest view) are returned."""
    from pipeline import thresholds as T

    if not len(t_s):
        return []
    pieces: list[list[int]] = [[0]]
    for i in range(1, len(t_s)):
        prev = pieces[-1][-1]
        (x0, y0, w0, h0), (x1, y1, w1, h1) = boxes[prev], boxes[i]
        moved = float(np.hypot((x1 + w1 / 2) - (x0 + w0 / 2), (y1 + h1 / 2) - (y0 + h0 / 2)))
        dt = max(0.0, float(t_s[i]) - float(t_s[prev]))
        if moved / max(1.0, (h0 + h1) / 2.0) > T.IDENTITY_MAX_SPEED_BH_S * dt + \
                T.IDENTITY_JUMP_SLACK_BH:
            pieces.append([i])
        else:
            pieces[-1].append(i)
    todo, done = pieces, []
    while todo:  # cut each piece where the clothes change, until none does
        piece = todo.pop()
        c = _colour_cut(piece, hists)
        if c is None:
            done.append(piece)
        else:
            todo += [piece[:c], piece[c:]]

    def area(i: int) -> float:
        return float(boxes[i][2] * boxes[i][3])

    piece = max(done, key=lambda p: (len(p), max(area(i) for i in p)))
    known = [hists[i] for i in piece if hists[i] is not None]
    if len(known) >= 3:
        median = _median(known)
        piece = [i for i in piece if hists[i] is None
                 or colour_distance(hists[i], median) <= T.IDENTITY_MAX_COLOUR_DIST] or piece
    best = max(range(len(piece)), key=lambda j: area(piece[j]))
    lo = max(0, min(best - (n - 1) // 2, len(piece) - n))
    return piece[lo:lo + n]


def same_person_crops(path: str | Path, samples: Sequence[tuple[int, float, Bbox]],
                      n: int = 3, height_px: int = 160) -> list[bytes]:
    """JPEG crops of one person from a track's samples (frame_number, t_s, bbox) of a local
    video file: the frames are read, and ``same_person_picks`` keeps the samples that agree.
    Raises ``PipelineError`` when the file cannot be opened."""
    from pipeline.sampling import probe_video, read_frames

    path = Path(path)
    info = probe_video(path)
    images: list[np.ndarray | None] = []
    for frame_number, _, _ in samples:
        frames = read_frames(path, frame_number, frame_number, 1, info=info)
        images.append(frames[0].image if frames else None)
    read = [i for i, img in enumerate(images) if img is not None]
    hists = [clothes_histogram(images[i], samples[i][2]) for i in read]
    picks = same_person_picks([samples[i][1] for i in read], [samples[i][2] for i in read],
                              hists, n)
    out = []
    for j in picks:
        crop = crop_box(images[read[j]], samples[read[j]][2])
        if crop is not None:
            out.append(jpeg_thumbnail(crop, height_px))
    return out
