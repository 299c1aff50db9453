"""Reproducibility and device choice: one call per notebook, same everywhere."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from course_utils.paths import DEVICE_ENV


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch so that a notebook's numbers (and the
    multiple-choice answers that depend on its plots) come out the same on
    every run on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU.

    ``prefer`` (or ``$COURSE_DEVICE``) forces a choice, e.g. ``"cpu"`` to
    compare timings with the course's reference machine.
    """
    choice = prefer or os.environ.get(DEVICE_ENV)
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block.

    The course's small models gain nothing from a second thread; on a busy
    two-core laptop two threads waiting for each other made a training step
    ten to twenty times slower than one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
