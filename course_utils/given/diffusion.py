"""Given code of the diffusion assignment: the data, the noise schedules, the denoisers,
the sampling loops, the digit classifier that judges samples, and the plots.

Conventions shared with the notebook. Time runs ``t = 0, 1, ..., T``; ``t = 0``
is the data itself. Every per-step quantity of a :class:`Schedule` is a tensor
of length ``T + 1`` indexed by ``t``, so ``schedule.betas[t]`` is beta_t, with
``betas[0] = 0``, ``alphas[0] = 1`` and ``alpha_bars[0] = 1`` (no noise yet).

What students write (the cumulative products alpha-bar, the two closed-form
samplers of the forward process, the noise-prediction loss, the ancestral DDPM
step and the deterministic DDIM step) is not here: the sampling loops below
only *call* a step function they are handed, and a :class:`Schedule` is built
in the notebook from the students' alpha-bar.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import mnist
from course_utils.training import train_loop

StepFn = Callable[..., torch.Tensor]

# ---------------------------------------------------------------- 2-D data


def swiss_roll(n: int, seed: int = 0, noise: float = 0.03) -> torch.Tensor:
    """``n`` points of a 2-D swiss roll, shape (n, 2), about unit scale.

    The angle ``s`` is uniform on [1.5 pi, 4.5 pi] and the point is ``(s cos s, s sin s) / 10``
    plus Gaussian noise of standard deviation ``noise``. The same seed gives the same points.
    """
    g = torch.Generator().manual_seed(seed)
    s = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    points = torch.stack([s * torch.cos(s), s * torch.sin(s)], dim=1) / 10
    return points + noise * torch.randn(n, 2, generator=g)


def mixture_centres(modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """The means of :func:`gaussian_mixture`: ``modes`` points evenly spaced on a circle."""
    angles = 2 * math.pi * torch.arange(modes) / modes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def gaussian_mixture(n: int, seed: int = 0, modes: int = 8, radius: float = 1.0, std: float = 0.08) -> torch.Tensor:
    """``n`` points from an equal-weight mixture of ``modes`` isotropic Gaussians (standard
    deviation ``std``) centred on a circle of ``radius``: shape (n, 2)."""
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(modes, (n,), generator=g)
    return mixture_centres(modes, radius)[which] + std * torch.randn(n, 2, generator=g)


def mode_shares(points: torch.Tensor, modes: int = 8, radius: float = 1.0, std: float = 0.08) -> tuple[np.ndarray, float]:
    """For samples of :func:`gaussian_mixture`: the share of points nearest each centre, and the
    share of points farther than 4 standard deviations from every centre (off the data)."""
    d = torch.cdist(points.float(), mixture_centres(modes, radius))
    nearest = d.argmin(dim=1)
    shares = torch.bincount(nearest, minlength=modes).double() / len(points)
    off = float((d.min(dim=1).values > 4 * std).double().mean())
    return shares.numpy(), off


def chamfer(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> float:
    """Symmetric Chamfer distance between two point sets (n, d) and (m, d):

        0.5 * (mean over a of the distance to the nearest b  +  mean over b of the distance to the nearest a).

    The first half punishes samples off the data, the second half data that no sample covers
    (a missing mode). Two halves of the same data set are not at 0: their distance is the floor.
    """
    a, b = a.double(), b.double()

    def one_way(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(x[i:i + chunk], y).min(dim=1).values for i in range(0, len(x), chunk)]).mean()

    return float(0.5 * (one_way(a, b) + one_way(b, a)))


def random_batches(x: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Endless random minibatches of the rows of ``x`` (a fresh permutation each epoch).

    Indexing one in-memory tensor is several times faster on a CPU than a
    ``DataLoader`` over single examples.
    """
    g = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(x))
    while True:
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield x[order[start:start + batch_size]]


# ---------------------------------------------------------------- noise schedules


