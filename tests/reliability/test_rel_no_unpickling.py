"""Defect 2 (code execution): no heavy backend unpickles a user-supplied file. Each loader gets a
file whose ``__reduce__`` would create a marker file; the marker never appears and the error is
one line naming the file and the flag."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from settings import Settings

torch = pytest.importorskip("torch")


class Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path, wrap: str | None = "model") -> Path:
    obj = Evil(marker)
    torch.save({wrap: obj} if wrap else obj, path)
    return path


def _mebow_cfg(tmp_path: Path) -> Path:
    from test_mebow import _yaml

    p = tmp_path / "segm.yaml"
    p.write_text(_yaml())
    return p


def _vlm_folder(tmp_path: Path, marker: Path) -> Path:
    """A real (tiny) transformers checkpoint whose weights file is replaced by a pickle."""
    from test_vlm import _save_tiny

    d = tmp_path / "vlm"
    _save_tiny(d, flat_logits=True)
    for f in d.glob("*.safetensors*"):
        f.unlink()
    _evil(d / "pytorch_model.bin", marker, wrap=None)
    return d


CASES = {
    "yolo": lambda t, m: ("detector", "yolo",
                          Settings(detector_weights=_evil(t / "evil.pt", m))),
    "yolo-bare": lambda t, m: ("detector", "yolo",
                               Settings(detector_weights=_evil(t / "evil.pt", m, wrap=None))),
    "mivolo": lambda t, m: ("attributes", "mivolo",
                            Settings(mivolo_checkpoint=_evil(t / "evil.pth.tar", m, "state_dict"))),
    "mebow": lambda t, m: ("orientation", "mebow",
                           Settings(mebow_cfg=_mebow_cfg(t), mebow_weights=_evil(t / "evil.pth", m))),
    "vlm": lambda t, m: ("action", "vlm", Settings(vlm_path=_vlm_folder(t, m))),
}


@pytest.mark.parametrize("backend", sorted(CASES))
def test_malicious_pickle_runs_no_code(backend, tmp_path):
    marker = tmp_path / "PWNED"
    stage, name, settings = CASES[backend](tmp_path, marker)
    assert not marker.exists()
    with pytest.raises(BackendUnavailable) as err:
        load_backend(stage, name, settings)
    assert not marker.exists(), f"{backend}: code from the file ran"
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 600, msg
    if backend in ("mivolo", "mebow", "vlm"):
        assert "would run code from the file" in msg, msg


def test_the_marker_would_appear_if_unpickled(tmp_path):
    """The payload is real: a plain, unsafe load runs it (so the tests above test something)."""
    marker = tmp_path / "PWNED"
    torch.load(_evil(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()
