"""Unit tests of the transformer_debugging assignment's given code: the bugged model, its pre- and
post-norm variants, the plots and the widget. No training; seconds."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F

from course_utils.given import transformer_debugging as given

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

V = 66
SMALL = dict(d_model=32, n_layers=3, n_heads=4, context=16)


def _growth(model, idx):
    """Reference residual growth (what the notebook asks for), to drive the given plots."""
    with torch.no_grad():
        x = model.embed(idx)
        out = [x.pow(2).sum(-1).mean()]
        for block in model.blocks:
            x = block(x)
            out.append(x.pow(2).sum(-1).mean())
    return torch.stack(out)


def _grads(model, idx, targets):
    model.zero_grad()
    F.cross_entropy(model(idx).reshape(-1, model.vocab_size), targets.reshape(-1)).backward()
    return torch.stack([model.tok.weight.grad.norm()]
                       + [torch.cat([p.grad.flatten() for p in b.parameters()]).norm() for b in model.blocks])


def _shrink(model):
    with torch.no_grad():
        model.tok.weight.normal_(0.0, 0.02)


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, V, (4, 16), generator=gen), torch.randint(0, V, (4, 16), generator=gen)


def test_make_model_is_seeded_and_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = given.make_model(V, seed=5, **SMALL)
    after = torch.rand(3)
    b = given.make_model(V, seed=5, **SMALL)
    c = given.make_model(V, seed=6, **SMALL)
    assert torch.equal(after, expected), "building a model must not consume the global random stream"
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.tok.weight, c.tok.weight)


def test_the_model_has_the_bug_the_notebook_is_about(batch) -> None:
    model = given.make_model(V, seed=0, d_model=64, n_layers=4, n_heads=4, context=64)
    assert model.head.weight is model.tok.weight, "the output layer is tied to the token embedding"
    assert 0.9 < model.tok.weight.std().item() < 1.1, "nn.Embedding's default N(0, 1) initialisation"
    assert torch.count_nonzero(model.pos.weight) == 0
    x, y = batch
    with torch.no_grad():
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)).item()
    assert loss > 10 * math.log(V), "the bugged model starts far above log V"
    assert given.top_prediction_is_input(model, x) > 0.9, "and echoes its input"
    _shrink(model)
    with torch.no_grad():
        fixed = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)).item()
    assert abs(fixed / math.log(V) - 1) < 0.1, "a small tied matrix starts near log V"


def test_forward_is_the_four_documented_steps(batch) -> None:
    for norm in given.NORMS:
        model = given.make_model(V, seed=1, norm=norm, **SMALL)
        x, _ = batch
        h = model.embed(x)
        for block in model.blocks:
            h = block(h)
        with torch.no_grad():
            torch.testing.assert_close(model(x), model.head(model.final_norm(h)))
        assert model(x).shape == (4, 16, V)
    assert isinstance(given.make_model(V, norm="post", **SMALL).final_norm, torch.nn.Identity)
    with pytest.raises(ValueError):
        given.make_model(V, norm="sandwich", **SMALL)
    with pytest.raises(ValueError):
        given.make_model(V, **SMALL).embed(torch.zeros(1, 17, dtype=torch.long))


def test_attention_is_causal() -> None:
    model = given.make_model(V, seed=2, **SMALL)
    x = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % V
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :6], model(changed)[:, :6])


def test_post_norm_blocks_end_normalised_and_branch_scale_scales_the_last_layers(batch) -> None:
    post = given.make_model(V, seed=3, norm="post", **SMALL)
    with torch.no_grad():
        out = post.blocks[0](torch.randn(4, 16, 32))
    torch.testing.assert_close(out.mean(-1), torch.zeros(4, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(4, 16), atol=1e-3, rtol=0)
    plain = given.make_model(V, seed=4, **SMALL)
    scaled = given.make_model(V, seed=4, branch_scale=0.1, **SMALL)
    for a, b in zip(plain.blocks, scaled.blocks):
        torch.testing.assert_close(b.attn.proj.weight, 0.1 * a.attn.proj.weight)
        torch.testing.assert_close(b.mlp.down.bias, 0.1 * a.mlp.down.bias)
        torch.testing.assert_close(b.attn.qkv.weight, a.attn.qkv.weight)


def test_labels_match_the_diagnostics() -> None:
    model = given.make_model(V, **SMALL)
    assert given.layer_labels(model) == ["embedding", "block 1", "block 2", "block 3", "final norm", "logits"]
    assert given.param_labels(model) == ["tok = head", "block 1", "block 2", "block 3"]
    assert given.count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_repeat_rate_and_sampling() -> None:
    assert given.repeat_rate(torch.tensor([1, 1, 2, 3])) == pytest.approx(1 / 3)

    class Corpus:
        vocab = "abc"

        def encode(self, text):
            return torch.tensor(["abc".index(c) for c in text])

        def decode(self, ids):
            return "".join("abc"[int(i)] for i in ids)

    model = given.make_model(3, seed=0, d_model=16, n_layers=1, n_heads=2, context=8)
    text = given.sample_text(model, Corpus(), "ab", n_chars=20, seed=3)
    assert len(text) == 22 and text.startswith("ab") and set(text) <= set("abc")
    assert text == given.sample_text(model, Corpus(), "ab", n_chars=20, seed=3)


def test_norm_comparison_and_plots(batch) -> None:
    x, y = batch
    results = given.norm_comparison(_growth, _grads, _shrink, x, y, V, n_layers=6, d_model=32)
    assert set(results) == {"pre", "post"}
    for numbers in results.values():
        assert numbers["growth"].shape == (7,) and numbers["grads"].shape == (7,)
    assert results["post"]["growth"][1:] == pytest.approx(32.0, rel=1e-3)
    pre = results["pre"]["growth"]
    assert pre[0] < 1 and all(b > a for a, b in zip(pre[:-1], pre[1:])), "pre-norm: the stream grows"
    given.plot_norm_comparison(results, d_model=32)
    model = given.make_model(V, **SMALL)
    given.plot_per_layer({"a": torch.arange(1.0, 7.0)}, given.layer_labels(model), title="t", ylabel="y")
    given.plot_logit_histograms({"a": torch.randn(100)})
    plt.close("all")


def test_depth_explorer_redraws(batch) -> None:
    x, y = batch
    box = given.depth_explorer(_growth, _grads, _shrink, x, y, V, d_model=16, max_layers=6)
    depth, scale = box.children[0].children
    depth.value = 3
    scale.value = 0.1
    assert depth.max == 6
    plt.close("all")
