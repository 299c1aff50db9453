"""paraphrase-MiniLM-L3-v2 copied from its ONNX export into a BertModel gives ONNX Runtime's outputs.

The comparison is on real sentences from the all-MiniLM-L6-v2 tokenizer, padded to a
common length, at every position (padding included). The corruption tests show the same
comparison fails for the mistakes a mapping can make silently: query/key/value and
attention-output weights are square, so forgetting a transpose or mixing roles or layers
still loads without a shape error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")

from course_utils import data
from course_utils.given import bert_finetuning_onnx as onnx_bert  # noqa: E402
from course_utils.given import bert_finetuning as tc  # noqa: E402

SENTENCES = [
    "A gripping, beautifully shot thriller.",
    "Dull.",
    "The plot follows two brothers who inherit a failing vineyard in Sonoma and must decide whether to sell it.",
    "Not my cup of tea, but the acting is superb.",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def l3_path() -> Path:
    return data.fetch(data.MINILM_L3_ONNX)


@pytest.fixture(scope="module")
def mapped(l3_path: Path):
    return onnx_bert.read_bert_onnx(l3_path)


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    tokens = tc.load_tokenizer()(SENTENCES, padding=True, return_tensors="np")
    mask = tokens["attention_mask"]
    assert (mask == 0).any() and mask.all(axis=1).any()  # padding in some rows, one full row
    return {"input_ids": tokens["input_ids"].astype(np.int64), "attention_mask": mask.astype(np.int64)}


@pytest.fixture(scope="module")
def reference(l3_path: Path, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime's token states (the rank-3 float output) and mean-pooled sentence
    embedding (the rank-2 float output); the export names them ``onnx::Shape_422`` and ``461``."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(l3_path), options, providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == ["attention_mask", "input_ids"]
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, batch)))
    floats = {len(o.shape): values[o.name] for o in session.get_outputs() if o.type == "tensor(float)"}
    assert floats[3].shape == (*batch["input_ids"].shape, 384) and floats[2].shape == (len(SENTENCES), 384)
    return {"tokens": floats[3], "sentence": floats[2]}


def _states(model: torch.nn.Module, batch: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
    return out.last_hidden_state.numpy()


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def _model_from(config, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    from transformers import BertModel

    model = BertModel(config)
    model.load_state_dict(state, strict=False)  # pooler stays random: not compared
    return model.eval()


def test_mapped_model_matches_onnxruntime(l3_path: Path, batch, reference) -> None:
    model = onnx_bert.bert_from_onnx(l3_path)
    states = _states(model, batch)
    assert (diff := _max_diff(states, reference["tokens"])) < TOLERANCE, f"token states differ by {diff:.3g}"
    mask = batch["attention_mask"][..., None].astype(np.float32)
    pooled = (states * mask).sum(1) / mask.sum(1)
    assert (diff := _max_diff(pooled, reference["sentence"])) < TOLERANCE, f"mean-pooled differ by {diff:.3g}"


def test_config_is_read_from_the_graph(mapped) -> None:
    config, state = mapped
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (3, 384, 12)
    assert (config.intermediate_size, config.vocab_size, config.max_position_embeddings) == (1536, 30522, 512)
    assert (config.type_vocab_size, config.layer_norm_eps, config.hidden_act) == (2, 1e-12, "gelu")
    assert len(state) == 5 + 16 * 3 and not any(k.startswith("pooler.") for k in state)


def test_pooler_is_seeded_and_leaves_the_rng_alone(l3_path: Path) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = onnx_bert.bert_from_onnx(l3_path)
    assert torch.equal(torch.rand(3), expected_next)
    b = onnx_bert.bert_from_onnx(l3_path)
    assert torch.equal(a.pooler.dense.weight, b.pooler.dense.weight)
    assert not a.training


def _untransposed(state: dict[str, torch.Tensor]) -> None:
    key = "encoder.layer.1.attention.self.query.weight"
    state[key] = state[key].T.contiguous()


def _layers_swapped(state: dict[str, torch.Tensor]) -> None:
    for key in [k for k in state if k.startswith("encoder.layer.0.")]:
        other = key.replace("layer.0.", "layer.1.")
        state[key], state[other] = state[other], state[key]


def _query_key_swapped(state: dict[str, torch.Tensor]) -> None:
    for part in ("weight", "bias"):
        q, k = (f"encoder.layer.2.attention.self.{r}.{part}" for r in ("query", "key"))
        state[q], state[k] = state[k], state[q]


@pytest.mark.parametrize("corrupt", [_untransposed, _layers_swapped, _query_key_swapped])
def test_a_wrong_mapping_fails_the_comparison(mapped, batch, reference, corrupt) -> None:
    config, state = mapped
    state = dict(state)
    corrupt(state)
    diff = _max_diff(_states(_model_from(config, state), batch), reference["tokens"])
    assert diff > 1000 * TOLERANCE, f"{corrupt.__name__} went unnoticed (max diff {diff:.3g})"


def test_mapping_does_not_depend_on_initializer_names(l3_path: Path, mapped, tmp_path: Path) -> None:
    """Every initializer renamed to a meaningless ``w<i>``: the graph alone gives the same state dict."""
    model = onnx.load(str(l3_path))
    names = {t.name: f"w{i}" for i, t in enumerate(model.graph.initializer)}
    for t in model.graph.initializer:
        t.name = names[t.name]
    for node in model.graph.node:
        node.input[:] = [names.get(i, i) for i in node.input]
    anonymous = tmp_path / "anonymous.onnx"
    onnx.save(model, str(anonymous))
    config, state = onnx_bert.read_bert_onnx(anonymous)
    assert config.to_dict() == mapped[0].to_dict()
    assert state.keys() == mapped[1].keys()
    assert all(torch.equal(state[k], mapped[1][k]) for k in state)


def test_a_config_that_disagrees_with_the_file_is_refused(l3_path: Path) -> None:
    from transformers import BertConfig

    wrong = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=3, num_attention_heads=6,
                       intermediate_size=1536)
    with pytest.raises(ValueError, match="num_attention_heads: config 6, file 12"):
        onnx_bert.read_bert_onnx(l3_path, wrong)


def _save(tmp_path: Path, nodes, inputs, initializers) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "not_bert",
        [helper.make_tensor_value_info(name, dtype, ["b", "s"] if dtype == TensorProto.INT64 else ["b", 4])
         for name, dtype in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(shape, np.float32), name) for name, shape in initializers],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_a_non_bert_file_gives_a_clear_error(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    mlp = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
                [("x", TensorProto.FLOAT)], [("w", (4, 3)), ("b", (3,))])
    with pytest.raises(onnx_bert.NotABertExport, match="embedding lookups"):
        onnx_bert.bert_from_onnx(mlp)

    lookups = [helper.make_node("Gather", ["word", "input_ids"], ["e0"]),
               helper.make_node("Gather", ["pos", "position_ids"], ["e1"]),
               helper.make_node("Gather", ["type", "token_type_ids"], ["e2"]),
               helper.make_node("Sum", ["e0", "e1", "e2"], ["e"])]
    ids = [(n, TensorProto.INT64) for n in ("input_ids", "position_ids", "token_type_ids")]
    embeddings_only = _save(tmp_path, lookups, ids,
                            [("word", (10, 4)), ("pos", (8, 4)), ("type", (2, 4))])
    with pytest.raises(onnx_bert.NotABertExport, match="LayerNormalization"):
        onnx_bert.bert_from_onnx(embeddings_only)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(onnx_bert.NotABertExport, match="not an ONNX model"):
        onnx_bert.bert_from_onnx(garbage)