class Schedule(NamedTuple):
    """A noise schedule: three tensors of length ``T + 1``, indexed by the time step ``t``.

    ``betas[t]`` is beta_t, the variance of the noise added at step t (``betas[0] = 0``);
    ``alphas[t] = 1 - betas[t]``; ``alpha_bars[t]`` is the product alpha_1 ... alpha_t
    (``alpha_bars[0] = 1``). The notebook builds one from your ``alpha_bar``.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor

    @property
    def T(self) -> int:
        """The number of noising steps (the largest time index)."""
        return len(self.betas) - 1


def linear_betas(T: int, first: float | None = None, last: float | None = None) -> torch.Tensor:
    """The DDPM paper's linear schedule stretched to ``T`` steps: beta_t from ``first`` to ``last``.

    Defaults: ``first = 0.1 / T`` and ``last = 20 / T``, that is 1e-4 to 0.02 at
    T = 1000 (Ho et al., 2020), and about the same total amount of noise for any T
    (``last`` is capped at 0.5, which matters only below T = 40).
    Returns a float32 tensor of length ``T + 1`` with ``betas[0] = 0``.
    """
    last = min(20.0 / T, 0.5) if last is None else last
    first = min(0.1 / T, last) if first is None else first
    if not 0 < first <= last < 1:
        raise ValueError(f"need 0 < first <= last < 1, got first={first}, last={last}")
    return torch.cat([torch.zeros(1), torch.linspace(first, last, T)])


def per_example(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape ``values`` to broadcast against ``x``, one value per example (row) of ``x``.

    ``values`` of shape (B,) becomes (B, 1, ..., 1) with as many dimensions as ``x``;
    a single number (a 0-dim tensor) is returned as it is. Use it for
    ``schedule.alpha_bars[t]`` when ``t`` holds one time step per example.
    """
    values = torch.as_tensor(values)
    if values.dim() == 0:
        return values
    return values.reshape(-1, *([1] * (x.dim() - 1)))


def time_index(t: int | torch.Tensor, batch: int) -> torch.Tensor:
    """A time step ``t`` (an int, a 0-dim tensor or one per example) as a long tensor of shape (batch,)."""
    t = torch.as_tensor(t, dtype=torch.long)
    return t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)


