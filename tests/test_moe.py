"""Unit tests of the mixture-of-experts assignment's given code (course_utils.given.moe): shapes, counts,
training bookkeeping and plots, with a dense stand-in for the students' layer (every expert on every token)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import data
from course_utils.given import moe as moe_kit


def dense_moe_forward(layer: moe_kit.MoELayer, x: torch.Tensor):
    """Every expert on every token, masked to the top-k: slow but obviously right (a stand-in for the notebook's)."""
    probs = layer.router(x).softmax(-1)
    top, experts = probs.topk(layer.top_k, dim=-1)
    mask = torch.zeros_like(probs).scatter(1, experts, top / top.sum(-1, keepdim=True))
    outputs = torch.stack([layer.experts(e, x) for e in range(layer.n_experts)], dim=1)
    return (mask.unsqueeze(-1) * outputs).sum(1), (probs, experts, torch.ones_like(experts, dtype=torch.bool))


def tiny(**overrides) -> moe_kit.Config:
    return moe_kit.Config(**{"vocab_size": 11, "d_model": 16, "n_layers": 2, "n_heads": 2, "context": 12,
                             "d_hidden": 8, "n_experts": 4, "top_k": 2, **overrides})


def test_models_map_ids_to_logits_and_keep_routing() -> None:
    cfg = tiny()
    model = moe_kit.CharLM(cfg, dense_moe_forward)
    ids = torch.randint(0, 11, (3, 12))
    assert model(ids).shape == (3, 12, 11)
    assert len(model.moe_layers) == 2
    layer = model.moe_layers[0]
    assert layer.probs.shape == (36, 4) and layer.experts_chosen.shape == (36, 2) and layer.keep.shape == (36, 2)
    dense = moe_kit.CharLM(moe_kit.dense_twin(cfg, "active"))
    assert dense(ids).shape == (3, 12, 11) and dense.moe_layers == []
    with pytest.raises(ValueError):
        moe_kit.CharLM(cfg)  # an MoE model needs the notebook's layer


def test_router_starts_confident() -> None:
    model = moe_kit.CharLM(tiny(d_model=64, n_heads=4), dense_moe_forward)
    assert abs(float(model.moe_layers[0].router.weight.detach().std()) - 1.0) < 0.2
    quiet = moe_kit.CharLM(tiny(router_std=0.02), dense_moe_forward)
    assert float(quiet.moe_layers[0].router.weight.detach().std()) < 0.05


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a = moe_kit.CharLM(tiny(), dense_moe_forward, seed=3)
    assert torch.equal(torch.rand(1), before), "building a model leaves the global random state alone"
    b = moe_kit.CharLM(tiny(), dense_moe_forward, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_dense_twins_and_parameter_counts() -> None:
    cfg = tiny(top_k=1)
    assert moe_kit.dense_twin(cfg, "active").d_hidden == 8
    assert moe_kit.dense_twin(cfg, "total").d_hidden == 32
    moe = moe_kit.CharLM(cfg, dense_moe_forward)
    active = moe_kit.CharLM(moe_kit.dense_twin(cfg, "active"))
    total = moe_kit.CharLM(moe_kit.dense_twin(cfg, "total"))
    counts = moe_kit.count_parameters(moe)
    router = 2 * (16 * 4 + 4)  # weights and bias of both layers' routers
    assert counts["active"] == moe_kit.count_parameters(active)["total"] + router
    assert counts["total"] == moe_kit.count_parameters(total)["total"] + router
    assert moe_kit.count_parameters(total)["active"] == moe_kit.count_parameters(total)["total"]


def test_flops_per_token_count_every_product() -> None:
    cfg = tiny()
    ids = torch.randint(0, 11, (2, 12))
    dense = moe_kit.flops_per_token(moe_kit.CharLM(moe_kit.dense_twin(cfg, "active")), ids)
    # the dense stand-in runs every expert: E / k times the MLP products of the dense-active model
    everything = moe_kit.flops_per_token(moe_kit.CharLM(cfg, dense_moe_forward), ids)
    assert dense > 0 and everything > dense


def test_training_records_shares_and_evaluation() -> None:
    corpus = data.CharCorpus(torch.randint(0, 11, (5000,)), torch.randint(0, 11, (600,)), "abcdefghijk")
    model = moe_kit.CharLM(tiny(), dense_moe_forward)

    def loss_fn(m, x, y):
        loss = torch.nn.functional.cross_entropy(m(x).flatten(0, 1), y.flatten())
        return loss, {"loss": loss.item()}

    val = moe_kit.validation_windows(corpus, 12, max_windows=5)
    history = moe_kit.train(model, corpus, moe_kit.TrainSettings(n_steps=6, batch=4, log_every=2, eval_every=3),
                            loss_fn, val=val)
    assert history["share_step"] == [1, 2, 4, 6]
    assert history["val_step"] == [3, 6] and len(history["val_loss"]) == 2
    assert model.training is False, "the model is handed back in evaluation mode"
    assert history["shares"].shape == (4, 2, 4)
    np.testing.assert_allclose(history["shares"].sum(-1), 1.0)
    result = moe_kit.evaluate(model, val)
    assert result["loss"] > 0 and result["shares"].shape == (2, 4)
    assert moe_kit.routing_of(model, corpus.val[:12]).shape == (2, 12, 2)


def test_plots_and_explorer_build() -> None:
    import matplotlib

    matplotlib.use("Agg")
    history = {"shares": np.full((3, 2, 4), 0.25), "share_step": [1, 2, 3]}
    axes = moe_kit.plot_shares({"a": history, "b": history, "c": history})
    assert np.asarray(axes).shape == (2, 3), "one row per layer, one column per run"
    moe_kit.plot_bars({"x": 1.0, "y": 2.0})
    corpus = data.CharCorpus(torch.randint(0, 11, (100,)), torch.randint(0, 11, (100,)), "abcdefghijk")
    widget = moe_kit.routing_explorer({"m": moe_kit.CharLM(tiny(), dense_moe_forward)}, corpus, text="abc")
    assert [c.description for c in widget.children[:3]] == ["sentence", "model", "layer"]
