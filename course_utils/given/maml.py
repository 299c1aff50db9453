"""Given code for the MAML assignment (``notebooks/maml``): tasks, benchmarks, oracles, plots.

The setting: a task is a function f(x) = sum_k alpha_k phi_k(x) over fixed
Fourier features on [-1, 1], supported on a few frequencies. A learner sees a
handful of noisy samples on a regular grid, fits coefficients on the weighted
features c_k phi_k, and is scored on fresh uniform test points. Meta-learning
tunes the weights c.

What students write (the featurizer, the min-norm learner, the meta-update,
the logistic losses) is *not* here: every function below that needs one of
those takes it as an argument, so the notebook's own answers drive the
experiments and the plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

D = 501  # a constant plus sin and cos of frequencies 1..250
SUPPORT_FREQS = (3, 4, 5)  # every task lives on the sin/cos of these frequencies
N_TRAIN = 32  # training points per task, on a regular grid
NOISE = 0.1  # standard deviation of the label noise in regression
DTYPE = torch.float64  # min-norm solutions of 32 x 501 systems need double precision

Featurizer = Callable[[torch.Tensor], torch.Tensor]
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def feature_index(freq: int, kind: str) -> int:
    """Column of ``sqrt(2) sin(freq pi x)`` (kind "sin") or ``sqrt(2) cos(freq pi x)`` (kind "cos").

    The order is fixed so that tasks, oracles and plots agree on it: column 0
    is the constant, then sin and cos of frequency 1, of frequency 2, ...
    """
    if freq == 0:
        return 0
    if kind not in ("sin", "cos"):
        raise ValueError(f"kind must be 'sin' or 'cos', got {kind!r}")
    return 2 * freq - 1 if kind == "sin" else 2 * freq


def feature_frequency(d: int = D) -> np.ndarray:
    """The frequency of every column (0 for the constant), for plotting weights against frequency."""
    return np.concatenate([[0], np.repeat(np.arange(1, (d - 1) // 2 + 1), 2)])


def support_indices(freqs: Sequence[int] = SUPPORT_FREQS) -> torch.Tensor:
    """Columns of the true features of every task (sin and cos of each support frequency)."""
    return torch.tensor([feature_index(f, kind) for f in freqs for kind in ("sin", "cos")])


def grid(n: int) -> torch.Tensor:
    """``n`` evenly spaced points on [-1, 1), the right end left out: the features are
    periodic with period 2, so -1 and 1 would be the same point twice."""
    return torch.linspace(-1.0, 1.0, n + 1, dtype=DTYPE)[:-1]


def uniform_points(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points drawn uniformly on [-1, 1]: the test distribution."""
    return torch.rand(n, generator=generator, dtype=DTYPE) * 2 - 1


def sample_coefficients(n_tasks: int, generator: torch.Generator, k: int = 2 * len(SUPPORT_FREQS)) -> torch.Tensor:
    """Task coefficients on the support, shape (n_tasks, k): uniform on [-1, 1], then
    scaled to unit norm so every task has the same energy (test MSE of predicting 0 is 1)."""
    alpha = torch.rand(n_tasks, k, generator=generator, dtype=DTYPE) * 2 - 1
    return alpha / alpha.norm(dim=1, keepdim=True)


def labels(phi: torch.Tensor, alpha: torch.Tensor, classify: bool) -> torch.Tensor:
    """Clean targets of every task at the points whose features are ``phi``, shape (n, n_tasks):
    f_alpha(x) for regression, sign(f_alpha(x)) in {-1, +1} for classification."""
    f = phi[:, support_indices()] @ alpha.T
    if classify:
        return torch.where(f >= 0, 1.0, -1.0).to(phi.dtype)
    return f


@dataclass
class Batch:
    """One meta-training step: several tasks sharing the training grid and the meta points.

    Columns of ``y_train`` and ``y_meta`` are tasks.
    """

    phi_train: torch.Tensor  # (n_train, d) features of the training grid
    y_train: torch.Tensor  # (n_train, n_tasks) noisy labels the learner fits
    phi_meta: torch.Tensor  # (n_meta, d) features of fresh uniform points
    y_meta: torch.Tensor  # (n_meta, n_tasks) labels the meta-loss scores against


