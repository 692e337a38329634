"""pipeline/backends/registry.py: BACKENDS is the one list; capabilities, the worker's model cache
key and chat models all come from it."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from pipeline.backends import protocols
from pipeline.backends.registry import (
    BACKENDS, REGISTRY, SETTING_FOR_STAGE, STAGE_SETTING, available, backends_key, load_backend,
)
from pipeline.errors import BackendUnavailable
from settings import Settings


def test_every_factory_exists_and_every_setting_is_a_settings_field():
    known = set(Settings.__dataclass_fields__)
    for b in BACKENDS:
        module, _, attr = b.factory.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, b
        defs = {n.name for n in ast.parse(Path(spec.origin).read_text()).body
                if isinstance(n, ast.FunctionDef)}
        assert attr in defs, f"{b.factory} is not defined"
        assert set(b.settings) <= known, (b.name, set(b.settings) - known)
    assert set(STAGE_SETTING.values()) <= known
    assert {s for s in REGISTRY} == set(STAGE_SETTING) == set(SETTING_FOR_STAGE)


def test_offline_defaults_are_always_available_and_heavy_ones_need_their_weights(tmp_path):
    plain = Settings(models_dir=tmp_path)
    assert available("detector", plain) == ("movenet",)
    assert available("chat", plain) == ()
    w = tmp_path / "w.pt"
    full = Settings(models_dir=tmp_path, detector_weights=w, bedrock_region="eu-west-1",
                    openai_base_url="http://127.0.0.1:1/v1")
    assert available("detector", full) == ("movenet", "yolo")
    assert available("scene", full) == ("template", "bedrock", "openai")
    assert available("chat", full) == ("bedrock", "openai")


def test_cache_key_follows_every_setting_the_chosen_backends_read(tmp_path):
    base = Settings()
    same = Settings(library_dir=tmp_path, embedder="titan")  # not analysis backends' settings
    assert backends_key(base) == backends_key(same)
    for changed in (dict(proposals="none"), dict(cpu_threads=1), dict(device="cuda"),
                    dict(detector="yolo", detector_weights=tmp_path / "y.pt"),
                    dict(attributes="mivolo", mivolo_checkpoint=tmp_path / "m.pth")):
        assert backends_key(base) != backends_key(Settings(**changed)), changed
    # A heavy backend's weights count only when it is the chosen one.
    assert backends_key(base) == backends_key(Settings(vlm_path=tmp_path))
    assert (backends_key(Settings(action="vlm", vlm_path=tmp_path))
            != backends_key(Settings(action="vlm", vlm_path=tmp_path / "other")))
    mivolo = Settings(attributes="mivolo", mivolo_checkpoint=tmp_path / "m.pth")
    assert backends_key(mivolo) != backends_key(
        Settings(attributes="mivolo", mivolo_checkpoint=tmp_path / "m.pth",
                 mivolo_with_persons=False))


def test_unknown_names_say_what_exists():
    with pytest.raises(BackendUnavailable, match="choose one of .*VA_ANSWERER"):
        load_backend("chat", "nope", Settings())
    with pytest.raises(BackendUnavailable, match="unknown stage"):
        load_backend("nope", "x", Settings())


def test_chat_is_a_stage_with_its_protocol():
    from services.search.answer import load_chat_model
    from services.errors import ServiceError

    assert hasattr(protocols, "ChatModel")
    assert load_chat_model(Settings()) is None  # nothing configured: extractive
    assert load_chat_model(Settings(answerer="extractive", bedrock_region="x")) is None
    with pytest.raises(ServiceError, match="VA_ANSWERER"):
        load_chat_model(Settings(answerer="claude"))
