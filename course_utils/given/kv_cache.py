"""KV cache: the given code of the notebook on the cost of generating text.

Given code only. Students write, in the notebook, the causal self-attention
that takes and returns a key/value cache, the generation loop that feeds one
token at a time, and the FLOPs and bytes formulas. Here lives what they use:

- :class:`Config` and :class:`CharTransformer`, a small decoder-only
  character model (pre-norm blocks, rotary positions, optional grouped K/V
  heads). ``model(ids)`` runs the whole sequence at once (training, and
  generation without a cache); ``model.step(ids, caches, attention)`` runs new
  tokens through the blocks with an attention function supplied by the caller
  and hands each layer's cache to it and back;
- :func:`rotate`, the rotary position code of a batch of queries or keys at
  given positions;
- :func:`generate_uncached`, greedy generation that re-runs the whole prefix
  for every new token (the baseline);
- training with cached weights (:func:`load_or_train`), the validation loss;
- measurements: :func:`count_flops` (PyTorch's FLOP counter),
  :func:`cache_bytes` (the bytes held by actual cache tensors),
  :class:`TokenClock` (when each forward pass ended);
- plots and two widgets: the memory explorer and the text explorer.

Every matrix product of the model is an explicit ``@`` or ``nn.Linear``:
PyTorch's FLOP counter sees those, while the CPU kernel of
``F.scaled_dot_product_attention`` goes uncounted.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.paths import data_dir
from course_utils.training import train_loop

Cache = tuple[torch.Tensor, torch.Tensor]  # (keys, values), each (batch, n_kv_heads, length, head_dim)
Attention = Callable[["SelfAttention", torch.Tensor, "Cache | None"], tuple[torch.Tensor, Cache]]
ROPE_BASE = 10_000.0


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Config:
    """The shape of a :class:`CharTransformer`."""

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 4  # 1 <= n_kv_heads <= n_heads, dividing it; fewer = grouped-query attention
    mlp_ratio: int = 4  # hidden units of each MLP per model dimension

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError("d_model must split evenly into n_heads heads")
        if self.n_heads % self.n_kv_heads:
            raise ValueError("n_kv_heads must divide n_heads")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position code (RoPE, Su et al. 2021) of queries or keys at absolute ``positions``.

    ``x``: (..., t, head_dim); ``positions``: (t,) integer positions of those t
    rows. Each pair of channels (i, i + head_dim/2) is turned by the angle
    ``position * base**(-2i/head_dim)``; a query at position m and a key at n
    then score ``q . k`` as a function of m - n alone. Costs no parameters.
    """
    half = x.shape[-1] // 2
    cos, sin = _rotation_angles(half, positions, x.dtype, x.device)  # (t, half) each
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _rotation_angles(half: int, positions: torch.Tensor, dtype: torch.dtype, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles at ``positions``, read from a table computed once.

    Why: one generated token needs the angles of one position, and recomputing the formula at
    every step of every layer was a large share of a cached step's time on a small model. The
    table is not sized by the largest position (a reduction at every call): it grows only when
    a lookup falls off its end. The entries are the numbers the formula gives.
    """
    key = (half, dtype, device)
    if key not in _TABLES:
        _TABLES[key] = _angle_table(half, 1024, dtype, device)
    try:
        return _TABLES[key][0][positions], _TABLES[key][1][positions]
    except IndexError:  # a position beyond the table: double it past the largest one
        cos, sin = _TABLES[key] = _angle_table(half, 2 * (int(positions.max()) + 1), dtype, device)
        return cos[positions], sin[positions]


def _angle_table(half: int, length: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of ``length`` positions' angles, (length, half) each."""
    with torch.inference_mode(False):  # ordinary tensors even when first asked for during generation
        freq = ROPE_BASE ** (-torch.arange(half, dtype=torch.float32, device=device) / half)
        angle = torch.arange(length, dtype=torch.float32, device=device)[:, None] * freq[None, :]
        return angle.cos().to(dtype), angle.sin().to(dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``n_kv_heads`` key/value heads (grouped-query when fewer than heads).

    Query head h reads key/value head ``h // (n_heads // n_kv_heads)``.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of ``x`` (batch, t, d_model), split into heads, not yet rotated.

        Returns q (batch, n_heads, t, head_dim), k and v (batch, n_kv_heads, t, head_dim).
        """
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def merge(self, heads: torch.Tensor) -> torch.Tensor:
        """The heads' outputs (batch, n_heads, t, head_dim) joined and projected back: (batch, t, d_model)."""
        b, _, t, _ = heads.shape
        return self.o_proj(heads.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention over the whole sequence ``x`` (batch, t, d_model), positions 0..t-1."""
        b, t, _ = x.shape
        q, k, v = self.project(x)
        pos = torch.arange(t, device=x.device)
        q, k = rotate(q, pos), rotate(k, pos)
        group = self.n_heads // self.n_kv_heads
        q = q.reshape(b, self.n_kv_heads, group * t, self.head_dim)  # a K/V head's query heads as one block of rows
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1).repeat(group, 1)
        out = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.merge(out.view(b, self.n_heads, t, self.head_dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=False), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """A decoder-only transformer over characters.

    Token embedding (no position table: positions enter through :func:`rotate`
    inside attention), ``n_layers`` pre-norm blocks, a final LayerNorm and an
    output layer that shares the embedding's weights. No biases, so every
    parameter but the norms' sits in a matrix product.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, t, vocab) of the next character after every position of ``ids`` (batch, t)."""
        h = self.embed(ids)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def step(self, ids: torch.Tensor, caches: Sequence[Cache | None], attention: Attention
             ) -> tuple[torch.Tensor, list[Cache]]:
        """Run the new tokens ``ids`` (batch, t) through the model, one cache per layer.

        ``caches[i]`` is what layer i's attention returned on the previous call
        (None before the first); ``attention(block.attn, x, cache)`` does the
        attention of each layer and returns ``(output, new_cache)``. Returns the
        logits (batch, t, vocab) of the new positions and the list of new caches.
        """
        if len(caches) != len(self.blocks):
            raise ValueError(f"expected one cache per layer ({len(self.blocks)}), got {len(caches)}")
        h = self.embed(ids)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            out, cache = attention(block.attn, block.norm1(h), cache)
            h = h + out
            h = h + block.mlp(block.norm2(h))
            new_caches.append(cache)
        return self.head(self.norm(h)), new_caches

    def empty_caches(self) -> list[None]:
        """What ``step`` takes before the first token: one empty cache (None) per layer."""
        return [None] * len(self.blocks)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely next token of each sequence: logits (batch, vocab) -> ids (batch, 1)."""
    return logits.argmax(dim=-1, keepdim=True)


def sampler(temperature: float, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``pick`` that samples the next token from softmax(logits / temperature) (greedy at 0), seeded."""
    gen = torch.Generator().manual_seed(seed)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        if temperature <= 0:
            return greedy(logits)
        return torch.multinomial(F.softmax(logits.float() / temperature, dim=-1), 1, generator=gen)

    return pick


@torch.inference_mode()
def generate_uncached(model: CharTransformer, prompt: torch.Tensor, n_new: int,
                      pick: Callable[[torch.Tensor], torch.Tensor] = greedy) -> torch.Tensor:
    """Generation without a cache: every new token re-runs the model on the whole sequence so far.

    ``prompt``: (batch, t0) token ids; ``pick`` turns the last position's
    logits (batch, vocab) into the next ids (batch, 1). Returns the ``n_new``
    new ids, (batch, n_new).
    """
    ids = prompt
    for _ in range(n_new):
        logits = model(ids)
        ids = torch.cat([ids, pick(logits[:, -1])], dim=1)
    return ids[:, prompt.shape[1]:]


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSettings:
    n_steps: int = 400
    batch: int = 8
    context: int = 256
    lr: float = 3e-3
    seed: int = 0


def _cache_file(cfg: Config, settings: TrainSettings) -> Path:
    key = json.dumps({"cfg": asdict(cfg), "train": asdict(settings), "v": 1}, sort_keys=True)
    return data_dir() / "kv_cache" / f"charlm-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


def train(cfg: Config, corpus: data.CharCorpus, settings: TrainSettings, desc: str = "training") -> tuple[CharTransformer, dict]:
    """Train a fresh model with AdamW (linear warm-up, cosine decay) on random windows; return it and its history."""
    torch.manual_seed(settings.seed)
    model = CharTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, settings.n_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.05 + 0.475 * (1 + math.cos(math.pi * min(s, settings.n_steps) / settings.n_steps))))

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss.item()

    model.train()
    history = train_loop(step, data.random_windows(corpus.train, settings.batch, settings.context, settings.seed),
                         settings.n_steps, desc=desc)
    model.eval()
    return model, {"loss": history["loss"], "seconds": history["seconds"][0]}


def load_or_train(cfg: Config, corpus: data.CharCorpus, settings: TrainSettings, *, desc: str = "training",
                  cache: bool = True) -> tuple[CharTransformer, dict]:
    """The trained model of these settings: loaded from ``data/kv_cache/`` if a run saved it, else trained now.

    With ``cache`` the weights and history are saved after training, so the
    next run of the notebook loads them in a second (nothing is saved where
    the data folder is read-only, as during grading).
    """
    path = _cache_file(cfg, settings)
    if cache and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = CharTransformer(cfg)
        model.load_state_dict(saved["state"])
        model.eval()
        history = {"loss": saved["loss"], "seconds": float(saved["seconds"]), "loaded_from": str(path)}
        print(f"loaded the trained weights from {path} (trained in {history['seconds']:.0f} s; "
              f"delete the file to train again)")
        return model, history
    model, history = train(cfg, corpus, settings, desc=desc)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": model.state_dict(), "loss": history["loss"], "seconds": history["seconds"]}, path)
        except OSError:
            pass
    return model, history


@torch.no_grad()
def validation_loss(model: CharTransformer, tokens: torch.Tensor, context: int, max_windows: int = 200) -> float:
    """Mean next-character cross-entropy (nats) on fixed, non-overlapping validation windows."""
    was_training = model.training
    model.eval()
    n = min(max_windows, (len(tokens) - 1) // context)
    x = tokens[: n * context].view(n, context)
    y = tokens[1: n * context + 1].view(n, context)
    total = sum(F.cross_entropy(model(xb).flatten(0, 1), yb.flatten(), reduction="sum").item()
                for xb, yb in zip(x.split(50), y.split(50)))
    model.train(was_training)
    return total / (n * context)


# ---------------------------------------------------------------- measuring


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products ``fn()`` runs, by PyTorch's counter (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def cache_bytes(caches: Sequence[Cache | None]) -> int:
    """Bytes held by the tensors of a list of per-layer caches (what the cache costs in memory)."""
    return sum(t.numel() * t.element_size() for cache in caches if cache is not None for t in cache)


class TokenClock:
    """When each forward pass of ``model`` ended, and how many positions it produced.

    Used as ``with TokenClock(model) as clock: generate(...)``; it listens on
    the model's output layer, which every pass (``model(ids)`` and
    ``model.step``) runs once. ``clock.seconds`` are the durations of the passes
    (the first measured from entering the block), ``clock.lengths`` the
    numbers of positions each pass computed.
    """

    def __init__(self, model: CharTransformer) -> None:
        self.model = model
        self.ends: list[float] = []
        self.lengths: list[int] = []

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.ends.append(time.perf_counter())
        self.lengths.append(int(output.shape[1]))

    def __enter__(self) -> "TokenClock":
        self.start = time.perf_counter()
        self._handle = self.model.head.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        self.stop = time.perf_counter()

    @property
    def seconds(self) -> np.ndarray:
        return np.diff(np.array([self.start] + self.ends))

    @property
    def total(self) -> float:
        return self.stop - self.start


def prompt_ids(corpus: data.CharCorpus, text: str) -> torch.Tensor:
    """A prompt as a (1, t) batch of ids."""
    return corpus.encode(text)[None, :]


# ---------------------------------------------------------------- plots


def plot_training(histories: dict[str, dict], ax=None):
    """Training loss curves (smoothed) of one or more models."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, h in histories.items():
        loss = np.asarray(h["loss"], dtype=float)
        k = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k, len(loss) + 1), smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/char)")
    ax.set_title("training")
    ax.legend()
    return ax


def plot_step_times(uncached: np.ndarray, cached: np.ndarray, start: int, *, title: str = ""):
    """Per-token time against position (left) and total time against tokens generated (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.8))
    pos_u = start + np.arange(len(uncached))
    pos_c = start + np.arange(len(cached))
    left.plot(pos_u, 1e3 * uncached, ".", ms=3, alpha=0.5, label="without cache")
    left.plot(pos_c, 1e3 * cached, ".", ms=3, alpha=0.5, label="with cache")
    left.set_xlabel("sequence length when the token is generated")
    left.set_ylabel("ms per token")
    left.set_title("time per generated token")
    left.legend(markerscale=4)
    n_u, n_c = np.arange(1, len(uncached) + 1), np.arange(1, len(cached) + 1)
    right.plot(n_u, np.cumsum(uncached), label="without cache")
    right.plot(n_c, np.cumsum(cached), label="with cache")
    right.set_xlabel("tokens generated")
    right.set_ylabel("seconds, total")
    right.set_title("total time: quadratic against linear")
    right.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_flops(lengths: Sequence[int], measured: dict[str, Sequence[float]], predicted: dict[str, Sequence[float]]):
    """Measured FLOPs per generated token (dots) against a formula's prediction (lines), log scale."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (name, m), colour in zip(measured.items(), ["C0", "C1", "C2", "C3"]):
        ax.plot(lengths, m, "o", color=colour, label=f"{name}: measured")
        if name in predicted:
            ax.plot(lengths, predicted[name], "-", color=colour, alpha=0.7, label=f"{name}: your formula")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("FLOPs for one new token")
    ax.set_title("the cost of one generated token")
    ax.legend(fontsize=9)
    return fig


# ---------------------------------------------------------------- widgets

# Published shapes (layers, query heads, key/value heads, head size, parameters).
PRESETS: dict[str, dict] = {
    "GPT-2 small (2019)": dict(n_layers=12, n_heads=12, n_kv_heads=12, head_dim=64, n_params=124e6),
    "Llama-2-7B (2023, multi-head)": dict(n_layers=32, n_heads=32, n_kv_heads=32, head_dim=128, n_params=6.74e9),
    "Llama-3-8B (2024, 8 K/V heads)": dict(n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, n_params=8.03e9),
    "Llama-2-70B (2023, 8 K/V heads)": dict(n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, n_params=69e9),
}
RIDGE_A100 = 312e12 / 2.0e12  # an A100's bf16 FLOP/s over its memory bandwidth: about 150 FLOPs per byte


def memory_explorer(model_presets: dict[str, dict] | None = None):
    """Widget: a model, a batch size, a context length and a number format; the cache's memory and the decode's
    arithmetic intensity (FLOPs per byte read), against the weights.

    Uses its own arithmetic (2 x layers x K/V heads x head size x length x batch x bytes), so it works
    before any answer is written.
    """
    import ipywidgets as widgets
    from IPython.display import display

    presets = dict(model_presets or {}) | PRESETS
    model = widgets.Dropdown(options=list(presets), description="model", layout=widgets.Layout(width="420px"),
                             style={"description_width": "90px"})
    batch = widgets.SelectionSlider(options=[1, 2, 4, 8, 16, 32, 64, 128, 256], value=1, description="batch",
                                    style={"description_width": "90px"}, continuous_update=False)
    length = widgets.SelectionSlider(options=[2 ** k for k in range(7, 18)], value=4096, description="context",
                                     style={"description_width": "90px"}, continuous_update=False)
    fmt = widgets.ToggleButtons(options=[("float32", 4), ("bf16", 2), ("int8", 1)], value=2,
                                description="numbers", style={"description_width": "90px", "button_width": "70px"})
    out = widgets.Output()

    def draw(*_: object) -> None:
        p = presets[model.value]
        b, t, nb = batch.value, length.value, fmt.value
        per_token = 2 * p["n_layers"] * p["n_kv_heads"] * p["head_dim"] * nb
        cache = per_token * t * b
        weights = p["n_params"] * nb
        d_attn = p["n_heads"] * p["head_dim"]
        # one decode step at full context: every sequence's new token; weights read once, each cache read once
        flops = b * (2 * p["n_params"] + 4 * p["n_layers"] * d_attn * t)
        intensity = flops / (weights + cache)
        out.clear_output(wait=True)
        with out:
            fig, ax = plt.subplots(figsize=(7, 2.2))
            ax.barh(["weights", "KV cache"], [weights / 2 ** 30, cache / 2 ** 30], color=["C7", "C1"])
            ax.set_xlabel("GiB")
            ax.set_title(f"{model.value}: batch {b} x {t:,} tokens")
            plt.show()
            print(f"cache per token (all layers, K and V): {per_token / 2 ** 10:,.1f} KiB;"
                  f" the cache outgrows the weights beyond {weights / per_token:,.0f} tokens in the batch")
            print(f"one decode step reads {(weights + cache) / 2 ** 30:,.2f} GiB for {flops / 1e9:,.1f} GFLOPs:"
                  f" {intensity:,.1f} FLOPs per byte (an A100 needs about {RIDGE_A100:.0f} to keep its"
                  f" arithmetic busy: below that, memory bandwidth sets the speed)")

    for w in (model, batch, length, fmt):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([model, batch, length, fmt, out])
    display(box)
    return box


def text_explorer(generate: Callable[..., torch.Tensor], corpus: data.CharCorpus,
                  prompt: str = "this movie ", max_new: int = 400):
    """Widget: a prompt, a number of characters and a temperature; the model's continuation and its time.

    ``generate(prompt_ids, n_new, pick)`` returns the new ids (1, n_new).
    """
    import ipywidgets as widgets
    from IPython.display import display

    text = widgets.Text(value=prompt, description="prompt", continuous_update=False,
                        layout=widgets.Layout(width="520px"))
    n_new = widgets.IntSlider(value=min(200, max_new), min=10, max=max_new, step=10, description="characters",
                              continuous_update=False)
    temperature = widgets.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.1, description="temperature",
                                      continuous_update=False)
    seed = widgets.IntText(value=0, description="seed", layout=widgets.Layout(width="180px"))
    out = widgets.Output(layout=widgets.Layout(width="760px"))

    def draw(*_: object) -> None:
        out.clear_output(wait=True)
        with out:
            ids = prompt_ids(corpus, text.value or " ")
            start = time.perf_counter()
            try:
                new = generate(ids, n_new.value, sampler(temperature.value, seed.value))
            except NotImplementedError:
                print("write the answers above first")
                return
            seconds = time.perf_counter() - start
            how = "greedy" if temperature.value <= 0 else f"sampled at temperature {temperature.value:.1f}"
            print(f"{text.value}\u2503{corpus.decode(new[0])}")
            print(f"\n({n_new.value} characters, {how}, in {seconds:.2f} s)")

    for w in (text, n_new, temperature, seed):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([text, n_new, temperature, seed, out])
    display(box)
    return box
