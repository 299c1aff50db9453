"""Given code of the BERT fine-tuning assignment: encoders, metrics, plots.

What students write (the classification head, freezing) stays in the
notebook. The data, batches and the shipped MiniLM come from
:mod:`course_utils.text` (shared with other text assignments) and are
re-exported here, so the notebook reads everything as ``given.<name>``; this
module adds:

- :func:`load_encoder`, which also reads the 3-layer paraphrase-MiniLM-L3-v2
  that ships only as ONNX (:mod:`course_utils.given.bert_finetuning_onnx`);
- accuracy, per-class precision/recall/F1, a confusion matrix and its plot,
  and a small widget that shows class probabilities for a typed sentence.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from course_utils import data, text
from course_utils.text import (CLASSES, SHIPPED_CHECKPOINT, Corpus, Encoded,  # noqa: F401 (the notebook's names)
                               class_counts, collate, encode, eval_batches, length_sorted_batches, load_tokenizer, padding_fraction, predict,
                               rotten_tomatoes, shuffled_batches, stratified_split, tiny_encoder, training_batches)

SHIPPED_SMALL = "paraphrase-MiniLM-L3-v2"  # 3 layers, ships only as ONNX (bert_finetuning_onnx)


def load_encoder(name: str = SHIPPED_CHECKPOINT, pretrained: bool = True, dropout: float | None = None):
    """:func:`course_utils.text.load_encoder`, plus :data:`SHIPPED_SMALL`, read from its ONNX export."""
    if name in (SHIPPED_SMALL, "sentence-transformers/" + SHIPPED_SMALL):
        overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        return _small_encoder(pretrained, overrides)
    return text.load_encoder(name, pretrained=pretrained, dropout=dropout)


# ---------------------------------------------------------------- checkpoints


def _small_encoder(pretrained: bool, overrides: dict[str, float]):
    """paraphrase-MiniLM-L3-v2, copied from its ONNX export into a ``BertModel``.

    The export has no pooler, so ``pooler_output`` comes from a freshly
    initialised pooler (seeded): it is trained along with the rest in full
    fine-tuning. The tokenizer is all-MiniLM-L6-v2's (the same vocabulary).
    """
    from transformers import BertModel

    from course_utils.given import bert_finetuning_onnx

    model = bert_finetuning_onnx.bert_from_onnx(data.fetch(data.MINILM_L3_ONNX), **overrides)
    return model if pretrained else BertModel(model.config)


# ---------------------------------------------------------------- metrics


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
