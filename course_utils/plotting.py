"""One plot style and the plots every notebook needs."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def use_style() -> None:
    """A readable default style for every notebook (larger fonts, light grid)."""
    plt.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
            "legend.frameon": False,
        }
    )


def _to_numpy(images) -> np.ndarray:
    """Accept tensors or arrays shaped (N, H, W) or (N, 1, H, W) or (N, H, W, 3)."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = np.moveaxis(images, 1, -1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return images


def image_grid(images, nrow: int, ncol: int | None = None, *, ax=None, title: str | None = None,
               pad: int = 1, cmap: str = "gray"):
    """Show ``images`` as one ``nrow`` x ``ncol`` mosaic (a single image, so a
    200-sample grid draws in milliseconds rather than as 200 subplots)."""
    images = _to_numpy(images)
    n = len(images)
    ncol = ncol or int(np.ceil(n / nrow))
    h, w = images.shape[1:3]
    channels = images.shape[3:] if images.ndim == 4 else ()
    canvas = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, *channels), dtype=float)
    for k in range(min(n, nrow * ncol)):
        r, c = divmod(k, ncol)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[k]
    if ax is None:
        _, ax = plt.subplots(figsize=(ncol * 0.5 + 0.5, nrow * 0.5 + 0.5))
    ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_curves(curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]], *,
                ax=None, xlabel: str = "step", ylabel: str = "loss", title: str | None = None,
                logx: bool = False, logy: bool = False, smooth: int = 1):
    """Plot named curves on one axis. A value may be ``ys`` or ``(xs, ys)``.

    ``smooth`` > 1 draws a moving average, which turns a noisy minibatch loss
    into a readable trend.
    """
    if ax is None:
        _, ax = plt.subplots()
    for name, curve in curves.items():
        xs, ys = curve if isinstance(curve, tuple) else (np.arange(1, len(curve) + 1), curve)
        ys = np.asarray(ys, dtype=float)
        if smooth > 1 and len(ys) >= smooth:
            ys = np.convolve(ys, np.ones(smooth) / smooth, mode="valid")
            xs = np.asarray(xs)[smooth - 1:]
        ax.plot(xs, ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return ax