def time_features(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal features of the time step (as in Transformers' positions and DDPM), shape (batch, dim).

    ``t`` is rescaled to [0, 1000] whatever T is, so the frequencies suit any number of steps.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = (t.float() * (1000.0 / T))[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


# ---------------------------------------------------------------- denoisers


class MLPDenoiser(nn.Module):
    """A noise predictor for 2-D points: ``model(z, t)`` returns epsilon-hat(z, t), the shape of ``z``.

    ``z`` is (batch, 2); ``t`` an int (the same step for the whole batch) or a long
    tensor of shape (batch,). The time step enters through sinusoidal features
    concatenated to the input; then ``depth`` hidden layers of ``hidden`` SiLU units.
    """

    def __init__(self, T: int, hidden: int = 128, depth: int = 3, time_dim: int = 32, data_dim: int = 2,
                 seed: int | None = None) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.T, self.time_dim = T, time_dim
        layers: list[nn.Module] = [nn.Linear(data_dim + time_dim, hidden)]
        for _ in range(depth - 1):
            layers += [nn.SiLU(), nn.Linear(hidden, hidden)]
        layers += [nn.SiLU(), nn.Linear(hidden, data_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        features = time_features(time_index(t, len(z)), self.time_dim, self.T)
        return self.net(torch.cat([z, features], dim=1))


class _ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 convolution twice, the time step added in between, and a skip connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ConvDenoiser(nn.Module):
    """A small U-Net noise predictor for 1-channel images of even size (14x14 here).

    ``model(z, t)`` returns epsilon-hat(z, t) of the shape of ``z`` (batch, 1, H, W); ``t`` as for
    :class:`MLPDenoiser`. One residual block at full resolution, a strided convolution
    down to half resolution with ``2 * channels`` channels and two blocks there, a
    transposed convolution back up, the full-resolution features concatenated
    (the U-Net's skip connection), one more block, and a 3x3 convolution out.
    """

    def __init__(self, T: int, channels: int = 32, seed: int | None = None) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        c, emb = channels, 4 * channels
        self.T, self.channels = T, channels
        self.time = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.block1 = _ResBlock(c, c, emb)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.block2 = _ResBlock(2 * c, 2 * c, emb)
        self.block3 = _ResBlock(2 * c, 2 * c, emb)
        self.up = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1)
        self.block4 = _ResBlock(2 * c, c, emb)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, z: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        emb = self.time(time_features(time_index(t, len(z)), self.channels, self.T))
        h1 = self.block1(self.inp(z), emb)
        h = self.block3(self.block2(self.down(h1), emb), emb)
        h = self.block4(torch.cat([self.up(h), h1], dim=1), emb)
        return self.out(h)


class ExactGaussianDenoiser(nn.Module):
    """The best possible noise predictor when the data are Gaussian, N(mean, std^2 I); no training.

    Then z_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps is Gaussian too, and the conditional
    mean of the noise given z_t has a closed form:

        E[eps | z_t] = sqrt(1 - abar_t) (z_t - sqrt(abar_t) mean) / (abar_t std^2 + 1 - abar_t).

    With ``std = 0`` every data point is ``mean``, and the prediction is exact:
    eps = (z_t - sqrt(abar_t) mean) / sqrt(1 - abar_t). A correct sampler driven by this
    model must return samples of N(mean, std^2 I) (exactly ``mean`` when std = 0).
    ``alpha_bars`` is the schedule's alpha-bar (length T + 1).
    """

    def __init__(self, mean: torch.Tensor | float, std: float, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.std = float(std)
        self.register_buffer("alpha_bars", torch.as_tensor(alpha_bars, dtype=torch.float32))

    def forward(self, z: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        a = per_example(self.alpha_bars[time_index(t, len(z))], z).to(z.dtype)
        return (1 - a).sqrt() * (z - a.sqrt() * self.mean) / (a * self.std ** 2 + 1 - a)


class EMA:
    """An exponential moving average of a model's weights (``decay`` per update), kept in ``ema.model``.

    Diffusion models sample noticeably better from averaged weights than from the
    last iterate, whose noise-prediction errors wander from step to step.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs.detach(), 1 - self.decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- sampling loops


class Trajectory(NamedTuple):
    """What a sampling loop returns: the samples at t = 0, and snapshots along the way."""

    samples: torch.Tensor
    times: list[int]  # descending, from T down to 0
    frames: list[torch.Tensor]  # the first ``keep`` samples at each of ``times``


@torch.no_grad()
def ancestral_sampling(model: nn.Module, step: StepFn, shape: Sequence[int], schedule: Schedule, *,
                       seed: int = 0, keep: int = 0, keep_every: int = 1, progress: bool = False) -> Trajectory:
    """Run the reverse process from z_T ~ N(0, I) to z_0 with ``step``, your DDPM step.

    For t = T, T-1, ..., 1 it calls ``z = step(model, z, t, schedule, noise)`` with
    ``noise`` a fresh standard normal tensor of ``shape`` (drawn for every t, also
    t = 1, where your step must not use it). Everything is drawn from one generator
    seeded with ``seed``, so a run is reproducible. The first ``keep`` samples are
    saved every ``keep_every`` steps (and at T and 0) for the widgets.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    z = torch.randn(*shape, generator=g)
    times, frames = [], []

    def snapshot(t: int) -> None:
        if keep:
            times.append(t)
            frames.append(z[:keep].clone())

    snapshot(schedule.T)
    steps = range(schedule.T, 0, -1)
    for t in tqdm(steps, desc="sampling (DDPM)", leave=False, mininterval=0.5) if progress else steps:
        noise = torch.randn(*shape, generator=g)
        z = step(model, z, t, schedule, noise)
        if t - 1 == 0 or (t - 1) % keep_every == 0:
            snapshot(t - 1)
    model.train(was_training)
    return Trajectory(z, times, frames)


def ddim_times(T: int, n_steps: int) -> list[int]:
    """``n_steps + 1`` time steps evenly spaced from T down to 0 (rounded to integers, no repeats)."""
    if not 1 <= n_steps <= T:
        raise ValueError(f"n_steps must be between 1 and T = {T}, got {n_steps}")
    return [int(round(T - k * T / n_steps)) for k in range(n_steps + 1)]


@torch.no_grad()
def deterministic_sampling(model: nn.Module, step: StepFn, shape: Sequence[int], schedule: Schedule, n_steps: int, *,
                           seed: int = 0, keep: int = 0) -> Trajectory:
    """Run a deterministic sampler from z_T ~ N(0, I) to z_0 in ``n_steps`` jumps.

    Visits the times of :func:`ddim_times` and calls ``z = step(model, z, t, t_prev, schedule)``
    (your DDIM step) for each consecutive pair ``t > t_prev``; the last ``t_prev`` is 0. Only
    the starting point is random (drawn with ``seed``).
    """
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    z = torch.randn(*shape, generator=g)
    times = ddim_times(schedule.T, n_steps)
    frames = [z[:keep].clone()] if keep else []
    for t, t_prev in zip(times[:-1], times[1:]):
        z = step(model, z, t, t_prev, schedule)
        if keep:
            frames.append(z[:keep].clone())
    model.train(was_training)
    return Trajectory(z, times if keep else [], frames)


# ---------------------------------------------------------------- small MNIST and its classifier


class SmallMNIST(NamedTuple):
    """MNIST at low resolution, pixels scaled to [-1, 1] (the data's range matches the noise's scale)."""

    train: torch.Tensor  # (60000, 1, size, size)
    train_labels: torch.Tensor  # (60000,)
    test: torch.Tensor  # (10000, 1, size, size)
    test_labels: torch.Tensor  # (10000,)


def small_mnist(size: int = 14) -> SmallMNIST:
    """The real MNIST, shrunk from 28x28 to ``size`` x ``size`` (14: averages of 2x2 blocks;
    another size: antialiased bilinear resizing) and scaled to [-1, 1]."""
    data = mnist()

    def shrink(x: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(x).float()[:, None] / 255.0
        if size == 14:
            images = F.avg_pool2d(images, 2)
        elif size != 28:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return images * 2 - 1

    return SmallMNIST(shrink(data.x_train), torch.from_numpy(data.y_train), shrink(data.x_test),
                      torch.from_numpy(data.y_test))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (samples may stray outside) as grey levels in [0, 1] for display, (n, H, W)."""
    return ((images.clamp(-1, 1) + 1) / 2).reshape(-1, *images.shape[-2:])


class DigitClassifier(nn.Module):
    """A small CNN that says which digit a low-resolution image shows: logits (batch, 10)."""

    def __init__(self, size: int = 14, seed: int | None = None) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier(data: SmallMNIST, n_steps: int, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, n_test: int | None = None) -> tuple[DigitClassifier, float]:
    """Train a :class:`DigitClassifier` on the training images (Adam, learning rate decayed
    linearly to 0); return it in eval mode with its accuracy on the first ``n_test`` test
    images (all 10,000 by default)."""
    size = data.train.shape[-1]
    model = DigitClassifier(size, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / n_steps)
    pairs = torch.arange(len(data.train))

    def step(idx: torch.Tensor) -> float:
        loss = F.cross_entropy(model(data.train[idx]), data.train_labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.item()

    train_loop(step, random_batches(pairs, batch_size, seed=seed), n_steps, desc="training the digit classifier")
    model.eval()
    with torch.no_grad():
        test, labels = data.test[:n_test], data.test_labels[:n_test]
        predictions = torch.cat([model(x).argmax(1) for x in test.split(2000)])
    return model, float((predictions == labels).double().mean())


class Verdict(NamedTuple):
    """What the classifier says about a set of images."""

    labels: torch.Tensor  # (n,) the digit it picks for each image
    confidence: torch.Tensor  # (n,) its probability of that digit
    shares: np.ndarray  # (10,) the fraction of images given to each digit
    max_share: float  # the largest of ``shares``
    mean_confidence: float  # the average of ``confidence``


@torch.no_grad()
def judge(classifier: nn.Module, images: torch.Tensor) -> Verdict:
    """Classify ``images`` (n, 1, H, W) in [-1, 1] (clamped there first, as a picture would be)."""
    classifier.eval()
    probs = torch.cat([F.softmax(classifier(x.clamp(-1, 1)), dim=1) for x in images.split(1000)])
    confidence, labels = probs.max(dim=1)
    shares = (torch.bincount(labels, minlength=10).double() / len(images)).numpy()
    return Verdict(labels, confidence, shares, float(shares.max()), float(confidence.double().mean()))


# ---------------------------------------------------------------- plots and widgets


def plot_points(points: torch.Tensor, data: torch.Tensor | None = None, *, ax=None, title: str | None = None,
                lim: float = 2.2, s: float = 3.0):
    """A scatter of ``points`` (blue) over ``data`` (grey), on a fixed square window."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=s, c="0.75", lw=0, label="data")
    pts = points.detach().numpy()
    inside = np.abs(pts).max(axis=1) <= lim
    ax.scatter(pts[inside, 0], pts[inside, 1], s=s, c="tab:blue", lw=0, alpha=0.7, label="samples")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def process_widget(runs: dict[str, tuple[Sequence[int], Sequence[torch.Tensor], torch.Tensor]], *,
                   label: str = "reverse process", name: str = "t", lim: float = 2.2):
    """Scrub through snapshots of 2-D points: a dropdown over ``runs`` and a slider over their snapshots.

    ``runs[title] = (times, frames, data)``: ``frames[k]`` (n, 2) was taken at ``times[k]`` (shown
    as ``name = times[k]``), and ``data`` is drawn in grey beneath. The slider starts at the last snapshot.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    titles = list(runs)
    longest = max(len(frames) for _, frames, _ in runs.values())

    def show(run: str, k: int) -> None:
        times, frames, data = runs[run]
        k = min(k, len(frames) - 1)
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        plot_points(frames[k], data, ax=ax, lim=lim, title=f"{run}, {label}: {name} = {times[k]}")
        plt.show()

    return widgets.interactive(
        show,
        run=widgets.Dropdown(options=titles, value=titles[0], description="data"),
        k=widgets.IntSlider(value=longest - 1, min=0, max=longest - 1, description="snapshot", continuous_update=True),
    )


def image_process_widget(times: Sequence[int], frames: Sequence[torch.Tensor], *, ncol: int = 10,
                         classify: Callable[[torch.Tensor], Verdict] | None = None):
    """Scrub through snapshots of images along the reverse process (a slider over the steps).

    Each frame (n, 1, H, W) is shown as one grid; with ``classify``, the classifier's
    label and confidence of each image at that step are printed below it.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from course_utils.plotting import image_grid

    def show(k: int) -> None:
        images = frames[k]
        nrow = int(math.ceil(len(images) / ncol))
        fig, ax = plt.subplots(figsize=(ncol * 0.6 + 0.4, nrow * 0.6 + 0.6))
        image_grid(to_unit(images), nrow=nrow, ncol=ncol, ax=ax, title=f"z_t at t = {times[k]}")
        plt.show()
        if classify is not None:
            verdict = classify(images)
            print("classifier:  " + "  ".join(f"{int(d)} ({float(c):.2f})"
                                              for d, c in zip(verdict.labels[:ncol], verdict.confidence[:ncol])))

    return widgets.interactive(show, k=widgets.IntSlider(value=len(frames) - 1, min=0, max=len(frames) - 1,
                                                          description="snapshot", continuous_update=True))


def plot_class_shares(shares: np.ndarray, *, reference: np.ndarray | None = None, ax=None, title: str | None = None):
    """Bars: the share of samples the classifier gives to each digit (and of real test images, hatched)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    digits = np.arange(10)
    ax.bar(digits - 0.2 if reference is not None else digits, shares, width=0.4 if reference is not None else 0.7,
           label="samples")
    if reference is not None:
        ax.bar(digits + 0.2, reference, width=0.4, color="0.7", label="test images")
        ax.legend()
    ax.axhline(0.1, color="k", lw=0.8, ls=":")
    ax.set_xticks(digits)
    ax.set_xlabel("digit the classifier picks")
    ax.set_ylabel("share")
    if title:
        ax.set_title(title)
    return ax


def plot_quality_vs_steps(steps: Sequence[int], values: Sequence[float], *, references: dict[str, float] | None = None,
                          ax=None, ylabel: str = "Chamfer distance to held-out data", title: str | None = None):
    """Quality against the number of sampling steps (log x axis), with horizontal reference lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(steps, values, "o-", label="DDIM (deterministic)")
    for (name, value), style in zip((references or {}).items(), [":", "--", "-."]):
        ax.axhline(value, color="k", lw=0.9, ls=style, label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(steps))
    ax.set_xticklabels([str(s) for s in steps])
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9)
    return ax
