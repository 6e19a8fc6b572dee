"""nn.functional: loss values against numpy formulas, edge cases, masks and randomness."""
import warnings

import numpy as np
import pytest

import minireparam as mr
import minireparam.nn.functional as F
from minireparam.errors import ShapeError
from minireparam.gradcheck import gradcheck, gradgradcheck

# Values computed by the same float64 formula in two ways agree to rounding; 1e-12 is a
# few hundred ulps at these magnitudes.
EXACT = dict(rtol=1e-12, atol=1e-12)


def leaf(array, dtype=np.float64):
    return mr.tensor(np.array(array, dtype=dtype), requires_grad=True)


def numpy_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# -- binary cross-entropy -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_exact_at_large_logits(dtype):
    z = leaf([1e4, -1e4, 1e4, -1e4, -50.0], dtype)
    t = mr.tensor(np.array([0.0, 1.0, 1.0, 0.0, 1.0], dtype=dtype))
    loss = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    np.testing.assert_array_equal(loss.data[:4], np.array([1e4, 1e4, 0.0, 0.0], dtype=dtype))
    loss.sum().backward()
    np.testing.assert_array_equal(z.grad, np.array([1.0, -1.0, 0.0, 0.0, -1.0], dtype=dtype))
    assert z.grad[4] == -1.0, "the gradient at z = -50, t = 1 must be exactly -1.0"


def test_bce_with_logits_matches_formula(rng):
    z, t = rng.standard_normal(6) * 3, rng.uniform(0, 1, 6)
    pos_weight = 2.5
    expected = -(pos_weight * t * np.log(1 / (1 + np.exp(-z))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z))))
    loss = F.binary_cross_entropy_with_logits(leaf(z), leaf(t), reduction="none", pos_weight=pos_weight)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-10)


