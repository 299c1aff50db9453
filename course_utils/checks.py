"""Quick visible checks that students run on their own answers.

Each check either prints one line saying what passed, or raises
:class:`CheckFailed` (an ``AssertionError``) whose message says what was
expected, what came back, and what usually causes the difference. The hidden
grading tests are separate and stricter; these are for learning.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


class CheckFailed(AssertionError):
    """A visible check failed; the message is written for the student."""


def _fail(name: str, problem: str, hint: str | None) -> None:
    message = f"{name}: {problem}"
    if hint:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message)


def _ok(name: str, what: str) -> None:
    print(f"✓ {name}: {what}")


def check_tensor(value: Any, name: str, *, shape: Sequence[int | None] | None = None,
                 dtype: torch.dtype | None = None, hint: str | None = None) -> None:
    """Check that ``value`` is a tensor of the given shape (``None`` = any size) and dtype."""
    if not isinstance(value, torch.Tensor):
        _fail(name, f"expected a torch.Tensor, got {type(value).__name__}", hint)
    if shape is not None:
        ok = len(value.shape) == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            _fail(name, f"expected shape {want}, got {tuple(value.shape)}", hint)
    if dtype is not None and value.dtype != dtype:
        _fail(name, f"expected dtype {dtype}, got {value.dtype}", hint)
    if value.is_floating_point() and not torch.isfinite(value).all():
        _fail(name, "contains NaN or infinity", hint or "look for a log or division of zero")
    _ok(name, f"tensor of shape {tuple(value.shape)}" + (f", {value.dtype}" if dtype else ""))


def check_scalar(value: Any, name: str, *, hint: str | None = None) -> None:
    """Check that ``value`` is a single number (a 0-dim tensor or a float), e.g. a batch-averaged loss."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            _fail(name, f"expected a scalar (0-dim tensor), got shape {tuple(value.shape)}",
                  hint or "average (or sum) over the batch so one number comes back")
        value = value.item()
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        _fail(name, f"expected a finite number, got {value!r}", hint)
    _ok(name, f"scalar {value:.4g}")


def check_close(actual: Any, expected: Any, name: str, *, rtol: float = 1e-5, atol: float = 1e-6,
                hint: str | None = None) -> None:
    """Check ``actual`` against a known value within tolerances, and report the worst mismatch."""
    a = np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual, dtype=float)
    e = np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected, dtype=float)
    if a.shape != e.shape:
        _fail(name, f"expected shape {e.shape}, got {a.shape}", hint)
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=False):
        worst = np.unravel_index(np.argmax(np.abs(a - e)), a.shape) if a.shape else ()
        _fail(name, f"value {a[worst]:.6g} where {e[worst]:.6g} was expected"
              + (f" (at index {tuple(int(i) for i in worst)})" if a.shape else "")
              + f"; tolerance rtol={rtol}, atol={atol}", hint)
    _ok(name, "matches the reference" + (f" ({a.size} values)" if a.shape else f" ({float(a):.6g})"))


def check_true(condition: bool, name: str, problem: str, *, hint: str | None = None,
               success: str = "looks right") -> None:
    """A custom check: ``problem`` is shown when ``condition`` is false."""
    if not condition:
        _fail(name, problem, hint)
    _ok(name, success)
