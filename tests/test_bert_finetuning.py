"""The given code of the BERT fine-tuning notebook: data, split, batches, metrics, checkpoints (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import text
from course_utils.given import bert_finetuning as tc


class _WordTokenizer:
    """A stand-in tokenizer: one id per word, [CLS]=1 ... [SEP]=2, pad 0."""

    pad_token_id = 0

    def __call__(self, texts, truncation=True, max_length=8):
        ids = [[1] + [3 + len(w) for w in t.split()][: max_length - 2] + [2] for t in texts]
        return {"input_ids": ids}


def _corpus(lengths: list[int]) -> tc.Corpus:
    texts = [" ".join(["word"] * n) for n in lengths]
    return tc.Corpus(texts, np.arange(len(lengths), dtype=np.int64) % 3)


def test_corpus_is_the_real_rotten_tomatoes() -> None:
    corpus = tc.rotten_tomatoes()
    assert len(corpus) == 5019 and len(set(corpus.texts)) == 5019  # 5,022 rows, 3 exact duplicates
    assert tc.class_counts(corpus.labels) == {"fresh": 2453, "rotten": 2410, "plot": 156}
    assert all("\n" not in t for t in corpus.texts)


def test_split_is_stratified_disjoint_and_fixed() -> None:
    labels = np.array([0] * 700 + [1] * 250 + [2] * 50)
    parts = tc.stratified_split(labels, (0.7, 0.15, 0.15), seed=0)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(1000))
    assert [len(p) for p in parts] == [700, 149, 151]  # rounded class by class
    assert [int((labels[p] == 2).sum()) for p in parts] == [35, 7, 8]
    again = tc.stratified_split(labels, (0.7, 0.15, 0.15), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_collate_pads_to_the_longest_and_masks() -> None:
    encoded = tc.encode(_WordTokenizer(), _corpus([1, 4, 2]), max_length=8)
    batch = tc.collate(encoded, [0, 1])
    assert batch["input_ids"].shape == (2, 6) and batch["attention_mask"].tolist()[0] == [1, 1, 1, 0, 0, 0]
    assert batch["input_ids"][0, 3:].tolist() == [0, 0, 0] and batch["labels"].tolist() == [0, 1]
    assert len(tc.encode(_WordTokenizer(), _corpus([50]), max_length=8).ids[0]) == 8  # truncated


def test_length_sorted_batches_cover_each_snippet_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    encoded = tc.encode(_WordTokenizer(), _corpus(rng.integers(1, 60, 500).tolist()), max_length=64)
    epoch = tc.length_sorted_batches(encoded, 16, np.random.default_rng(1))
    assert sorted(np.concatenate(epoch).tolist()) == list(range(500))
    assert max(len(b) for b in epoch) == 16
    sorted_pad = tc.padding_fraction([tc.collate(encoded, b) for b in epoch])
    assert sorted_pad < 0.1 < tc.padding_fraction(tc.shuffled_batches(encoded, 16))
    stream = tc.training_batches(encoded, 16, seed=0)
    first = [next(stream)["labels"] for _ in range(len(epoch))]
    second = [next(stream)["labels"] for _ in range(len(epoch))]
    assert sum(len(x) for x in second) == 500
    assert any(not torch.equal(a, b) for a, b in zip(first, second))  # reshuffled each epoch


def test_confusion_matrix_and_report() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 1, 0])
    cm = tc.confusion_matrix(labels, preds)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    report = tc.per_class_report(cm)
    assert report["fresh"]["precision"] == pytest.approx(2 / 3) and report["rotten"]["recall"] == 1.0
    assert report["plot"]["f1"] == 0.0 and report["plot"]["support"] == 1
    assert report["overall"]["accuracy"] == pytest.approx(4 / 6)
    assert report["overall"]["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert "macro-F1" in tc.format_report(report)


def test_predict_returns_probabilities_and_restores_the_mode() -> None:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(1, 3)

        def forward(self, input_ids, attention_mask):
            return (self.linear(attention_mask.sum(1, keepdim=True).float()),)

    model = Model().train()
    encoded = tc.encode(_WordTokenizer(), _corpus([1, 2, 3, 4, 5]), max_length=8)
    probs, labels = tc.predict(model, tc.eval_batches(encoded, batch_size=2))
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1) and model.training
    assert sorted(labels.tolist()) == sorted(encoded.labels.tolist())


def test_shipped_checkpoint_resolves_offline_and_hub_names_pass_through() -> None:
    path = Path(text.encoder_path())
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert text.encoder_path("bert-base-uncased") == "bert-base-uncased"
    tokenizer = tc.load_tokenizer()
    assert tokenizer("a fine film")["input_ids"] == [101, 1037, 2986, 2143, 102]


def test_random_encoder_has_the_pretrained_architecture() -> None:
    random = tc.load_encoder(pretrained=False)
    assert random.config.num_hidden_layers == 6 and random.config.hidden_size == 384
    assert sum(p.numel() for p in random.parameters()) == 22_713_216
    tiny = tc.tiny_encoder()
    out = tiny(input_ids=torch.randint(1, 100, (2, 5)))
    assert out.pooler_output.shape == (2, 32)


def test_small_checkpoint_is_the_three_layer_minilm_with_a_pooler() -> None:
    pytest.importorskip("onnx")
    small = tc.load_encoder(tc.SHIPPED_SMALL)
    assert small.config.num_hidden_layers == 3 and small.config.hidden_size == 384
    inputs = tc.load_tokenizer()(["a fine film", "a dull one"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = small(**inputs)
    assert out.pooler_output.shape == (2, 384)
    random = tc.load_encoder(tc.SHIPPED_SMALL, pretrained=False)
    assert sum(p.numel() for p in random.parameters()) == sum(p.numel() for p in small.parameters())
    word = small.embeddings.word_embeddings.weight
    assert not torch.equal(random.embeddings.word_embeddings.weight, word)


@pytest.mark.parametrize("name, pretrained", [(tc.SHIPPED_CHECKPOINT, True), (tc.SHIPPED_CHECKPOINT, False),
                                              (tc.SHIPPED_SMALL, True)])
def test_dropout_setting_reaches_every_encoder(name: str, pretrained: bool) -> None:
    """dropout=0.0 switches off hidden and attention dropout, so training mode gives the same output twice."""
    if name == tc.SHIPPED_SMALL:
        pytest.importorskip("onnx")
    inputs = tc.load_tokenizer()(["a fine film", "a dull, dull one"], return_tensors="pt", padding=True)
    outputs = {}
    for dropout in (None, 0.0):
        encoder = tc.load_encoder(name, pretrained=pretrained, dropout=dropout).train()
        expected = 0.1 if dropout is None else 0.0
        assert (encoder.config.hidden_dropout_prob, encoder.config.attention_probs_dropout_prob) == (expected, expected)
        with torch.no_grad():
            outputs[dropout] = [encoder(**inputs).last_hidden_state for _ in range(2)]
    assert not torch.equal(*outputs[None])  # BERT's own dropout: two different draws
    assert torch.equal(*outputs[0.0])
