"""Given code of the training_memory assignment: the instruments, the models and the plots.

The instruments measure, on the CPU and exactly:

- FLOPs with PyTorch's own counter (:func:`count_flops`, a thin wrapper of
  ``torch.utils.flop_counter.FlopCounterMode``), which counts the matrix
  products (2 FLOPs per multiply-add) and nothing else;
- the activations autograd keeps for the backward pass, with saved-tensor
  hooks (:class:`SavedTensors`, ``torch.autograd.graph.saved_tensors_hooks``);
- parameters, gradients and optimizer state from the tensors themselves
  (:func:`tensor_bytes`, :func:`optimizer_state_bytes`).

What students write (the FLOP and memory formulas, the checkpointed forward,
the accumulation loop, reduce-scatter and all-gather) is not here. Functions
below that need one of those answers take it as an argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------- instruments


@dataclass
class FlopCount:
    """What :func:`count_flops` measured: the total and the share of each operator."""

    total: int
    by_op: dict[str, int]


def count_flops(fn: Callable[[], object]) -> FlopCount:
    """Run ``fn()`` under PyTorch's FLOP counter and return what it counted.

    Only matrix products (``mm``, ``addmm``, ``bmm``, convolutions, attention)
    are counted, at 2 FLOPs per multiply-add; elementwise operations (GELU,
    adds, LayerNorm) cost nothing here. Call ``loss.backward()`` inside ``fn``
    to count a backward pass.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    by_op = {str(op).split(".")[-1]: int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return FlopCount(int(counter.get_total_flops()), by_op)


@dataclass
class SavedRecord:
    """One tensor that autograd saved for the backward pass."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    made_by: str      # the autograd node of the operation that produced it (AddmmBackward0: a Linear)
    new: bool         # False when the same memory was already saved by an earlier node


@dataclass
class SavedTensors:
    """Measure the activations autograd keeps, with saved-tensor hooks.

    Inside ``with SavedTensors(exclude=model.parameters()) as saved:``, every
    tensor an operation saves for its backward passes through a pack hook
    that notes its memory. ``saved.bytes`` is the memory they hold, each
    piece counted once (a ReLU's output that the next Linear also saves is
    one tensor). Tensors in ``exclude`` (the parameters: they are in memory
    anyway, activations or not) are not counted. ``saved.records`` lists
    what was saved and which operation produced it; ``saved.table()`` shows it.

    The hooks see what is saved while the ``with`` block runs; the autograd
    graph keeps it until the backward pass has used it.
    """

    exclude: Iterable[torch.Tensor] = ()
    records: list[SavedRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._excluded = {_storage_key(t) for t in self.exclude}
        self._seen: dict[tuple[int, int], int] = {}
        self._hooks = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in self._excluded:
            new = key not in self._seen
            nbytes = tensor.untyped_storage().nbytes()
            self._seen.setdefault(key, nbytes)
            node = type(tensor.grad_fn).__name__ if tensor.grad_fn is not None else "(input)"
            self.records.append(SavedRecord(tuple(tensor.shape), str(tensor.dtype).replace("torch.", ""),
                                            nbytes, node, new))
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def bytes(self) -> int:
        return int(sum(self._seen.values()))

    def __enter__(self) -> "SavedTensors":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    def table(self) -> str:
        """The saved tensors, one line each, for reading."""
        lines = [f"{'produced by':<22}{'shape':<16}{'bytes':>12}"]
        for r in self.records:
            mark = "" if r.new else "   (saved again: same memory, not counted twice)"
            lines.append(f"{r.made_by:<22}{str(r.shape):<16}{r.nbytes:>12,}{mark}")
        lines.append(f"{'total (each memory once)':<38}{self.bytes:>12,}")
        return "\n".join(lines)


def _storage_key(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def tensor_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Memory held by ``tensors`` (None skipped), each storage counted once."""
    seen: dict[tuple[int, int], int] = {}
    for t in tensors:
        if t is not None:
            seen[_storage_key(t)] = t.untyped_storage().nbytes()
    return int(sum(seen.values()))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Memory of every tensor an optimizer keeps in its state (momentum buffers, moments, step counters)."""
    return tensor_bytes(v for state in optimizer.state.values() for v in state.values()
                        if isinstance(v, torch.Tensor))


def measure_training_memory(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                            y: torch.Tensor, loss_fn: Callable = nn.functional.cross_entropy) -> dict[str, int]:
    """One training step, measured: bytes of parameters, gradients, optimizer state and activations.

    Activations are what the model's forward saves for backward
    (:class:`SavedTensors`, parameters excluded); the loss is computed
    outside the hooks, so only the model's own activations count.
    """
    optimizer.zero_grad(set_to_none=True)
    with SavedTensors(exclude=model.parameters()) as saved:
        out = model(x)
    loss_fn(out, y).backward()
    optimizer.step()
    params = list(model.parameters())
    return {"params": tensor_bytes(params), "grads": tensor_bytes(p.grad for p in params),
            "optimizer": optimizer_state_bytes(optimizer), "activations": saved.bytes}


# ---------------------------------------------------------------- models and data


def mlp(dims: Sequence[int], activation: str = "gelu", *, batch_norm: bool = False,
        seed: int | None = 0) -> nn.Sequential:
    """Linear layers of widths ``dims`` (``dims[0]`` in, ``dims[-1]`` out), an activation
    ("relu" or "gelu") between them, none after the last; optionally BatchNorm1d before each activation."""
    if activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', not {activation!r}")
    layers: list[nn.Module] = []
    with torch.random.fork_rng():  # seeded weights without touching the notebook's random state
        if seed is not None:
            torch.manual_seed(seed)
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(nn.ReLU() if activation == "relu" else nn.GELU())
    return nn.Sequential(*layers)


def mlp_param_count(dims: Sequence[int]) -> tuple[int, int]:
    """Parameters and parameter tensors of :func:`mlp` (``dims``): a weight and a bias per layer."""
    return int(sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))), 2 * (len(dims) - 1)


class MixerLayer(nn.Module):
    """One layer of MLP-Mixer (Tolstikhin et al., 2021) on inputs of shape (batch, tokens, channels).

    Token mixing: an MLP across the tokens (tokens -> token_hidden -> tokens),
    applied to each channel; then channel mixing: an MLP across the channels
    (channels -> channel_hidden -> channels), applied to each token. Each is
    preceded by a LayerNorm and wrapped in a residual connection.
    """

    def __init__(self, n_tokens: int, channels: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.token_mlp = nn.Sequential(nn.Linear(n_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, n_tokens))
        self.norm2 = nn.LayerNorm(channels)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, channel_hidden), nn.GELU(),
                                         nn.Linear(channel_hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class Block(nn.Module):
    """A residual MLP block, ``x + fc2(act(fc1(x)))``, widths d -> expansion * d -> d."""

    def __init__(self, d: int, expansion: int = 4, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, expansion * d)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.fc2 = nn.Linear(expansion * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(x)))


def block_stack(n_blocks: int, d: int, expansion: int = 4, activation: str = "gelu", seed: int = 0) -> nn.ModuleList:
    """A deep stack of :class:`Block` s with seeded weights (scaled so a deep stack stays finite)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        blocks = nn.ModuleList(Block(d, expansion, activation) for _ in range(n_blocks))
    with torch.no_grad():
        for b in blocks:
            b.fc2.weight.mul_(1 / math.sqrt(n_blocks))
    return blocks


def plain_forward(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The stack without checkpointing: every block's activations stay saved until backward."""
    for block in blocks:
        x = block(x)
    return x


def synthetic_batch(batch: int, d_in: int, n_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs and class labels: the memory and FLOPs of a step do not depend on the values."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, d_in, generator=g), torch.randint(0, n_classes, (batch,), generator=g)


def grads_of(model: nn.Module) -> list[torch.Tensor]:
    """Copies of a model's gradients (zeros where a parameter has none)."""
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def max_abs_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest absolute difference between two lists of tensors of the same shapes."""
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


# ---------------------------------------------------------------- checkpointing measurements

ForwardFn = Callable[[Sequence[nn.Module], torch.Tensor, int], torch.Tensor]


def checkpoint_profile(blocks: nn.ModuleList, x: torch.Tensor, forward: ForwardFn, ks: Sequence[int],
                       progress: bool = True, flops: bool = True) -> dict:
    """Measure a training step of the stack, plain and checkpointed with segments of each k in ``ks``.

    ``forward(blocks, x, k)`` is the checkpointed forward to measure. For
    each k: the activation memory kept between forward and backward
    (:class:`SavedTensors`), the FLOPs of forward + backward, the largest
    difference from the plain run's gradients, and what recomputing one
    segment of k blocks saves again during the backward pass (a plain
    forward of k blocks, measured the same way, less its input, which is
    already kept). Loss: the mean square of the output. ``flops=False``
    skips the FLOP counter (faster; FLOP entries are then None).
    """
    from tqdm.auto import tqdm

    params = list(blocks.parameters())

    def step(run: Callable[[], torch.Tensor]) -> tuple[int, int, list[torch.Tensor]]:
        blocks.zero_grad(set_to_none=True)
        holder = {}

        def fwd_bwd() -> None:
            with SavedTensors(exclude=params) as saved:
                out = run()
            holder["kept"] = saved.bytes
            out.pow(2).mean().backward()

        if flops:
            counted = count_flops(fwd_bwd).total
        else:
            fwd_bwd()
            counted = None
        return holder["kept"], counted, [p.grad.detach().clone() for p in params]

    kept0, flops0, grads0 = step(lambda: plain_forward(blocks, x))
    boundary = x.numel() * x.element_size()
    rows = []
    for k in tqdm(list(ks), desc="checkpointing, k = " + ", ".join(map(str, ks)), disable=not progress):
        kept, step_flops, grads = step(lambda: forward(blocks, x, k))
        with SavedTensors(exclude=params) as seg:
            plain_forward(blocks[:k], x)
        recompute = seg.bytes - boundary
        rows.append({"k": k, "kept": kept, "recompute": recompute, "peak": kept + recompute, "flops": step_flops,
                     "extra_flops": step_flops / flops0 - 1 if flops else None,
                     "grad_diff": max_abs_diff(grads, grads0)})
    blocks.zero_grad(set_to_none=True)
    return {"plain": {"kept": kept0, "peak": kept0, "flops": flops0}, "rows": rows, "boundary": boundary,
            "block": kept0 // len(blocks)}


# ---------------------------------------------------------------- a simulated network


class Network:
    """``n`` workers in one process, linked by messages that are counted.

    ``net.send(src, dst, tensor)`` delivers a copy of ``tensor`` from worker
    ``src`` to worker ``dst`` and returns it (what ``dst`` received). Every
    message is logged: ``net.log`` holds ``(src, dst, nbytes)``, and
    ``messages_sent``, ``bytes_sent``, ``messages_received`` and
    ``bytes_received`` hold one count per worker.
    """

    def __init__(self, n_workers: int) -> None:
        if n_workers < 1:
            raise ValueError("a network needs at least one worker")
        self.n = int(n_workers)
        self.reset()

    def reset(self) -> None:
        self.log: list[tuple[int, int, int]] = []
        self.messages_sent = [0] * self.n
        self.bytes_sent = [0] * self.n
        self.messages_received = [0] * self.n
        self.bytes_received = [0] * self.n

    def send(self, src: int, dst: int, tensor: torch.Tensor) -> torch.Tensor:
        if not (0 <= src < self.n and 0 <= dst < self.n) or src == dst:
            raise ValueError(f"no link from worker {src} to worker {dst} in a network of {self.n}")
        nbytes = tensor.numel() * tensor.element_size()
        self.log.append((int(src), int(dst), int(nbytes)))
        self.messages_sent[src] += 1
        self.bytes_sent[src] += nbytes
        self.messages_received[dst] += 1
        self.bytes_received[dst] += nbytes
        return tensor.detach().clone()

    def busiest(self) -> int:
        """Bytes sent plus received by the busiest worker."""
        return max(s + r for s, r in zip(self.bytes_sent, self.bytes_received))


def naive_all_reduce(net: Network, vectors: Sequence[torch.Tensor], root: int = 0) -> list[torch.Tensor]:
    """The all-to-one baseline: every worker sends its whole vector to ``root``,
    which adds them up and sends the sum back to every worker."""
    total = vectors[root].clone()
    for w in range(net.n):
        if w != root:
            total = total + net.send(w, root, vectors[w])
    return [total.clone() if w == root else net.send(root, w, total) for w in range(net.n)]


def pad_to_multiple(vector: torch.Tensor, n: int) -> torch.Tensor:
    """``vector`` with zeros appended so that its length divides into ``n`` equal chunks."""
    extra = (-vector.numel()) % n
    return torch.cat([vector, vector.new_zeros(extra)]) if extra else vector


# ---------------------------------------------------------------- plots

TERMS = ("params", "grads", "optimizer", "activations")
COLORS = {"params": "#4C72B0", "grads": "#55A868", "optimizer": "#C44E52", "activations": "#8172B2"}


def plot_memory_bars(bars: dict[str, dict[str, int]], *, ax=None, title: str | None = None):
    """Stacked bars of the memory terms, one bar per entry of ``bars`` (label -> term -> bytes), in MiB."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(bars) + 2.5, 4))
    labels = list(bars)
    bottom = np.zeros(len(labels))
    for term in TERMS:
        values = np.array([bars[label].get(term, 0) for label in labels], dtype=float) / 2**20
        ax.bar(labels, values, bottom=bottom, color=COLORS[term], label=term, width=0.6)
        bottom += values
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return ax


def plot_checkpointing(profile: dict, predicted_k: float | None = None, *, axes=None):
    """Left: activation memory against k (kept after forward, peak while a segment is recomputed, plain run).
    Right (when the profile counted FLOPs): memory against FLOPs of a training step, one point per k, and the
    plain run."""
    import matplotlib.pyplot as plt

    with_flops = profile["plain"]["flops"] is not None
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11.5, 4)) if with_flops else plt.subplots(figsize=(7, 4))
    left, right = axes if with_flops else (axes, None)
    rows = profile["rows"]
    ks = [r["k"] for r in rows]
    mib = 2**20
    left.plot(ks, [r["kept"] / mib for r in rows], "o-", label="kept between forward and backward")
    left.plot(ks, [r["peak"] / mib for r in rows], "s-", label="peak: kept + one segment recomputed")
    left.axhline(profile["plain"]["kept"] / mib, color="gray", ls="--", label="no checkpointing")
    if predicted_k:
        left.axvline(predicted_k, color="C3", ls=":", label=f"square-root rule: k = {predicted_k:.2f}")
    left.set_xscale("log", base=2)
    left.set_xticks(ks, [str(k) for k in ks])
    left.set_yscale("log")
    left.set_xlabel("blocks per checkpointed segment, k")
    left.set_ylabel("saved activations (MiB)")
    left.legend(fontsize=9)
    if right is None:
        return left
    plain = profile["plain"]
    right.plot([plain["flops"] / 1e9], [plain["peak"] / mib], "D", color="gray", label="no checkpointing")
    for r in rows:
        right.plot([r["flops"] / 1e9], [r["peak"] / mib], "o", color="C1")
        right.annotate(f"k={r['k']}", (r["flops"] / 1e9, r["peak"] / mib), textcoords="offset points",
                       xytext=(6, 0), fontsize=9)
    right.set_xlabel("GFLOPs of one training step")
    right.set_ylabel("peak saved activations (MiB)")
    right.set_ylim(bottom=0)
    right.set_title("memory bought with compute")
    right.legend(fontsize=9)
    return axes


def plot_traffic(ns: Sequence[int], curves: dict[str, Sequence[float]], *, ax=None, title: str | None = None):
    """Bytes against the number of workers, one curve per method (log-log)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4))
    for name, values in curves.items():
        ax.plot(ns, np.asarray(values, dtype=float) / 2**20, "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ns), [str(n) for n in ns])
    ax.set_yscale("log")
    ax.set_xlabel("workers n")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------- widgets


def memory_explorer(terms: Callable[[int, Sequence[int], str, str], dict[str, int]]):
    """An ipywidgets view of the memory of a training step as the batch grows.

    ``terms(batch, dims, optimizer, activation)`` returns bytes per term
    (params, grads, optimizer, activations), from the notebook's formulas.
    Sliders: batch size, width and depth of the MLP; dropdowns: optimizer and activation.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(log2_batch: int, width: int, depth: int, optimizer: str, activation: str) -> None:
        dims = [width] * (depth + 1) + [10]
        batches = [2**b for b in range(0, 15, 2)]
        bars = {str(b): terms(b, dims, optimizer, activation) for b in batches}
        chosen = 2**log2_batch
        now = terms(chosen, dims, optimizer, activation)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 3]})
        plot_memory_bars({f"batch {chosen}": now}, ax=left, title="one training step")
        plot_memory_bars(bars, ax=right, title=f"{depth} hidden layers of {width}, {optimizer}: batch size ->")
        right.get_legend().remove()
        crossover = _first_batch_where_activations_dominate(terms, dims, optimizer, activation)
        left.set_xlabel(f"activations pass the rest at batch {crossover:,}" if crossover else "")
        plt.tight_layout()
        plt.show()

    return widgets.interactive(
        show,
        log2_batch=widgets.IntSlider(value=8, min=0, max=14, description="log2 batch"),
        width=widgets.IntSlider(value=1024, min=128, max=4096, step=128, description="width"),
        depth=widgets.IntSlider(value=2, min=1, max=8, description="hidden layers"),
        optimizer=widgets.Dropdown(options=["sgd", "momentum", "adam"], value="adam", description="optimizer"),
        activation=widgets.Dropdown(options=["relu", "gelu"], value="gelu", description="activation"),
    )


