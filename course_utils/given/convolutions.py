"""Given code for the convolutions assignment (``notebooks/convolutions``): convolutions and relative attention.

What students write (vectorised relative-position attention, the weights that
make it a Conv1D or a soft max-pool, the parameter and FLOP formulas, the
depthwise-separable block) is *not* here. The reference attention below is a
slow per-head loop over positions, kept to check the vectorised one; the
layer around it takes any attention function as an argument, so the
notebook's own answer drives the experiments.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from course_utils import data
from course_utils.training import train_loop

# attention(q, k, v, bias, causal) with q, k (B, H, T, d_k), v (B, H, T, d_v), bias (H, 2T - 1) -> (B, H, T, d_v)
Attention = Callable[..., torch.Tensor]
# params of one layer: W_Q, W_K (H, d, d_k), W_V (H, d, d_v), W_O (H, d_v, d_out), bias (H, 2T - 1)
Params = dict[str, torch.Tensor]


# ------------------------------------------------------------------ relative-position attention, slowly

def relative_attention_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                            causal: bool = False) -> torch.Tensor:
    """One head, position by position: q, k (T, d_k), v (T, d_v), bias (2T - 1,) over offsets j - i; (T, d_v).

    Score of query i on key j is q_i . k_j + bias[j - i + T - 1]; with ``causal``
    keys j > i are left out. Written as plainly as possible, O(T^2) Python
    steps, to check a vectorised version against.
    """
    n = q.shape[0]
    out = []
    for i in range(n):
        keys = range(i + 1) if causal else range(n)
        scores = torch.stack([q[i] @ k[j] + bias[j - i + n - 1] for j in keys])
        weights = torch.softmax(scores, dim=0)
        out.append(sum(w * v[j] for w, j in zip(weights, keys)))
    return torch.stack(out)


def loop_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                   causal: bool = False) -> torch.Tensor:
    """The loop above over every batch entry and head: the slow reference for (B, H, T, d) inputs."""
    return torch.stack([torch.stack([relative_attention_loop(q[b, h], k[b, h], v[b, h], bias[h], causal)
                                     for h in range(q.shape[1])]) for b in range(q.shape[0])])


def random_inputs(seed: int, batch: int, heads: int, length: int, d_k: int, d_v: int,
                  dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    """Seeded q, k, v and offset biases of the given shapes, for comparisons."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, length, d_k, generator=g, dtype=dtype)
    k = torch.randn(batch, heads, length, d_k, generator=g, dtype=dtype)
    v = torch.randn(batch, heads, length, d_v, generator=g, dtype=dtype)
    bias = torch.randn(heads, 2 * length - 1, generator=g, dtype=dtype)
    return q, k, v, bias


