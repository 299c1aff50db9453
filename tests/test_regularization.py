"""Unit tests of course_utils.given.regularization, the given code of the regularization assignment (seconds).

What students write (the Adam step, the expected loss under noise, its minimizer) is
not in the given module, so these tests drive its plumbing with answers of their own.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.given import regularization as reg  # noqa: E402


def adam_step(w, g, m, v, t, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, l2=0.0, decay=0.0):
    """A textbook Adam step with an L2 term and decoupled decay, written for these tests."""
    g = g + l2 * w
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    update = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)
    return w - lr * decay * w - lr * update, m, v


def adam_step_without_bias_correction(w, g, m, v, t, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, l2=0.0, decay=0.0):
    return adam_step(w, g, m, v, 10 ** 6, lr=lr, beta1=beta1, beta2=beta2, eps=eps, l2=l2, decay=decay)


def test_toy_problem_is_seeded_and_shaped() -> None:
    problem = reg.toy_problem(3, n=10, d_in=4, hidden=6)
    assert [tuple(p.shape) for p in problem.params] == [(4, 6), (6,), (6, 1), (1,)]
    assert problem.x.shape == (10, 4) and problem.y.shape == (10, 1) and problem.x.dtype == torch.float64
    again = reg.toy_problem(3, n=10, d_in=4, hidden=6)
    assert all(torch.equal(a, b) for a, b in zip(problem.params, again.params))
    assert problem.loss(problem.params).ndim == 0


@pytest.mark.parametrize(("optimizer", "key"), [(torch.optim.Adam, "l2"), (torch.optim.AdamW, "decay")])
def test_a_right_step_follows_torch_and_a_wrong_one_does_not(optimizer, key) -> None:
    problem = reg.toy_problem(0)
    want = reg.trajectory_with_torch(optimizer, problem, 50, lr=0.01, weight_decay=0.2)
    got = reg.trajectory_with_step(adam_step, problem, 50, lr=0.01, **{key: 0.2})
    assert len(got) == 50 and reg.max_gap(got, want) < 1e-12
    wrong = reg.trajectory_with_step(adam_step_without_bias_correction, problem, 50, lr=0.01, **{key: 0.2})
    assert reg.max_gap(wrong, want) > 1e-3
    other = reg.trajectory_with_step(adam_step, problem, 50, lr=0.01, **{("decay" if key == "l2" else "l2"): 0.2})
    assert reg.max_gap(other, want) > 1e-6  # the two regularizers really differ under Adam


def test_trajectory_leaves_the_starting_weights_alone() -> None:
    problem = reg.toy_problem(1)
    before = [p.clone() for p in problem.params]
    reg.trajectory_with_step(adam_step, problem, 5, lr=0.1)
    reg.trajectory_with_torch(torch.optim.Adam, problem, 5, lr=0.1)
    assert all(torch.equal(a, b) for a, b in zip(before, problem.params))


def test_ridge_is_the_stationary_point() -> None:
    problem = reg.badly_scaled_problem(0)
    for lam in (0.0, 0.1):
        w = problem.ridge(lam)
        assert torch.allclose(problem.grad(w) + lam * w, torch.zeros_like(w), atol=1e-12)
    scales = problem.x.std(dim=0)
    assert scales.max() / scales.min() > 30


def test_frozen_preconditioner_l2_matches_decay_only_with_the_right_coefficient() -> None:
    problem = reg.badly_scaled_problem(0)
    precond = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    w0 = torch.zeros(5, dtype=torch.float64)
    decay = reg.preconditioned_descent(problem.grad, w0, precond, 0.05, 200, decay=0.1)
    assert decay.shape == (201, 5)
    same = reg.preconditioned_descent(problem.grad, w0, precond, 0.05, 200, l2=0.1 * precond)
    assert (same - decay).abs().max() < 1e-10
    naive = reg.preconditioned_descent(problem.grad, w0, precond, 0.05, 200, l2=0.1)
    assert (naive - decay).abs().max() > 1e-3


def test_adam_with_l2_reaches_ridge_and_adamw_does_not() -> None:
    problem = reg.badly_scaled_problem(0)
    w0, ridge = torch.zeros(5, dtype=torch.float64), problem.ridge(0.1)
    l2 = reg.adam_path(adam_step, problem.grad, w0, 2000, lr=0.05, l2=0.1)
    decoupled = reg.adam_path(adam_step, problem.grad, w0, 2000, lr=0.05, decay=0.1)
    assert (l2[-1] - ridge).norm() / ridge.norm() < 1e-3
    assert (decoupled[-1] - ridge).norm() / ridge.norm() > 0.1


def expected_loss(x, y, w, mu, sigma):
    return ((y - mu * x @ w) ** 2).sum() + sigma ** 2 * (w ** 2 * (x ** 2).sum(0)).sum()


def test_monte_carlo_agrees_with_the_closed_form_and_not_with_a_wrong_one() -> None:
    x, y = reg.noisy_design()
    w = torch.linspace(-1, 1, x.shape[1], dtype=torch.float64)
    mean, se = reg.monte_carlo_loss(x, y, w, 0.8, 0.5, 20_000, seed=2)
    assert abs(mean - float(expected_loss(x, y, w, 0.8, 0.5))) < 3 * se
    assert abs(mean - float(expected_loss(x, y, w, 0.8, 0.0))) > 10 * se


def test_noisy_sgd_converges_to_the_minimizer_of_the_expected_loss() -> None:
    x, y = reg.noisy_design()
    mu, sigma = 0.8, 0.5
    gram = x.T @ x
    w_star = mu * torch.linalg.solve(mu ** 2 * gram + sigma ** 2 * torch.diag(torch.diag(gram)), x.T @ y)
    average, path = reg.noisy_sgd(x, y, mu, sigma, 6000)
    assert path.shape == (6000, x.shape[1])
    assert (average - w_star).norm() / w_star.norm() < 0.02
    least_squares = torch.linalg.lstsq(x, y[:, None]).solution[:, 0] / mu
    assert (average - least_squares).norm() / w_star.norm() > 0.05  # the penalty is visible


def test_mnist_split_and_a_short_run() -> None:
    split = reg.mnist_split(200, 100)
    assert split.x_train.shape == (200, 784) and split.x_val.shape == (100, 784)
    assert 0 <= float(split.x_train.min()) and float(split.x_train.max()) <= 1
    run = reg.train_mlp(split, "short", optimizer="adamw", decay=0.5, noise=0.5, steps=20, eval_every=10, hidden=32)
    assert run.val_step == [10, 20] and len(run.val_loss) == 2 and math.isfinite(run.final_loss)
    assert run.final_loss < math.log(10) + 0.5
    with pytest.raises(KeyError):
        reg.train_mlp(split, "bad", optimizer="sgd", steps=1)


def test_plots_and_widget_draw() -> None:
    import matplotlib.pyplot as plt

    path = torch.zeros(3, 5, dtype=torch.float64)
    reg.plot_paths({"a": path}, {"ridge": torch.ones(5)})
    runs = [reg.Run(f"AdamW {d}", d, [1, 2], [1.0, 0.5 + d], [0.5, 0.4]) for d in (0.1, 1.0)]
    reg.plot_runs(runs)
    widget = reg.decay_explorer(runs, reg.Run("none", 0.0, [1, 2], [1.0, 0.9], [0.5, 0.45]))
    assert widget is not None
    plt.close("all")
