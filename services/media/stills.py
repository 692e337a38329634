"""A photo with the person an event found outlined on it (the Video page shows a photo's event
this way: a photo has no player to seek to the moment, so the box is what points at the person).
"""
from __future__ import annotations

import io
import logging

log = logging.getLogger("va.services.media.stills")


def outline_person(photo: bytes, bbox: tuple[float, float, float, float],
                   label: str = "") -> bytes | None:
    """``photo`` (JPEG/PNG bytes) with ``bbox`` (x, y, width, height in the photo's pixels)
    drawn as a box with ``label`` above it, as JPEG; None when the photo cannot be read or the
    box is empty."""
    import cv2
    import numpy as np
    from PIL import Image, ImageDraw

    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        return None
    # Decoded by OpenCV, not PIL's Image.open: ultralytics (loaded where a YOLO backend is)
    # replaces Image.open with one that tries to install a HEIF plug-in on an unknown image.
    bgr = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR) if photo else None
    if bgr is None:
        log.warning("cannot read the photo to outline a person (not a JPEG/PNG image)")
        return None
    img = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 150))
    draw.rectangle((x, y, x + w, y + h), outline=(255, 64, 64), width=width)
    if label:
        top = max(0.0, y - 14 * max(1, width // 2) - 4)
        draw.rectangle(draw.textbbox((x, top), label), fill=(255, 64, 64))
        draw.text((x, top), label, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()
