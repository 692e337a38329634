"""Hand freed heap memory back to the system between the engine's phases.

onnxruntime's sessions run without their arena (``backends.onnx_common.cpu_session``), so each
model call allocates its activations with malloc and frees them after; glibc keeps freed pages
for reuse and raises its mmap threshold after the first large free, so a process that ran
several models holds far more than it uses (vtest.avi's backbone pass: 475 MB resident against
349 MB after a trim). ``give_back`` asks glibc to release them (``malloc_trim``, a few
milliseconds); elsewhere it does nothing. Fixing the mmap threshold instead doubled the run
time (every activation page-faulted afresh)."""
from __future__ import annotations

import ctypes
import ctypes.util

_trim = None  # malloc_trim, False where there is none


def give_back() -> None:
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _trim = False
    if _trim:
        _trim(0)
