"""Unit tests of the rnn_gradients assignment's given code (course_utils.given.rnn_gradients):
the cell, the memory task, the models, gradients and plots, with tiny training runs only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.given import rnn_gradients as given


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_elman_cell_weight_scale_and_shapes(activation: str) -> None:
    cell = given.ElmanCell(hidden=6, inputs=3, activation=activation, weight_scale=0.7, seed=1)
    singular_values = torch.linalg.svdvals(cell.W.detach())
    torch.testing.assert_close(singular_values, torch.full((6,), 0.7, dtype=torch.float64))
    assert cell.W.dtype == torch.float64
    h = cell.warm_state(seed=2)
    xs = cell.driving_inputs(4, seed=2)
    assert h.shape == (6,) and xs.shape == (4, 3)
    assert cell(h, xs[0]).shape == (6,)
    assert cell(h.expand(5, 6), xs[:1].expand(5, 3)).shape == (5, 6), "a leading batch axis works too"
    expected = given.ACTIVATIONS[activation](cell.W @ h + cell.U @ xs[0] + cell.b)
    torch.testing.assert_close(cell(h, xs[0]), expected)
    again = given.ElmanCell(hidden=6, inputs=3, activation=activation, weight_scale=0.7, seed=1)
    assert torch.equal(again.W, cell.W) and torch.equal(again.warm_state(seed=2), h), "fixed by the seeds"
    with pytest.raises(ValueError):
        given.ElmanCell(activation="gelu")


def test_singular_value_curve_calls_what_it_is_handed() -> None:
    cell = given.ElmanCell(hidden=4, inputs=2, activation="tanh", weight_scale=1.0, seed=0)
    seen = []

    def fake_jacobian(step, h, xs):
        seen.append((step, h.shape, len(xs)))
        return torch.eye(4, dtype=torch.float64) * (len(xs) + 1)

    curve = given.singular_value_curve(cell, fake_jacobian, lambda J: float(J[0, 0]), [1, 3, 5])
    np.testing.assert_allclose(curve, [2.0, 4.0, 6.0])
    assert [s[2] for s in seen] == [1, 3, 5] and all(s[0] is cell for s in seen)


def test_memory_batches() -> None:
    x, y = given.memory_batch(50, 7, torch.Generator().manual_seed(0))
    assert x.shape == (50, 8) and y.shape == (50,) and x.dtype == torch.long
    assert torch.equal(x[:, 0], y), "the first token is the answer"
    assert (x[:, 1:7] == given.BLANK).all() and (x[:, 7] == given.QUERY).all()
    assert set(y.tolist()) == set(range(given.N_SYMBOLS))
    a, b = next(given.memory_batches(10, 5, seed=3)), next(given.memory_batches(10, 5, seed=3))
    assert torch.equal(a[0], b[0]), "reproducible from the seed"
    assert given.describe(x[0]).startswith("ABCD"[int(y[0])]) and given.describe(x[0]).endswith("?")
    with pytest.raises(ValueError):
        given.memory_batch(2, 0, torch.Generator())


def test_memory_models_and_their_initialisation() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    lstm = given.MemoryModel("lstm", hidden=8, seed=0)
    assert torch.equal(torch.get_rng_state(), state), "building a model leaves the global random state alone"
    assert isinstance(lstm.rnn, torch.nn.LSTM) and lstm.rnn.bias_ih_l0.shape == (32,)
    assert torch.equal(given.MemoryModel("lstm", hidden=8, seed=0).rnn.weight_hh_l0, lstm.rnn.weight_hh_l0)
    x, y = given.memory_batch(5, 6, torch.Generator().manual_seed(0))
    assert lstm(x).shape == (5, given.N_SYMBOLS)
    relu = given.MemoryModel("rnn", hidden=8, seed=0, nonlinearity="relu", recurrent_scale=2.0)
    assert relu.rnn.nonlinearity == "relu"
    torch.testing.assert_close(torch.linalg.svdvals(relu.rnn.weight_hh_l0.detach()), torch.full((8,), 2.0))
    with pytest.raises(ValueError):
        given.MemoryModel("gru")
    with pytest.raises(ValueError):
        given.MemoryModel("lstm", recurrent_scale=1.0)


def test_input_gradient_norms_match_autograd() -> None:
    model = given.MemoryModel("rnn", hidden=6, seed=0)
    x, y = given.memory_batch(3, 5, torch.Generator().manual_seed(1))
    norms = given.input_gradient_norms(model, x, y)
    assert norms.shape == (6,) and (norms > 0).all()
    e = model.embed(x).detach().double().requires_grad_(True)
    twin = given.MemoryModel("rnn", hidden=6, seed=0).double()
    loss = torch.nn.functional.cross_entropy(twin.forward_embedded(e), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, e)
    np.testing.assert_allclose(norms, grad.norm(dim=-1).mean(0).numpy(), rtol=1e-10)
    assert model.embed.weight.dtype == torch.float32, "the model itself is not converted"
    assert norms[0] < norms[-1], "an untrained RNN passes less gradient to the first input than to the last"


def test_training_records_accuracy_and_gradient_norms() -> None:
    model = given.MemoryModel("lstm", hidden=8, seed=0)
    clipped = []

    def clip(parameters, max_norm):
        params = list(parameters)
        clipped.append(max_norm)
        return 7.0 + len(params)

    h = given.train_memory_task(model, 4, 6, batch_size=8, eval_every=3, n_eval=20, clip=clip, max_norm=0.5)
    assert h["step"] == [1, 2, 3, 4, 5, 6] and h["val_step"] == [3, 6]
    assert len(h["val_accuracy"]) == 2 and all(0 <= a <= 1 for a in h["val_accuracy"])
    assert clipped == [0.5] * 6 and h["grad_norm"] == [7.0 + len(list(model.parameters()))] * 6
    h = given.train_memory_task(given.MemoryModel("rnn", hidden=8, seed=0), 4, 3, optimizer="sgd",
                                batch_size=8, eval_every=3, n_eval=20)
    assert all(math.isfinite(g) and g > 0 for g in h["grad_norm"])


def test_plots_and_widgets() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = given.plot_singular_values({"a": ([1, 2], [0.5, 0.25], [1.0, 1.0])})
    assert ax.get_yscale() == "log"
    given.plot_gradient_norms({"a": np.array([1e-3, 1.0])})
    given.plot_accuracy({"a": {"val_step": [1, 2], "val_accuracy": [0.2, 0.9]}})
    plt.close("all")

    def jacobian(step, h, xs):
        return torch.eye(len(h), dtype=h.dtype) * 0.5 ** len(xs)

    explorer = given.jacobian_explorer(jacobian, lambda J: float(J.max()), lambda W, n, a: 1.0, max_steps=7)
    assert [c.description for c in explorer.children[:2]] == ["activation", "log10 ||W||"]

    def init_forget_bias(lstm, value):
        with torch.no_grad():
            lstm.bias_ih_l0[lstm.hidden_size:2 * lstm.hidden_size] = value

    forget = given.forget_bias_explorer(init_forget_bias, T=6, hidden=4, batch=3)
    assert forget.children[0].description == "forget bias"
    plt.close("all")