def _first_batch_where_activations_dominate(terms, dims, optimizer, activation, limit: int = 2**24) -> int | None:
    """The smallest batch whose activations exceed parameters, gradients and optimizer state together
    (activations grow with the batch, the rest does not: a binary search)."""
    def dominates(batch: int) -> bool:
        t = terms(batch, dims, optimizer, activation)
        return t["activations"] > t["params"] + t["grads"] + t["optimizer"]

    if not dominates(limit):
        return None
    low, high = 0, limit  # dominates(high) holds; dominates(low) does not (batch 0 has no activations)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if dominates(mid) else (mid, high)
    return high


def checkpoint_explorer(forward: ForwardFn, rule: Callable[[int, int, int], float], *, batch: int = 16, d: int = 32):
    """An ipywidgets view: pick the depth of the stack and the shape of its blocks, see the
    checkpointing profile measured with ``forward`` and the k that ``rule(n_blocks, boundary, block)`` predicts."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(n_blocks: int, block: str) -> None:
        expansion, activation = {"d -> 4d -> d, GELU": (4, "gelu"), "d -> 4d -> d, ReLU": (4, "relu"),
                                 "d -> d -> d, ReLU": (1, "relu")}[block]
        blocks = block_stack(n_blocks, d, expansion, activation)
        x = torch.randn(batch, d, generator=torch.Generator().manual_seed(0))
        ks = [k for k in range(1, n_blocks + 1) if n_blocks % k == 0]
        profile = checkpoint_profile(blocks, x, forward, ks, progress=False, flops=False)
        k_star = rule(n_blocks, profile["boundary"], profile["block"])
        best = min(profile["rows"], key=lambda r: r["peak"])
        ax = plot_checkpointing(profile, k_star)
        ax.set_title(f"{n_blocks} blocks of {block}: a block saves {profile['block'] // profile['boundary']}x its "
                     f"input;\nlowest measured peak at k = {best['k']}", fontsize=11)
        plt.tight_layout()
        plt.show()

    return widgets.interactive(
        show,
        n_blocks=widgets.Dropdown(options=[16, 36, 64, 100], value=16, description="blocks"),
        block=widgets.Dropdown(options=["d -> 4d -> d, GELU", "d -> 4d -> d, ReLU", "d -> d -> d, ReLU"],
                               value="d -> 4d -> d, GELU", description="block"),
    )
