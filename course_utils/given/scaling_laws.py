"""Scaling laws: the data, model, training sweep and plots of the isoFLOP notebook.

Given code only. Students write the parameter count, the FLOPs rule and the
fits in the notebook; here lives what they use: a character-level corpus of
real film-review text, a small decoder-only transformer built from standard
PyTorch blocks, a trainer that stops each run at exactly its compute budget,
the cached sweep, and the published Chinchilla law to test fits against.

A run's budget is counted by PyTorch's FLOP counter (the matrix multiplies of
one forward and backward pass), never by a formula, so the notebook's own
FLOPs rule can be checked against a measurement.

Regenerate the cached sweep ``data/scaling_laws_sweep.json`` (24 runs, one per
CPU core at a time; about 140 s on two idle cores)::

    .venv/bin/python -m course_utils.given.scaling_laws --sweep
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.paths import data_dir, repo_root
from course_utils.training import train_loop
from course_utils.repro import one_thread

SWEEP_FILE = "scaling_laws_sweep.json"
SWEEP_COMMAND = ".venv/bin/python -m course_utils.given.scaling_laws --sweep"
CONTEXT = 64  # characters a model sees at once
BATCH = 16  # windows per step: 1,024 tokens

# Published fit of Hoffmann et al. (2022), Approach 3: L(N, D) = E + A / N**alpha + B / D**beta.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_BUDGET = 5.76e23  # FLOPs used to train Chinchilla (70B parameters, 1.4T tokens)

# Model shapes (d_model, n_layers), roughly 1.5-2x apart in parameters from 1.3k to 340k.
SHAPES: list[tuple[int, int]] = [
    (8, 1), (12, 1), (16, 1), (24, 1), (24, 2), (32, 2), (40, 2), (48, 2),
    (48, 3), (64, 3), (80, 3), (96, 3),
]
# The sweep: each budget (FLOPs) with the shapes trained at it, shifted towards
# bigger models as the budget grows so each profile brackets its minimum.
SWEEP_PLAN: dict[float, list[tuple[int, int]]] = {
    3e10: SHAPES[0:6],
    6.5e10: SHAPES[1:7],
    1.4e11: SHAPES[1:7],
    3e11: SHAPES[2:8],
}
FAST_PLAN: dict[float, list[tuple[int, int]]] = {
    1e8: SHAPES[0:5], 2e8: SHAPES[0:5], 5e8: SHAPES[0:5], 1e9: SHAPES[0:5],
}


# The sizes CharLM is built at: a laptop's sweep (its largest run is (96, 3)).
MAX_D_MODEL = 128
MAX_LAYERS = 4


def sinusoidal_positions(context: int, d_model: int) -> torch.Tensor:
    """Fixed sine/cosine position codes without parameters, in the layout of tensor2tensor and
    fairseq: the sines of every frequency in the first half of the columns, their cosines in the
    second half, frequencies spaced geometrically from 1 down to 1/10000 (both ends included)."""
    half = d_model // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
    angles = torch.arange(context, dtype=torch.float32)[:, None] * freq
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class CharLM(nn.Module):
    """A decoder-only transformer over characters, from standard PyTorch blocks.

    Token embedding (shared with the output layer), fixed sinusoidal positions,
    ``n_layers`` pre-norm ``nn.TransformerEncoderLayer`` blocks with a causal
    mask (4x wide MLP, GELU, no biases), a final LayerNorm. Without biases and
    learned positions nearly every parameter sits in a matrix multiply, which
    is what makes "FLOPs = constant x parameters x tokens" a good rule here.
    Built only at laptop sizes (``MAX_D_MODEL``, ``MAX_LAYERS``).
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, context: int = CONTEXT) -> None:
        super().__init__()
        if not (0 < d_model <= MAX_D_MODEL and d_model % 2 == 0 and 1 <= n_layers <= MAX_LAYERS):
            raise ValueError(
                f"CharLM(d_model={d_model}, n_layers={n_layers}): the given model is built only at the sweep's "
                f"laptop sizes (an even d_model up to {MAX_D_MODEL}, 1 to {MAX_LAYERS} layers). The notebook's "
                "parameter count must hold for any shape: write it as a formula in V, d and L.")
        n_heads = max(1, d_model // 16)
        assert d_model % n_heads == 0, "d_model must split evenly into heads"
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_positions(context, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True, bias=False)
        self.blocks = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model, bias=False),
                                            enable_nested_tensor=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, vocab) for the next character at every position."""
        t = ids.shape[1]
        h = self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.positions[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return F.linear(h, self.embed.weight)


def n_parameters(model: nn.Module) -> int:
    """The model's real parameter count (what a formula must reproduce)."""
    return sum(p.numel() for p in model.parameters())


