"""Unit tests of the KV-cache assignment's given code (course_utils.given.kv_cache): model, measurements, widgets.

No real training and no corpus: every model here is tiny and random, so the file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import data
from course_utils.given import kv_cache as given


def reference_attention(attn: given.SelfAttention, x: torch.Tensor, cache=None):
    """A cached attention written independently of the notebook (scaled_dot_product_attention, boolean mask)."""
    q, k, v = attn.project(x)
    past = 0 if cache is None else cache[0].shape[2]
    pos = torch.arange(past, past + x.shape[1])
    q, k = given.rotate(q, pos), given.rotate(k, pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    group = attn.n_heads // attn.n_kv_heads
    mask = torch.arange(past + x.shape[1])[None, :] <= pos[:, None]
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                         attn_mask=mask)
    return attn.merge(out), (k, v)


def counted_attention(attn: given.SelfAttention, x: torch.Tensor, cache=None):
    """The same with explicit products, which PyTorch's FLOP counter sees (its CPU attention kernel goes uncounted)."""
    q, k, v = attn.project(x)
    past = 0 if cache is None else cache[0].shape[2]
    pos = torch.arange(past, past + x.shape[1])
    q, k = given.rotate(q, pos), given.rotate(k, pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    group = attn.n_heads // attn.n_kv_heads
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k.repeat_interleave(group, 1)) / math.sqrt(attn.head_dim)
    scores = scores.masked_fill(torch.arange(past + x.shape[1])[None, :] > pos[:, None], float("-inf"))
    return attn.merge(scores.softmax(-1) @ v.repeat_interleave(group, 1)), (k, v)


def reference_flops(cfg: given.Config, T: int, cached: bool) -> int:
    d_q, d_kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    per_token = cfg.n_layers * (2 * cfg.d_model * (2 * d_q + 2 * d_kv) + 4 * cfg.mlp_ratio * cfg.d_model ** 2) \
        + 2 * cfg.d_model * cfg.vocab_size
    if cached:
        return per_token + 4 * cfg.n_layers * d_q * T
    return T * per_token + 4 * cfg.n_layers * d_q * T * T