def seconds_per_call(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of a few timed calls, in seconds."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------ one attention layer on a sequence of vectors

def attention_layer(x: torch.Tensor, params: Params, attention: Attention | None = None,
                    causal: bool = False) -> torch.Tensor:
    """Multi-head relative attention on x (B, T, d) with the weights in ``params``; (B, T, d_out).

    Each head h projects q = x W_Q[h], k = x W_K[h], v = x W_V[h]; the heads'
    outputs are mapped by W_O[h] and summed. ``attention`` is the function that
    mixes positions (the slow loop when None).
    """
    attention = attention or loop_attention
    p = {name: torch.as_tensor(value, dtype=x.dtype) for name, value in params.items()}
    q = torch.einsum("btd,hde->bhte", x, p["W_Q"])
    k = torch.einsum("btd,hde->bhte", x, p["W_K"])
    v = torch.einsum("btd,hde->bhte", x, p["W_V"])
    heads = attention(q, k, v, p["bias"], causal)
    return torch.einsum("bhte,heo->bto", heads, p["W_O"])


def conv1d_reference(x: torch.Tensor, kernel: list[float]) -> torch.Tensor:
    """PyTorch's Conv1D (a cross-correlation, zero padding) of each sequence x (B, T) with ``kernel``; (B, T).

    With kernel [a, b, c]: y_i = a x_{i-1} + b x_i + c x_{i+1}.
    """
    w = torch.tensor(kernel, dtype=x.dtype).view(1, 1, -1)
    return F.conv1d(x[:, None, :], w, padding=len(kernel) // 2)[:, 0, :]


def maxpool_reference(x: torch.Tensor, window: int = 3) -> torch.Tensor:
    """The maximum over each window centred at i (B, T) -> (B, T)."""
    return F.max_pool1d(x[:, None, :], window, stride=1, padding=window // 2)[:, 0, :]


def interior_error(out: torch.Tensor, want: torch.Tensor, margin: int = 1) -> float:
    """Largest difference away from both ends (where attention renormalises and a convolution pads)."""
    return float((out[:, margin:-margin] - want[:, margin:-margin]).abs().max())


def posted_conv_params(length: int) -> Params:
    """The construction the course's posted answer gives for the kernel [2, 0, 1]: one head, content
    scores off, offset biases ln 2 and -ln 2 on the two neighbours, every other offset excluded, and
    values scaled by 3 (its authors took the softmax weights to be 2/3 and 1/3)."""
    bias = torch.full((1, 2 * length - 1), -math.inf, dtype=torch.float64)
    bias[0, length - 1 + 1] = math.log(2)   # the posted answer's "previous position", offset j - i = +1
    bias[0, length - 1 - 1] = -math.log(2)
    no_content = torch.zeros((1, 1, 1), dtype=torch.float64)  # query and key weights: content scores off
    return {"W_Q": no_content, "W_K": no_content.clone(), "W_V": 3.0 * torch.ones((1, 1, 1), dtype=torch.float64),
            "W_O": torch.eye(1, dtype=torch.float64).reshape(1, 1, 1), "bias": bias}


def uniform_sequences(seed: int, batch: int, length: int, low: float, high: float) -> torch.Tensor:
    """Seeded sequences (batch, length) of values uniform in [low, high], float64."""
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(batch, length, generator=g, dtype=torch.float64)


def plot_maxpool_errors(scales: list[float], errors: dict[str, list[float]], *, ax=None):
    """Relative max-pool error against the logit scale, one line per input range, log-log."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, errs in errors.items():
        ax.loglog(scales, errs, marker="o", label=name)
    ax.set_xlabel("logit scale s")
    ax.set_ylabel("max |attention - max-pool| / top of the range")
    ax.legend(fontsize=8)
    ax.set_title("soft max-pool by attention: error against the logit scale")
    return ax


def maxpool_explorer(x: torch.Tensor, outputs: dict[float, torch.Tensor], errors: dict[float, float]):
    """A slider over the logit scale: one input sequence, its max-pool, and the attention layer's output.

    The outputs are computed beforehand for every scale, so moving the slider only
    redraws. Returns the ``ipywidgets`` widget (or ``None`` where ipywidgets is missing).
    """
    try:
        from ipywidgets import SelectionSlider, interactive
    except ImportError:  # plain Python without Jupyter: nothing to slide
        return None
    want = maxpool_reference(x[None])[0].numpy()

    def show(scale: float) -> None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(x.numpy(), "o-", color="0.6", label="input")
        ax.plot(want, "k--", label="max-pool, window 3")
        ax.plot(outputs[scale].numpy(), "s-", label="attention")
        ax.set_xlabel("position")
        ax.set_title(f"logit scale {scale:g}: largest interior error {errors[scale]:.3g}")
        ax.legend(fontsize=8)
        plt.show()

    slider = SelectionSlider(options=[(f"{s:g}", s) for s in outputs], value=next(iter(outputs)),
                             description="scale", continuous_update=True)
    return interactive(show, scale=slider)


# ------------------------------------------------------------------ small CNNs on MNIST

@dataclass(frozen=True)
class Split:
    """MNIST images (N, 1, 28, 28) in [0, 1] with their labels, for training and testing."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def mnist_split(n_train: int, n_test: int, seed: int = 0) -> Split:
    """A seeded subset of MNIST's training images and the first ``n_test`` test images."""
    mnist = data.mnist()
    order = np.random.default_rng(seed).permutation(len(mnist.y_train))[:n_train]

    def images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).float().div_(255.0)[:, None]

    return Split(images(mnist.x_train[order]), torch.from_numpy(mnist.y_train[order]),
                 images(mnist.x_test[:n_test]), torch.from_numpy(mnist.y_test[:n_test]))


# make(c_in, c_out, k) -> a module mapping (N, c_in, H, W) to (N, c_out, H, W)
ConvFactory = Callable[[int, int, int], torch.nn.Module]

CHANNELS = (16, 32, 64)  # the three convolution stages


def standard_conv(c_in: int, c_out: int, k: int) -> torch.nn.Module:
    """An ordinary k x k convolution with bias, padded to keep the image size."""
    return torch.nn.Conv2d(c_in, c_out, k, padding=k // 2)


def small_cnn(make_conv: ConvFactory, channels: tuple[int, ...] = CHANNELS, k: int = 3) -> torch.nn.Sequential:
    """Three conv stages (conv, ReLU, 2x2 max-pool), global average pooling, a linear classifier.

    The first stage, from one input channel, is always a standard convolution
    (a depthwise stage over one channel has nothing to separate); the later
    ones are built by ``make_conv``.
    """
    layers: list[torch.nn.Module] = []
    c_in = 1
    for i, c_out in enumerate(channels):
        layers += [standard_conv(c_in, c_out, k) if i == 0 else make_conv(c_in, c_out, k),
                   torch.nn.BatchNorm2d(c_out), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        c_in = c_out
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c_in, 10)]
    return torch.nn.Sequential(*layers)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of a model (every one of them is trained here)."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class Result:
    """One trained CNN: its test accuracy, parameters and training time."""

    name: str
    accuracy: float
    parameters: int
    seconds: float


def train_cnn(split: Split, make_conv: ConvFactory, name: str, *, steps: int, batch: int = 64, lr: float = 3e-3,
              seed: int = 0) -> Result:
    """Train ``small_cnn(make_conv)`` with Adam for ``steps`` minibatches from a seeded start; test accuracy."""
    torch.manual_seed(seed)
    model = small_cnn(make_conv)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            yield torch.randint(0, len(split.y_train), (batch,), generator=g)

    def step(idx: torch.Tensor) -> float:
        loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    model.train()
    history = train_loop(step, batches(), steps, desc=name, leave=False)
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum())
                      for x, y in zip(split.x_test.split(1000), split.y_test.split(1000)))
    return Result(name, correct / len(split.y_test), count_parameters(model), history["seconds"][0])
