"""Unit tests of course_utils.given.convolutions, the given code of the convolutions assignment (seconds).

What students write (vectorised relative attention, the Conv1D and max-pool weights, the
counts, the separable block) is not in the given module, so these tests drive its plumbing
with answers of their own.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.given import convolutions as conv  # noqa: E402


def vectorised(q, k, v, bias, causal=False):
    """Relative attention over whole score matrices, written for these tests."""
    n = q.shape[-2]
    pos = torch.arange(n)
    offset = pos[None, :] - pos[:, None]
    scores = q @ k.transpose(-1, -2) + bias[:, offset + n - 1][None]
    if causal:
        scores = scores.masked_fill(offset > 0, float("-inf"))
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("causal", [False, True])
def test_the_loop_agrees_with_a_vectorised_version_and_not_with_mirrored_offsets(causal) -> None:
    q, k, v, bias = conv.random_inputs(3, 2, 3, 7, 4, 5)
    slow = conv.loop_attention(q, k, v, bias, causal)
    assert slow.shape == (2, 3, 7, 5)
    assert torch.allclose(slow, vectorised(q, k, v, bias, causal), atol=1e-12)
    assert not torch.allclose(slow, vectorised(q, k, v, bias.flip(-1), causal), atol=1e-3)
    if causal:
        assert torch.allclose(slow[:, :, 0], v[:, :, 0], atol=1e-12)  # the first query sees only itself


def test_the_loop_reads_offset_minus_one_as_the_previous_position() -> None:
    n = 5
    bias = torch.full((2 * n - 1,), -math.inf, dtype=torch.float64)
    bias[n - 2] = 0.0  # offset j - i = -1
    v = torch.arange(n, dtype=torch.float64)[:, None]
    zeros = torch.zeros(n, 1, dtype=torch.float64)
    out = conv.relative_attention_loop(zeros, zeros, v, bias)
    assert out[1:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def conv_params(length):
    bias = torch.full((1, 2 * length - 1), -math.inf, dtype=torch.float64)
    bias[0, length - 2], bias[0, length] = math.log(2), 0.0
    zero = torch.zeros(1, 1, 1, dtype=torch.float64)
    return {"W_Q": zero, "W_K": zero, "W_V": torch.full((1, 1, 1), 3.0, dtype=torch.float64),
            "W_O": torch.ones(1, 1, 1, dtype=torch.float64), "bias": bias}


def test_a_right_construction_is_the_convolution_and_the_posted_one_is_not() -> None:
    x = conv.uniform_sequences(0, 3, 15, -1, 1)
    want = conv.conv1d_reference(x, [2.0, 0.0, 1.0])
    assert torch.allclose(want[:, 1:-1], 2 * x[:, :-2] + x[:, 2:])
    for attention in (None, vectorised):
        out = conv.attention_layer(x[..., None], conv_params(15), attention)[..., 0]
        assert out.shape == (3, 15) and conv.interior_error(out, want) < 1e-12
    posted = conv.attention_layer(x[..., None], conv.posted_conv_params(15))[..., 0]
    assert torch.allclose(posted[:, 1:-1], 2.4 * x[:, 2:] + 0.6 * x[:, :-2])
    assert conv.interior_error(posted, want) > 0.5


def test_a_soft_maxpool_approaches_the_max_as_the_scale_grows() -> None:
    x = conv.uniform_sequences(1, 4, 20, 0.5, 1.0)
    bias = torch.full((1, 39), -math.inf, dtype=torch.float64)
    bias[0, 18:21] = 0.0
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    errors = [conv.interior_error(conv.attention_layer(x[..., None], {"W_Q": s * one, "W_K": one, "W_V": one,
                                                                     "W_O": one, "bias": bias})[..., 0],
                                  conv.maxpool_reference(x)) for s in (1.0, 10.0, 100.0)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1.5 / 100
    assert conv.maxpool_reference(torch.tensor([[1.0, 3.0, 2.0, 0.0]])).tolist() == [[3.0, 3.0, 3.0, 2.0]]


def separable(c_in, c_out, k):
    return torch.nn.Sequential(torch.nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in),
                               torch.nn.Conv2d(c_in, c_out, 1))


def test_small_cnns_count_and_shape() -> None:
    standard, sep = conv.small_cnn(conv.standard_conv), conv.small_cnn(separable)
    x = torch.zeros(2, 1, 28, 28)
    assert standard(x).shape == sep(x).shape == (2, 10)
    assert conv.count_parameters(sep) < conv.count_parameters(standard) / 3


def test_mnist_split_and_a_short_run() -> None:
    split = conv.mnist_split(300, 200)
    assert split.x_train.shape == (300, 1, 28, 28) and split.x_test.shape == (200, 1, 28, 28)
    assert 0 <= float(split.x_train.min()) and float(split.x_train.max()) <= 1
    result = conv.train_cnn(split, separable, "short", steps=5, batch=16)
    assert 0 <= result.accuracy <= 1 and result.parameters == conv.count_parameters(conv.small_cnn(separable))
    assert result.seconds > 0


def test_plots_and_widget_draw() -> None:
    import matplotlib.pyplot as plt

    conv.plot_maxpool_errors([1, 10], {"a": [0.5, 0.05]})
    x = conv.uniform_sequences(2, 1, 8, 0.05, 0.1)[0]
    widget = conv.maxpool_explorer(x, {1.0: x, 10.0: x}, {1.0: 0.1, 10.0: 0.01})
    assert widget is not None
    assert conv.seconds_per_call(lambda: None, repeats=2) >= 0
    plt.close("all")
