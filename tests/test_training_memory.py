"""Unit tests of the training_memory assignment's given code: the instruments, models, network and plots."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch.utils.checkpoint import checkpoint

from course_utils.given import training_memory as given

matplotlib.use("Agg")


def test_count_flops_counts_matrix_products_only() -> None:
    layer = torch.nn.Linear(6, 4)
    x = torch.randn(3, 6)
    counted = given.count_flops(lambda: torch.nn.functional.gelu(layer(x)) + 1)
    assert counted.total == 2 * 3 * 6 * 4
    assert counted.by_op == {"addmm": 2 * 3 * 6 * 4}
    assert given.count_flops(lambda: x * 2 + 1).total == 0


def test_saved_tensors_dedupes_and_leaves_out_parameters() -> None:
    model = given.mlp([5, 7, 3], "relu")
    with given.SavedTensors(exclude=model.parameters()) as saved:
        model(torch.randn(2, 5))
    # the input (2x5) and the ReLU output (2x7), which ReLU and the next Linear both save
    assert saved.bytes == 4 * 2 * (5 + 7)
    assert [r.new for r in saved.records].count(False) == 1
    assert "not counted twice" in saved.table()
    with given.SavedTensors() as everything:  # parameters counted when not excluded
        model(torch.randn(2, 5))
    assert everything.bytes > saved.bytes


def test_saved_tensors_sees_only_its_block() -> None:
    model = given.mlp([4, 4])
    outside = model(torch.randn(3, 4))
    with given.SavedTensors(exclude=model.parameters()) as saved:
        pass
    assert saved.bytes == 0 and outside.shape == (3, 4)


def test_measure_training_memory_terms() -> None:
    model = given.mlp([8, 16, 4], "gelu")
    x, y = given.synthetic_batch(5, 8, 4, seed=1)
    n, t = given.mlp_param_count([8, 16, 4])
    assert (n, t) == (sum(p.numel() for p in model.parameters()), 4)
    sgd = given.measure_training_memory(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    assert sgd == {"params": 4 * n, "grads": 4 * n, "optimizer": 0, "activations": 4 * 5 * (8 + 16 + 16)}
    adam = given.measure_training_memory(model, torch.optim.Adam(model.parameters()), x, y)
    assert adam["optimizer"] == 4 * (2 * n + t), "two moments per parameter and a step counter per tensor"


def test_models_are_seeded_and_leave_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = given.mlp([3, 5, 2], seed=7), given.mlp([3, 5, 2], seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    bn = given.mlp([3, 5, 2], batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn)
    with pytest.raises(ValueError):
        given.mlp([3, 2], activation="tanh")
    stack = given.block_stack(4, 6, expansion=2, seed=3)
    again = given.block_stack(4, 6, expansion=2, seed=3)
    assert torch.equal(stack[2].fc1.weight, again[2].fc1.weight) and stack[0].fc1.out_features == 12
    assert torch.equal(torch.random.get_rng_state(), before)


def test_mixer_layer_shapes_and_flops() -> None:
    layer = given.MixerLayer(n_tokens=5, channels=3, token_hidden=7, channel_hidden=11)
    x = torch.randn(2, 5, 3)
    assert layer(x).shape == (2, 5, 3)
    assert given.count_flops(lambda: layer(x)).total == 4 * 2 * 5 * 3 * (7 + 11)


def _checkpointed(blocks, x, k):
    def run(h, segment):
        for block in segment:
            h = block(h)
        return h

    for start in range(0, len(blocks), k):
        x = checkpoint(run, x, blocks[start:start + k], use_reentrant=False)
    return x


def test_checkpoint_profile_measures_kept_memory_and_recomputation() -> None:
    blocks = given.block_stack(8, 8)
    x = torch.randn(4, 8)
    profile = given.checkpoint_profile(blocks, x, _checkpointed, [1, 2, 8], progress=False)
    b = profile["boundary"]
    assert b == 4 * 8 * 4 and profile["block"] == 9 * b  # input, fc1 output, GELU output (4x wide)
    assert profile["plain"]["kept"] == 8 * 9 * b
    for row in profile["rows"]:
        k = row["k"]
        assert row["kept"] == math.ceil(8 / k) * b
        assert row["peak"] == row["kept"] + k * 9 * b - b
        assert row["grad_diff"] == 0.0
        assert 0 < row["extra_flops"] <= 1 / 3 + 1e-9
    forward = 8 * 2 * 4 * 8 * 32 * 2
    first_input_grad = 2 * 4 * 8 * 32  # the data needs no gradient
    assert profile["plain"]["flops"] == 3 * forward - first_input_grad
    assert all(p.grad is None for p in blocks.parameters())


def test_network_counts_and_copies() -> None:
    net = given.Network(3)
    t = torch.ones(5)
    got = net.send(0, 1, t)
    got += 1
    assert torch.equal(t, torch.ones(5)), "the receiver gets a copy"
    assert net.log == [(0, 1, 20)] and net.messages_sent == [1, 0, 0] and net.bytes_received == [0, 20, 0]
    with pytest.raises(ValueError):
        net.send(1, 1, t)
    with pytest.raises(ValueError):
        net.send(0, 3, t)
    net.reset()
    assert net.log == [] and net.busiest() == 0


def test_naive_all_reduce_and_padding() -> None:
    vectors = [torch.full((4,), float(w)) for w in range(4)]
    net = given.Network(4)
    out = given.naive_all_reduce(net, vectors)
    assert all(torch.equal(o, torch.full((4,), 6.0)) for o in out)
    assert net.bytes_received[0] == 3 * 16 and net.bytes_sent[0] == 3 * 16 and net.busiest() == 96
    assert given.pad_to_multiple(torch.ones(10), 4).shape == (12,)
    assert given.pad_to_multiple(torch.ones(12), 4).shape == (12,)


def test_plots_and_widgets_build() -> None:
    import matplotlib.pyplot as plt

    terms = {"params": 10, "grads": 10, "optimizer": 20, "activations": 5}
    given.plot_memory_bars({"a": terms, "b": terms})
    blocks = given.block_stack(4, 4)
    profile = given.checkpoint_profile(blocks, torch.randn(2, 4), _checkpointed, [1, 2, 4], progress=False)
    given.plot_checkpointing(profile, 1.5)
    given.plot_traffic([2, 4], {"ring": [1.0, 2.0]})
    plt.close("all")

    def step_memory(batch, dims, optimizer, activation):
        n, _ = given.mlp_param_count(dims)
        return {"params": 4 * n, "grads": 4 * n, "optimizer": 8 * n, "activations": 4 * batch * sum(dims)}

    explorer = given.memory_explorer(step_memory)
    explorer.children[0].value = 10
    explorer = given.checkpoint_explorer(_checkpointed, lambda n, b, a: math.sqrt(n * b / a), batch=4, d=8)
    explorer.children[1].value = "d -> d -> d, ReLU"
    plt.close("all")