def test_bce_clamps_log_at_minus_100():
    p = leaf([0.0, 1.0, 0.0, 1.0])
    t = leaf([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy(p, t, reduction="none")
    np.testing.assert_array_equal(loss.data, [100.0, 100.0, 0.0, 0.0])
    loss.sum().backward()
    assert np.all(np.isfinite(p.grad)), p.grad
    assert np.all(np.isfinite(t.grad)), t.grad
    np.testing.assert_array_equal(p.grad, [-1e12, 1e12, 0.0, 0.0])  # (p − t)/max(p(1 − p), 1e-12)
    np.testing.assert_array_equal(t.grad, [100.0, -100.0, 100.0, -100.0])  # clamped log(1 − p) − log p


def test_bce_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.binary_cross_entropy(leaf([0.5, 1.5]), leaf([0.0, 1.0]))
    with pytest.raises(ShapeError):
        F.binary_cross_entropy(leaf([0.5]), leaf([0.0, 1.0]))


# -- cross-entropy ------------------------------------------------------------------------


def reference_cross_entropy(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    classes = logits.shape[1]
    moved = np.moveaxis(logits, 1, -1).reshape(-1, classes)
    flat = target.reshape(-1)
    log_p = numpy_log_softmax(moved, -1)
    valid = flat != ignore_index
    picked = log_p[np.arange(len(flat)), np.where(valid, flat, 0)]
    losses = -(1 - label_smoothing) * picked - label_smoothing * log_p.mean(axis=-1)
    losses = np.where(valid, losses, 0.0)
    if reduction == "none":
        return losses.reshape(target.shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_matches_reference(rng, backend_name, reduction, label_smoothing):
    logits = rng.standard_normal((3, 5, 2))
    target = np.array([[0, 4], [-100, 2], [1, 1]])
    loss = F.cross_entropy(leaf(logits), target, reduction=reduction, label_smoothing=label_smoothing)
    expected = reference_cross_entropy(logits, target, reduction=reduction, label_smoothing=label_smoothing)
    np.testing.assert_allclose(loss.data, expected, **EXACT)


def test_cross_entropy_gradients_and_second_order(rng, backend_name):
    logits = rng.standard_normal((4, 3))
    target = np.array([2, -100, 0, 1])
    for reduction in ("mean", "sum", "none"):
        function = lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1)  # noqa: E731
        assert gradcheck(function, [leaf(logits)])
        assert gradgradcheck(function, [leaf(logits)])


def test_cross_entropy_fused_equals_composed(rng):
    logits = rng.standard_normal((6, 4))
    target = np.array([0, 1, 2, 3, -100, 1])
    fused = F.cross_entropy(leaf(logits), target, label_smoothing=0.2)
    composed = F.cross_entropy(leaf(logits), target, weight=np.ones(4), label_smoothing=0.2)
    np.testing.assert_allclose(fused.data, composed.data, **EXACT)


def test_cross_entropy_all_ignored_mean(backend_name):
    """A mean over zero targets is NaN (0/0, as in PyTorch) with a zero gradient."""
    x = leaf(np.ones((2, 3)))
    loss = F.cross_entropy(x, np.array([-100, -100]))
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))


def test_cross_entropy_float32_and_class_axis(rng):
    logits = rng.standard_normal((2, 3)).astype(np.float32)
    loss = F.cross_entropy(mr.tensor(logits, requires_grad=True), np.array([1, 2]))
    assert loss.dtype == np.float32
    vector = F.cross_entropy(leaf(logits[0]), np.array(1))
    np.testing.assert_allclose(vector.data, -numpy_log_softmax(logits[0].astype(np.float64), 0)[1], rtol=1e-6)


def test_cross_entropy_target_errors():
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 3]))
    with pytest.raises(ShapeError, match="must have shape"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(leaf(np.zeros((2, 3))), np.array([0, 1]), reduction="average")


def test_nll_loss_weighted_mean(rng):
    log_p = rng.standard_normal((4, 3))
    target = np.array([0, 2, 2, -100])
    weight = np.array([1.0, 2.0, 3.0])
    loss = F.nll_loss(leaf(log_p), target, weight=weight)
    expected = -(log_p[0, 0] * 1.0 + log_p[1, 2] * 3.0 + log_p[2, 2] * 3.0) / 7.0
    np.testing.assert_allclose(loss.item(), expected, **EXACT)


def test_mse_loss_warns_on_broadcast():
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(leaf(np.zeros((3, 1))), leaf(np.zeros((3,))))


# -- axis alias, activations, layers' math ------------------------------------------------


def test_dim_is_an_alias_of_axis(rng):
    x = leaf(rng.standard_normal((2, 3)))
    np.testing.assert_array_equal(F.softmax(x, dim=0).data, F.softmax(x, axis=0).data)
    np.testing.assert_array_equal(F.log_softmax(x, dim=0).data, F.log_softmax(x, 0).data)
    assert F.softmax(x).data.sum(axis=-1) == pytest.approx([1.0, 1.0])
    with pytest.raises(TypeError, match="alias"):
        F.softmax(x, axis=0, dim=1)


def test_linear_flattens_leading_dims(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    out = F.linear(leaf(x), leaf(w), leaf(b))
    np.testing.assert_allclose(out.data, x @ w.T + b, **EXACT)
    with pytest.raises(ShapeError, match="in_features"):
        F.linear(leaf(x), leaf(np.zeros((5, 3))))


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_plain_backward_matches_recorded_vjp(rng, x_shape, with_bias):
    # The one-node linear's array VJP (plain backward) and its Tensor-op VJP
    # (create_graph=True) give the gradients of x·Wᵀ + b.
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((5, 4)), rng.standard_normal(5)
    upstream = rng.standard_normal(x_shape[:-1] + (5,))
    expected = [upstream.reshape(-1, 5) @ w, upstream.reshape(-1, 5).T @ x.reshape(-1, 4), upstream.reshape(-1, 5).sum(0)]
    expected[0] = expected[0].reshape(x_shape)
    for create_graph in (False, True):
        inputs = [leaf(x), leaf(w)] + ([leaf(b)] if with_bias else [])
        out = F.linear(*inputs)
        grads = mr.grad(out, inputs, grad_outputs=mr.tensor(upstream), create_graph=create_graph)
        for grad, want in zip(grads, expected):
            np.testing.assert_allclose(grad.data, want, **EXACT)


def test_linear_without_input_gradient_and_mixed_dtype_errors(rng):
    # Only the weight needs a gradient: the plain VJP skips dx. Mixed dtypes raise, as in
    # PyTorch, instead of silently promoting a float32 layer's output to float64.
    x, w = rng.standard_normal((3, 4)), leaf(rng.standard_normal((2, 4)))
    F.linear(mr.tensor(x), w).sum().backward()
    np.testing.assert_allclose(w.grad, np.ones((3, 2)).T @ x, **EXACT)
    with pytest.raises(mr.DTypeError, match="linear: the input is float32 but the weight is float64"):
        F.linear(mr.tensor(x.astype(np.float32)), w)
    with pytest.raises(mr.DTypeError, match="linear: the input is float64 but the bias is float32"):
        F.linear(mr.tensor(x), w, leaf(np.zeros(2), np.float32))
    with pytest.raises(mr.DTypeError, match="linear: the input must be float32 or float64, got int64"):
        F.linear(mr.tensor(np.ones((3, 4), np.int64)), w)
    with pytest.raises(ShapeError, match=r"linear: bias has shape \(3,\), expected \(out_features,\) = \(2,\)"):
        F.linear(mr.tensor(x), w, leaf(np.zeros(3)))


def test_embedding_padding_row_gets_no_gradient():
    weight = leaf(np.arange(12.0).reshape(4, 3))
    out = F.embedding(np.array([[1, 0, 1], [3, 0, 2]]), weight, padding_idx=0)
    np.testing.assert_array_equal(out.data[0, 1], [0.0, 1.0, 2.0])  # the row's value is still looked up
    out.sum().backward()
    np.testing.assert_array_equal(weight.grad[:, 0], [0.0, 2.0, 1.0, 1.0])  # row 1 twice, padding row 0 none
    with pytest.raises(IndexError):
        F.embedding(np.array([4]), weight)


def test_layer_norm_normalizes(rng):
    x = rng.standard_normal((3, 5)) * 4 + 2
    out = F.layer_norm(leaf(x), 5, eps=0.0).data
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-12)


def _composed_layer_norm(x, weight, bias, axes, eps):
    """LayerNorm from separate differentiable ops: the reference for the fused node."""
    centered = x - mr.mean(x, axis=axes, keepdims=True)
    out = centered / mr.sqrt(mr.mean(centered * centered, axis=axes, keepdims=True) + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


@pytest.mark.parametrize("affine", ["both", "weight", "bias", "neither"])
def test_layer_norm_node_matches_composed_ops(rng, affine):
    # The fused node and the op-by-op composition compute the same float64 values and
    # first and second derivatives (the second through the recorded VJP path).
    x = rng.standard_normal((2, 3, 4)) * 3 + 1
    weight = rng.standard_normal((3, 4)) if affine in ("both", "weight") else None
    bias = rng.standard_normal((3, 4)) if affine in ("both", "bias") else None
    upstream = rng.standard_normal((2, 3, 4))
    results = []
    for function in (lambda *t: F.layer_norm(t[0], (3, 4), *t[1:], eps=1e-3),
                     lambda *t: _composed_layer_norm(t[0], *t[1:], axes=(1, 2), eps=1e-3)):
        inputs = [leaf(x), None if weight is None else leaf(weight), None if bias is None else leaf(bias)]
        out = function(*inputs)
        present = [t for t in inputs if t is not None]
        first = mr.grad(out, present, grad_outputs=mr.tensor(upstream), create_graph=True)
        second = mr.grad(sum((g * g).sum() for g in first), present, allow_unused=True)
        results.append((out.data, [g.data for g in first], [None if g is None else g.data for g in second]))
    (out_fused, first_fused, second_fused), (out_ops, first_ops, second_ops) = results
    np.testing.assert_allclose(out_fused, out_ops, rtol=1e-12, atol=1e-12)
    for fused, composed in zip(first_fused + second_fused, first_ops + second_ops):
        if composed is None:
            assert fused is None or not np.any(fused)
        else:
            np.testing.assert_allclose(fused, composed, rtol=1e-10, atol=1e-12)


def test_layer_norm_plain_backward_matches_recorded_vjp(rng):
    # The array VJP (plain backward) and the Tensor-op VJP (create_graph=True) agree.
    x, weight, bias = rng.standard_normal((5, 6)), rng.standard_normal(6), rng.standard_normal(6)
    upstream = rng.standard_normal((5, 6))
    grads = []
    for create_graph in (False, True):
        inputs = [leaf(x), leaf(weight), leaf(bias)]
        out = F.layer_norm(inputs[0], 6, inputs[1], inputs[2])
        grads.append([g.data for g in mr.grad(out, inputs, grad_outputs=mr.tensor(upstream),
                                               create_graph=create_graph)])
    for plain, recorded in zip(*grads):
        np.testing.assert_allclose(plain, recorded, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape, normalized", [((0, 4), (4,)), ((3, 0), (0,)), ((2, 0, 3), (0, 3))])
def test_layer_norm_and_linear_take_empty_inputs(shape, normalized):
    # Empty inputs give empty outputs and gradients of the inputs' shapes, without a
    # warning (reshape(-1, n) cannot infer the rows of an empty array, so the ops count them).
    x, weight, bias = leaf(np.zeros(shape)), leaf(np.ones(normalized)), leaf(np.zeros(normalized))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.layer_norm(x, normalized, weight, bias).sum().backward()
        linear_weight = leaf(np.ones((2, shape[-1])))
        F.linear(x, linear_weight, leaf(np.ones(2))).sum().backward()
    assert x.grad.shape == shape
    assert weight.grad.shape == normalized
    assert bias.grad.shape == normalized
    np.testing.assert_array_equal(linear_weight.grad, np.zeros((2, shape[-1])))


def test_layer_norm_rejects_mismatched_affine_parameters():
    x = leaf(np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"layer_norm: weight has shape \(3,\), expected normalized_shape \(4,\)"):
        F.layer_norm(x, 4, leaf(np.ones(3)))
    with pytest.raises(TypeError, match="layer_norm: bias is float32 but the input is float64"):
        F.layer_norm(x, 4, None, leaf(np.ones(4), np.float32))
    with pytest.raises(ShapeError, match="must match the trailing dimensions"):
        F.layer_norm(x, 3)


# -- dropout ------------------------------------------------------------------------------


def test_dropout_reproducible_from_seed():
    x = mr.tensor(np.ones((50, 50)))
    first = F.dropout(x, 0.3, generator=mr.Generator(7)).data
    second = F.dropout(x, 0.3, generator=mr.Generator(7)).data
    np.testing.assert_array_equal(first, second)
    mr.manual_seed(3)
    third = F.dropout(x, 0.3).data
    mr.manual_seed(3)
    np.testing.assert_array_equal(third, F.dropout(x, 0.3).data)
    assert set(np.unique(first)) == {0.0, 1.0 / 0.7}
    kept = (first != 0).mean()
    assert 0.65 < kept < 0.75, f"kept fraction {kept} for p = 0.3 over 2500 elements"


def test_dropout_edges():
    x = leaf(np.ones(4))
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.5, training=False) is x
    zeros = F.dropout(x, 1.0)
    np.testing.assert_array_equal(zeros.data, 0.0)
    zeros.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)


# -- attention ----------------------------------------------------------------------------


def test_sdpa_fully_masked_row_is_zero_without_nan(rng):
    q, k, v = leaf(rng.standard_normal((2, 3, 4))), leaf(rng.standard_normal((2, 5, 4))), leaf(rng.standard_normal((2, 5, 2)))
    allowed = rng.random((3, 5)) < 0.5
    allowed[1] = False
    allowed[0, 0] = allowed[2, 0] = True
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    np.testing.assert_array_equal(out.data[:, 1], 0.0)
    (out * rng.standard_normal(out.shape)).sum().backward()
    for name, tensor in zip("qkv", (q, k, v)):
        assert np.all(np.isfinite(tensor.grad)), f"non-finite gradient of {name}"
    np.testing.assert_array_equal(q.grad[:, 1], 0.0)


def test_sdpa_float_mask_of_minus_inf_row(rng):
    q, k, v = (leaf(rng.standard_normal((3, 2))) for _ in range(3))
    bias = leaf(np.zeros((3, 3)))
    bias.data[0] = -np.inf
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    np.testing.assert_array_equal(out.data[0], 0.0)
    out.sum().backward()
    for tensor in (q, k, v, bias):
        assert np.all(np.isfinite(tensor.grad))


def test_sdpa_causal_matches_explicit_mask(rng):
    q, k, v = (leaf(rng.standard_normal((4, 3))) for _ in range(3))
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True).data
    explicit = F.scaled_dot_product_attention(q, k, v, attn_mask=np.tril(np.ones((4, 4), dtype=bool))).data
    np.testing.assert_array_equal(causal, explicit)
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 4), dtype=bool), is_causal=True)
