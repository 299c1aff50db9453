"""A small training loop shared by the notebooks, and recorded metrics.

The loop owns what every notebook would otherwise copy: the progress bar with a
running loss, periodic evaluation, and a history of numbers to plot. What a
step *does* (forward, loss, backward, optimizer step) stays in the notebook,
where students can read it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tqdm.auto import tqdm

from course_utils.paths import RESULTS_ENV

StepResult = Mapping[str, float] | float


def _as_floats(result: StepResult) -> dict[str, float]:
    """Accept a bare loss or a dict of named numbers (tensors allowed)."""
    if isinstance(result, Mapping):
        return {k: float(v) for k, v in result.items()}
    return {"loss": float(result)}


def train_loop(
    step: Callable[[Any], StepResult],
    batches: Iterable[Any],
    n_steps: int,
    *,
    desc: str = "training",
    evaluate: Callable[[], StepResult] | None = None,
    eval_every: int = 0,
    smoothing: float = 0.98,
    leave: bool = True,
) -> dict[str, list[float]]:
    """Run ``step(batch)`` for ``n_steps`` batches with a progress bar.

    ``batches`` may be finite (it is cycled) or endless. ``step`` returns the
    loss, or a dict whose first entry is shown on the bar as a running
    (exponentially smoothed) value, so a noisy loss still reads as a trend.
    ``evaluate()`` is called every ``eval_every`` steps and at the end; its
    numbers are stored with a ``val_`` prefix.

    Returns the history: one list per name, plus ``step`` and ``val_step``
    (the step numbers at which each was taken) for plotting.
    """
    history: dict[str, list[float]] = defaultdict(list)
    running: float | None = None
    source = itertools.cycle(batches) if hasattr(batches, "__len__") else iter(batches)
    start = time.perf_counter()
    bar = tqdm(range(1, n_steps + 1), desc=desc, leave=leave, mininterval=0.5)
    for i in bar:
        numbers = _as_floats(step(next(source)))
        history["step"].append(i)
        for name, value in numbers.items():
            history[name].append(value)
        first = next(iter(numbers.values()))
        if math.isfinite(first):
            running = first if running is None else smoothing * running + (1 - smoothing) * first
        postfix = {"loss": f"{running:.4g}" if running is not None else "nan"}
        if evaluate is not None and ((eval_every and i % eval_every == 0) or i == n_steps):
            for name, value in _as_floats(evaluate()).items():
                history[f"val_{name}"].append(value)
                postfix[f"val_{name}"] = f"{value:.4g}"
            history["val_step"].append(i)
        bar.set_postfix(postfix, refresh=False)
    history["seconds"] = [time.perf_counter() - start]
    return dict(history)


def record(name: str, value: float | int | str | list | dict) -> None:
    """Store a named result of this notebook run for benchmarks and tests.

    Writes into the JSON file named by ``$COURSE_RESULTS`` (``course run A
    --results FILE`` sets it); without it this does nothing, so students never
    see files appear. Numbers are converted to plain Python types.
    """
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    path = Path(target)
    results = json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {}
    results[name] = _plain(value)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True))
    tmp.replace(path)


def _plain(value: Any) -> Any:
    """Turn tensors and numpy scalars into JSON-friendly Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Stopwatch:
    """Wall-clock seconds since creation, for the ``seconds`` every notebook records."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
