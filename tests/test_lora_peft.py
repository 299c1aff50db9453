"""Unit tests of the LoRA / PEFT assignment's given code (course_utils.given.lora_peft), on a tiny BERT: no training of MiniLM."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from course_utils.given import lora_peft as given


def _encoded(n: int = 24, seed: int = 0) -> given.Encoded:
    """Snippets of random ids in the tiny encoder's vocabulary, framed like BERT's ([CLS]=1 ... [SEP]=2)."""
    rng = np.random.default_rng(seed)
    ids = [[1] + rng.integers(5, 100, int(rng.integers(2, 12))).tolist() + [2] for _ in range(n)]
    return given.Encoded(ids, (np.arange(n) % 3).astype(np.int64), pad_id=0)


def _batch(encoded: given.Encoded, k: int = 6) -> dict[str, torch.Tensor]:
    return given.collate(encoded, list(range(k)))


class _Classifier(torch.nn.Module):
    """A linear head on the pooled output, like the notebook's (the given code has none)."""

    def __init__(self, encoder: torch.nn.Module, prompt: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 3)
        self.prompt = given.SoftPrompt(encoder.get_input_embeddings(), prompt) if prompt else None

    def forward(self, input_ids, attention_mask, labels=None):
        if self.prompt is None:
            pooled = self.encoder(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        else:
            embeds, mask = self.prompt(self.encoder.get_input_embeddings()(input_ids), attention_mask)
            pooled = self.encoder(inputs_embeds=embeds, attention_mask=mask).pooler_output
        logits = self.head(pooled)
        return (logits,) if labels is None else (logits, torch.nn.functional.cross_entropy(logits, labels))


def _freeze(module: torch.nn.Module) -> torch.nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_soft_prompt_sits_after_cls_with_its_mask() -> None:
    table = given.tiny_encoder(seed=0).get_input_embeddings()
    prompt = given.SoftPrompt(table, n_prompt=4)
    assert prompt.vectors.shape == (4, 32) and prompt.vectors.requires_grad
    assert all(any(torch.equal(v, row) for row in table.weight) for v in prompt.vectors), "starts as real words"
    assert torch.equal(given.SoftPrompt(table, 4).vectors, prompt.vectors), "seeded: the same prompt every time"
    assert not torch.equal(given.SoftPrompt(table, 4, seed=1).vectors, prompt.vectors)
    words = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    embeds, new_mask = prompt(words, mask)
    assert embeds.shape == (2, 9, 32) and new_mask.shape == (2, 9)
    assert torch.equal(embeds[:, 0], words[:, 0]) and torch.equal(embeds[:, 5:], words[:, 1:])
    assert torch.equal(embeds[1, 1:5], prompt.vectors.detach())
    assert new_mask.tolist() == [[1] * 9, [1, 1, 1, 1, 1, 1, 1, 0, 0]]
    with pytest.raises(ValueError):
        given.SoftPrompt(table, 0)


def test_soft_prompt_trains_through_a_frozen_encoder() -> None:
    model = _Classifier(_freeze(given.tiny_encoder(seed=0)), prompt=3)
    assert _trainable(model) == 3 * 32 + 32 * 3 + 3
    _, loss = model(**_batch(_encoded()))
    loss.backward()
    assert model.prompt.vectors.grad is not None and model.prompt.vectors.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.parameters())


