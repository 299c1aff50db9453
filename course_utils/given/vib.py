"""Given code of the Variational Information Bottleneck assignment (``notebooks/vib``).

The notebook keeps what students write (the reparameterized sample, the KL
term, the VIB loss) and the training step they should be able to read. This
module holds what they are handed: the three-class MNIST split, the encoder
and decoder networks, an endless minibatch stream, and the plots and slider
of the 2-D latent space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data

LATENT_DIM = 2
SIGMA_FLOOR = 1e-4  # keeps log(sigma) finite when a tiny beta lets sigma shrink towards zero
MARKERS = ("o", "s", "^", "D", "v", "P")  # one per class, so the plots read in black and white too


class DigitSplit(NamedTuple):
    """Flattened images of a few MNIST digits; labels are positions in ``digits`` (0..K-1)."""

    digits: tuple[int, ...]
    x_train: torch.Tensor  # (N, 784) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor


def load_digits(digits: Sequence[int], n_val: int = 3000, n_train: int | None = None,
                seed: int = 0) -> DigitSplit:
    """The official MNIST training images of ``digits``, split into training and validation.

    Validation is carved out of the training set so the test set stays unseen
    while betas are compared; a seeded generator makes the split identical on
    every machine. ``n_train`` caps the training set (FAST mode).
    """
    digits = tuple(int(d) for d in digits)
    mnist = data.mnist()
    keep = np.isin(mnist.y_train, digits)
    x = torch.from_numpy(mnist.x_train[keep].reshape(-1, 28 * 28)).float() / 255.0
    lookup = np.full(10, -1, dtype=np.int64)
    lookup[list(digits)] = np.arange(len(digits))
    y = torch.from_numpy(lookup[mnist.y_train[keep]])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    if n_train is not None:
        train = train[:n_train]
    return DigitSplit(digits, x[train], y[train], x[val], y[val])


def minibatches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled minibatches, reshuffled every epoch.

    ``train_loop`` cycles a finite iterable, which would replay one order;
    an endless generator gives a fresh order each epoch, reproducibly.
    """
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]


class Encoder(nn.Module):
    """x -> (mu, sigma): mean and standard deviation of the Gaussian p(z | x) over the latent.

    sigma comes out of a softplus, so it is positive without clamping and its
    gradient never vanishes; ``SIGMA_FLOOR`` keeps ``log sigma`` finite.
    """

    def __init__(self, in_dim: int = 28 * 28, hidden: int = 256, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_dim)
        self.raw_sigma = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), F.softplus(self.raw_sigma(h)) + SIGMA_FLOOR


class Decoder(nn.Module):
    """z -> class scores (logits of q(y | z)).

    Linear on purpose: its decision regions are straight-edged wedges of the
    plane, so whatever makes the classes separable must be done by the encoder,
    and the latent plots show exactly what the decoder can use.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, n_classes: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(latent_dim, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)


@dataclass
class BetaRun:
    """What one training run at one beta leaves behind for the plots and the slider."""

    beta: float
    val_err: float  # fraction of validation images misclassified
    kl: float  # mean KL(p(z|x) || N(0, I)) over validation images, in nats
    z: np.ndarray  # (n, 2) one latent sample per validation image
    y: np.ndarray  # (n,) class index of each


def scatter_latent(z: np.ndarray, y: np.ndarray, digits: Sequence[int], *, ax=None,
                   title: str | None = None, max_points: int = 1500):
    """Latent samples with one marker and colour per class.

    Each plot keeps its own axis limits: the scale of the tick labels is part
    of what the plot says (a tiny beta spreads the latent over a huge range).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    z, y = np.asarray(z)[:max_points], np.asarray(y)[:max_points]
    for k, digit in enumerate(digits):
        pts = z[y == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=9, alpha=0.6, marker=MARKERS[k % len(MARKERS)], label=f"digit {digit}")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=9, markerscale=1.5)
    return ax


def latent_explorer(runs: Sequence[BetaRun], digits: Sequence[int], start_beta: float | None = None) -> None:
    """A slider over the trained betas: the latent samples and the validation error at each.

    Everything is precomputed, so moving the slider only redraws; the default
    view is displayed at once, so the notebook also runs headless.
    """
    from ipywidgets import SelectionSlider, interact

    options = [(f"{run.beta:g}", run) for run in runs]
    start = min(runs, key=lambda r: abs(np.log10(r.beta) - np.log10(start_beta or runs[0].beta)))

    def show(run: BetaRun) -> None:
        fig, ax = plt.subplots(figsize=(4.8, 4.8))
        scatter_latent(run.z, run.y, digits, ax=ax,
                       title=f"β = {run.beta:g}: validation error {100 * run.val_err:.1f}%\n"
                             f"KL {run.kl:.2f} nats per image")
        plt.show()

    slider = SelectionSlider(options=options, value=start, description="β", continuous_update=True)
    interact(show, run=slider)