def tiny(n_kv_heads: int = 2, seed: int = 0, **kw) -> given.CharTransformer:
    torch.manual_seed(seed)
    cfg = given.Config(**({"vocab_size": 11, "d_model": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": n_kv_heads} | kw))
    return given.CharTransformer(cfg).eval()


def test_config_checks_its_head_layout() -> None:
    assert given.Config(10, d_model=48, n_heads=6, n_kv_heads=2).head_dim == 8
    with pytest.raises(ValueError):
        given.Config(10, d_model=50, n_heads=6)
    with pytest.raises(ValueError):
        given.Config(10, d_model=48, n_heads=6, n_kv_heads=4)


def test_rotate_is_a_rotation_whose_scores_depend_on_the_offset_only() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g), torch.randn(8, generator=g)
    assert torch.allclose(given.rotate(q[None], torch.tensor([0]))[0], q), "position 0 leaves a vector unchanged"
    rq = given.rotate(q.expand(5, 8), torch.arange(5))
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(5), atol=1e-5), "a rotation keeps the length"

    def score(m: int, n: int) -> float:
        return float(given.rotate(q[None], torch.tensor([m]))[0] @ given.rotate(k[None], torch.tensor([n]))[0])

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_attention_is_causal_and_heads_are_grouped() -> None:
    torch.manual_seed(1)
    attn = given.SelfAttention(given.Config(5, d_model=24, n_heads=6, n_kv_heads=2))
    x = torch.randn(2, 7, 24)
    q, k, v = attn.project(x)
    assert q.shape == (2, 6, 7, 4) and k.shape == v.shape == (2, 2, 7, 4)
    y = x.clone()
    y[:, 5:] = torch.randn(2, 2, 24)
    with torch.no_grad():
        assert torch.allclose(attn(x)[:, :5], attn(y)[:, :5], atol=1e-6), "later tokens never change earlier outputs"
        assert not torch.allclose(attn(x)[:, 5:], attn(y)[:, 5:])


def test_model_ties_its_output_layer_and_steps_like_the_full_pass() -> None:
    model = tiny()
    assert model.head.weight is model.embed.weight
    assert given.n_parameters(model) == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
        assert full.shape == (3, 9, 11)
        first, caches = model.step(ids[:, :4], model.empty_caches(), reference_attention)
        rest = []
        for i in range(4, 9):
            logits, caches = model.step(ids[:, i:i + 1], caches, reference_attention)
            rest.append(logits)
    assert torch.allclose(torch.cat([first] + rest, dim=1), full, atol=1e-5)
    assert len(caches) == 2 and caches[0][0].shape == (3, 2, 9, 4)
    assert given.cache_bytes(caches) == 2 * 2 * 2 * 9 * 4 * 3 * 4
    assert given.cache_bytes(model.empty_caches()) == 0
    with pytest.raises(ValueError):
        model.step(ids, [None], reference_attention)


def test_generation_without_cache_and_the_pick_functions() -> None:
    model = tiny(n_kv_heads=4)
    prompt = torch.tensor([[1, 2, 3], [3, 2, 1]])
    new = given.generate_uncached(model, prompt, 6)
    assert new.shape == (2, 6) and new.dtype == torch.long
    ids = prompt
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(new, ids[:, 3:])
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    assert given.greedy(logits).tolist() == [[1]]
    assert given.sampler(0.0)(logits).tolist() == [[1]]
    draws = [given.sampler(1.0, seed=4)(logits.expand(50, 3)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (50, 1), "a seeded sampler repeats itself"
    assert len(draws[0].unique()) > 1


@pytest.mark.parametrize("n_kv_heads, mlp_ratio", [(4, 4), (1, 2)])
def test_flop_counter_matches_the_formula_the_notebook_teaches(n_kv_heads: int, mlp_ratio: int) -> None:
    model = tiny(n_kv_heads=n_kv_heads, mlp_ratio=mlp_ratio, vocab_size=13)
    cfg = model.cfg
    ids = torch.randint(0, 13, (1, 12), generator=torch.Generator().manual_seed(3))
    for T in (1, 5, 12):
        assert given.count_flops(lambda: model(ids[:, :T])) == reference_flops(cfg, T, cached=False)
        with torch.no_grad():
            _, prefix = model.step(ids[:, :T - 1], model.empty_caches(), counted_attention) if T > 1 \
                else (None, model.empty_caches())
        counted = given.count_flops(lambda: model.step(ids[:, T - 1:T], prefix, counted_attention))
        assert counted == reference_flops(cfg, T, cached=True)
    uncounted = given.count_flops(lambda: model.step(ids[:, :1], model.empty_caches(), reference_attention))
    assert uncounted < reference_flops(cfg, 1, cached=True), "why the notebook asks for explicit products"


def test_token_clock_times_every_forward_pass() -> None:
    model = tiny()
    with given.TokenClock(model) as clock:
        given.generate_uncached(model, torch.tensor([[1, 2]]), 4)
    assert clock.lengths == [2, 3, 4, 5]
    assert clock.seconds.shape == (4,) and (clock.seconds >= 0).all()
    assert clock.total >= clock.seconds.sum() - 1e-9
    with torch.no_grad():
        model(torch.tensor([[1]]))
    assert clock.lengths == [2, 3, 4, 5], "the clock stops listening when its block ends"


def test_validation_loss_of_an_untrained_model_is_near_uniform() -> None:
    model = tiny()
    tokens = torch.randint(0, 11, (2000,), generator=torch.Generator().manual_seed(5))
    loss = given.validation_loss(model, tokens, context=16, max_windows=20)
    assert abs(loss - math.log(11)) < 0.1


def test_training_saves_and_reloads_the_weights(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    g = torch.Generator().manual_seed(6)
    corpus = data.CharCorpus(torch.randint(0, 9, (3000,), generator=g), torch.randint(0, 9, (500,), generator=g),
                             "abcdefghi")
    cfg = given.Config(9, d_model=8, n_layers=1, n_heads=2, n_kv_heads=1)
    settings = given.TrainSettings(n_steps=3, batch=2, context=8, lr=1e-3, seed=0)
    trained, history = given.load_or_train(cfg, corpus, settings, cache=True)
    assert len(history["loss"]) == 3 and "loaded_from" not in history
    assert list(tmp_path.glob("kv_cache/charlm-*.pt"))
    loaded, again = given.load_or_train(cfg, corpus, settings, cache=True)
    assert "loaded_from" in again and again["loss"] == history["loss"]
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    other = given.TrainSettings(n_steps=4, batch=2, context=8, lr=1e-3, seed=0)
    assert given._cache_file(cfg, other) != given._cache_file(cfg, settings), "other settings, another file"
    _, fresh = given.load_or_train(cfg, corpus, settings, cache=False)
    assert "loaded_from" not in fresh


def test_plots_draw() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    given.plot_training({"a": {"loss": list(np.linspace(4, 2, 120))}})
    fig = given.plot_step_times(np.full(20, 2e-3), np.full(20, 1e-3), start=5)
    assert len(fig.axes) == 2
    fig = given.plot_flops([1, 2, 4], {"with cache": [1.0, 2.0, 3.0]}, {"with cache": [1.0, 2.0, 3.0]})
    assert fig.axes[0].get_yscale() == "log"
    plt.close("all")


def test_memory_explorer_reacts_to_its_controls() -> None:
    import matplotlib

    matplotlib.use("Agg")
    box = given.memory_explorer({"mine": dict(n_layers=4, n_heads=4, n_kv_heads=4, head_dim=32, n_params=8e5)})
    model, batch, length, fmt, out = box.children
    assert model.options[0] == "mine" and "Llama-3-8B (2024, 8 K/V heads)" in model.options
    batch.value = 64
    length.value = 2 ** 15
    fmt.value = 4
    model.value = "Llama-2-7B (2023, multi-head)"
    # Llama-2-7B: 0.5 MiB per token in 16-bit numbers, so 1 MiB in float32
    assert 2 * 32 * 32 * 128 * 4 == 2 ** 20


def test_text_explorer_calls_the_generator() -> None:
    calls = []

    def generate(ids: torch.Tensor, n: int, pick) -> torch.Tensor:
        calls.append((ids.shape, n))
        return pick(torch.zeros(1, 5)).expand(1, n)

    corpus = data.CharCorpus(torch.zeros(10, dtype=torch.long), torch.zeros(10, dtype=torch.long), "ab cdefg")
    box = given.text_explorer(generate, corpus, prompt="abc", max_new=50)
    text, n_new, temperature, seed, out = box.children
    n_new.value = 30
    text.value = "bad"
    assert calls[0] == (torch.Size([1, 3]), 50) and calls[-1] == (torch.Size([1, 3]), 30)

    def unwritten(ids, n, pick):
        raise NotImplementedError

    given.text_explorer(unwritten, corpus)  # tells the student to write the answers first, without raising