def counted_flops_per_token(model: nn.Module, context: int = CONTEXT) -> float:
    """FLOPs of one training step (forward and backward) per token, by PyTorch's counter.

    Counted on the CPU on one window, so every machine trains to the same
    budget (some GPU attention kernels are counted, the CPU's are not).
    """
    from torch.utils.flop_counter import FlopCounterMode

    probe = CharLM(model.embed.num_embeddings, model.embed.embedding_dim, len(model.blocks.layers), context)
    ids = torch.zeros(1, context, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        probe(ids).sum().backward()
    return counter.get_total_flops() / context


@torch.no_grad()
def validation_loss(model: nn.Module, tokens: torch.Tensor, context: int = CONTEXT, max_windows: int = 256) -> float:
    """Mean next-character cross-entropy (nats) on fixed, non-overlapping validation windows."""
    model.eval()
    n = min(max_windows, (len(tokens) - 1) // context)
    x = tokens[: n * context].view(n, context)
    y = tokens[1: n * context + 1].view(n, context)
    losses = [F.cross_entropy(model(xb).flatten(0, 1), yb.flatten()).item() * len(xb)
              for xb, yb in zip(x.split(64), y.split(64))]
    model.train()
    return sum(losses) / n


def train_to_budget(shape: tuple[int, int], budget: float, corpus: data.CharCorpus, *, lr: float = 5e-3,
                    seed: int = 0, leave: bool = False) -> dict:
    """Train one model until it has used exactly ``budget`` counted FLOPs; return its record.

    The number of training tokens is the budget divided by the counted FLOPs
    per token; the last step trains on only the tokens that are left. The
    learning rate warms up, then follows a cosine to a tenth of its peak at
    the run's own end, as in the Chinchilla isoFLOP runs.
    """
    torch.manual_seed(seed)
    d_model, n_layers = shape
    model = CharLM(len(corpus.vocab), d_model, n_layers)
    per_token = counted_flops_per_token(model)
    n_tokens = int(budget // per_token)
    per_step = BATCH * CONTEXT
    n_steps = max(1, math.ceil(n_tokens / per_step))
    warmup = max(1, min(100, n_steps // 10))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, n_steps) / n_steps))))
    seen = 0

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        nonlocal seen
        x, y = batch
        take = min(per_step, n_tokens - seen)
        loss = F.cross_entropy(model(x).flatten(0, 1)[:take], y.flatten()[:take])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        seen += take
        return loss.item()

    start = time.perf_counter()
    with one_thread():
        history = train_loop(step, data.random_windows(corpus.train, BATCH, CONTEXT, seed), n_steps,
                             desc=f"C={budget:.1e} d={d_model} L={n_layers}", leave=leave)
    return {
        "budget": budget, "d_model": d_model, "n_layers": n_layers, "n_params": n_parameters(model),
        "n_tokens": seen, "flops_per_token": per_token, "flops": per_token * seen,
        "train_loss": float(np.mean(history["loss"][-20:])), "val_loss": validation_loss(model, corpus.val),
        "seconds": time.perf_counter() - start,
    }


_WORKER_CORPUS: data.CharCorpus | None = None


def _worker_start() -> None:
    """Each worker loads the corpus once and trains without its own progress bars
    (their output would interleave; the sweep's bar in the parent counts runs)."""
    global _WORKER_CORPUS
    sys.stderr = open(os.devnull, "w")
    _WORKER_CORPUS = data.char_corpus()


def _worker_run(budget: float, shape: tuple[int, int]) -> dict:
    return train_to_budget(shape, budget, _WORKER_CORPUS)


def run_sweep(plan: dict[float, list[tuple[int, int]]], save_to: Path | None = None, fast: bool = False,
              workers: int | None = None) -> list[dict]:
    """Train every (budget, shape) of ``plan`` on all CPU cores, one run per core, with a progress bar.

    With ``save_to`` the runs so far are written after each one, so an
    interrupted sweep still leaves its finished runs behind.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    jobs = [(budget, shape) for budget in sorted(plan) for shape in plan[budget]]
    jobs.sort(key=lambda job: -job[0] / (job[1][0] ** 2 * job[1][1] + 1))  # longest (most steps) first
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    runs: list[dict] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_start) as pool:
        futures = [pool.submit(_worker_run, budget, shape) for budget, shape in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="sweep", unit="run"):
            runs.append(future.result())
            runs.sort(key=lambda r: (r["budget"], r["n_params"]))
            if save_to is not None:
                save_sweep(runs, save_to, fast=fast)
    return runs


def sweep_path() -> Path:
    """Where the cached sweep lives: the data folder, else the copy committed in the checkout."""
    path = data_dir() / SWEEP_FILE
    committed = repo_root() / "data" / SWEEP_FILE
    return path if path.is_file() or not committed.is_file() else committed


def save_sweep(runs: list[dict], path: Path | None = None, fast: bool = False) -> Path:
    """Write a sweep as JSON with the command that made it."""
    path = path or data_dir() / SWEEP_FILE
    doc = {"command": SWEEP_COMMAND + (" --fast" if fast else ""), "context": CONTEXT, "batch": BATCH,
           "torch": torch.__version__, "runs": runs}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_sweep(path: Path | None = None) -> list[dict]:
    """The cached sweep's runs (one dict per trained model)."""
    return json.loads(Path(path or sweep_path()).read_text())["runs"]


def by_budget(runs: list[dict]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Group runs as budget -> (parameter counts, validation losses), sorted by size."""
    groups: dict[float, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["budget"], []).append(r)
    return {c: (np.array([r["n_params"] for r in rs], dtype=float), np.array([r["val_loss"] for r in rs]))
            for c, rs in sorted(groups.items()) for rs in [sorted(rs, key=lambda r: r["n_params"])]}


def chinchilla_loss(n_params: np.ndarray | float, n_tokens: np.ndarray | float) -> np.ndarray:
    """The published parametric loss L(N, D) of Hoffmann et al. (2022), Approach 3 (nats per token)."""
    k = CHINCHILLA
    return k["E"] + k["A"] / np.asarray(n_params, dtype=float) ** k["alpha"] + k["B"] / np.asarray(n_tokens, dtype=float) ** k["beta"]


def plot_isoflops(profiles: dict[float, tuple[np.ndarray, np.ndarray]], fits: dict[float, np.ndarray],
                  optima: dict[float, float], *, ax=None, title: str = "isoFLOP profiles", ylabel: str = "validation loss (nats/char)"):
    """Loss against parameters (log axis), one colour per budget, with each fitted parabola and its vertex."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(profiles)))
    for colour, (budget, (n, loss)) in zip(colours, sorted(profiles.items())):
        ax.plot(n, loss, "o", color=colour, label=f"C = {budget:.1e}")
        u = np.linspace(np.log10(n.min()) - 0.1, np.log10(n.max()) + 0.1, 100)
        ax.plot(10 ** u, np.polyval(fits[budget], u), "-", color=colour, alpha=0.7)
        ax.plot(optima[budget], np.polyval(fits[budget], np.log10(optima[budget])), "*", color=colour,
                markersize=14, markeredgecolor="k")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_optimal_sizes(budgets: np.ndarray, n_opt: np.ndarray, slope: float, intercept: float, *,
                       ax=None, label: str = "this sweep", extend_to: float | None = None):
    """N_opt against C on log-log axes with the fitted line N_opt = 10**intercept * C**slope."""
    if ax is None:
        _, ax = plt.subplots()
    ax.plot(budgets, n_opt, "o", label=f"{label}: parabola vertices")
    hi = max(float(np.max(budgets)), extend_to or 0.0)
    c = np.logspace(np.log10(np.min(budgets)) - 0.2, np.log10(hi) + 0.2, 50)
    ax.plot(c, 10 ** intercept * c ** slope, "--", label=f"{label}: N_opt ∝ C^{slope:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("compute-optimal parameters N_opt")
    ax.legend(fontsize=8)
    return ax


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the isoFLOP sweep and cache it in data/.")
    parser.add_argument("--sweep", action="store_true", help="train every run of the sweep")
    parser.add_argument("--fast", action="store_true", help="the tiny FAST sweep (seconds), for smoke tests")
    parser.add_argument("--output", type=Path, help=f"where to write (default data/{SWEEP_FILE})")
    args = parser.parse_args(argv)
    if not args.sweep:
        parser.print_help()
        return 1
    start = time.perf_counter()
    path = args.output or data_dir() / SWEEP_FILE
    runs = run_sweep(FAST_PLAN if args.fast else SWEEP_PLAN, save_to=path, fast=args.fast)
    print(f"{len(runs)} runs in {time.perf_counter() - start:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
