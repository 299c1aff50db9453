"""Fast unit tests of course_utils.given.clip_prompting (no training, no hub)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.given import clip_prompting as clip


def test_prompt_wordings_have_one_prompt_per_digit():
    for name, prompts in clip.PROMPTS.items():
        assert len(prompts) == 10, name
        assert len(set(prompts)) == 10, f"{name}: two digits share a prompt"
    assert clip.PROMPTS["photo_word"][7] == "a photo of the number seven"


def test_training_captions_use_the_requested_forms():
    both = clip.training_captions(("numeral", "word"))
    numerals = clip.training_captions(("numeral",))
    assert len(both[7]) == 2 * len(numerals[7]) == 2 * len(clip.TRAIN_TEMPLATES)
    assert all("7" in c for c in numerals[7])
    assert not any("seven" in c for cs in numerals for c in cs)
    seen = {c for cs in both for c in cs}
    unseen = set(clip.PROMPTS["photo_word"]) | {p for ps in clip.ensemble_prompts() for p in ps}
    assert not seen & unseen, "evaluation prompts must be templates never seen in training"


def test_small_clip_shapes_and_initial_temperature():
    model = clip.SmallCLIP()
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    assert model.image_features(clip.to_input(images)).shape == (5, 64)
    assert model.text_features(torch.randn(3, 384)).shape == (3, 64)
    assert torch.isclose(torch.exp(-model.logit_scale), torch.tensor(0.07))


def test_caption_batches_leave_out_digits_without_captions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    images = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    captions = [[] if d in (3, 8) else [f"digit {d}"] for d in range(10)]
    table = {f"digit {d}": torch.full((384,), float(d)) for d in range(10)}
    batches = clip.caption_batches(images, labels, captions, table, batch_size=16)
    for _ in range(20):
        x, text = next(batches)
        assert x.shape == (16, 1, 28, 28) and text.shape == (16, 384)
        assert not set(text[:, 0].tolist()) & {3.0, 8.0}


class _FakeText:
    dim = 384

    def __call__(self, texts):
        return torch.stack([torch.full((384,), float(len(t))) for t in texts])


def test_small_engine_counts_one_run_per_item():
    engine = clip.SmallCLIPEngine(clip.SmallCLIP(), _FakeText())
    images = np.zeros((7, 28, 28), dtype=np.uint8)
    assert engine.encode_images(images).shape == (7, 64)
    assert engine.encode_text(["a", "bb", "ccc"]).shape == (3, 64)
    assert engine.counts == {"image": 7, "text": 3} and engine.runs == 10
    engine.reset_counts()
    assert engine.runs == 0


def test_pretrained_engine_reads_features_from_a_clip_model():
    """The real-CLIP wrapper on a tiny randomly initialised CLIPModel (the real weights need the hub)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 100, "max_position_embeddings": 16},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )

    class Processor:
        def __call__(self, images=None, text=None, return_tensors="pt", padding=False):
            if images is not None:
                return {"pixel_values": torch.randn(len(images), 3, 32, 32)}
            ids = torch.tensor([[1 + len(t) % 50, 2, 3] for t in text])
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    engine = clip.PretrainedCLIPEngine(CLIPModel(config), Processor(), "tiny")
    assert engine.encode_images([None, None]).shape == (2, 24)
    assert engine.encode_text(["a dog", "a cat", "x"]).shape == (3, 24)
    assert engine.runs == 5 and engine.logit_scale.dim() == 0


def test_pretrained_clip_offline_says_why(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    engine, reason = clip.load_pretrained_clip("openai/clip-vit-base-patch32")
    assert engine is None and reason


def test_photo_gallery_ships_offline():
    gallery = clip.photo_gallery(size=32)
    assert len(gallery) >= 21 and "dalmatian" in gallery.titles
    assert np.asarray(gallery.images[0]).shape == (32, 32, 3)


def test_digit_gallery_holds_every_class():
    labels = np.repeat(np.arange(10), 5)
    gallery = clip.digit_gallery(np.zeros((50, 28, 28), np.uint8), labels, per_class=2)
    assert len(gallery) == 20 and sorted(set(gallery.titles)) == sorted(f"a {w}" for w in clip.WORDS)


def test_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = torch.as_tensor(np.eye(3)[y] * 3 + rng.normal(0, 0.3, (300, 3)), dtype=torch.float32)
    assert clip.linear_probe(x[:200], y[:200], x[200:], y[200:], steps=100) > 0.95


@pytest.mark.parametrize("wording", ["roman", "german"])
def test_other_wordings_keep_digit_order(wording):
    assert clip.PROMPTS[wording][7].endswith({"roman": "VII", "german": "sieben"}[wording])
