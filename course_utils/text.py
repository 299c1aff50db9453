"""Text data and pretrained text encoders shared by the sentence-classification assignments.

- the Rotten Tomatoes snippets (``data.ROTTEN_TOMATOES``), three classes, and a
  fixed stratified train/validation/test split;
- all-MiniLM-L6-v2 (``data.MINILM_L6``), loaded with plain ``transformers`` from
  its shipped folder, or any hub name for students with internet, and the same
  architecture with random weights;
- batches drawn from length-sorted chunks, so little compute is spent on padding;
- class probabilities of a model over a set of batches.
"""

from __future__ import annotations

import bz2
import csv
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from course_utils import data

CLASSES: tuple[str, ...] = ("fresh", "rotten", "plot")
SHIPPED_CHECKPOINT = data.MINILM_L6.name


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


# ---------------------------------------------------------------- encoders


def encoder_path(name: str = SHIPPED_CHECKPOINT) -> str:
    """Where ``from_pretrained`` should look: the shipped folder for all-MiniLM-L6-v2,
    else ``name`` itself (a hub model such as ``bert-base-uncased``, which needs internet)."""
    if name in (SHIPPED_CHECKPOINT, data.MINILM_L6.hub):
        return str(data.model_folder(data.MINILM_L6))
    return name


def _offline(name: str) -> bool:
    """True for a checkpoint in a local folder: then ``from_pretrained`` is told to
    use local files only, so no hub request is even tried (the course's machines have no hub)."""
    return os.path.isdir(encoder_path(name))


def load_tokenizer(name: str = SHIPPED_CHECKPOINT):
    """The checkpoint's own WordPiece tokenizer (uncased, 30,522 tokens for MiniLM)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_path(name), local_files_only=_offline(name))


def load_encoder(name: str = SHIPPED_CHECKPOINT, pretrained: bool = True, dropout: float | None = None):
    """A ``BertModel`` (any ``AutoModel``) with its pooler.

    ``pretrained=False`` builds the same architecture from the same config with
    freshly initialised weights: the fair baseline that shows what pretraining adds.
    ``dropout`` replaces the checkpoint's hidden and attention dropout (0.1 in BERT);
    ``None`` keeps it.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging

    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    local = _offline(name)
    path = encoder_path(name)
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


def shuffled_batches(encoded: Encoded, batch_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """One epoch of plainly shuffled batches, to compare their padding with the sorted ones."""
    order = np.random.default_rng(seed).permutation(len(encoded))
    return [collate(encoded, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


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
