"""Unit tests of the diffusion assignment's given code (course_utils/given/diffusion.py): data, schedules,
denoisers, sampling loops, the classifier's verdict and the widgets; no training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.given import diffusion as given


def _schedule(T: int = 10) -> given.Schedule:
    betas = given.linear_betas(T)
    return given.Schedule(betas, 1 - betas, torch.cumprod(1 - betas, 0))


def test_two_dimensional_data_are_seeded_and_unit_scale() -> None:
    roll = given.swiss_roll(5000, seed=3)
    assert roll.shape == (5000, 2) and roll.dtype == torch.float32
    assert torch.equal(roll, given.swiss_roll(5000, seed=3)), "the same seed gives the same points"
    assert not torch.equal(roll, given.swiss_roll(5000, seed=4))
    radius = roll.norm(dim=1)
    assert 0.3 < float(radius.min()) and float(radius.max()) < 1.6, "(s cos s, s sin s) / 10 for s in [1.5 pi, 4.5 pi]"
    mixture = given.gaussian_mixture(8000, seed=0)
    assert mixture.shape == (8000, 2)
    shares, off = given.mode_shares(mixture)
    assert shares.shape == (8,) and abs(shares.sum() - 1) < 1e-9
    assert np.all(np.abs(shares - 1 / 8) < 0.02), "equal weights"
    assert off < 0.001, "almost no point of the mixture lies 4 standard deviations from every centre"
    assert torch.allclose(given.mixture_centres().norm(dim=1), torch.ones(8))


def test_chamfer_distance() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert given.chamfer(a, a) == 0.0
    assert given.chamfer(a, a + torch.tensor([0.0, 0.5])) == pytest.approx(0.5)
    # a missing point: one-way distances 0 and (1 + 0) / 2 -> mean 0.25
    assert given.chamfer(a[:1], a) == pytest.approx(0.25)
    x, y = torch.randn(300, 2), torch.randn(500, 2)
    assert given.chamfer(x, y) == pytest.approx(given.chamfer(y, x))
    assert given.chamfer(x, y, chunk=7) == pytest.approx(given.chamfer(x, y))


def test_random_batches_cover_an_epoch() -> None:
    x = torch.arange(12)[:, None]
    batches = given.random_batches(x, 4, seed=0)
    epoch = torch.cat([next(batches) for _ in range(3)])
    assert sorted(epoch.flatten().tolist()) == list(range(12))
    assert next(given.random_batches(x, 100)).shape == (12, 1), "a batch larger than the data is the whole data"


def test_linear_betas_and_schedule() -> None:
    betas = given.linear_betas(100)
    assert betas.shape == (101,) and betas[0] == 0
    assert float(betas[1]) == pytest.approx(0.001) and float(betas[100]) == pytest.approx(0.2)
    ddpm = given.linear_betas(1000)
    assert float(ddpm[1]) == pytest.approx(1e-4) and float(ddpm[1000]) == pytest.approx(0.02)
    assert float(given.linear_betas(100, 1e-4, 0.02)[100]) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        given.linear_betas(10, 0.5, 0.1)
    assert _schedule(10).T == 10


def test_per_example_and_time_index() -> None:
    x = torch.zeros(3, 1, 4, 4)
    assert given.per_example(torch.ones(3), x).shape == (3, 1, 1, 1)
    assert given.per_example(torch.tensor(2.0), x).shape == ()
    assert given.per_example(torch.ones(5), torch.zeros(5, 2)).shape == (5, 1)
    assert given.time_index(7, 4).tolist() == [7, 7, 7, 7]
    assert given.time_index(torch.tensor(3), 2).tolist() == [3, 3]
    assert given.time_index(torch.tensor([1, 2, 3]), 3).tolist() == [1, 2, 3]
    assert given.time_features(torch.tensor([0, 50]), 16, 100).shape == (2, 16)


def test_denoisers_take_one_t_or_one_per_example() -> None:
    mlp = given.MLPDenoiser(20, hidden=16, seed=0)
    z = torch.randn(5, 2)
    assert mlp(z, 3).shape == (5, 2)
    assert torch.allclose(mlp(z, 3), mlp(z, torch.full((5,), 3)))
    assert not torch.allclose(mlp(z, 3), mlp(z, 17)), "the time step changes the prediction"
    assert torch.equal(given.MLPDenoiser(20, hidden=16, seed=0)(z, 3), mlp(z, 3)), "seeded initialisation"
    conv = given.ConvDenoiser(20, channels=8, seed=0)
    images = torch.randn(3, 1, 14, 14)
    assert conv(images, torch.tensor([1, 5, 20])).shape == (3, 1, 14, 14)
    assert given.n_parameters(given.ConvDenoiser(100)) > 200_000


def test_exact_gaussian_denoiser() -> None:
    schedule = _schedule(10)
    x0 = torch.tensor([0.5, -1.0])
    model = given.ExactGaussianDenoiser(x0, 0.0, schedule.alpha_bars)
    eps = torch.randn(6, 2)
    t = torch.tensor([1, 2, 3, 5, 8, 10])
    a = schedule.alpha_bars[t][:, None]
    z = a.sqrt() * x0 + (1 - a).sqrt() * eps
    assert torch.allclose(model(z, t), eps, atol=1e-5), "with std 0, the noise is known exactly"
    # Gaussian data: the prediction is the regression of eps on z_t, E[eps z_t] / Var z_t
    wide = given.ExactGaussianDenoiser(torch.zeros(1), 2.0, schedule.alpha_bars)
    a5 = schedule.alpha_bars[5]
    slope = float(wide(torch.ones(1, 1), 5))
    assert slope == pytest.approx(float((1 - a5).sqrt() / (4 * a5 + 1 - a5)), rel=1e-5)


def test_ema_moves_towards_the_model() -> None:
    model = torch.nn.Linear(2, 1)
    ema = given.EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model.weight, 0.5 * before + 0.5 * model.weight)
    assert not ema.model.weight.requires_grad


def test_ancestral_sampling_calls_the_step_from_T_to_1() -> None:
    schedule = _schedule(6)
    calls = []

    def step(model, z, t, sched, noise):
        calls.append((t, tuple(noise.shape)))
        assert sched is schedule
        return z * 0.5 + noise * 0.0

    run = given.ancestral_sampling(torch.nn.Identity(), step, (4, 2), schedule, seed=1, keep=3, keep_every=2)
    assert [t for t, _ in calls] == [6, 5, 4, 3, 2, 1]
    assert all(shape == (4, 2) for _, shape in calls)
    assert run.times == [6, 4, 2, 0] and len(run.frames) == 4 and run.frames[0].shape == (3, 2)
    start = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(run.samples, start / 2 ** 6)
    again = given.ancestral_sampling(torch.nn.Identity(), step, (4, 2), schedule, seed=1)
    assert torch.equal(again.samples, run.samples) and again.frames == []


def test_ddim_times_and_deterministic_sampling() -> None:
    assert given.ddim_times(100, 1) == [100, 0]
    assert given.ddim_times(100, 3) == [100, 67, 33, 0]
    assert given.ddim_times(10, 10) == list(range(10, -1, -1))
    for k in range(1, 41):
        times = given.ddim_times(40, k)
        assert len(set(times)) == k + 1 and times[0] == 40 and times[-1] == 0
    with pytest.raises(ValueError):
        given.ddim_times(10, 11)
    pairs = []

    def step(model, z, t, t_prev, sched):
        pairs.append((t, t_prev))
        return z + 1

    run = given.deterministic_sampling(torch.nn.Identity(), step, (2, 2), _schedule(10), 5, seed=0, keep=2)
    assert pairs == [(10, 8), (8, 6), (6, 4), (4, 2), (2, 0)]
    assert run.times == [10, 8, 6, 4, 2, 0] and len(run.frames) == 6
    start = torch.randn(2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(run.samples, start + 5)


@pytest.fixture(scope="module")
def digits() -> given.SmallMNIST:
    return given.small_mnist(14)


def test_small_mnist(digits: given.SmallMNIST) -> None:
    assert digits.train.shape == (60_000, 1, 14, 14) and digits.test.shape == (10_000, 1, 14, 14)
    assert float(digits.train.min()) == -1.0 and float(digits.train.max()) <= 1.0
    assert digits.test_labels.shape == (10_000,) and set(digits.test_labels.tolist()) == set(range(10))
    assert given.to_unit(digits.test[:5]).shape == (5, 14, 14)
    assert float(given.to_unit(torch.full((1, 1, 2, 2), 3.0)).max()) == 1.0, "samples outside [-1, 1] are clamped"


def test_judge_counts_labels_and_confidence(digits: given.SmallMNIST) -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x):  # picks digit 3 with probability about 0.9, whatever the image
            logits = torch.zeros(len(x), 10)
            logits[:, 3] = math.log(0.9 * 9 / 0.1)
            return logits

    verdict = given.judge(Fixed(), digits.test[:50])
    assert verdict.labels.tolist() == [3] * 50
    assert verdict.max_share == 1.0 and verdict.shares.shape == (10,)
    assert verdict.mean_confidence == pytest.approx(0.9, abs=1e-5)
    classifier = given.DigitClassifier(14, seed=0)
    assert classifier(digits.test[:4]).shape == (4, 10)


def test_widgets_build() -> None:
    import matplotlib

    matplotlib.use("Agg")
    frames = [torch.randn(30, 2) for _ in range(4)]
    widget = given.process_widget({"a": ([6, 4, 2, 0], frames, torch.randn(50, 2)),
                                   "b": ([2, 0], frames[:2], torch.randn(50, 2))})
    assert [c.description for c in widget.children[:2]] == ["data", "snapshot"]
    assert widget.children[1].max == 3 and widget.children[1].value == 3
    images = [torch.randn(12, 1, 14, 14) for _ in range(3)]
    widget = given.image_process_widget([10, 5, 0], images, ncol=6,
                                        classify=lambda x: given.judge(given.DigitClassifier(14, seed=0), x))
    assert widget.children[0].max == 2