class TaskSampler:
    """Endless meta-training batches: the same training grid every step, with fresh
    tasks, fresh meta points and fresh label noise.

    ``featurize`` is the notebook's featurizer. In classification the labels are
    sign(f) in {-1, +1}, without noise.
    """

    def __init__(self, featurize: Featurizer, n_tasks: int = 5, n_train: int = N_TRAIN, n_meta: int = 100,
                 noise: float = NOISE, classify: bool = False, seed: int = 0) -> None:
        self.featurize, self.n_tasks, self.n_meta = featurize, n_tasks, n_meta
        self.noise, self.classify = (0.0 if classify else noise), classify
        self.generator = torch.Generator().manual_seed(seed)
        self.phi_train = featurize(grid(n_train))  # computed once: the grid never changes

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        g = self.generator
        alpha = sample_coefficients(self.n_tasks, g)
        phi_meta = self.featurize(uniform_points(self.n_meta, g))
        y_train = labels(self.phi_train, alpha, self.classify)
        y_meta = labels(phi_meta, alpha, self.classify)
        if self.noise:
            y_train = y_train + self.noise * torch.randn(y_train.shape, generator=g, dtype=DTYPE)
            y_meta = y_meta + self.noise * torch.randn(y_meta.shape, generator=g, dtype=DTYPE)
        return Batch(self.phi_train, y_train, phi_meta, y_meta)


def n_train_post_values(n_max: int = 400, count: int = 25, always: Sequence[int] = (5, 6, 7, 31, 32, 33)) -> list[int]:
    """Training-set sizes to test on: log-spaced from 1 to ``n_max``, plus the sizes where
    something happens (around the number of true features, and around the meta-training 32)."""
    spaced = np.unique(np.logspace(0, np.log10(n_max), count).astype(int))
    return sorted(set(spaced.tolist()) | set(always))


@dataclass
class Benchmark:
    """Fixed test tasks, and for each training-set size the grid's features and noisy labels."""

    n_values: list[int]
    train: dict[int, tuple[torch.Tensor, torch.Tensor]]  # n -> (phi (n, d), y (n, n_tasks))
    phi_test: torch.Tensor  # (n_test, d)
    y_test: torch.Tensor  # (n_test, n_tasks) clean targets
    classify: bool


def make_benchmark(featurize: Featurizer, n_values: Sequence[int], n_tasks: int = 100, n_test: int = 1000,
                   noise: float = NOISE, classify: bool = False, seed: int = 1) -> Benchmark:
    """Test tasks shared by every method compared, so their curves differ only by the method."""
    g = torch.Generator().manual_seed(seed)
    alpha = sample_coefficients(n_tasks, g)
    phi_test = featurize(uniform_points(n_test, g))
    train = {}
    for n in n_values:
        phi = featurize(grid(n))
        y = labels(phi, alpha, classify)
        if noise and not classify:
            y = y + noise * torch.randn(y.shape, generator=g, dtype=DTYPE)
        train[n] = (phi, y)
    return Benchmark(list(n_values), train, phi_test, labels(phi_test, alpha, classify), classify)


@dataclass
class Curve:
    """Test loss (or error) against training-set size: mean and 10th-90th percentiles over tasks."""

    n_values: np.ndarray
    mean: np.ndarray
    p10: np.ndarray
    p90: np.ndarray

    def at(self, n: int) -> float:
        """The mean at one training-set size."""
        return float(self.mean[list(self.n_values).index(n)])


def evaluate(bench: Benchmark, predict: Predictor) -> Curve:
    """Score ``predict(phi_train, y_train, phi_test) -> scores (n_test, n_tasks)`` at every size:
    squared error against the clean function in regression, the error rate of
    sign(score) in classification."""
    per_n = []
    with torch.no_grad():
        for n in bench.n_values:
            phi, y = bench.train[n]
            scores = predict(phi, y, bench.phi_test)
            if bench.classify:
                per_task = (torch.where(scores >= 0, 1.0, -1.0) != bench.y_test).double().mean(0)
            else:
                per_task = ((scores - bench.y_test) ** 2).mean(0)
            per_n.append(per_task.numpy())
    losses = np.array(per_n)
    return Curve(np.array(bench.n_values), losses.mean(1), np.percentile(losses, 10, axis=1),
                 np.percentile(losses, 90, axis=1))


def oracle_regression(phi: torch.Tensor, y: torch.Tensor, phi_test: torch.Tensor, ridge: float = 1e-8) -> torch.Tensor:
    """The yardstick: least squares on the true features only (it knows the support).

    A tiny ridge keeps it defined on grids where a true feature vanishes or two
    coincide (8 points: sin(4 pi x) is 0 on every one of them).
    """
    s = support_indices()
    a = phi[:, s]
    eye = torch.eye(a.shape[1], dtype=a.dtype)
    beta = torch.linalg.solve(a.T @ a + ridge * eye, a.T @ y)
    return phi_test[:, s] @ beta


