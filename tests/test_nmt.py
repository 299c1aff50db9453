"""Unit tests of course_utils.given.nmt: the Pig Latin rules, the datasets, batching and the
given models (run with stand-in attention layers, so no answer of the notebook is needed)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from course_utils.given import nmt as piglatin
from course_utils.given.nmt import VOCAB


class UniformAttention(nn.Module):
    """A stand-in attention layer: every query takes the plain mean of the values."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.V = nn.Linear(hidden_size, hidden_size)

    def forward(self, queries, keys, values):
        weights = torch.full((queries.shape[0], queries.shape[1], keys.shape[1]), 1.0 / keys.shape[1])
        return weights @ self.V(values), weights


def no_positions(max_len: int, hidden_size: int) -> torch.Tensor:
    return torch.zeros(max_len, hidden_size)


def tiny_model(hidden_size: int = 8) -> piglatin.EncoderDecoder:
    torch.manual_seed(0)
    return piglatin.EncoderDecoder(hidden_size, 1, attention=UniformAttention, causal_attention=UniformAttention,
                                   positional_encodings=no_positions)


@pytest.mark.parametrize("english, expected", [
    ("and", "andway"), ("apple", "appleway"), ("the", "ethay"), ("string", "ingstray"),
    ("yes", "esyay"), ("rhythm", "ythmrhay"), ("my", "ymay"), ("queen", "eenquay"),
    ("square", "aresquay"), ("www", "wwway"), ("well-known", "ellway-ownknay"),
])
def test_pig_latin_rules(english: str, expected: str) -> None:
    assert piglatin.pig_latin(english) == expected


def test_datasets_are_fixed_disjoint_splits() -> None:
    small, large = piglatin.load_pairs("small"), piglatin.load_pairs("large")
    assert (len(small.train), len(small.test)) == (2560, 640)
    assert (len(large.train), len(large.test)) == (17600, 4400)
    assert not {e for e, _ in large.train} & {e for e, _ in large.test}
    assert piglatin.load_pairs("small") == small  # same words, same order, every time
    assert all(piglatin.pig_latin(e) == p for e, p in small.train[:200])
    assert len(piglatin.load_pairs("large", max_test=50).test) == 50


def test_vocab_round_trip() -> None:
    assert len(VOCAB) == 30
    assert VOCAB.decode(VOCAB.encode("ab-c") + [VOCAB.eos] + VOCAB.encode("zz")) == "ab-c"
    x = torch.tensor([[1, 2]])
    assert piglatin.append_token(x, VOCAB.eos).tolist() == [[1, 2, VOCAB.eos]]
    assert piglatin.prepend_token(x, VOCAB.sos).tolist() == [[VOCAB.sos, 1, 2]]


def test_length_batches_need_no_padding() -> None:
    pairs = piglatin.load_pairs("small").train
    batches = piglatin.length_batches(pairs, batch_size=64)
    assert sum(len(src) for src, _ in batches) == len(pairs)
    assert all(len(src) <= 64 and src.shape[0] == tgt.shape[0] for src, tgt in batches)
    words = sorted(VOCAB.decode(row.tolist()) for src, _ in batches for row in src)
    assert words == sorted(e for e, _ in pairs)


def test_encoder_decoder_shapes_and_translation() -> None:
    model = tiny_model()
    src, tgt = piglatin.length_batches(piglatin.load_pairs("small").train, batch_size=5)[0]
    logits, weights = model(src, piglatin.prepend_token(tgt, VOCAB.sos))
    assert logits.shape == (5, tgt.shape[1] + 1, len(VOCAB))
    assert weights[0].shape == (5, tgt.shape[1] + 1, src.shape[1] + 1)
    assert piglatin.encdec_loss(model, src, tgt).ndim == 0
    out = piglatin.translate(model, ["the", "string", "the"])
    assert len(out) == 3 and out[0] == out[2]
    translation, maps = piglatin.attention_maps(model, "cat")
    assert maps[0].shape == (len(translation) + 1, 4)


def test_short_training_lowers_the_loss() -> None:
    data = piglatin.load_pairs("small", max_test=64)
    model = tiny_model()
    history = piglatin.train(model, lambda s, t: piglatin.encdec_loss(model, s, t), data, epochs=0.2)
    assert history["loss"][-1] < history["loss"][0]
    assert len(history["val_loss"]) == 1 and 0 <= piglatin.exact_match(model, data.test[:20]) <= 1


def test_save_and_reload(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    model = tiny_model()
    piglatin.save_model(model, "unit", model.config, {"loss": [1.0]})
    build = lambda **config: piglatin.EncoderDecoder(  # noqa: E731
        **config, attention=UniformAttention, causal_attention=UniformAttention, positional_encodings=no_positions)
    reloaded, history = piglatin.load_model("unit", build)
    assert history == {"loss": [1.0]}
    assert piglatin.translate(reloaded, ["hello"]) == piglatin.translate(model, ["hello"])
