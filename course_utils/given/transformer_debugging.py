"""Given code of the ``transformer_debugging`` assignment: a small character-level
Transformer that trains badly, and the plots and widget of the investigation.

The model is a decoder-only Transformer with *weight tying*: its output layer
(``model.head``) shares its weight matrix with the token embedding
(``model.tok``). It is built the way many first Transformers are built, from
PyTorch's default layers, and it has a problem the notebook asks students to
find. Nothing here measures a loss, an activation or a gradient for them:
those diagnostics are what the notebook asks them to write.

Layout of a model (what the diagnostics walk through)::

    x = model.embed(idx)          # token embedding + position embedding, (batch, time, d_model)
    for block in model.blocks:    # n_layers residual blocks (attention, then MLP)
        x = block(x)
    h = model.final_norm(x)       # a LayerNorm for pre-norm blocks; nn.Identity for post-norm
    logits = model.head(h)        # (batch, time, vocab); head.weight IS tok.weight

``model(idx)`` runs exactly these four steps.
"""

from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils import data

NORMS = ("pre", "post")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t only."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """Position-wise feed-forward layer: d_model -> 4 d_model -> d_model, GELU between."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, 4 * d_model)
        self.down = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """One residual block: attention then MLP, each with a LayerNorm.

    ``norm="pre"``:  x <- x + attn(LN1(x));  x <- x + mlp(LN2(x))   (GPT-2 and most models since)
    ``norm="post"``: x <- LN1(x + attn(x));  x <- LN2(x + mlp(x))   (the original Transformer)

    ``branch_scale`` multiplies the initial weights and biases of the last layer
    of each residual branch (``attn.proj`` and ``mlp.down``): the size of what a
    block adds to the residual stream at initialisation.
    """

    def __init__(self, d_model: int, n_heads: int, norm: str = "pre", branch_scale: float = 1.0) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
        self.norm = norm
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)
        if branch_scale != 1.0:
            with torch.no_grad():
                for layer in (self.attn.proj, self.mlp.down):
                    layer.weight.mul_(branch_scale)
                    layer.bias.mul_(branch_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "pre":
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class CharTransformer(nn.Module):
    """A decoder-only character model whose output layer is tied to its token embedding.

    ``model(idx)`` maps token ids ``(batch, time)`` to next-token logits
    ``(batch, time, vocab_size)``; ``time`` may be at most ``context``.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_layers: int = 4, n_heads: int = 4,
                 context: int = 64, norm: str = "pre", branch_scale: float = 1.0) -> None:
        super().__init__()
        self.vocab_size, self.d_model, self.n_layers, self.context, self.norm = (
            vocab_size, d_model, n_layers, context, norm)
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        nn.init.zeros_(self.pos.weight)  # learned from zero: each position starts equal
        self.blocks = nn.ModuleList([Block(d_model, n_heads, norm, branch_scale) for _ in range(n_layers)])
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying: one matrix reads tokens in and writes them out

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token plus position embedding of ids ``(batch, time)``: the residual stream before block 1."""
        if idx.shape[-1] > self.context:
            raise ValueError(f"sequences of {idx.shape[-1]} tokens; this model reads at most {self.context}")
        return self.tok(idx) + self.pos(torch.arange(idx.shape[-1], device=idx.device))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


def make_model(vocab_size: int, *, seed: int = 0, **config) -> CharTransformer:
    """A ``CharTransformer(vocab_size, **config)`` whose weights depend on ``seed`` only.

    The global random state is left as it was, so building a model never
    changes what the rest of a notebook draws.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CharTransformer(vocab_size, **config)


def layer_labels(model: CharTransformer) -> list[str]:
    """Names of the places the notebook's diagnostics measure, in order:
    the embedding, each block, the final norm and the logits."""
    return ["embedding", *[f"block {i + 1}" for i in range(len(model.blocks))], "final norm", "logits"]


def param_labels(model: CharTransformer) -> list[str]:
    """Names of the parameter groups of the notebook's ``grad_norms``, in order:
    the tied token embedding / output matrix, then each block."""
    return ["tok = head", *[f"block {i + 1}" for i in range(len(model.blocks))]]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- looking at a model


@torch.no_grad()
def top_prediction_is_input(model: CharTransformer, idx: torch.Tensor) -> float:
    """Share of positions whose most likely next character is the character just read.

    Real text repeats a character rarely (about 3% of the course's text), so a
    model that does it often has a strong bias towards echoing its input.
    """
    return (model(idx).argmax(-1) == idx).float().mean().item()


def repeat_rate(tokens: torch.Tensor) -> float:
    """Share of positions in ``tokens`` where the next character equals the current one."""
    return (tokens[1:] == tokens[:-1]).float().mean().item()


@torch.no_grad()
def sample_text(model: CharTransformer, corpus: data.CharCorpus, prompt: str, n_chars: int = 200,
                temperature: float = 0.8, seed: int = 0) -> str:
    """Continue ``prompt`` by sampling ``n_chars`` characters (reproducible through ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    idx = corpus.encode(prompt)[None]
    for _ in range(n_chars):
        logits = model(idx[:, -model.context:])[0, -1] / temperature
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        idx = torch.cat([idx, nxt[None]], dim=1)
    return corpus.decode(idx[0])


# ---------------------------------------------------------------- plots


def plot_per_layer(curves: dict[str, Sequence[float]], labels: Sequence[str], *, ax=None, title: str = "",
                   ylabel: str = "", logy: bool = True):
    """One line per model across the places of ``labels`` (log scale by default)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.8))
    xs = np.arange(len(labels))
    for name, values in curves.items():
        values = np.asarray(torch.as_tensor(values, dtype=torch.float64).detach().cpu())
        ax.plot(xs, values, "o-", label=name)
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_logit_histograms(logits: dict[str, torch.Tensor], *, ax=None, bins: int = 80):
    """Histograms of logit values of several models, on one axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.4))
    for name, values in logits.items():
        values = values.detach().flatten().numpy()
        ax.hist(values, bins=bins, histtype="step", density=True, label=f"{name} (std {values.std():.3g})")
    ax.set_xlabel("logit value")
    ax.set_ylabel("density")
    ax.set_yscale("log")
    ax.legend()
    return ax


# ---------------------------------------------------------------- pre-norm against post-norm


def norm_comparison(residual_growth: Callable, grad_norms: Callable, prepare: Callable, idx: torch.Tensor,
                    targets: torch.Tensor, vocab_size: int, *, n_layers: int = 12, d_model: int = 32,
                    n_heads: int = 4, branch_scale: float = 1.0, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Measure a freshly built pre-norm and post-norm model with the notebook's own functions.

    Each model is built by :func:`make_model` with the same seed (so the only
    difference between the two is where the LayerNorms sit), then handed to
    ``prepare(model)`` (the notebook passes its initialisation fix), then
    measured with ``residual_growth(model, idx)`` and
    ``grad_norms(model, idx, targets)``. Returns, per norm, the numbers as
    numpy arrays: ``growth`` (n_layers + 1,) and ``grads`` (n_layers + 1,).
    """
    out = {}
    for norm in NORMS:
        model = make_model(vocab_size, seed=seed, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                           context=idx.shape[1], norm=norm, branch_scale=branch_scale)
        prepare(model)
        growth = residual_growth(model, idx)
        grads = grad_norms(model, idx, targets)
        out[norm] = {"growth": np.asarray(torch.as_tensor(growth, dtype=torch.float64).detach()),
                     "grads": np.asarray(torch.as_tensor(grads, dtype=torch.float64).detach())}
    return out


def plot_norm_comparison(results: dict[str, dict[str, np.ndarray]], *, d_model: int, axes=None, title: str = ""):
    """Left: the residual stream's mean squared norm after each layer; right: the gradient norm of each block."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    left, right = axes
    for norm, numbers in results.items():
        growth = numbers["growth"]
        left.plot(np.arange(len(growth)), growth, "o-", ms=3, label=f"{norm}-norm")
        blocks = numbers["grads"][1:]
        right.plot(np.arange(1, len(blocks) + 1), blocks, "o-", ms=3, label=f"{norm}-norm")
    left.axhline(d_model, color="gray", lw=0.8, ls=":", label="d_model")
    left.set_xlabel("layer l (0 = the embedding)")
    left.set_ylabel("mean of ||x_l||²")
    left.set_title("the residual stream at initialisation")
    right.set_xlabel("block")
    right.set_ylabel("gradient norm")
    right.set_yscale("log")
    right.set_title("gradient of each block's parameters")
    for ax in axes:
        ax.legend()
    if title:
        left.figure.suptitle(title)
    return axes


def depth_explorer(residual_growth: Callable, grad_norms: Callable, prepare: Callable, idx: torch.Tensor,
                   targets: torch.Tensor, vocab_size: int, *, d_model: int = 32, n_heads: int = 4,
                   max_layers: int = 24):
    """A widget: sliders for the depth and the initial scale of the residual branches
    (``branch_scale``), redrawing :func:`plot_norm_comparison` with the notebook's own functions."""
    import ipywidgets as widgets

    depth = widgets.IntSlider(value=12, min=1, max=max_layers, description="layers", continuous_update=False)
    scale = widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=1, step=0.125, description="branch scale",
                                   readout_format=".3g", continuous_update=False,
                                   style={"description_width": "initial"})
    out = widgets.Output()

    def redraw(*_) -> None:
        with out:
            out.clear_output(wait=True)
            results = norm_comparison(residual_growth, grad_norms, prepare, idx, targets, vocab_size,
                                      n_layers=depth.value, d_model=d_model, n_heads=n_heads,
                                      branch_scale=scale.value)
            _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
            plot_norm_comparison(results, d_model=d_model, axes=axes,
                                 title=f"{depth.value} layers, branch scale {scale.value:.3g}")
            plt.show()

    depth.observe(redraw, names="value")
    scale.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([depth, scale]), out])
