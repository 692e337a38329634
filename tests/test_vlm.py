"""VLM action backend: a tiny FastVLM (the real FastVlmForConditionalGeneration code with a timm
FastViT tower and a Qwen2 decoder) plus a LLaVA processor and a WordLevel tokenizer built offline,
saved with save_pretrained, loaded through the registry, run on person crops of a real frame."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from pipeline.records import Action, ActionEstimate, Frame, PersonDetections
from settings import Settings

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# id 0 is "sitting": a decoder whose final norm is zero gives flat logits, and greedy picks id 0.
WORDS = ["sitting", "<pad>", "<unk>", "<image>", "</s>", "walking", "standing", "lying", "falling",
         "grabbing", "paying", "theft", "What", "is", "this", "person", "doing", "Answer", ":"]


def _save_tiny(folder, *, flat_logits: bool) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, FastVlmConfig, FastVlmForConditionalGeneration,
                              LlavaProcessor, PreTrainedTokenizerFast)

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    image_processor = CLIPImageProcessor(size={"shortest_edge": 64},
                                         crop_size={"height": 64, "width": 64})
    # fastvit_t8 downsamples by 32: a 64x64 crop gives 2x2 = 4 image tokens (patch_size 32).
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=32,
                               vision_feature_select_strategy="full", image_token="<image>",
                               num_additional_image_tokens=0)
    cfg = FastVlmConfig(
        vision_config={"model_type": "timm_wrapper", "architecture": "fastvit_t8", "hidden_size": 768,
                       "do_pooling": False, "model_args": {"inference_mode": True}, "num_classes": 0},
        text_config={"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1,
                     "vocab_size": len(WORDS), "max_position_embeddings": 256,
                     "pad_token_id": 1, "eos_token_id": 4, "bos_token_id": 4},
        image_token_index=3)
    torch.manual_seed(0)
    model = FastVlmForConditionalGeneration(cfg).eval()
    if flat_logits:
        torch.nn.init.zeros_(model.model.language_model.norm.weight)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    torch.set_num_threads(2)
    d = tmp_path_factory.mktemp("fastvlm-tiny")
    _save_tiny(d, flat_logits=True)
    return d


def _frame_and_people():
    import av

    with av.open(str(data_path("clips/intel/classroom.mp4"))) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")  # 480x270, people seated
    xyxy = np.array([[40, 90, 140, 260], [200, 80, 290, 250], [330, 100, 420, 260]], np.float32)
    return Frame(0, 0.0, img), PersonDetections(xyxy=xyxy, confidence=np.ones(3, np.float32),
                                                keypoints=np.zeros((3, 17, 3), np.float32))


def test_one_batched_generate_for_all_crops(tiny_vlm):
    rec = load_backend("action", "vlm", Settings(vlm_path=tiny_vlm))
    assert rec.name == "vlm" and type(rec.model).__name__ == "FastVlmForConditionalGeneration"
    calls = []
    orig = rec.model.generate

    def spy(*a, **kw):
        calls.append(kw["input_ids"].shape[0])
        return orig(*a, **kw)

    rec.model.generate = spy
    frame, persons = _frame_and_people()
    out = rec.recognize(frame, persons, {})
    assert calls == [3]  # one generate call, batch of 3 crops
    assert len(out) == 3 and all(isinstance(e, ActionEstimate) for e in out)
    for e in out:
        assert e.action == Action.SITTING  # flat logits -> token 0 -> "sitting"
        assert e.confidence == pytest.approx(1 / len(WORDS), rel=1e-3)  # uniform scores
    assert rec.recognize(frame, PersonDetections.empty(), {}) == []


def test_random_decoder_gives_valid_estimates(tmp_path):
    torch.set_num_threads(2)
    _save_tiny(tmp_path, flat_logits=False)
    rec = load_backend("action", "vlm", Settings(vlm_path=tmp_path))
    frame, persons = _frame_and_people()
    out = rec.recognize(frame, persons, {})
    assert len(out) == 3
    for e in out:
        assert isinstance(e.action, Action) and 0.0 <= e.confidence <= 1.0
        if e.action == Action.UNKNOWN:
            assert e.confidence == 0.0


@pytest.mark.parametrize("text, action", [
    ("sitting", Action.SITTING), (" The person is Walking.", Action.WALKING),
    ("lying on the floor", Action.LYING), ("He fell down", Action.FALLING),
    ("reaching to the shelf", Action.GRABBING), ("paying at the till", Action.PAYING),
    ("shoplifting", Action.THEFT), ("two men fighting", Action.VIOLENT), ("Running!", Action.RUNNING),
    ("I cannot tell", None), ("", None),
])
def test_parse_action(text, action):
    from pipeline.backends.vlm import parse_action

    assert parse_action(text) == action


def test_errors_are_one_line(tmp_path, tiny_vlm):
    with pytest.raises(BackendUnavailable, match="--vlm-path") as e:
        load_backend("action", "vlm", Settings())
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="not a folder"):
        load_backend("action", "vlm", Settings(vlm_path=tmp_path / "missing"))
    with pytest.raises(BackendUnavailable, match="no config.json"):
        load_backend("action", "vlm", Settings(vlm_path=tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(BackendUnavailable, match="cannot be loaded as an image-text-to-text") as e:
        load_backend("action", "vlm", Settings(vlm_path=tmp_path))
    assert "\n" not in str(e.value)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
            load_backend("action", "vlm", Settings(vlm_path=tiny_vlm, device="cuda"))
