"""Unit tests of the VAE assignment's given code (course_utils.given.vae): shapes, data and plots, no training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.given import vae as vae_kit


@pytest.fixture(scope="module")
def data() -> vae_kit.BinarizedMNIST:
    return vae_kit.load_binarized_mnist(n_val=1000, seed=0)


def test_binarized_mnist_splits(data: vae_kit.BinarizedMNIST) -> None:
    assert data.train.shape == (59_000, 784) and data.val.shape == (1000, 784)
    assert data.test.shape == (10_000, 784) and data.test_labels.shape == (10_000,)
    assert set(data.test.unique().tolist()) == {0.0, 1.0}, "test images are binarized once"
    assert 0.0 <= float(data.train.min()) and float(data.train.max()) <= 1.0
    assert len(data.train.unique()) > 2, "training images keep their grey levels"
    again = vae_kit.load_binarized_mnist(n_val=1000, seed=0)
    assert torch.equal(again.test, data.test), "the test binarization is fixed by the seed"


def test_binarized_batches_are_binary_and_cover_an_epoch(data: vae_kit.BinarizedMNIST) -> None:
    x = data.train[:100]
    batches = vae_kit.binarized_batches(x, 25, seed=1)
    first_epoch = [next(batches) for _ in range(4)]
    assert all(b.shape == (25, 784) for b in first_epoch)
    assert set(torch.cat(first_epoch).unique().tolist()) <= {0.0, 1.0}
    # dynamic binarization: two epochs give different 0/1 images
    assert not torch.equal(torch.cat(first_epoch), torch.cat([next(batches) for _ in range(4)]))


def test_vae_shapes_and_positive_variance() -> None:
    torch.manual_seed(0)
    model = vae_kit.VAE(z_dim=5, hidden=(32, 16))
    x = torch.bernoulli(torch.full((7, 784), 0.5))
    m, v = model.encode(x)
    assert m.shape == v.shape == (7, 5)
    assert (v > 0).all(), "the encoder returns variances"
    assert model.decode(m).shape == (7, 784)
    assert model.sample_means(3).shape == (3, 28, 28)
    means = model.decoded_means(m)
    assert float(means.min()) >= 0 and float(means.max()) <= 1


def test_evaluate_averages_over_images_and_repeats() -> None:
    x = torch.arange(10, dtype=torch.float32)[:, None]

    def loss_fn(batch: torch.Tensor):
        mean = batch.mean()
        return mean + 1, torch.tensor(1.0), mean

    out = vae_kit.evaluate(loss_fn, x, repeats=3, batch_size=4)
    assert out["nelbo"].shape == (3,)
    np.testing.assert_allclose(out["rec"], 4.5)  # weighted by batch size: 0..9 averages to 4.5
    np.testing.assert_allclose(out["nelbo"], 5.5)
    mean, se = vae_kit.mean_and_se(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and se == pytest.approx(1 / np.sqrt(3))


def test_pictures_and_latent_walks(data: vae_kit.BinarizedMNIST) -> None:
    torch.manual_seed(0)
    model = vae_kit.VAE(z_dim=4, hidden=(16,))
    picks = vae_kit.one_per_digit(data.test_labels, per_digit=2)
    assert picks.shape == (20,)
    assert data.test_labels[picks[:10]].tolist() == list(range(10))
    grid = vae_kit.reconstruction_grid(model, data.test[picks])
    assert grid.shape == (40, 28, 28)
    assert torch.equal(grid[:10], data.test[picks[:10]].reshape(-1, 28, 28)), "originals come first"
    walks = vae_kit.latent_walks(model, data.test[:3], torch.linspace(-1, 1, 5))
    assert walks.shape == (3, 4, 5, 28, 28)
    assert vae_kit.latent_activity(model, data.test[:50]).shape == (4,)


def test_latent_explorer_builds_a_widget(data: vae_kit.BinarizedMNIST) -> None:
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    model = vae_kit.VAE(z_dim=3, hidden=(16,))
    widget = vae_kit.latent_explorer(model, data.test[:4], data.test_labels[:4], [0.5, 0.0, 1.0], steps=5)
    assert [c.description for c in widget.children[:3]] == ["start at", "latent axis", "move by"]
    assert widget.children[1].options[0][1] == 2, "the most active axis is listed first"
