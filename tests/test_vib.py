"""The given code of the VIB assignment: data split, minibatches, networks, plots (no training)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from course_utils.given import vib  # noqa: E402


def test_load_digits_relabels_and_splits_reproducibly() -> None:
    split = vib.load_digits((0, 1, 2), n_val=500, n_train=1000)
    assert split.digits == (0, 1, 2)
    assert split.x_train.shape == (1000, 784) and split.x_val.shape == (500, 784)
    assert split.x_train.dtype == torch.float32 and 0 <= split.x_train.min() and split.x_train.max() <= 1
    assert set(split.y_train.tolist()) == {0, 1, 2} and set(split.y_val.tolist()) == {0, 1, 2}
    again = vib.load_digits((0, 1, 2), n_val=500, n_train=1000)
    assert torch.equal(split.x_val, again.x_val) and torch.equal(split.y_train, again.y_train)


def test_full_split_counts_and_no_overlap() -> None:
    split = vib.load_digits((0, 1, 2))
    assert len(split.x_train) + len(split.x_val) == 5923 + 6742 + 5958
    counts = torch.bincount(torch.cat([split.y_train, split.y_val])).tolist()
    assert counts == [5923, 6742, 5958]


def test_labels_follow_the_order_of_digits() -> None:
    split = vib.load_digits((7, 3), n_val=100, n_train=200)
    mnist_label_of = {0: 7, 1: 3}
    from course_utils import data

    m = data.mnist()
    first = split.x_train[0].reshape(28, 28).mul(255).round().to(torch.uint8).numpy()
    match = np.flatnonzero((m.x_train == first).all(axis=(1, 2)))
    assert len(match) >= 1 and m.y_train[match[0]] == mnist_label_of[int(split.y_train[0])]


def test_minibatches_reshuffle_every_epoch() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    stream = vib.minibatches(x, y, batch_size=5, seed=0)
    epochs = [torch.cat([next(stream)[1] for _ in range(2)]) for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(10))
    assert any(not torch.equal(a, b) for a, b in itertools.combinations(epochs, 2))
    xb, yb = next(vib.minibatches(x, y, batch_size=4, seed=1))
    assert torch.equal(xb[:, 0].long(), yb)


def test_encoder_gives_positive_sigma_and_decoder_scores() -> None:
    torch.manual_seed(0)
    encoder, decoder = vib.Encoder(), vib.Decoder(n_classes=3)
    mu, sigma = encoder(torch.rand(5, 784))
    assert mu.shape == sigma.shape == (5, vib.LATENT_DIM)
    assert (sigma >= vib.SIGMA_FLOOR).all()
    assert decoder(mu).shape == (5, 3)
    (mu.sum() + sigma.sum()).backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_scatter_latent_draws_one_series_per_class() -> None:
    z = np.random.default_rng(0).normal(size=(60, 2))
    y = np.repeat([0, 1, 2], 20)
    ax = vib.scatter_latent(z, y, (0, 1, 2), title="t")
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["digit 0", "digit 1", "digit 2"]
    plt.close("all")


def test_latent_explorer_runs_without_a_front_end() -> None:
    """Headless execution (course run, nbgrader) must draw the default view and return at once."""
    runs = [vib.BetaRun(b, 0.1, 1.0, np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2])) for b in (1e-6, 1e-3, 1.0)]
    vib.latent_explorer(runs, (0, 1, 2), start_beta=1e-3)
    plt.close("all")
