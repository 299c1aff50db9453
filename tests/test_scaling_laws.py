"""Unit tests of course_utils.given.scaling_laws: data, model, FLOP counting, budget-exact training, the cache.

Seconds in all: the only training is a run of a few steps.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from course_utils import data
from course_utils.given import scaling_laws as scaling


@pytest.fixture(scope="module")
def corpus() -> data.CharCorpus:
    return data.char_corpus()


def test_corpus_is_split_by_review_and_decodes(corpus: data.CharCorpus) -> None:
    assert len(corpus.train) > 1_900_000 and 90_000 < len(corpus.val) < 150_000
    assert len(corpus.vocab) < 80 and corpus.vocab == "".join(sorted(corpus.vocab))
    text = corpus.decode(corpus.val[:200].tolist())
    assert text == text.lower() and all(c in corpus.vocab for c in text)


def test_sinusoidal_positions_are_bounded_and_distinct() -> None:
    table = scaling.sinusoidal_positions(64, 16)
    assert table.shape == (64, 16) and table.abs().max() <= 1
    assert torch.cdist(table, table).add(torch.eye(64)).min() > 0


def test_model_is_causal_and_shaped() -> None:
    torch.manual_seed(0)
    model = scaling.CharLM(30, 16, 2).eval()
    ids = torch.randint(0, 30, (2, 20))
    out = model(ids)
    assert out.shape == (2, 20, 30)
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 30
    assert torch.allclose(model(changed)[:, :10], out[:, :10], atol=1e-5), "a position saw the future"


@pytest.mark.parametrize("shape", [(8, 1), (32, 2), (96, 3)])
def test_counted_flops_are_six_per_matrix_parameter(shape: tuple[int, int]) -> None:
    model = scaling.CharLM(66, *shape)
    n = scaling.n_parameters(model)
    ratio = scaling.counted_flops_per_token(model) / (6 * n)
    assert 0.97 < ratio <= 1.0, ratio


def test_random_windows_pair_inputs_with_next_characters() -> None:
    tokens = torch.arange(1000)
    x, y = next(data.random_windows(tokens, 4, 16, seed=0))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(y, x + 1)


def test_validation_loss_of_an_untrained_model_is_near_uniform() -> None:
    torch.manual_seed(0)
    loss = scaling.validation_loss(scaling.CharLM(40, 16, 1), torch.randint(0, 40, (5000,)))
    assert abs(loss - math.log(40)) < 0.3


def test_train_to_budget_stops_at_exactly_its_budget(corpus: data.CharCorpus) -> None:
    run = scaling.train_to_budget((8, 1), 2e7, corpus)
    assert run["n_tokens"] == int(2e7 // run["flops_per_token"])
    assert 2e7 - run["flops_per_token"] < run["flops"] <= 2e7
    assert run["n_tokens"] % (scaling.BATCH * scaling.CONTEXT) != 0  # the last step was cut short
    assert math.isfinite(run["val_loss"]) and torch.get_num_threads() >= 1


def test_sweep_round_trip_and_grouping(tmp_path) -> None:
    runs = [{"budget": 1e10, "n_params": n, "val_loss": loss} for n, loss in [(300, 2.0), (100, 2.5), (200, 1.9)]]
    runs.append({"budget": 1e11, "n_params": 100, "val_loss": 1.5})
    path = scaling.save_sweep(runs, tmp_path / "sweep.json")
    assert scaling.load_sweep(path) == runs
    assert "course_utils.given.scaling_laws --sweep" in json.loads(path.read_text())["command"]
    groups = scaling.by_budget(runs)
    assert list(groups) == [1e10, 1e11]
    assert groups[1e10][0].tolist() == [100, 200, 300] and groups[1e10][1].tolist() == [2.5, 1.9, 2.0]


def test_committed_sweep_covers_the_plan() -> None:
    runs = scaling.load_sweep()
    groups = scaling.by_budget(runs)
    assert len(groups) >= 4 and max(groups) / min(groups) >= 10
    assert all(len(n) >= 5 for n, _ in groups.values())
    for r in runs:
        assert r["budget"] - r["flops_per_token"] < r["flops"] <= r["budget"]


def test_chinchilla_loss_matches_the_published_formula() -> None:
    got = scaling.chinchilla_loss(70e9, 1.4e12)
    assert np.isclose(got, 1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)
    assert 1.9 < got < 2.0
