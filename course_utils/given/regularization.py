"""Given code for the regularization assignment (``notebooks/regularization``): weight decay and noise.

What students write (one Adam step with an L2 term or decoupled decay, the
L2 coefficient equivalent to a decay rate under a frozen preconditioner, the
expected loss under multiplicative input noise and its minimizer) is *not*
here: every function below that needs one of those takes it as an argument,
so the notebook's own answers drive the experiments and the plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import data
from course_utils.training import train_loop

DTYPE = torch.float64  # the optimizer comparisons hold to 1e-7 only in double precision

# step(w, g, m, v, t, lr=..., beta1=..., beta2=..., eps=..., l2=..., decay=...) -> (w, m, v)
AdamStep = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Params = list[torch.Tensor]


# ------------------------------------------------------------------ a small model to compare optimizers on

@dataclass(frozen=True)
class ToyProblem:
    """A one-hidden-layer tanh network's starting weights and a regression data set to fit, in float64."""

    params: tuple[torch.Tensor, ...]  # W1 (d_in, hidden), b1 (hidden,), W2 (hidden, 1), b2 (1,)
    x: torch.Tensor
    y: torch.Tensor

    def loss(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean squared error of the network with weights ``params`` on the data."""
        w1, b1, w2, b2 = params
        return ((torch.tanh(self.x @ w1 + b1) @ w2 + b2 - self.y) ** 2).mean()


def toy_problem(seed: int = 0, n: int = 32, d_in: int = 5, hidden: int = 8) -> ToyProblem:
    """Seeded starting weights and data: shapes vary with the arguments, so tests can hold some out."""
    g = torch.Generator().manual_seed(seed)
    params = (torch.randn(d_in, hidden, generator=g, dtype=DTYPE) / math.sqrt(d_in),
              torch.randn(hidden, generator=g, dtype=DTYPE) * 0.1,
              torch.randn(hidden, 1, generator=g, dtype=DTYPE) / math.sqrt(hidden),
              torch.zeros(1, dtype=DTYPE))
    x = torch.randn(n, d_in, generator=g, dtype=DTYPE)
    y = torch.sin(x[:, :1] * 2) + 0.1 * torch.randn(n, 1, generator=g, dtype=DTYPE)
    return ToyProblem(params, x, y)


def _gradients(problem: ToyProblem, params: Params) -> Params:
    """Gradient of the toy loss at ``params`` (detached copies in, plain tensors out)."""
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    return list(torch.autograd.grad(problem.loss(leaves), leaves))


def trajectory_with_step(step: AdamStep, problem: ToyProblem, steps: int, **hyper: float) -> list[Params]:
    """The weights after every one of ``steps`` updates by ``step``, applied to each weight tensor.

    ``step`` keeps no state: the moments m and v of every tensor are carried
    here, from zeros, and the step count t starts at 1 as in ``torch.optim.Adam``.
    """
    params = [p.clone() for p in problem.params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    path = []
    for t in range(1, steps + 1):
        grads = _gradients(problem, params)
        for i, g in enumerate(grads):
            params[i], m[i], v[i] = step(params[i], g, m[i], v[i], t, **hyper)
        path.append([p.detach().clone() for p in params])
    return path


def trajectory_with_torch(optimizer: type[torch.optim.Optimizer], problem: ToyProblem, steps: int,
                          **kwargs: float) -> list[Params]:
    """The same trajectory with a torch optimizer (``torch.optim.Adam`` or ``AdamW`` and its keywords)."""
    params = [p.clone().requires_grad_(True) for p in problem.params]
    opt = optimizer(params, **kwargs)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(params).backward()
        opt.step()
        path.append([p.detach().clone() for p in params])
    return path


def max_gap(path_a: list[Params], path_b: list[Params]) -> float:
    """The largest difference of any weight at any step between two trajectories."""
    return max(float((a - b).abs().max()) for pa, pb in zip(path_a, path_b, strict=True)
               for a, b in zip(pa, pb, strict=True))


# ------------------------------------------------------------------ a badly scaled least-squares problem

@dataclass(frozen=True)
class LeastSquares:
    """min_w ||X w - y||^2 / (2n): columns of X on very different scales."""

    x: torch.Tensor
    y: torch.Tensor

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of ||X w - y||^2 / (2n), without any regularizer."""
        return self.x.T @ (self.x @ w - self.y) / len(self.y)

    def ridge(self, lam: float) -> torch.Tensor:
        """The closed-form minimizer of ||X w - y||^2 / (2n) + lam ||w||^2 / 2 (lam = 0: least squares)."""
        n, d = self.x.shape
        return torch.linalg.solve(self.x.T @ self.x / n + lam * torch.eye(d, dtype=self.x.dtype),
                                  self.x.T @ self.y / n)


SCALES = (10.0, 3.0, 1.0, 0.3, 0.1)  # the column scales of the badly scaled problem


def badly_scaled_problem(seed: int = 0, n: int = 200, scales: Sequence[float] = SCALES) -> LeastSquares:
    """A seeded least-squares problem whose columns span two orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(scales), generator=g, dtype=DTYPE) * torch.tensor(scales, dtype=DTYPE)
    y = x @ torch.randn(len(scales), generator=g, dtype=DTYPE) + 0.5 * torch.randn(n, generator=g, dtype=DTYPE)
    return LeastSquares(x, y)


def preconditioned_descent(grad: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor, precond: torch.Tensor,
                           lr: float, steps: int, *, l2: float | torch.Tensor = 0.0,
                           decay: float = 0.0) -> torch.Tensor:
    """Gradient descent with a frozen diagonal preconditioner; returns every iterate, shape (steps + 1, d).

    An L2 term enters the gradient and is divided by the preconditioner with it,
    w <- w - lr (g + l2 w) / precond; decoupled decay is not,
    w <- w - lr g / precond - lr decay w.
    """
    w, path = w0.clone(), [w0.clone()]
    for _ in range(steps):
        w = w - lr * (grad(w) + l2 * w) / precond - lr * decay * w
        path.append(w)
    return torch.stack(path)


def adam_path(step: AdamStep, grad: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor, steps: int,
              lr: float, *, l2: float = 0.0, decay: float = 0.0) -> torch.Tensor:
    """Full-batch Adam by ``step`` with a cosine learning rate from ``lr`` down to 0; every iterate.

    The learning rate goes to 0 so the iterates settle at a point instead of
    circling it, which makes the end point comparable with a closed form.
    """
    w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
    path = [w0.clone()]
    for t in range(1, steps + 1):
        lr_t = lr * 0.5 * (1 + math.cos(math.pi * t / steps))
        w, m, v = step(w, grad(w), m, v, t, lr=lr_t, beta1=0.9, beta2=0.999, eps=1e-8, l2=l2, decay=decay)
        path.append(w)
    return torch.stack(path)


def plot_paths(paths: dict[str, torch.Tensor], marks: dict[str, torch.Tensor], *, ax=None,
               coords: tuple[int, int] = (3, 4), title: str | None = None):
    """Iterates of several runs in the plane of two coordinates, with fixed points marked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    i, j = coords
    for name, path in paths.items():
        p = path.detach().numpy()
        ax.plot(p[:, i], p[:, j], lw=1.5, label=name)
        ax.plot(p[-1, i], p[-1, j], "o", color=ax.lines[-1].get_color())
    for (name, point), marker in zip(marks.items(), ("*", "X", "P", "D")):
        ax.plot(float(point[i]), float(point[j]), marker, ms=14, color="black", mfc="none", label=name)
    ax.set_xlabel(f"w[{i}] (column scale {SCALES[i]:g})" if i < len(SCALES) else f"w[{i}]")
    ax.set_ylabel(f"w[{j}] (column scale {SCALES[j]:g})" if j < len(SCALES) else f"w[{j}]")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


# ------------------------------------------------------------------ multiplicative input noise

def noisy_design(n: int = 100, seed: int = 1,
                 scales: Sequence[float] = (3.0, 1.0, 1.0, 0.5, 0.5, 0.2)) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded regression data set (X, y) whose features have different norms."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(scales), generator=g, dtype=DTYPE) * torch.tensor(scales, dtype=DTYPE)
    y = x @ torch.randn(len(scales), generator=g, dtype=DTYPE) + 0.3 * torch.randn(n, generator=g, dtype=DTYPE)
    return x, y


def monte_carlo_loss(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, mu: float, sigma: float,
                     samples: int, seed: int = 0) -> tuple[float, float]:
    """Mean and standard error of ||y - X (r * w)||^2 over ``samples`` draws of r ~ N(mu, sigma^2) per feature."""
    g = torch.Generator().manual_seed(seed)
    losses = []
    for chunk in torch.split(torch.arange(samples), 2048):
        r = mu + sigma * torch.randn(len(chunk), x.shape[1], generator=g, dtype=x.dtype)
        losses.append(((y - (r * w) @ x.T) ** 2).sum(dim=1))
    values = torch.cat(losses)
    return float(values.mean()), float(values.std() / math.sqrt(samples))


def noisy_sgd(x: torch.Tensor, y: torch.Tensor, mu: float, sigma: float, steps: int, seed: int = 0,
              burn_in: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient descent on ||y - (X * R) w||^2 with fresh noise R_ij ~ N(mu, sigma^2) on every input at every step.

    Returns the average of the iterates after the burn-in and every iterate.
    The expected gradient is linear in w, so the iterates fluctuate around the
    minimizer of the expected loss; averaging them (Polyak) removes the
    fluctuation. The step is half the inverse of the expected loss's largest
    curvature, so the iteration is stable for any data.
    """
    g = torch.Generator().manual_seed(seed)
    gram = x.T @ x
    curvature = 2 * torch.linalg.eigvalsh(mu ** 2 * gram + sigma ** 2 * torch.diag(torch.diag(gram))).max()
    lr = 0.5 / float(curvature)
    w, average = torch.zeros(x.shape[1], dtype=x.dtype), torch.zeros(x.shape[1], dtype=x.dtype)
    start, path = int(burn_in * steps), []
    for t in range(steps):
        noisy = x * (mu + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype))
        w = w - lr * 2 * noisy.T @ (noisy @ w - y)
        path.append(w)
        if t >= start:
            average += (w - average) / (t - start + 1)
    return average, torch.stack(path)


# ------------------------------------------------------------------ a small MLP on MNIST

@dataclass(frozen=True)
class Split:
    """Flattened MNIST images in [0, 1] with their labels, for training and validation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def mnist_split(n_train: int, n_val: int, seed: int = 0) -> Split:
    """A seeded subset of the official MNIST training images: small enough to overfit in seconds."""
    mnist = data.mnist()
    order = np.random.default_rng(seed).permutation(len(mnist.y_train))
    train, val = order[:n_train], order[n_train:n_train + n_val]

    def images(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(mnist.x_train[idx].reshape(-1, 28 * 28)).float() / 255.0

    return Split(images(train), torch.from_numpy(mnist.y_train[train]),
                 images(val), torch.from_numpy(mnist.y_train[val]))


@dataclass
class Run:
    """One training run: its settings and its validation curve."""

    name: str
    decay: float
    val_step: list[int]
    val_loss: list[float]
    val_err: list[float]

    @property
    def final_loss(self) -> float:
        return self.val_loss[-1]


def train_mlp(split: Split, name: str, *, optimizer: str = "adam", decay: float = 0.0, noise: float = 0.0,
              steps: int = 300, batch: int = 100, lr: float = 1e-3, hidden: int = 256, eval_every: int = 25,
              seed: int = 0) -> Run:
    """Train a 784-hidden-10 ReLU network from the same seeded start; validation loss every ``eval_every`` steps.

    ``optimizer`` "adam" takes ``decay`` as torch.optim.Adam's weight_decay (an
    L2 term in the gradient), "adamw" as AdamW's decoupled decay. ``noise``
    multiplies every input pixel of every training batch by r ~ N(1, noise^2).
    """
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    opt = kind(net.parameters(), lr=lr, weight_decay=decay)
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            yield torch.randint(0, len(split.y_train), (batch,), generator=g)

    def step(idx: torch.Tensor) -> float:
        x = split.x_train[idx]
        if noise:
            x = x * (1 + noise * torch.randn(x.shape, generator=g))
        loss = torch.nn.functional.cross_entropy(net(x), split.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        logits = net(split.x_val)
        return {"loss": torch.nn.functional.cross_entropy(logits, split.y_val).item(),
                "err": (logits.argmax(1) != split.y_val).float().mean().item()}

    history = train_loop(step, batches(), steps, desc=name, evaluate=evaluate, eval_every=eval_every, leave=False)
    return Run(name, decay, history["val_step"], history["val_loss"], history["val_err"])


def plot_runs(runs: Sequence[Run], *, ax=None, title: str | None = None, ylim: tuple[float, float] | None = None):
    """Validation loss against training step, one line per run."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        ax.plot(run.val_step, run.val_loss, marker=".", label=f"{run.name}: {run.final_loss:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats)")
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def decay_explorer(runs: Sequence[Run], baseline: Run):
    """A slider over AdamW's decay rate: the validation curve of the run with that rate, beside no regularization.

    The runs are trained beforehand, so moving the slider only redraws. Returns
    the ``ipywidgets`` widget (or ``None`` where ipywidgets is missing).
    """
    try:
        from ipywidgets import SelectionSlider, interactive
    except ImportError:  # plain Python without Jupyter: nothing to slide
        return None
    losses = [x for run in (*runs, baseline) for x in run.val_loss]
    ylim = (min(losses) * 0.95, max(losses) * 1.05)

    def show(run: Run) -> None:
        plot_runs([baseline, run], ylim=ylim, title=f"AdamW, decay rate {run.decay:g}: "
                                                    f"final validation loss {run.final_loss:.3f}")
        plt.show()

    slider = SelectionSlider(options=[(f"{run.decay:g}", run) for run in runs], value=runs[0],
                             description="decay", continuous_update=True)
    return interactive(show, run=slider)
