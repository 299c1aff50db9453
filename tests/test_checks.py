"""Student checks pass right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch

from course_utils.checks import CheckFailed, check_close, check_scalar, check_tensor


def test_check_tensor() -> None:
    check_tensor(torch.zeros(4, 3), "z", shape=(None, 3), dtype=torch.float32)
    with pytest.raises(CheckFailed, match=r"expected shape \(any, 2\), got \(4, 3\)"):
        check_tensor(torch.zeros(4, 3), "z", shape=(None, 2))
    with pytest.raises(CheckFailed, match="NaN"):
        check_tensor(torch.tensor([float("nan")]), "z")


def test_check_scalar_explains_per_sample_values() -> None:
    check_scalar(torch.tensor(1.5), "loss")
    with pytest.raises(CheckFailed, match="average"):
        check_scalar(torch.ones(8), "loss")


def test_check_close_reports_the_worst_entry() -> None:
    check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], "kl")
    with pytest.raises(CheckFailed, match=r"(?s)value 3 where 2 was expected \(at index \(1,\)\).*Hint: halve"):
        check_close(torch.tensor([1.0, 3.0]), [1.0, 2.0], "kl", hint="halve it")
