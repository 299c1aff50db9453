"""Unit tests of course_utils.given.maml, the given code of the MAML assignment (seconds, no training).

The notebook's own featurizer is what students write, so these tests drive the
task sampler and benchmark with a stand-in featurizer.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.given import maml  # noqa: E402


def stand_in_features(x: torch.Tensor, d: int = 11) -> torch.Tensor:
    """Any fixed features will do for the plumbing: cosines of integer frequencies."""
    return torch.stack([torch.cos(j * math.pi * x / 2) for j in range(d)], dim=1)


def test_feature_index_order() -> None:
    assert maml.feature_index(0, "sin") == 0
    assert maml.feature_index(1, "sin") == 1 and maml.feature_index(1, "cos") == 2
    assert maml.support_indices().tolist() == [5, 6, 7, 8, 9, 10]
    freq = maml.feature_frequency()
    assert len(freq) == maml.D and freq[0] == 0 and freq[5] == 3 and freq[-1] == 250
    with pytest.raises(ValueError):
        maml.feature_index(2, "tan")


def test_grid_leaves_out_the_right_end() -> None:
    g = maml.grid(32)
    assert g.shape == (32,) and g.dtype == torch.float64
    assert g[0] == -1 and torch.allclose(g[1:] - g[:-1], torch.full((31,), 2 / 32, dtype=torch.float64))
    assert g[-1] < 1


def test_coefficients_have_unit_norm() -> None:
    alpha = maml.sample_coefficients(50, torch.Generator().manual_seed(0))
    assert alpha.shape == (50, 6)
    assert torch.allclose(alpha.norm(dim=1), torch.ones(50, dtype=torch.float64))


def test_task_sampler_shapes_noise_and_seed() -> None:
    batch = next(maml.TaskSampler(stand_in_features, n_tasks=3, n_meta=7, seed=1))
    assert batch.phi_train.shape == (32, 11) and batch.y_train.shape == (32, 3)
    assert batch.phi_meta.shape == (7, 11) and batch.y_meta.shape == (7, 3)
    again = next(maml.TaskSampler(stand_in_features, n_tasks=3, n_meta=7, seed=1))
    assert torch.equal(batch.y_meta, again.y_meta)
    clean = maml.TaskSampler(stand_in_features, n_tasks=3, noise=0.0, seed=1)
    b = next(clean)
    assert torch.allclose(b.y_train, maml.labels(b.phi_train, maml.sample_coefficients(3, torch.Generator().manual_seed(1)), False))


def test_classification_labels_are_signs() -> None:
    batch = next(maml.TaskSampler(stand_in_features, n_tasks=4, classify=True, seed=2))
    assert set(batch.y_train.unique().tolist()) <= {-1.0, 1.0}
    assert set(batch.y_meta.unique().tolist()) <= {-1.0, 1.0}


def test_n_train_post_values_include_the_interesting_sizes() -> None:
    values = maml.n_train_post_values(n_max=400, count=12)
    assert values == sorted(values) and values[0] == 1 and values[-1] == 400
    assert {5, 6, 7, 31, 32, 33} <= set(values)


def test_evaluate_scores_a_perfect_and_a_zero_predictor() -> None:
    bench = maml.make_benchmark(stand_in_features, [4, 32], n_tasks=5, n_test=50)
    perfect = maml.evaluate(bench, lambda phi, y, phi_test: bench.y_test)
    assert np.allclose(perfect.mean, 0)
    zero = maml.evaluate(bench, lambda phi, y, phi_test: torch.zeros_like(bench.y_test))
    assert zero.at(32) > 0 and np.all(zero.p10 <= zero.mean) and np.all(zero.mean <= zero.p90)
    bench_clf = maml.make_benchmark(stand_in_features, [32], n_tasks=5, n_test=50, classify=True)
    flipped = maml.evaluate(bench_clf, lambda phi, y, phi_test: -bench_clf.y_test)
    assert flipped.at(32) == 1.0


def test_oracle_regression_recovers_a_noise_free_task() -> None:
    bench = maml.make_benchmark(stand_in_features, [32], n_tasks=4, n_test=60, noise=0.0)
    curve = maml.evaluate(bench, maml.oracle_regression)
    assert curve.at(32) < 1e-10


def test_fit_gd_reaches_least_squares() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    beta = maml.fit_gd(a, y, lambda s, t: ((s - t) ** 2).mean(), steps=500, lr=0.2)
    assert torch.allclose(beta, torch.linalg.lstsq(a, y).solution, atol=1e-6)


def test_plots_and_widget_draw() -> None:
    import matplotlib.pyplot as plt

    bench = maml.make_benchmark(stand_in_features, [4, 32], n_tasks=5, n_test=30)
    curve = maml.evaluate(bench, lambda phi, y, phi_test: torch.zeros_like(bench.y_test))
    maml.plot_curves_with_bands({"zero": curve})
    maml.plot_feature_weights(torch.ones(maml.D, dtype=torch.float64))
    maml.plot_alias_path(np.array([[0.5, 1.0], [1.0, 0.5], [1.1, 0.1]]))
    widget = maml.weights_widget([(0, torch.ones(maml.D)), (10, torch.full((maml.D,), 2.0))])
    assert widget is not None
    plt.close("all")