def fit_gd(a: torch.Tensor, y: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           steps: int, lr: float, ridge: float = 0.0) -> torch.Tensor:
    """Plain gradient descent from zero on ``loss_fn(a @ beta, y) + ridge |beta|^2``, each task (column) on its own.

    ``loss_fn`` averages over all entries, so it is multiplied by the number of
    tasks: each task then takes the steps it would take alone. Used for the
    classification oracle (logistic regression on the true features), where
    the ridge keeps separable training sets from sending beta to infinity.
    """
    n_tasks = y.shape[1]
    beta = torch.zeros(a.shape[1], n_tasks, dtype=a.dtype)
    for _ in range(steps):
        with torch.enable_grad():
            beta = beta.detach().requires_grad_(True)
            loss = loss_fn(a @ beta, y) * n_tasks + ridge * (beta ** 2).sum()
            (g,) = torch.autograd.grad(loss, beta)
        beta = beta.detach() - lr * g
    return beta.detach()


# ---------------------------------------------------------------- plots

def plot_curves_with_bands(curves: dict[str, Curve], *, ax=None, ylabel: str = "test MSE", logy: bool = True,
                           mark: int | None = N_TRAIN, title: str | None = None):
    """Mean curves on a log x axis, with the 10th-90th percentile band of each."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, curve in curves.items():
        (line,) = ax.plot(curve.n_values, curve.mean, marker=".", label=name)
        ax.fill_between(curve.n_values, curve.p10, curve.p90, color=line.get_color(), alpha=0.15)
    if mark:
        ax.axvline(mark, color="gray", linestyle=":", label=f"n_train_post = {mark}")
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("n_train_post (training points of a new task)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9)
    return ax


def plot_feature_weights(c, *, ax=None, title: str | None = None, max_freq: int = 100):
    """Feature weights against frequency (sin and cos side by side), true features highlighted.

    Frequencies above ``max_freq`` are left out so the interesting ones stay readable.
    """
    c = np.asarray(c.detach() if isinstance(c, torch.Tensor) else c, dtype=float)
    freq = feature_frequency(len(c)).astype(float)
    offset = np.zeros(len(c))
    offset[1::2], offset[2::2] = -0.15, 0.15  # sin left of the frequency, cos right
    keep = freq <= max_freq
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    ax.vlines(freq[keep] + offset[keep], 0, c[keep], color="tab:blue", linewidth=1)
    s = support_indices().numpy()
    ax.plot(freq[s] + offset[s], c[s], "o", color="tab:red", label="true features (frequencies 3, 4, 5)")
    ax.axhline(1.0, color="gray", linestyle=":", linewidth=1, label="all-ones")
    ax.set_xlabel("frequency k (sin left, cos right)")
    ax.set_ylabel("weight c")
    ax.set_xlim(-1, max_freq + 1)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9, loc="upper right")
    return ax


def weights_widget(snapshots: Sequence[tuple[int, torch.Tensor]], max_freq: int = 100):
    """A slider over meta-training iterations showing the feature weights at each.

    The weights are recorded during training, so moving the slider only redraws.
    Returns the ``ipywidgets`` widget (or ``None`` where ipywidgets is missing).
    """
    try:
        from ipywidgets import IntSlider, interactive
    except ImportError:  # plain Python without Jupyter: nothing to scrub
        return None
    top = max(float(c.max()) for _, c in snapshots) * 1.05

    def show(i: int) -> None:
        step, c = snapshots[i]
        ax = plot_feature_weights(c, title=f"feature weights after {step} meta-steps", max_freq=max_freq)
        ax.set_ylim(min(0.0, float(min(c.min() for _, c in snapshots))), top)
        plt.show()

    slider = IntSlider(value=len(snapshots) - 1, min=0, max=len(snapshots) - 1, step=1,
                       description="snapshot", continuous_update=True)
    return interactive(show, i=slider)


def plot_alias_path(path: np.ndarray, *, ax=None):
    """The path of (c0, c1) under gradient descent in the alias toy, with the circle
    of the starting norm: the path hugs it."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 4.8))
    r = float(np.linalg.norm(path[0]))
    t = np.linspace(0, math.pi / 2, 200)
    ax.plot(r * np.cos(t), r * np.sin(t), ":", color="gray", label=f"|c| = |c(0)| = {r:.3f}")
    ax.plot(path[:, 0], path[:, 1], "-", color="tab:blue", label="gradient descent")
    ax.plot(*path[0], "o", color="tab:green", label="c(0)")
    ax.plot(*path[-1], "s", color="tab:red", label="final c")
    ax.set_xlabel("c0 (weight of the true feature)")
    ax.set_ylabel("c1 (weight of the alias)")
    ax.set_aspect("equal")
    ax.legend(fontsize=9)
    return ax
