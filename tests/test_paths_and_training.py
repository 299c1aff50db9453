"""Settings, the training loop and recorded metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_utils import paths, record, train_loop


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, False),
        ({"COURSE_FAST": "1"}, True),
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({"NBGRADER_EXECUTION": "validate"}, True),
        ({"NBGRADER_EXECUTION": "autograde", "COURSE_FAST": "0"}, False),
    ],
)
def test_fast_switch(monkeypatch: pytest.MonkeyPatch, env: dict, expected: bool) -> None:
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert paths.is_fast() is expected


def test_data_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    assert paths.data_dir() == tmp_path / "elsewhere" and paths.data_dir().is_dir()


def test_repo_root_is_independent_of_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("COURSE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (paths.repo_root() / "nbgrader_config.py").is_file()


def test_record_writes_only_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    record("ignored", 1.0)  # no file named: nothing happens
    target = tmp_path / "results.json"
    monkeypatch.setenv("COURSE_RESULTS", str(target))
    import numpy as np
    import torch

    record("loss", torch.tensor(0.5))
    record("acc", np.float32(0.25))
    assert json.loads(target.read_text()) == {"acc": 0.25, "loss": 0.5}


def test_train_loop_history_and_eval() -> None:
    calls = []

    def step(batch: int) -> dict:
        calls.append(batch)
        return {"loss": float(batch), "other": 1.0}

    history = train_loop(step, [1, 2, 3], n_steps=7, evaluate=lambda: 0.5, eval_every=3, leave=False)
    assert calls == [1, 2, 3, 1, 2, 3, 1]  # a finite iterable is cycled
    assert history["loss"] == [1, 2, 3, 1, 2, 3, 1] and history["step"] == list(range(1, 8))
    assert history["val_step"] == [3, 6, 7] and history["val_loss"] == [0.5] * 3
