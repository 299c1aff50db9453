"""Mixture of experts: the given code of the notebook on routing, its collapse and its cost.

Given code only. Students write, in the notebook, the top-k router, the
dispatch of tokens to their experts, the weighted combine, the Switch
load-balancing loss and the capacity rule that drops tokens. Here lives what
they plug those into:

- :class:`Config` and :class:`CharLM`, a small decoder-only character model
  (pre-norm blocks, learned positions, tied output layer) whose MLPs are
  either dense (:class:`DenseMLP`, ``n_experts = 0``) or mixture-of-experts
  layers (:class:`MoELayer`). An MoE layer owns its router (a linear map to
  one logit per expert) and its experts' weights (:class:`Experts`, one
  two-layer MLP per expert, run one expert at a time on the rows it is
  handed), and calls a ``moe_forward(layer, x)`` function supplied by the
  notebook, which composes the students' answers;
- training (:func:`train`) with the loss the notebook supplies, tracking the
  share of tokens each expert receives; the validation loss;
- measurements: :func:`count_parameters` (total and active per token),
  :func:`flops_per_token` (PyTorch's FLOP counter), :func:`expert_shares`;
- plots (stacked shares over training, validation losses, cost bars) and the
  routing explorer widget.

Every matrix product of the model is an explicit ``@`` or ``nn.Linear``, so
PyTorch's FLOP counter sees all of them; gathers and scatters cost no FLOPs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.repro import one_thread
from course_utils.training import train_loop

# moe_forward(layer, x) -> (y, (probs, experts, keep)), x and y of shape (tokens, d_model)
MoEForward = Callable[["MoELayer", torch.Tensor], tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Config:
    """The shape of a :class:`CharLM`.

    ``n_experts = 0`` gives a dense model whose MLPs have ``d_hidden`` hidden
    units; otherwise every MLP is an MoE layer of ``n_experts`` experts with
    ``d_hidden`` hidden units each, of which each token uses ``top_k``.
    ``capacity_factor`` (None: unlimited) caps how many tokens an expert takes.
    ``router_std`` sets the spread of the router's initial logits: the router
    reads LayerNorm'd tokens (length about sqrt(d_model)), so at 1.0 its
    logits spread by about sqrt(d_model) and every token starts with one
    confident choice, made by a random projection (as in hash routing).
    ``router_bias`` gives each expert a learned score added for every token,
    the quickest way for the router to prefer one expert everywhere.
    """

    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    context: int = 64
    d_hidden: int = 128
    n_experts: int = 8
    top_k: int = 2
    capacity_factor: float | None = None
    router_std: float = 1.0  # initial router weights ~ N(0, router_std^2)
    router_bias: bool = True  # a learned score per expert, added for every token (starts at 0)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError("d_model must split evenly into n_heads heads")
        if self.n_experts and not 1 <= self.top_k <= self.n_experts:
            raise ValueError("top_k must be between 1 and n_experts")

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t only (explicit products)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        y = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class DenseMLP(nn.Module):
    """d_model -> d_hidden -> d_model with a GELU between: every token through the same weights."""

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Experts(nn.Module):
    """``n_experts`` two-layer MLPs (d_model -> d_hidden -> d_model, GELU) with their weights stacked.

    ``experts(e, x)`` runs expert ``e`` on the rows ``x`` (n, d_model) it was
    handed, and only on them: (n, d_model) out, zero rows for n = 0.
    """

    def __init__(self, n_experts: int, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.w_up = nn.Parameter(torch.empty(n_experts, d_model, d_hidden))
        self.w_down = nn.Parameter(torch.empty(n_experts, d_hidden, d_model))

    def forward(self, e: int, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x @ self.w_up[e]) @ self.w_down[e]


class MoELayer(nn.Module):
    """A mixture-of-experts MLP: a router and ``n_experts`` experts, of which each token uses ``top_k``.

    ``layer(x)`` flattens ``x`` (batch, t, d_model) to tokens, hands them to
    ``moe_forward(layer, tokens)`` (the notebook's composition of router,
    capacity, dispatch, experts and combine) and keeps what it returned about
    the routing in ``layer.probs`` (tokens, n_experts), ``layer.experts``
    (tokens, top_k) and ``layer.keep`` (tokens, top_k), for the balancing loss
    and the measurements.
    """

    def __init__(self, cfg: Config, moe_forward: MoEForward) -> None:
        super().__init__()
        self.n_experts, self.top_k, self.capacity_factor = cfg.n_experts, cfg.top_k, cfg.capacity_factor
        self.router = nn.Linear(cfg.d_model, cfg.n_experts, bias=cfg.router_bias)
        self.experts = Experts(cfg.n_experts, cfg.d_model, cfg.d_hidden)
        self.moe_forward = moe_forward
        self.probs = self.experts_chosen = self.keep = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        y, (self.probs, self.experts_chosen, self.keep) = self.moe_forward(self, x.reshape(b * t, d))
        return y.view(b, t, d)


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)) (dense or mixture of experts)."""

    def __init__(self, cfg: Config, moe_forward: MoEForward | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MoELayer(cfg, moe_forward) if cfg.is_moe else DenseMLP(cfg.d_model, cfg.d_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharLM(nn.Module):
    """A decoder-only character model; ``model(ids)`` gives next-character logits (batch, t, vocab).

    An MoE model needs ``moe_forward`` (see :class:`MoELayer`); a dense one ignores it.
    """

    def __init__(self, cfg: Config, moe_forward: MoEForward | None = None, seed: int = 0) -> None:
        super().__init__()
        if cfg.is_moe and moe_forward is None:
            raise ValueError("an MoE model needs moe_forward(layer, x)")
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.pos = nn.Embedding(cfg.context, cfg.d_model)
            self.blocks = nn.ModuleList(Block(cfg, moe_forward) for _ in range(cfg.n_layers))
            self.norm = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            self.head.weight = self.tok.weight
            out_std = 0.02 / math.sqrt(2 * cfg.n_layers)
            for name, p in self.named_parameters():
                if p.dim() < 2:
                    continue
                last = name.endswith(("proj.weight", "down.weight", "w_down"))
                nn.init.normal_(p, std=out_std if last else 0.02)
            for layer in self.moe_layers:
                nn.init.normal_(layer.router.weight, std=cfg.router_std)
                if layer.router.bias is not None:
                    nn.init.zeros_(layer.router.bias)

    @property
    def moe_layers(self) -> list[MoELayer]:
        return [b.mlp for b in self.blocks if isinstance(b.mlp, MoELayer)]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        h = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


def dense_twin(cfg: Config, which: str) -> Config:
    """The dense model to compare an MoE with: ``"active"`` (as many hidden units as a token uses,
    ``top_k x d_hidden``) or ``"total"`` (as many as all experts hold, ``n_experts x d_hidden``)."""
    width = {"active": cfg.top_k, "total": cfg.n_experts}[which] * cfg.d_hidden
    return replace(cfg, n_experts=0, top_k=1, capacity_factor=None, d_hidden=width)


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainSettings:
    n_steps: int = 600
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0
    log_every: int = 10  # steps between two records of the experts' shares
    eval_every: int = 100  # steps between two validation losses (with ``val`` windows)


def _expert_shares(layer: MoELayer) -> np.ndarray:
    """Share of the routed (token, choice) pairs each expert of ``layer`` received in its last forward pass.

    Counts what the router chose (before any capacity drop); sums to 1; 1 / n_experts each when balanced.
    """
    chosen = layer.experts_chosen.detach().reshape(-1)
    return torch.bincount(chosen, minlength=layer.n_experts).double().div(chosen.numel()).numpy()


def train(model: CharLM, corpus: data.CharCorpus, settings: TrainSettings,
          loss_fn: Callable[[CharLM, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
          desc: str = "training", val: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train ``model`` with AdamW (linear warm-up, cosine decay) on random windows of the training text.

    ``loss_fn(model, x, y)`` returns the loss to minimise and a dict of numbers
    to keep (its first entry is shown on the progress bar). With ``val``
    windows, the validation loss is measured every ``eval_every`` steps and
    at the end. Returns the history: those numbers per step, ``shares``
    (records, layers, experts) every ``log_every`` steps, ``share_step``,
    ``val_loss`` and ``val_step``, ``seconds``.
    """
    torch.manual_seed(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, settings.n_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, settings.n_steps)
                                                                               / settings.n_steps))))
    shares: list[np.ndarray] = []
    share_step: list[int] = []
    count = [0]

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        x, y = batch
        loss, numbers = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        count[0] += 1
        if model.moe_layers and (count[0] % settings.log_every == 0 or count[0] == 1):
            shares.append(np.stack([_expert_shares(layer) for layer in model.moe_layers]))
            share_step.append(count[0])
        return numbers

    def validate() -> float:
        loss = evaluate(model, val)["loss"]
        model.train()
        return loss

    model.train()
    with one_thread():  # small matrices: a second thread only waits, and on a busy machine waits long
        history = train_loop(step, data.random_windows(corpus.train, settings.batch, model.cfg.context, settings.seed),
                             settings.n_steps, desc=desc, leave=False,
                             evaluate=validate if val is not None else None, eval_every=settings.eval_every)
    model.eval()
    history["shares"] = np.stack(shares) if shares else np.zeros((0, 0, 0))
    history["share_step"] = share_step
    return history


def validation_windows(corpus: data.CharCorpus, context: int, max_windows: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed, non-overlapping validation windows (inputs, next-character targets)."""
    n = min(max_windows, (len(corpus.val) - 1) // context)
    x = corpus.val[: n * context].view(n, context)
    y = corpus.val[1: n * context + 1].view(n, context)
    return x, y


@torch.no_grad()
def evaluate(model: CharLM, windows: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Mean next-character cross-entropy (nats) of ``windows``, and each MoE layer's expert shares on them."""
    model.eval()
    x, y = windows
    total, shares = 0.0, []
    with one_thread():
        for xb, yb in zip(x.split(100), y.split(100)):
            total += F.cross_entropy(model(xb).flatten(0, 1), yb.flatten(), reduction="sum").item()
            if model.moe_layers:
                shares.append(np.stack([np.bincount(layer.experts_chosen.reshape(-1).numpy(),
                                                    minlength=layer.n_experts) for layer in model.moe_layers]))
    out = {"loss": total / y.numel()}
    if shares:
        counts = np.sum(shares, axis=0)
        out["shares"] = counts / counts.sum(axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------- measuring


def count_parameters(model: CharLM) -> dict[str, int]:
    """Parameters of ``model``: ``total``, and ``active``, those one token's computation uses
    (every parameter but the experts it was not routed to; the embedding table counts whole)."""
    total = sum(p.numel() for p in model.parameters())
    idle = 0
    for layer in model.moe_layers:
        per_expert = sum(p.numel() for p in layer.experts.parameters()) // layer.n_experts
        idle += (layer.n_experts - layer.top_k) * per_expert
    return {"total": total, "active": total - idle}


def flops_per_token(model: CharLM, ids: torch.Tensor) -> float:
    """FLOPs of one forward pass over ``ids`` (batch, t), counted by PyTorch's FlopCounterMode
    (matrix products, 2 per multiply-add), divided by the number of tokens."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(ids)
    return counter.get_total_flops() / ids.numel()


@torch.no_grad()
def routing_of(model: CharLM, ids: torch.Tensor) -> np.ndarray:
    """Each layer's chosen experts for every character of one sequence ``ids`` (t,): (layers, t, top_k)."""
    model.eval()
    model(ids[None, : model.cfg.context])
    return np.stack([layer.experts_chosen.numpy() for layer in model.moe_layers])


# ---------------------------------------------------------------- plots

EXPERT_COLOURS = plt.get_cmap("tab10").colors


def plot_shares(histories: dict[str, dict], *, axes=None):
    """Stacked area charts, one column per run and one row per layer: the share of routed tokens each
    expert (one colour each) received over training."""
    n = len(histories)
    n_layers = next(iter(histories.values()))["shares"].shape[1]
    if axes is None:
        _, axes = plt.subplots(n_layers, n, figsize=(2.6 * n, 2.2 * n_layers), sharey=True, sharex=True,
                               squeeze=False)
    for col, (name, h) in enumerate(histories.items()):
        for layer in range(n_layers):
            ax = axes[layer][col]
            s = h["shares"][:, layer]  # (records, experts)
            ax.stackplot(h["share_step"], s.T, colors=EXPERT_COLOURS[: s.shape[1]], linewidth=0)
            ax.axhline(0.9, color="k", lw=0.6, ls=":")
            ax.set_ylim(0, 1)
            ax.set_xlim(h["share_step"][0], h["share_step"][-1])
            ax.grid(False)
            if layer == 0:
                ax.set_title(name, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"layer {layer}: share", fontsize=9)
            if layer == n_layers - 1:
                ax.set_xlabel("step")
    plt.tight_layout()
    return axes


def plot_bars(values: dict[str, float], *, ax=None, ylabel: str = "", title: str = "", fmt: str = "{:.3f}",
              ylim: tuple[float, float] | None = None):
    """One labelled bar per entry."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    names = list(values)
    bars = ax.bar(range(len(names)), [values[k] for k in names], color=[f"C{i}" for i in range(len(names))])
    for bar, name in zip(bars, names):
        ax.annotate(fmt.format(values[name]), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=9)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    return ax


def routing_explorer(models: dict[str, CharLM], corpus: data.CharCorpus,
                     text: str = "a sweet, funny film that never forgets its characters."):
    """Widget: pick a trained model and a layer; each character of the sentence is coloured by the
    expert it was routed to (its first choice; the second choice, if any, in the strip below)."""
    import ipywidgets as widgets
    from IPython.display import display

    sentence = widgets.Text(value=text, description="sentence", continuous_update=False,
                            layout=widgets.Layout(width="640px"))
    which = widgets.Dropdown(options=list(models), description="model", layout=widgets.Layout(width="360px"))
    first = next(iter(models.values()))
    layer = widgets.IntSlider(value=0, min=0, max=first.cfg.n_layers - 1, description="layer",
                              continuous_update=True)
    out = widgets.Output()

    def draw(*_: object) -> None:
        model = models[which.value]
        ids = corpus.encode(sentence.value or " ")[: model.cfg.context]
        out.clear_output(wait=True)
        with out:
            try:
                routes = routing_of(model, ids)[layer.value]  # (t, top_k)
            except NotImplementedError:
                print("write the answers above first")
                return
            chars = corpus.decode(ids)
            k = routes.shape[1]
            fig, ax = plt.subplots(figsize=(min(0.2 * len(chars) + 1, 14), 0.5 + 0.45 * k))
            ax.imshow(routes.T, cmap=plt.matplotlib.colors.ListedColormap(EXPERT_COLOURS[: model.cfg.n_experts]),
                      vmin=-0.5, vmax=model.cfg.n_experts - 0.5, aspect="auto")
            ax.set_xticks(range(len(chars)), list(chars.replace(" ", "\u2423")), fontsize=9)
            ax.set_yticks(range(k), [f"choice {i + 1}" for i in range(k)], fontsize=9)
            ax.grid(False)
            busiest = np.bincount(routes[:, 0], minlength=model.cfg.n_experts)
            ax.set_title(f"layer {layer.value}: first choices per expert {busiest.tolist()}", fontsize=10)
            plt.show()

    for w in (sentence, which, layer):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([sentence, which, layer, out])
    display(box)
    return box
