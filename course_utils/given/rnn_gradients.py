"""Given code of the rnn_gradients assignment: a recurrent cell to measure, the
memory task, the sequence models, their training loop, the plots and widgets.

What students write (the Jacobian through time, its largest singular value, the
bound on it, the forget-gate bias initialisation and clipping by global norm) is
not here: it lives in their notebook. The functions below only *call* what they
are handed.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.repro import one_thread
from course_utils.training import train_loop

# ---------------------------------------------------------------- part 1: a cell to measure

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}

JacobianFn = Callable[[Callable, torch.Tensor, torch.Tensor], torch.Tensor]
SingularValueFn = Callable[[torch.Tensor], float]
BoundFn = Callable[[torch.Tensor, int, str], float]


def scaled_orthogonal(n: int, scale: float, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """``scale`` times a random orthogonal matrix: every singular value equals ``scale``."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=dtype))
    return scale * q * torch.sign(torch.diagonal(r))  # the sign fix makes q uniformly distributed


class ElmanCell(nn.Module):
    """One step of a vanilla (Elman) recurrent network: ``h' = phi(W h + U x + b)``.

    ``W`` is ``weight_scale`` times a random orthogonal matrix, so its largest
    singular value is exactly ``weight_scale``; ``U`` and ``b`` are Gaussian. It
    computes in float64 by default: Jacobians through 60 sigmoid steps reach
    1e-72, below what float32 can hold.

    Call it as ``cell(h, x)`` with ``h`` of shape ``(hidden,)`` and ``x`` of
    shape ``(inputs,)`` (or both with a leading batch axis).
    """

    def __init__(self, hidden: int = 32, inputs: int = 8, activation: str = "relu", weight_scale: float = 1.0,
                 seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        g = torch.Generator().manual_seed(seed)
        self.activation = activation
        self.hidden, self.inputs = hidden, inputs
        self.W = nn.Parameter(scaled_orthogonal(hidden, weight_scale, g, dtype))
        self.U = nn.Parameter(torch.randn(hidden, inputs, generator=g, dtype=dtype) / math.sqrt(inputs))
        self.b = nn.Parameter(0.1 * torch.randn(hidden, generator=g, dtype=dtype))
        self.phi = ACTIVATIONS[activation]

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.phi(h @ self.W.T + x @ self.U.T + self.b)

    def extra_repr(self) -> str:
        s = torch.linalg.matrix_norm(self.W.detach(), 2).item()
        return f"hidden={self.hidden}, inputs={self.inputs}, activation={self.activation}, ||W||_2={s:.3g}"

    def driving_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` input vectors x_1..x_n drawn from N(0, I): shape ``(n, inputs)``."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.inputs, generator=g, dtype=self.W.dtype)

    @torch.no_grad()
    def warm_state(self, seed: int = 0, warmup: int = 20) -> torch.Tensor:
        """A hidden state typical of a running network: ``warmup`` steps from a random start."""
        g = torch.Generator().manual_seed(seed + 10_000)
        h = 0.5 * torch.randn(self.hidden, generator=g, dtype=self.W.dtype)
        for x in torch.randn(warmup, self.inputs, generator=g, dtype=self.W.dtype):
            h = self(h, x)
        return h


def singular_value_curve(cell: ElmanCell, jacobian_fn: JacobianFn, singular_value_fn: SingularValueFn,
                         steps: Sequence[int], seed: int = 0) -> np.ndarray:
    """Largest singular value of dh_{t+n}/dh_t for each n in ``steps``, along one driven trajectory.

    Every Jacobian starts from the same warm state h_t and sees the same inputs
    x_{t+1}, ..., x_{t+n}, so the curve shows how one gradient path grows or shrinks with n.
    """
    h = cell.warm_state(seed)
    xs = cell.driving_inputs(max(steps), seed)
    with one_thread():  # tiny matrices: a second thread only waits, and on a busy machine waits long
        return np.asarray([float(singular_value_fn(jacobian_fn(cell, h, xs[:n]).detach())) for n in steps],
                          dtype=float)


def plot_singular_values(curves: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]], *,
                         ax=None, title: str | None = None):
    """Measured largest singular values (solid, dots) and their bounds (dashed, same colour) against n = T - t."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for k, (name, (steps, measured, bound)) in enumerate(curves.items()):
        colour = f"C{k}"
        ax.plot(steps, measured, "o-", ms=3, color=colour, label=name)
        ax.plot(steps, bound, "--", color=colour, alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("T - t (steps between the two hidden states)")
    ax.set_ylabel("largest singular value of dh_T/dh_t")
    ax.plot([], [], "k--", alpha=0.7, label="bound (dashed)")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def jacobian_explorer(jacobian_fn: JacobianFn, singular_value_fn: SingularValueFn, bound_fn: BoundFn,
                      max_steps: int = 60, hidden: int = 32):
    """An ipywidgets view: pick an activation and the weight scale ||W||_2, see the
    measured largest singular value of dh_T/dh_t against T - t and the bound on it.

    Uses your three functions from Part 1. Try ReLU around a scale of 1, then
    sigmoid at 0.25 (the (1/16)^n example) and at 4 (where the bound is flat).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    steps = list(range(1, max_steps + 1, 3))

    def show(activation: str, log10_scale: float) -> None:
        scale = 10 ** log10_scale
        cell = ElmanCell(hidden=hidden, activation=activation, weight_scale=scale, seed=0)
        measured = singular_value_curve(cell, jacobian_fn, singular_value_fn, steps)
        bound = [float(bound_fn(cell.W.detach(), n, activation)) for n in steps]
        fig, ax = plt.subplots(figsize=(7, 4))
        plot_singular_values({f"{activation}, ||W||_2 = {scale:.3g}": (steps, measured, bound)}, ax=ax)
        above = sum(m > b * (1 + 1e-6) for m, b in zip(measured, bound))
        ax.set_title(f"measured {measured[-1]:.2e} at T - t = {steps[-1]}; bound {bound[-1]:.2e}; "
                     f"{above} point(s) above the bound", fontsize=10)
        plt.show()

    return widgets.interactive(
        show,
        activation=widgets.Dropdown(options=list(ACTIVATIONS), value="relu", description="activation"),
        log10_scale=widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.05, description="log10 ||W||",
                                        continuous_update=False),
    )


# ---------------------------------------------------------------- parts 2-4: the memory task

N_SYMBOLS = 4  # the tokens to remember: 0, 1, 2, 3 (chance is 1/4)
BLANK = 4  # fills the gap
QUERY = 5  # "which symbol came first?"
VOCAB = 6


def memory_batch(batch: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the memory task: ``x`` of shape ``(batch, T + 1)``, ``y`` of shape ``(batch,)``.

    Each sequence is ``symbol, blank, ..., blank, query``: the symbol (one of
    N_SYMBOLS) at position 0, the query at position T, so the answer was seen
    T steps before the model is asked for it. ``y`` is the symbol.
    """
    if T < 1:
        raise ValueError("T must be at least 1")
    y = torch.randint(0, N_SYMBOLS, (batch,), generator=generator)
    x = torch.full((batch, T + 1), BLANK, dtype=torch.long)
    x[:, 0] = y
    x[:, T] = QUERY
    return x, y


def memory_batches(batch: int, T: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless fresh batches of the memory task, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield memory_batch(batch, T, g)


def describe(x: torch.Tensor) -> str:
    """One sequence as text, e.g. ``C _ _ _ _ ?`` (long gaps shortened)."""
    names = {**{i: "ABCD"[i] for i in range(N_SYMBOLS)}, BLANK: "_", QUERY: "?"}
    tokens = [names[int(t)] for t in x]
    if len(tokens) > 12:
        tokens = tokens[:5] + [f"... ({len(tokens) - 8} more blanks) ..."] + tokens[-3:]
    return " ".join(tokens)


class MemoryModel(nn.Module):
    """Embedding -> one recurrent layer -> a linear read-out of the last hidden state.

    ``kind`` is ``"rnn"`` (``nn.RNN``, tanh unless ``nonlinearity="relu"``) or
    ``"lstm"`` (``nn.LSTM``); both at PyTorch's default initialisation, except
    that ``recurrent_scale`` (for an RNN) replaces W_hh by that multiple of a
    random orthogonal matrix. The recurrent layer is ``model.rnn``; its weights
    follow PyTorch's names (``weight_hh_l0``, ``bias_ih_l0``, ...).
    """

    def __init__(self, kind: str = "lstm", hidden: int = 32, seed: int = 0, nonlinearity: str = "tanh",
                 recurrent_scale: float | None = None) -> None:
        super().__init__()
        if kind not in ("rnn", "lstm"):
            raise ValueError(f"kind must be 'rnn' or 'lstm', not {kind!r}")
        self.kind = kind
        with torch.random.fork_rng(devices=[]):  # the same weights for the same seed, whatever ran before
            torch.manual_seed(seed)
            self.embed = nn.Embedding(VOCAB, hidden)
            if kind == "rnn":
                self.rnn = nn.RNN(hidden, hidden, batch_first=True, nonlinearity=nonlinearity)
            else:
                self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
            self.readout = nn.Linear(hidden, N_SYMBOLS)
        if recurrent_scale is not None:
            if kind != "rnn":
                raise ValueError("recurrent_scale is for kind='rnn'")
            with torch.no_grad():
                g = torch.Generator().manual_seed(seed)
                self.rnn.weight_hh_l0.copy_(scaled_orthogonal(hidden, recurrent_scale, g, torch.float32))

    def forward_embedded(self, e: torch.Tensor) -> torch.Tensor:
        """Logits from already embedded inputs ``e`` of shape ``(batch, steps, hidden)``."""
        out, _ = self.rnn(e)
        return self.readout(out[:, -1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(x))


def input_gradient_norms(model: MemoryModel, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """|dL/dx_t| for every position t of the sequences: the norm of the loss's
    gradient with respect to the embedded input at t, averaged over the batch.

    L is the cross-entropy of the answer, read out at the last position. Entry
    0 is the gradient reaching the symbol to remember; entry -1 the query's.
    Computed in float64 (a copy of the model), so even 1e-40 stays a number.
    """
    import copy

    twin = copy.deepcopy(model).double()
    with one_thread():
        e = twin.embed(x).detach().requires_grad_(True)
        loss = F.cross_entropy(twin.forward_embedded(e), y, reduction="sum")  # each sequence's own gradient
        (grad,) = torch.autograd.grad(loss, e)
    return grad.norm(dim=-1).mean(dim=0).numpy()


@torch.no_grad()
def accuracy(model: MemoryModel, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(dim=-1) == y).float().mean().item()


def train_memory_task(model: MemoryModel, T: int, n_steps: int, *, lr: float = 3e-3, batch_size: int = 64,
                      seed: int = 0, optimizer: str = "adam", clip: Callable | None = None, max_norm: float = 1.0,
                      eval_every: int = 25, n_eval: int = 1000, desc: str = "training") -> dict[str, list[float]]:
    """Train ``model`` on the memory task at gap ``T`` with a progress bar.

    Each step draws a fresh batch, takes the cross-entropy of the answer and one
    optimizer step (``"adam"`` or ``"sgd"``). With ``clip`` (your clipping
    function, called as ``clip(model.parameters(), max_norm)`` between backward
    and the step) the gradient norm recorded is what ``clip`` returns; without
    it, the global gradient norm measured by ``torch.nn.utils.get_total_norm``.
    Every ``eval_every`` steps the accuracy on ``n_eval`` held-out sequences is
    recorded as ``val_accuracy``. A loss that becomes NaN or infinite is
    recorded as such and training goes on (that is what it looks like).
    """
    make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    opt = make(model.parameters(), lr=lr)
    x_val, y_val = memory_batch(n_eval, T, torch.Generator().manual_seed(10_000 + seed))

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            norm = clip(model.parameters(), max_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        opt.step()
        return {"loss": loss.item(), "accuracy": (logits.argmax(-1) == y).float().mean().item(),
                "grad_norm": float(norm)}

    # One thread: for a network this small a second thread gains nothing and, on a busy two-core
    # machine, made a step over ten times slower.
    with one_thread():
        return train_loop(step, memory_batches(batch_size, T, seed), n_steps, desc=desc,
                          evaluate=lambda: {"accuracy": accuracy(model, x_val, y_val)}, eval_every=eval_every)


def plot_accuracy(histories: Mapping[str, Mapping[str, list[float]]], *, ax=None, title: str | None = None):
    """Held-out accuracy against training step for each named run, with chance marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for name, h in histories.items():
        ax.plot(h["val_step"], h["val_accuracy"], "o-", ms=3, label=name)
    ax.axhline(1 / N_SYMBOLS, color="grey", ls=":", label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_gradient_norms(profiles: Mapping[str, np.ndarray], *, ax=None, title: str | None = None):
    """|dL/dx_t| against the position t, one line per model, on a log scale."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for name, norms in profiles.items():
        ax.plot(np.arange(len(norms)), norms, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("input position t (0: the symbol to remember; last: the query)")
    ax.set_ylabel("|dL/dx_t|")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def forget_bias_explorer(init_forget_bias: Callable[[nn.LSTM, float], object], T: int = 100, hidden: int = 32,
                         batch: int = 64, seed: int = 0):
    """An ipywidgets view: slide the forget-gate bias of an untrained LSTM and see how
    much gradient reaches each input of a length-``T`` memory sequence.

    Uses your ``init_forget_bias``. The RNN and the default LSTM are drawn for comparison.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    x, y = memory_batch(batch, T, torch.Generator().manual_seed(seed))
    fixed = {"RNN (default)": input_gradient_norms(MemoryModel("rnn", hidden, seed), x, y),
             "LSTM (default)": input_gradient_norms(MemoryModel("lstm", hidden, seed), x, y)}

    def show(forget_bias: float) -> None:
        model = MemoryModel("lstm", hidden, seed)
        init_forget_bias(model.rnn, forget_bias)
        norms = input_gradient_norms(model, x, y)
        fig, ax = plt.subplots(figsize=(7, 4))
        plot_gradient_norms({**fixed, f"LSTM, forget bias {forget_bias:g}": norms}, ax=ax)
        ax.set_title(f"T = {T}: |dL/dx_0| / |dL/dx_T| = {norms[0] / norms[-1]:.2e} with forget bias "
                     f"{forget_bias:g} (sigmoid = {1 / (1 + math.exp(-forget_bias)):.4f})", fontsize=10)
        plt.show()

    return widgets.interactive(
        show,
        forget_bias=widgets.FloatSlider(value=1.0, min=-2.0, max=8.0, step=0.5, description="forget bias",
                                        continuous_update=False),
    )
