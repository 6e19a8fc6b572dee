"""MultiheadAttention and TransformerBlock: shapes, masks, the graph's GEMMs, dropout and errors."""
import numpy as np
import pytest

import minireparam as mr
import minireparam.nn as nn
import minireparam.nn.functional as F
from minireparam.autograd.engine import toposort

# Two computations of the same float64 values in a different order agree to rounding.
SAME = dict(rtol=1e-12, atol=1e-12)


def tensor(rng, *shape):
    return mr.tensor(rng.standard_normal(shape), requires_grad=True)


def test_shapes_batch_first_and_unbatched(rng):
    attention = nn.MultiheadAttention(6, 3, batch_first=True).double()
    x = tensor(rng, 2, 4, 6)
    out, weights = attention(x, x, x)
    assert out.shape == (2, 4, 6)
    assert weights.shape == (2, 4, 4)
    _, per_head = attention(x, x, x, average_attn_weights=False)
    assert per_head.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(per_head.data.mean(axis=1), weights.data, **SAME)
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, **SAME)

    single = mr.tensor(x.data[1])
    out_single, weights_single = attention(single, single, single)
    assert out_single.shape == (4, 6)
    assert weights_single.shape == (4, 4)
    np.testing.assert_allclose(out_single.data, out.data[1], **SAME)

    assert attention(x, x, x, need_weights=False)[1] is None


def test_time_major_equals_batch_first(rng):
    time_major = nn.MultiheadAttention(4, 2).double()
    batch_first = nn.MultiheadAttention(4, 2, batch_first=True).double()
    batch_first.load_state_dict(time_major.state_dict())
    x = rng.standard_normal((3, 2, 4))
    out, _ = time_major(mr.tensor(x), mr.tensor(x), mr.tensor(x))
    swapped = mr.tensor(x.transpose(1, 0, 2))
    out_first, _ = batch_first(swapped, swapped, swapped)
    np.testing.assert_allclose(out.data, out_first.data.transpose(1, 0, 2), **SAME)


def test_is_causal_without_mask_equals_explicit_mask(rng):
    attention = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = tensor(rng, 2, 5, 4)
    causal, _ = attention(x, x, x, is_causal=True)
    explicit, _ = attention(x, x, x, attn_mask=np.triu(np.ones((5, 5), dtype=bool), 1))
    float_mask = np.triu(np.full((5, 5), -np.inf), 1)
    additive, _ = attention(x, x, x, attn_mask=float_mask)
    np.testing.assert_array_equal(causal.data, explicit.data)
    np.testing.assert_allclose(additive.data, explicit.data, **SAME)


def test_padding_masked_keys_get_zero_weight(rng):
    attention = nn.MultiheadAttention(4, 1, batch_first=True).double()
    x = tensor(rng, 2, 3, 4)
    padding = np.array([[False, False, True], [False, True, True]])
    _, weights = attention(x, x, x, key_padding_mask=padding)
    np.testing.assert_array_equal(weights.data[0, :, 2], 0.0)
    np.testing.assert_array_equal(weights.data[1, :, 1:], 0.0)
    np.testing.assert_allclose(weights.data[1, :, 0], 1.0, **SAME)


def test_fully_masked_batch_element(rng):
    """All keys padded: the output is out_proj.bias, the weights are 0, the gradients finite."""
    attention = nn.MultiheadAttention(4, 2, batch_first=True).double()
    attention.out_proj.bias.data[...] = rng.standard_normal(4)
    x = tensor(rng, 1, 3, 4)
    out, weights = attention(x, x, x, key_padding_mask=np.ones((1, 3), dtype=bool))
    np.testing.assert_array_equal(out.data[0], np.broadcast_to(attention.out_proj.bias.data, (3, 4)))
    np.testing.assert_array_equal(weights.data, 0.0)
    (out * rng.standard_normal(out.shape)).sum().backward()
    assert np.all(x.grad == 0.0)
    for name, param in attention.named_parameters():
        assert np.all(np.isfinite(param.grad)), name


