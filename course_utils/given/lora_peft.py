"""Given code of the parameter-efficient fine-tuning assignment (LoRA and soft prompts).

What students write (the LoRA layer, putting it into the encoder, the count of
its parameters) stays in the notebook; nothing here is a low-rank layer or
replaces one. The classification model itself (a linear head on the pooled
output, as students wrote it in ``bert_finetuning``) is a read-only cell of the
notebook, not given code here, so that no assignment's answer can be imported. The data, batches and the shipped MiniLM come from
:mod:`course_utils.text`, shared with the other text assignments, and are
re-exported so the notebook reads everything as ``given.<name>``. This module adds:

- :class:`SoftPrompt`: trainable vectors placed in front of every input;
- :func:`fine_tune`: the training recipe every method shares (AdamW, linear
  warmup and decay), which also times its epochs and measures its memory;
- :func:`training_memory`: the bytes a training step holds (weights, gradients,
  optimizer state, activations saved for the backward pass), measured on a batch;
- :class:`SimilarityProbe`: the encoder's original skill, sentence similarity,
  and how far a method moved it (its *forgetting*);
- a small cache of finished runs under :func:`course_utils.paths.data_dir`;
- the table and plot of the results, and a widget that turns a LoRA update up and down.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from course_utils import paths, text
from course_utils.text import (CLASSES, SHIPPED_CHECKPOINT, Corpus, Encoded,  # noqa: F401 (the notebook's names)
                               class_counts, collate, encode, eval_batches, load_encoder, load_tokenizer, predict,
                               rotten_tomatoes, stratified_split, tiny_encoder, training_batches)
from course_utils.training import train_loop

# ---------------------------------------------------------------- the soft prompt


class SoftPrompt(nn.Module):
    """``n_prompt`` trainable vectors in the space of an encoder's word embeddings, put right after
    ``[CLS]`` in every input: ``[CLS] p_1 … p_k w_1 … w_n [SEP]``.

    ``forward(word_vectors, attention_mask)`` takes the word embeddings of a batch,
    ``(batch, tokens, hidden)``, and its mask, and returns both with the prompt inserted,
    ``(batch, k + tokens, hidden)`` and ``(batch, k + tokens)``: pass them to the encoder as
    ``inputs_embeds`` and ``attention_mask``. The encoder then adds its position embeddings as
    for any token, so the words move ``k`` positions to the right; ``[CLS]`` stays first, where
    the pooler reads. The vectors start as the embeddings of ``n_prompt`` random vocabulary
    words (seeded), the usual initialisation, which keeps them at the scale the encoder expects.
    """

    def __init__(self, word_embeddings: nn.Embedding, n_prompt: int, seed: int = 0) -> None:
        super().__init__()
        if n_prompt < 1:
            raise ValueError("a soft prompt has at least one vector")
        table = word_embeddings.weight
        low = 1000 if table.shape[0] > 2000 else 1  # BERT's first 1,000 ids are [PAD], [unused..], [CLS], ...
        words = torch.randint(low, table.shape[0], (n_prompt,), generator=torch.Generator().manual_seed(seed))
        self.vectors = nn.Parameter(table[words].detach().clone())

    def forward(self, word_vectors: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, k = word_vectors.shape[0], self.vectors.shape[0]
        embeds = torch.cat([word_vectors[:, :1], self.vectors.expand(batch, k, -1), word_vectors[:, 1:]], dim=1)
        mask = torch.cat([attention_mask[:, :1], attention_mask.new_ones(batch, k), attention_mask[:, 1:]], dim=1)
        return embeds, mask


# ---------------------------------------------------------------- memory


class _SavedTensors:
    """Bytes of the tensors autograd saves for the backward pass inside the block,
    each storage counted once, parameters left out (they are counted as weights)."""

    def __init__(self, exclude: Iterable[torch.Tensor]) -> None:
        self.exclude = {p.untyped_storage().data_ptr() for p in exclude}
        self.storages: dict[int, int] = {}

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.exclude and storage.device.type != "meta":
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def __enter__(self) -> "_SavedTensors":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


def _bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def training_memory(model: nn.Module, batch: Mapping[str, torch.Tensor], lr: float = 1e-4) -> dict[str, int]:
    """The bytes one AdamW training step of ``model`` holds at its peak, measured on ``batch``.

    - ``weights``: every parameter, trainable or not;
    - ``gradients``: the ``.grad`` tensors the backward pass filled (trainable parameters only);
    - ``optimizer``: AdamW's state after one step (two moments per trainable number, a step count per tensor);
    - ``activations``: what autograd saved during the forward pass for the backward pass
      (each storage once, parameters left out), the term that grows with batch and length.

    The peak of a step is reached at the end of the backward pass, when the saved
    activations have not all been freed yet and the gradients are all there; their
    sum is what is reported as ``total``. The step runs on a copy of the trainable
    parameters' values, which are put back afterwards: the model is unchanged, and so is
    the global random state (the next training run draws the same dropout masks).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    was_training = model.training
    model.train()
    # fork_rng: the step's dropout draws from a copy of the random state, so measuring a model before
    # training leaves its training run exactly what it would have been without the measurement
    with torch.random.fork_rng(devices=[]):
        try:
            with _SavedTensors(exclude=model.parameters()) as saved:
                _, loss = model(**batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gradients = _bytes(p.grad for p in trainable if p.grad is not None)
            optimizer.step()
            state = _bytes(t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
        finally:
            with torch.no_grad():
                for p, value in zip(trainable, before):
                    p.copy_(value)
                    p.grad = None
            model.train(was_training)
    memory = {"weights": _bytes(model.parameters()), "gradients": gradients, "optimizer": state,
              "activations": saved.bytes}
    memory["total"] = sum(memory.values())
    return memory


def longest_batch(encoded: Encoded, batch_size: int) -> dict[str, torch.Tensor]:
    """The ``batch_size`` longest snippets as one batch: the step whose memory is the peak of an epoch."""
    order = np.argsort([-len(r) for r in encoded.ids], kind="stable")
    return collate(encoded, order[:batch_size])


# ---------------------------------------------------------------- training


def fine_tune(model: nn.Module, lr: float, train_set: Encoded, val_batches: Sequence[dict], *, epochs: int,
              batch_size: int = 32, warmup: float = 0.1, seed: int = 0, desc: str = "training",
              lr_by_prefix: Mapping[str, float] | None = None, every_epoch: bool = False) -> dict:
    """Train the parameters of ``model`` that require gradients: ``epochs`` epochs of AdamW (fused)
    at peak learning rate ``lr``, rising linearly from 0 over the first ``warmup`` share of the
    steps, then falling linearly to 0 (the recipe of the ``bert_finetuning`` assignment).
    ``lr_by_prefix`` gives some parameters their own peak rate, by the start of their name
    (``{"classifier.": 1e-3}``: the head at 1e-3, everything else at ``lr``).

    The batches are the same for every model with the same ``seed``. Returns the
    ``train_loop`` history plus ``epoch_loss`` (mean training loss of each epoch),
    ``val_acc`` (after the last epoch, or after each one with ``every_epoch``), ``val_probs`` (class probabilities on the validation
    set at the end), ``sec_per_epoch`` (training only, evaluation excluded),
    and ``memory`` (:func:`training_memory` on the longest batch).
    """
    from transformers import get_linear_schedule_with_warmup

    memory = training_memory(model, longest_batch(train_set, batch_size), lr)
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            rate = next((r for prefix, r in (lr_by_prefix or {}).items() if name.startswith(prefix)), lr)
            groups.setdefault(rate, []).append(p)
    optimizer = torch.optim.AdamW([{"params": ps, "lr": rate} for rate, ps in groups.items()], lr=lr, fused=True)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    n_steps = epochs * steps_per_epoch
    schedule = get_linear_schedule_with_warmup(optimizer, round(warmup * n_steps), n_steps)
    eval_seconds: list[float] = []
    last_probs: list[np.ndarray] = []

    def step(batch: dict) -> float:
        labels = batch.pop("labels")
        _, loss = model(labels=labels, **batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.item()

    def evaluate() -> dict:
        start = time.perf_counter()
        probs, labels = predict(model, val_batches)
        eval_seconds.append(time.perf_counter() - start)
        last_probs[:] = [probs]
        return {"acc": float(np.mean(probs.argmax(1) == labels))}

    model.train()
    history = train_loop(step, training_batches(train_set, batch_size, seed=seed), n_steps, desc=desc,
                         evaluate=evaluate, eval_every=steps_per_epoch if every_epoch else n_steps)
    model.eval()
    history["epoch_loss"] = np.reshape(history["loss"], (epochs, steps_per_epoch)).mean(1).tolist()
    history["sec_per_epoch"] = (history["seconds"][0] - sum(eval_seconds)) / epochs
    history["val_probs"] = last_probs[0]
    history["memory"] = memory
    accuracy = " → ".join(f"{a:.1%}" for a in history["val_acc"])
    print(f"{desc}: validation accuracy {accuracy}{' (epoch by epoch)' if every_epoch else ''}, training loss "
          f"{' → '.join(f'{x:.3f}' for x in history['epoch_loss'])} (epoch by epoch); "
          f"{history['sec_per_epoch']:.1f} s per epoch of training")
    return history


# ---------------------------------------------------------------- the original skill: sentence similarity


def mean_pooled(encoder: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence embedding: the mean of the last layer's token vectors over
    the real (unmasked) tokens, scaled to length 1. Cosine similarity is then a dot product."""
    out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
    return nn.functional.normalize((out * mask).sum(1) / mask.sum(1), dim=-1)


def _ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two sequences of numbers (1: the same order, 0: unrelated)."""
    return float(np.corrcoef(_ranks(np.asarray(a)), _ranks(np.asarray(b)))[0, 1])


class SimilarityProbe:
    """How much of its original skill, judging how similar two sentences are, an encoder kept.

    all-MiniLM-L6-v2 was trained so that the cosine similarity of two sentences'
    mean-pooled embeddings says how related they are. The probe takes held-out
    snippets, every pair of them, and the similarities the *original* encoder gives
    those pairs. For another encoder (or the same one after fine-tuning) it
    reports the rank correlation of its similarities with the original ones
    (:meth:`agreement`: 1 means it orders every pair exactly as before) and
    ``forgetting = 1 - agreement``: 0 before any training.
    """

    def __init__(self, encoder: nn.Module, encoded: Encoded, n_sentences: int = 300, batch_size: int = 64) -> None:
        n = min(n_sentences, len(encoded))
        keep = np.linspace(0, len(encoded) - 1, n).astype(int)
        subset = Encoded([encoded.ids[i] for i in keep], encoded.labels[keep], encoded.pad_id)
        self.batches = eval_batches(subset, batch_size)
        self.pairs = np.triu_indices(n, k=1)
        self.reference_embeddings = self.embeddings(encoder)
        self.reference = self.similarities(encoder)

    @torch.no_grad()
    def embeddings(self, encoder: nn.Module) -> torch.Tensor:
        """The sentence embeddings of the probe's snippets under ``encoder`` (eval mode, no dropout)."""
        was_training = encoder.training
        encoder.eval()
        try:
            return torch.cat([mean_pooled(encoder, b) for b in self.batches])
        finally:
            encoder.train(was_training)

    def similarities(self, encoder: nn.Module) -> np.ndarray:
        """Cosine similarity of every pair of the probe's snippets under ``encoder``."""
        e = self.embeddings(encoder)
        return (e @ e.T).numpy()[self.pairs]

    def agreement(self, encoder: nn.Module) -> float:
        return spearman(self.similarities(encoder), self.reference)

    def forgetting(self, encoder: nn.Module) -> float:
        """1 - rank correlation of ``encoder``'s pair similarities with the original encoder's."""
        return 1.0 - self.agreement(encoder)


# ---------------------------------------------------------------- cache of finished runs


def cache_key(settings: Mapping[str, object]) -> str:
    """A short fingerprint of everything a run depends on (checkpoint, data sizes, recipe, seed)."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cache_path(name: str, key: str):
    folder = paths.data_dir() / "lora_peft"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{key}.json"


def load_result(name: str, settings: Mapping[str, object]) -> dict | None:
    """A run stored by :func:`save_result` with exactly these settings, or None."""
    path = _cache_path(name, cache_key(settings))
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    result["from_cache"] = str(path)
    return result


def save_result(name: str, settings: Mapping[str, object], result: Mapping[str, object]) -> str:
    """Store the plain numbers of a finished run (never weights) under the data folder."""
    path = _cache_path(name, cache_key(settings))
    plain = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in result.items()}
    plain["settings"] = dict(settings)
    path.write_text(json.dumps(plain, indent=1, default=str))
    return str(path)


# ---------------------------------------------------------------- table, plots, widget


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """The comparison table: one row per method (keys: method, val_acc, trainable, share
    (of all the model's parameters), sec_per_epoch, memory (bytes), forgetting)."""
    mib = 2 ** 20
    lines = [f"{'method':<24}{'val acc':>8}{'trainable':>13}{'share':>9}{'s/epoch':>9}{'memory MiB':>12}{'forgetting':>12}"]
    for r in rows:
        lines.append(f"{r['method']:<24}{r['val_acc']:>8.1%}{r['trainable']:>13,}{r['share']:>9.3%}"
                     f"{r['sec_per_epoch']:>9.1f}{r['memory'] / mib:>12.0f}{r['forgetting']:>12.3f}")
    return "\n".join(lines)


def plot_accuracy_vs_parameters(rows: Sequence[Mapping[str, object]], *, ax=None, chance: float | None = None):
    """Validation accuracy against trainable parameters (log scale), one labelled point per method."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    lora = [r for r in rows if str(r["method"]).startswith("LoRA")]
    if lora:
        ax.plot([r["trainable"] for r in lora], [r["val_acc"] for r in lora], "-", color="C1", alpha=0.5)
    for r in rows:
        colour = "C1" if r in lora else "C0" if "full" in str(r["method"]) else "C2" if "prompt" in str(r["method"]) else "C7"
        ax.plot(r["trainable"], r["val_acc"], "o", color=colour, ms=7)
        ax.annotate(str(r["method"]), (r["trainable"], r["val_acc"]), textcoords="offset points", xytext=(6, -12),
                    fontsize=9)
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", label="always the majority class")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("accuracy against what is trained")
    return ax


def plot_memory(rows: Sequence[Mapping[str, object]], *, ax=None):
    """Stacked bars of each method's training memory: weights, gradients, optimizer state, activations (MiB)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    names = [str(r["method"]) for r in rows]
    bottom = np.zeros(len(rows))
    for term, colour in (("weights", "C7"), ("gradients", "C3"), ("optimizer", "C4"), ("activations", "C0")):
        values = np.array([r["memory_terms"][term] for r in rows], dtype=float) / 2 ** 20
        ax.bar(names, values, bottom=bottom, label=term, color=colour)
        bottom += values
    ax.set_ylabel("MiB")
    ax.set_title("memory of one training step (longest batch)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=9)
    return ax


def scale_explorer(set_scale: Callable[[float], None], evaluate: Callable[[], tuple[float, float]],
                   scales: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)):
    """A slider over the factor that multiplies every LoRA update: 0 is the original encoder,
    1 the trained adapter. ``set_scale(s)`` applies a factor (the model stays at the
    slider's position), ``evaluate()`` returns (validation accuracy, forgetting) at the
    current one. Each position is evaluated once, when first chosen, and drawn against
    the ones already seen."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    seen: dict[float, tuple[float, float]] = {}

    def show(scale: float) -> None:
        set_scale(scale)
        if scale not in seen:
            seen[scale] = evaluate()
        xs = sorted(seen)
        _, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
        left.plot(xs, [seen[x][0] for x in xs], "o-", color="C1")
        left.plot([scale], [seen[scale][0]], "o", ms=12, color="C3")
        left.set_xlabel("scale of the LoRA update")
        left.set_ylabel("validation accuracy")
        right.plot(xs, [seen[x][1] for x in xs], "o-", color="C2")
        right.plot([scale], [seen[scale][1]], "o", ms=12, color="C3")
        right.set_xlabel("scale of the LoRA update")
        right.set_ylabel("forgetting (1 - agreement)")
        for ax in (left, right):
            ax.set_xlim(min(scales) - 0.1, max(scales) + 0.1)
        plt.suptitle(f"scale {scale:g}: accuracy {seen[scale][0]:.1%}, forgetting {seen[scale][1]:.3f}", fontsize=11)
        plt.show()

    slider = widgets.SelectionSlider(options=list(scales), value=1.0, description="scale",
                                     continuous_update=False, layout=widgets.Layout(width="60%"))
    return widgets.interactive(show, scale=slider)