def test_training_memory_counts_each_term_and_leaves_the_model_unchanged() -> None:
    model = _Classifier(_freeze(given.tiny_encoder(seed=0)))
    before = copy.deepcopy(model.state_dict())
    batch = _batch(_encoded())
    random_state = torch.get_rng_state()
    memory = given.training_memory(model, batch)
    assert torch.equal(torch.get_rng_state(), random_state), "the training run after it draws the same dropout masks"
    trainable = _trainable(model)
    assert memory["weights"] == 4 * sum(p.numel() for p in model.parameters())
    assert memory["gradients"] == 4 * trainable
    assert memory["optimizer"] == 8 * trainable + 4 * 2  # two moments, and a step count per tensor (weight, bias)
    assert memory["activations"] > 0
    assert memory["total"] == sum(memory[k] for k in ("weights", "gradients", "optimizer", "activations"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model is put back"
    assert all(p.grad is None for p in model.parameters())
    full = _Classifier(given.tiny_encoder(seed=0))
    full_memory = given.training_memory(full, batch)
    assert full_memory["gradients"] == 4 * _trainable(full)
    assert full_memory["activations"] >= memory["activations"], "a frozen encoder saves no more for backward"


def test_longest_batch_takes_the_longest_snippets() -> None:
    encoded = _encoded(30)
    batch = given.longest_batch(encoded, 5)
    lengths = sorted((len(r) for r in encoded.ids), reverse=True)
    assert batch["input_ids"].shape == (5, lengths[0])
    assert sorted(batch["attention_mask"].sum(1).tolist(), reverse=True) == lengths[:5]


def test_fine_tune_trains_only_what_requires_grad_and_reports() -> None:
    torch.manual_seed(0)
    model = _Classifier(_freeze(given.tiny_encoder(seed=0)))
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head = model.head.weight.detach().clone()
    train, val = _encoded(24, seed=1), _encoded(12, seed=2)
    history = given.fine_tune(model, 1e-2, train, given.eval_batches(val), epochs=2, batch_size=8, desc="test",
                               every_epoch=True)
    assert len(history["val_acc"]) == 2 and len(history["epoch_loss"]) == 2
    assert history["val_probs"].shape == (12, 3)
    assert history["sec_per_epoch"] > 0
    assert set(history["memory"]) == {"weights", "gradients", "optimizer", "activations", "total"}
    assert all(torch.equal(frozen[k], v) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(head, model.head.weight)
    head = model.head.weight.detach().clone()
    bias = model.head.bias.detach().clone()
    given.fine_tune(model, 1e-2, train, given.eval_batches(val), epochs=1, batch_size=8, lr_by_prefix={"head.w": 0.0})
    assert torch.equal(head, model.head.weight), "a peak rate of 0 for the weight: it stays"
    assert not torch.equal(bias, model.head.bias), "the bias keeps the default rate"


def test_similarity_probe_is_zero_for_the_same_encoder_and_grows_with_change() -> None:
    encoder = given.tiny_encoder(seed=0).eval()
    probe = given.SimilarityProbe(encoder, _encoded(20), n_sentences=12, batch_size=5)
    assert len(probe.reference) == 12 * 11 // 2
    assert probe.forgetting(encoder) == pytest.approx(0.0, abs=1e-12)
    assert probe.forgetting(copy.deepcopy(encoder)) == probe.forgetting(encoder), "the same weights, the same number"
    assert torch.equal(probe.embeddings(encoder), probe.reference_embeddings)
    assert torch.allclose(probe.reference_embeddings.norm(dim=1), torch.ones(12), atol=1e-6)
    slightly, much = copy.deepcopy(encoder), copy.deepcopy(encoder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p_small, p_large in zip(slightly.parameters(), much.parameters()):
            noise = torch.randn(p_small.shape, generator=generator)
            p_small += 0.01 * noise
            p_large += 1.0 * noise
    assert 0 < probe.forgetting(slightly) < probe.forgetting(much)


def test_spearman() -> None:
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert given.spearman(a, a) == pytest.approx(1.0)
    assert given.spearman(a, a ** 3 + 7) == pytest.approx(1.0), "only the order counts"
    assert given.spearman(a, -a) == pytest.approx(-1.0)


def test_result_cache_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    settings = {"lr": 1e-4, "epochs": 4, "checkpoint": "x"}
    assert given.load_result("full", settings) is None
    path = given.save_result("full", settings, {"val_acc": 0.8, "probs": np.array([0.5, 0.5])})
    assert str(tmp_path) in path
    loaded = given.load_result("full", dict(reversed(list(settings.items()))))
    assert loaded["val_acc"] == 0.8 and loaded["probs"] == [0.5, 0.5] and loaded["from_cache"] == path
    assert given.load_result("full", {**settings, "lr": 2e-4}) is None, "another recipe is another result"


def _rows() -> list[dict]:
    terms = {"weights": 2**20, "gradients": 0, "optimizer": 0, "activations": 2**21}
    return [{"method": m, "val_acc": a, "trainable": t, "share": t / 1e6, "sec_per_epoch": 10.0,
             "memory": sum(terms.values()), "memory_terms": terms, "forgetting": f}
            for m, a, t, f in (("full fine-tuning", 0.8, 10**6, 0.3), ("frozen encoder", 0.6, 1000, 0.0),
                               ("LoRA r=1", 0.75, 5000, 0.01), ("LoRA r=8", 0.78, 40000, 0.02),
                               ("soft prompt", 0.62, 8000, 0.0))]


def test_table_plots_and_widget() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = given.format_table(_rows())
    assert len(table.splitlines()) == 6 and "LoRA r=8" in table and "78.0%" in table
    given.plot_accuracy_vs_parameters(_rows(), chance=0.5)
    given.plot_memory(_rows())
    plt.close("all")
    scales = []
    widget = given.scale_explorer(scales.append, lambda: (0.7, 0.1))
    assert widget.children[0].description == "scale" and scales == [1.0]
    widget.children[0].value = 0.5
    assert scales == [1.0, 0.5]
    evaluated = []
    widget = given.scale_explorer(scales.append, lambda: evaluated.append(1) or (0.7, 0.1))
    widget.children[0].value = 0.5
    widget.children[0].value = 1.0
    assert scales[-3:] == [1.0, 0.5, 1.0] and len(evaluated) == 2, "a position already seen is set, not evaluated again"
    plt.close("all")
