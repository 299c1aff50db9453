"""Given code of the VAE assignment: binarized MNIST, the encoder and decoder
networks, batching, evaluation and the topic's plots.

What students write (sampling with the reparameterization trick, the KL term
and the negative ELBO) is not here: it lives in their notebook. Everything in
this module only *calls* a loss function it is handed.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from course_utils.data import mnist

X_DIM = 28 * 28
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class BinarizedMNIST(NamedTuple):
    """MNIST as flat float tensors in [0, 1].

    ``train`` and ``val`` keep the grey levels: each minibatch is binarized
    afresh (dynamic binarization, as in CS236), which acts as a regularizer.
    ``test`` is binarized once with a fixed seed so every evaluation scores
    the same 0/1 images.
    """

    train: torch.Tensor  # (n_train, 784) grey levels
    val: torch.Tensor  # (n_val, 784) binarized once, for monitoring during training
    test: torch.Tensor  # (10000, 784) binarized once
    test_labels: torch.Tensor  # (10000,)


def load_binarized_mnist(n_val: int = 1000, seed: int = 0) -> BinarizedMNIST:
    """The real MNIST, flattened; the last ``n_val`` training images are held out
    for a validation curve (they are never trained on)."""
    data = mnist()
    g = torch.Generator().manual_seed(seed)
    grey_train = torch.from_numpy(data.x_train.reshape(-1, X_DIM)).float() / 255.0
    grey_test = torch.from_numpy(data.x_test.reshape(-1, X_DIM)).float() / 255.0
    train, val = grey_train[:-n_val], grey_train[-n_val:]
    return BinarizedMNIST(
        train=train,
        val=torch.bernoulli(val, generator=g),
        test=torch.bernoulli(grey_test, generator=g),
        test_labels=torch.from_numpy(data.y_test),
    )


def binarized_batches(x: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Endless random minibatches (a fresh permutation each epoch), each
    binarized by drawing every pixel from Bernoulli(grey level).

    Indexing one in-memory tensor is several times faster on a CPU than a
    ``DataLoader`` over single images, which matters when training has one minute.
    """
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield torch.bernoulli(x[order[start:start + batch_size]], generator=g)


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ELU between them (none after the last), as in CS236."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """q(z | x) = N(m(x), diag v(x)): an MLP whose output is split into the mean
    and a softplus-positive *variance* (not a standard deviation)."""

    def __init__(self, z_dim: int, hidden: Sequence[int] = (300, 300)) -> None:
        super().__init__()
        self.net = mlp([X_DIM, *hidden, 2 * z_dim])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, h = self.net(x).chunk(2, dim=-1)
        return m, nn.functional.softplus(h) + 1e-8


class Decoder(nn.Module):
    """p(x | z) = Bernoulli(sigmoid(f(z))): returns the *logits* f(z), one per pixel."""

    def __init__(self, z_dim: int, hidden: Sequence[int] = (300, 300)) -> None:
        super().__init__()
        self.net = mlp([z_dim, *hidden, X_DIM])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VAE(nn.Module):
    """The encoder and decoder of a VAE with a standard normal prior p(z) = N(0, I).

    ``vae.encode(x)`` gives ``(m, v)`` of q(z | x), each (batch, z_dim);
    ``vae.decode(z)`` gives the Bernoulli logits of p(x | z), (batch, 784).
    """

    def __init__(self, z_dim: int = 10, hidden: Sequence[int] = (300, 300)) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = Encoder(z_dim, hidden)
        self.decoder = Decoder(z_dim, tuple(reversed(hidden)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    @torch.no_grad()
    def decoded_means(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities sigmoid(f(z)) as (n, 28, 28) images: smoother to look
        at than 0/1 draws from them."""
        return torch.sigmoid(self.decode(z)).reshape(-1, 28, 28)

    @torch.no_grad()
    def sample_means(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoded means of ``n`` draws z ~ p(z) = N(0, I)."""
        z = torch.randn(n, self.z_dim, generator=generator)
        return self.decoded_means(z)


@torch.no_grad()
def evaluate(loss_fn: LossFn, x: torch.Tensor, repeats: int = 10, batch_size: int = 2000,
             seed: int = 0) -> dict[str, np.ndarray]:
    """Average ``loss_fn`` (returning batch means of nelbo, kl, rec) over all of
    ``x``, ``repeats`` times with different Monte-Carlo draws.

    Returns one array of ``repeats`` values per term: their spread is the
    Monte-Carlo noise of the one-sample estimate; the mean is the figure to report.
    Seeds torch's global generator with ``seed`` so the figures are reproducible.
    """
    torch.manual_seed(seed)
    out = np.zeros((repeats, 3))
    for r in range(repeats):
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            terms = loss_fn(batch)
            out[r] += np.array([float(t) for t in terms]) * len(batch) / len(x)
    return {"nelbo": out[:, 0], "kl": out[:, 1], "rec": out[:, 2]}


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n))."""
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


@torch.no_grad()
def reconstruction_grid(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """Rows of originals above rows of their reconstructions sigmoid(f(m(x))),
    decoded from the posterior mean so the picture is not noisy. ``x`` is
    (n, 784) with n a multiple of 10; returns (2n, 28, 28) for a grid of 10 columns."""
    m, _ = vae.encode(x)
    originals = x.reshape(-1, 10, 28, 28)
    recons = vae.decoded_means(m).reshape(-1, 10, 28, 28)
    return torch.stack([originals, recons], dim=1).reshape(-1, 28, 28)


@torch.no_grad()
def latent_walks(vae: VAE, x: torch.Tensor, offsets: torch.Tensor) -> np.ndarray:
    """Decoded means along every latent axis from the posterior mean of each image.

    Returns (n_images, z_dim, n_offsets, 28, 28): ``[i, d, k]`` is image i's code
    with ``offsets[k]`` added to coordinate d. Computed once, so a widget can
    show any of them instantly.
    """
    m, _ = vae.encode(x)
    n, z_dim, k = len(x), vae.z_dim, len(offsets)
    z = m[:, None, None, :].repeat(1, z_dim, k, 1)
    eye = torch.eye(z_dim)[None, :, None, :]
    z = z + eye * offsets[None, None, :, None]
    return vae.decoded_means(z.reshape(-1, z_dim)).reshape(n, z_dim, k, 28, 28).numpy()


def latent_activity(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """How much each latent axis is used: the variance, across images, of the
    posterior mean m(x) (Burda et al. 2016 call an axis *active* above 0.01).
    An inactive axis carries no information about x: q(z|x) sits on the prior there."""
    with torch.no_grad():
        m, _ = vae.encode(x)
    return m.var(dim=0)


def latent_explorer(vae: VAE, x: torch.Tensor, labels: torch.Tensor, activity: Sequence[float],
                    max_offset: float = 3.0, steps: int = 25):
    """An ipywidgets view: pick a test digit and a latent axis, slide along it.

    Axes are listed from most to least used (``activity``, e.g. from
    :func:`latent_activity`): sliding along an inactive axis changes nothing,
    which is worth seeing once. All decodings are computed up front
    (:func:`latent_walks`), so moving a slider only redraws.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    offsets = torch.linspace(-max_offset, max_offset, steps)
    walks = latent_walks(vae, x, offsets)
    originals = x.reshape(-1, 28, 28).numpy()
    activity = np.asarray(activity, dtype=float)
    order = np.argsort(activity)[::-1]
    axis_options = [(f"z[{d}]  (activity {activity[d]:.2f})", int(d)) for d in order]
    digit_options = [(f"a test {int(labels[i])} (#{i})", i) for i in range(len(x))]

    def show(image: int, axis: int, offset: float) -> None:
        k = int(np.argmin(np.abs(offsets.numpy() - offset)))
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), gridspec_kw={"width_ratios": [1, 1, 4]})
        axes[0].imshow(originals[image], cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("test image")
        axes[1].imshow(walks[image, axis, k], cmap="gray", vmin=0, vmax=1)
        axes[1].set_title(f"z[{axis}] {offset:+.2f}")
        strip = np.concatenate(list(walks[image, axis, ::3]), axis=1)
        axes[2].imshow(strip, cmap="gray", vmin=0, vmax=1)
        axes[2].set_title(f"the whole walk along z[{axis}], from -{max_offset:g} to +{max_offset:g}")
        for a in axes:
            a.set_axis_off()
        plt.show()

    step = float(offsets[1] - offsets[0])
    return widgets.interactive(
        show,
        image=widgets.Dropdown(options=digit_options, value=0, description="start at"),
        axis=widgets.Dropdown(options=axis_options, value=axis_options[0][1], description="latent axis"),
        offset=widgets.FloatSlider(value=0.0, min=-max_offset, max=max_offset, step=step,
                                   description="move by", continuous_update=True),
    )


def one_per_digit(labels: torch.Tensor, per_digit: int = 1) -> torch.Tensor:
    """Indices of the first ``per_digit`` test images of each digit 0-9, in
    digit order, so pictures show every class."""
    picks = [torch.nonzero(labels == d).flatten()[:per_digit] for d in range(10)]
    return torch.stack(picks, dim=1).flatten()