def test_attention_graph_uses_batched_gemms_and_one_softmax(rng):
    attention = nn.MultiheadAttention(8, 4, batch_first=True).double()
    x = tensor(rng, 3, 5, 8)
    out, _ = attention(x, x, x, need_weights=False)
    names = [node.display_name() for node in toposort([out.grad_fn])]
    # in-projection, scores, weighted sum and out-projection: one GEMM each for all heads and batch items.
    assert names.count("linear") == 2
    assert names.count("matmul") == 2
    # Scaling and softmax are one node; no separate multiply or where node touches the scores.
    assert names.count("scaled_masked_softmax") == 1
    assert "softmax" not in names
    assert "where" not in names


@pytest.mark.parametrize("mask", ["none", "causal", "boolean"])
def test_fused_scaled_masked_softmax_matches_separate_ops(rng, mask):
    # The fused node gives the values and first and second derivatives of
    # softmax(where(allowed, scale * scores, -inf)) from separate ops, including a row
    # that may attend to nothing (zero weights, zero gradients).
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    allowed = None
    if mask == "causal":
        allowed = F.causal_mask(4, 4)
    elif mask == "boolean":
        allowed = rng.random((4, 4)) < 0.6
        allowed[1] = False
    upstream = rng.standard_normal((2, 3, 4, 5))

    def separate(query, key, value):
        scores = mr.matmul(query, mr.swapaxes(key, -1, -2)) * 0.3
        if allowed is not None:
            scores = mr.where(allowed, scores, -np.inf)
        return mr.matmul(mr.softmax(scores, axis=-1), value)

    results = []
    for function in (lambda a, b, c: F.attention(a, b, c, allowed, scale=0.3)[0], separate):
        inputs = [mr.tensor(array, requires_grad=True) for array in (q, k, v)]
        out = function(*inputs)
        first = mr.grad(out, inputs, grad_outputs=mr.tensor(upstream), create_graph=True)
        second = mr.grad(sum((g * g).sum() for g in first), inputs)
        results.append([out.data] + [g.data for g in first + second])
    for fused, reference in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=1e-10, atol=1e-12)


def test_mask_shape_errors(rng):
    attention = nn.MultiheadAttention(4, 2, batch_first=True)
    x = mr.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    with pytest.raises(mr.ShapeError, match="attn_mask has shape"):
        attention(x, x, x, attn_mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(mr.ShapeError, match="key_padding_mask has shape"):
        attention(x, x, x, key_padding_mask=np.zeros((3, 3), dtype=bool))
    with pytest.raises(mr.ShapeError, match="features"):
        attention(x, x, mr.tensor(np.zeros((2, 3, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(TypeError, match="boolean or floating"):
        attention(x, x, x, attn_mask=np.zeros((3, 3), dtype=np.int64))


def test_dropout_on_weights_is_reproducible(rng):
    x = mr.tensor(rng.standard_normal((2, 4, 4)))
    results = []
    for _ in range(2):
        attention = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True, generator=mr.Generator(9)).double()
        results.append(attention(x, x, x)[0].data)
    np.testing.assert_array_equal(results[0], results[1])
    attention.eval()
    np.testing.assert_array_equal(attention(x, x, x)[0].data, attention(x, x, x)[0].data)


def test_transformer_block_shapes_and_activations(rng):
    src = tensor(rng, 5, 2, 8)
    for activation in ("relu", "gelu", "gelu_tanh", nn.functional.tanh):
        block = nn.TransformerBlock(8, 2, dim_feedforward=16, dropout=0.0, activation=activation).double()
        out = block(src, is_causal=True)
        assert out.shape == (5, 2, 8)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerBlock(8, 2, activation="swish")
    assert nn.TransformerEncoderLayer is nn.TransformerBlock


def test_transformer_block_post_norm_output_is_normalized(rng):
    block = nn.TransformerBlock(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True).double()
    out = block(tensor(rng, 2, 3, 8)).data
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-4)  # LayerNorm's eps = 1e-5 shrinks it slightly
