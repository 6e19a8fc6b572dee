"""Gradcheck cases for every function in ``nn.functional`` and every layer, cell and loss.

Layer cases gradcheck the whole module: each parameter, the inputs and the initial states
become inputs of one function (through ``utils.substituted_tensors``), so the check
covers every gradient, not one weight. Sizes are small so that each case runs in well
under a second. Layers run in eval mode (no dropout), except in the dropout cases, where
the mask comes from a generator that is re-seeded on every call.
"""
import numpy as np

from .. import random as _random
from ..ops.registry import Case, register
from ..tensor import Tensor
from . import functional as F
from .attention import MultiheadAttention
from .layers import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Embedding, GELU, Identity, LayerNorm, Linear, LogSoftmax,
    MSELoss, NLLLoss, ReLU, Sigmoid, Softmax, Tanh,
)
from .module import Sequential
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell
from .rnn_sequence import gru_sequence, lstm_sequence
from .transformer import TransformerBlock
from .utils import substituted_tensors


def _flatten(outputs):
    """Return the Tensors in a nested tuple of outputs (None entries dropped)."""
    if isinstance(outputs, Tensor):
        return (outputs,)
    flat = []
    for item in outputs:
        if item is not None:
            flat.extend(_flatten(item))
    return tuple(flat)


def _generator(draw):
    return _random.Generator(int(draw.rng.integers(2 ** 31)))


def _module_case(module, inputs, description, call=None):
    """Build a Case whose inputs are every parameter of ``module`` (float64) followed by ``inputs``."""
    module.double().eval()
    names = [name for name, _ in module.named_parameters()]
    arrays = [param.data.copy() for param in module.parameters()]

    def function(*tensors):
        substitutes = dict(zip(names, tensors[:len(names)]))
        rest = tensors[len(names):]
        with substituted_tensors(module, substitutes):
            outputs = call(module, *rest) if call is not None else module(*rest)
        return _flatten(outputs)

    return Case(function, arrays + list(inputs), f"{type(module).__name__}: {description}")


# -- functional ---------------------------------------------------------------------------


def _elementwise(function, low=-2.0, high=2.0, away_from=()):
    def build(draw):
        x = draw.array(draw.shape(), low, high, away_from)
        return Case(function, [x], f"shape {x.shape}")

    return build


def _build_gelu(draw):
    approximate = draw.sample(["none", "tanh"])
    x = draw.array(draw.shape(), -3.0, 3.0)
    return Case(lambda t: F.gelu(t, approximate=approximate), [x], f"approximate={approximate}")


def _build_softmax_family(function):
    def build(draw):
        x = draw.array(draw.shape(min_dims=1), -3.0, 3.0)
        axis = draw.integers(-x.ndim, x.ndim - 1)
        if draw.boolean():
            return Case(lambda t: function(t, dim=axis), [x], f"shape {x.shape} dim={axis}")
        return Case(lambda t: function(t, axis=axis), [x], f"shape {x.shape} axis={axis}")

    return build


def _build_dropout(draw):
    x = draw.array(draw.shape(min_dims=1))
    p = draw.sample([0.0, 0.3, 0.7])
    seed = int(draw.rng.integers(2 ** 31))
    return Case(lambda t: F.dropout(t, p, True, _random.Generator(seed)), [x], f"p={p} shape {x.shape}")


def _build_linear(draw):
    in_features, out_features = draw.integers(1, 3), draw.integers(1, 3)
    x = draw.array(draw.shape(min_dims=1, max_dims=3, max_side=3)[:-1] + (in_features,))
    w = draw.array((out_features, in_features))
    if draw.boolean():
        b = draw.array((out_features,))
        return Case(F.linear, [x, w, b], f"x {x.shape} with bias")
    return Case(F.linear, [x, w], f"x {x.shape} without bias")


def _build_embedding(draw):
    count, dim = draw.integers(2, 4), draw.integers(1, 3)
    weight = draw.array((count, dim))
    padding_idx = draw.sample([None, 0, -1])
    # The padding row gets no gradient by definition, which is not the derivative that central
    # differences measure. So the indices avoid it here, and a unit test checks that row.
    low, high = (1, count) if padding_idx == 0 else (0, count - 1 if padding_idx == -1 else count)
    indices = draw.rng.integers(low, high, size=draw.shape(min_dims=1, max_dims=2))
    return Case(lambda w: F.embedding(indices, w, padding_idx), [weight], f"indices {indices.shape} padding_idx={padding_idx}")


def _build_layer_norm(draw):
    shape = draw.shape(min_dims=1, max_dims=3, min_side=2, max_side=3)
    normalized = shape[-draw.integers(1, len(shape)):]
    x = draw.array(shape)
    has_weight, has_bias = draw.boolean(), draw.boolean()
    affine = [draw.array(normalized) for present in (has_weight, has_bias) if present]

    def function(t, *affine_parameters):
        weight = affine_parameters[0] if has_weight else None
        bias = affine_parameters[-1] if has_bias else None
        return F.layer_norm(t, normalized, weight, bias, eps=1e-5)

    return Case(function, [x] + affine, f"x {shape} normalized {normalized} weight={has_weight} bias={has_bias}")


def _class_input(draw):
    """Logits of shape (C,), (N, C) or (N, C, d) and matching index targets."""
    classes = draw.integers(2, 4)
    layout = draw.sample(["vector", "matrix", "spatial"])
    if layout == "vector":
        shape, target_shape = (classes,), ()
    elif layout == "matrix":
        batch = draw.integers(1, 4)
        shape, target_shape = (batch, classes), (batch,)
    else:
        batch, extent = draw.integers(1, 2), draw.integers(1, 3)
        shape, target_shape = (batch, classes, extent), (batch, extent)
    logits = draw.array(shape, -3.0, 3.0)
    target = draw.rng.integers(0, classes, size=target_shape)
    return logits, target, classes


def _build_cross_entropy(draw):
    logits, target, classes = _class_input(draw)
    reduction = draw.sample(["mean", "sum", "none"])
    smoothing = draw.sample([0.0, 0.1])
    ignore = target.ndim > 0 and target.size > 1 and draw.boolean()
    if ignore:
        target = target.copy()
        target.flat[0] = -100
    kind = draw.sample(["fused", "weighted", "probabilities"])
    if kind == "probabilities":
        batch_shape = target.shape  # the logits' shape without the class axis
        probabilities = draw.rng.dirichlet(np.ones(classes), size=batch_shape or None)
        if logits.ndim > 1:
            probabilities = np.moveaxis(probabilities, -1, 1)
        return Case(lambda x, p: F.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing),
                    [logits, probabilities], f"probability target {logits.shape} reduction={reduction}")
    if kind == "weighted":
        weight = draw.array((classes,), 0.5, 2.0)
        return Case(lambda x, w: F.cross_entropy(x, target, w, reduction=reduction, label_smoothing=smoothing),
                    [logits, weight], f"weighted {logits.shape} reduction={reduction} smoothing={smoothing}")
    return Case(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing), [logits],
                f"fused {logits.shape} reduction={reduction} smoothing={smoothing} ignore={ignore}")


def _build_nll_loss(draw):
    logits, target, classes = _class_input(draw)
    reduction = draw.sample(["mean", "sum", "none"])
    if draw.boolean():
        weight = draw.array((classes,), 0.5, 2.0)
        return Case(lambda x, w: F.nll_loss(x, target, w, reduction=reduction), [logits, weight],
                    f"weighted {logits.shape} reduction={reduction}")
    return Case(lambda x: F.nll_loss(x, target, reduction=reduction), [logits], f"{logits.shape} reduction={reduction}")


def _build_mse_loss(draw):
    shape = draw.shape(min_dims=1)
    reduction = draw.sample(["mean", "sum", "none"])
    return Case(lambda a, b: F.mse_loss(a, b, reduction=reduction), [draw.array(shape), draw.array(shape)],
                f"{shape} reduction={reduction}")


def _build_binary_cross_entropy(draw):
    shape = draw.shape(min_dims=1)
    reduction = draw.sample(["mean", "sum", "none"])
    p, t = draw.array(shape, 0.05, 0.95), draw.array(shape, 0.0, 1.0)
    if draw.boolean():
        w = draw.array(shape, 0.5, 2.0)
        return Case(lambda a, b, c: F.binary_cross_entropy(a, b, c, reduction=reduction), [p, t, w],
                    f"weighted {shape} reduction={reduction}")
    return Case(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), [p, t], f"{shape} reduction={reduction}")


def _build_binary_cross_entropy_with_logits(draw):
    shape = draw.shape(min_dims=1)
    reduction = draw.sample(["mean", "sum", "none"])
    z, t = draw.array(shape, -4.0, 4.0), draw.array(shape, 0.0, 1.0)
    kind = draw.sample(["plain", "weight", "pos_weight"])
    if kind == "pos_weight":
        pos_weight = draw.array(shape[-1:], 0.5, 2.0)
        return Case(lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, pos_weight=c),
                    [z, t, pos_weight], f"pos_weight {shape} reduction={reduction}")
    if kind == "weight":
        w = draw.array(shape, 0.5, 2.0)
        return Case(lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, c, reduction=reduction), [z, t, w],
                    f"weighted {shape} reduction={reduction}")
    return Case(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), [z, t],
                f"{shape} reduction={reduction}")


def _build_scaled_dot_product_attention(draw):
    batch, heads = draw.integers(1, 2), draw.integers(1, 2)
    query_length, key_length, size = draw.integers(1, 3), draw.integers(1, 3), draw.integers(1, 3)
    q = draw.array((batch, heads, query_length, size))
    k = draw.array((batch, heads, key_length, size))
    v = draw.array((batch, heads, key_length, draw.integers(1, 3)))
    kind = draw.sample(["none", "causal", "boolean", "float"])
    if kind == "causal":
        return Case(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), [q, k, v], "is_causal")
    if kind == "boolean":
        allowed = draw.rng.random((query_length, key_length)) < 0.6
        allowed[0] = False  # one query row that may attend to nothing
        return Case(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=allowed), [q, k, v],
                    "boolean mask with a fully masked row")
    if kind == "float":
        bias = draw.array((query_length, key_length))
        return Case(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m), [q, k, v, bias],
                    "float mask (differentiable)")
    return Case(F.scaled_dot_product_attention, [q, k, v], "no mask")


# -- layers -------------------------------------------------------------------------------


def _build_linear_layer(draw):
    module = Linear(draw.integers(1, 3), draw.integers(1, 3), bias=draw.boolean(), generator=_generator(draw))
    x = draw.array((draw.integers(1, 3), module.in_features))
    return _module_case(module, [x], f"x {x.shape}")


def _build_embedding_layer(draw):
    module = Embedding(4, 2, padding_idx=draw.sample([None, 3]), generator=_generator(draw))
    indices = draw.rng.integers(0, 3, size=(2, 3))  # not the padding row (see _build_embedding)
    return _module_case(module, [], "indices (2, 3)", call=lambda m: m(indices))


def _build_layer_norm_layer(draw):
    module = LayerNorm(3, bias=draw.boolean())
    module.weight.data[...] = draw.array((3,), 0.5, 1.5)  # away from the default ones
    x = draw.array((2, 3))
    return _module_case(module, [x], "x (2, 3)")


def _build_dropout_layer(draw):
    seed = int(draw.rng.integers(2 ** 31))
    module = Dropout(draw.sample([0.2, 0.5]))
    x = draw.array((2, 3))

    def call(m, t):
        m.train()
        m.generator = _random.Generator(seed)  # the same mask on every call
        return m(t)

    return _module_case(module, [x], f"p={module.p}", call=call)


def _build_activation_layer(factory, low=-2.0, high=2.0, away_from=()):
    def build(draw):
        module = factory()
        x = draw.array((2, 3), low, high, away_from)
        return _module_case(module, [x], "x (2, 3)")

    return build


def _build_sequential(draw):
    generator = _generator(draw)
    module = Sequential(Linear(2, 3, generator=generator), Tanh(), Linear(3, 1, generator=generator))
    return _module_case(module, [draw.array((2, 2))], "Linear, Tanh, Linear")


def _recurrent_case(draw, layer_type, implementation=None):
    num_layers = draw.integers(1, 2)
    options = dict(
        num_layers=num_layers, bias=draw.boolean(), batch_first=draw.boolean(),
        bidirectional=num_layers == 1 and draw.boolean(), generator=_generator(draw),
    )  # two layers or two directions, not both, to keep each case fast
    if implementation is not None:
        options["implementation"] = implementation
    if layer_type is RNN:
        options["nonlinearity"] = draw.sample(["tanh", "relu"])
    input_size, hidden_size = 2, 2
    module = layer_type(input_size, hidden_size, **options)
    steps, batch = draw.integers(1, 3), draw.integers(1, 2)
    unbatched = draw.integers(0, 4) == 0
    if unbatched:
        x = draw.array((steps, input_size))
        state_shape = (module.num_layers * module.num_directions, hidden_size)
    else:
        x = draw.array((batch, steps, input_size) if module.batch_first else (steps, batch, input_size))
        state_shape = (module.num_layers * module.num_directions, batch, hidden_size)
    description = f"{options} x {x.shape}"
    if layer_type is LSTM:
        h0, c0 = draw.array(state_shape), draw.array(state_shape)
        return _module_case(module, [x, h0, c0], description, call=lambda m, t, h, c: m(t, (h, c)))
    return _module_case(module, [x, draw.array(state_shape)], description)


def _build_recurrent(layer_type, implementation=None):
    def build(draw):
        return _recurrent_case(draw, layer_type, implementation)

    return build


def _build_cell(cell_type):
    def build(draw):
        options = {"bias": draw.boolean(), "generator": _generator(draw)}
        if cell_type is RNNCell:
            options["nonlinearity"] = draw.sample(["tanh", "relu"])
        module = cell_type(2, 3, **options)
        batched = draw.boolean()
        x = draw.array((2, 2) if batched else (2,))
        state_shape = (2, 3) if batched else (3,)
        if cell_type is LSTMCell:
            return _module_case(module, [x, draw.array(state_shape), draw.array(state_shape)], f"batched={batched}",
                                call=lambda m, t, h, c: m(t, (h, c)))
        return _module_case(module, [x, draw.array(state_shape)], f"batched={batched}")

    return build


def _build_lstm_sequence(draw):
    steps, batch, features, hidden = draw.integers(1, 3), draw.integers(1, 2), 2, 2
    arrays = [draw.array((steps, batch, features)), draw.array((batch, hidden)), draw.array((batch, hidden)),
              draw.array((4 * hidden, features)), draw.array((4 * hidden, hidden))]
    if draw.boolean():
        arrays += [draw.array((4 * hidden,)), draw.array((4 * hidden,))]
    return Case(lstm_sequence, arrays, f"T={steps} B={batch} bias={len(arrays) == 7}")


def _build_gru_sequence(draw):
    steps, batch, features, hidden = draw.integers(1, 3), draw.integers(1, 2), 2, 2
    arrays = [draw.array((steps, batch, features)), draw.array((batch, hidden)),
              draw.array((3 * hidden, features)), draw.array((3 * hidden, hidden))]
    if draw.boolean():
        arrays += [draw.array((3 * hidden,)), draw.array((3 * hidden,))]
    return Case(gru_sequence, arrays, f"T={steps} B={batch} bias={len(arrays) == 6}")


def _attention_masks(draw, batch, query_length, key_length, heads):
    """Random MultiheadAttention masks (True = blocked), sometimes with a fully masked row."""
    kwargs = {}
    kind = draw.sample(["none", "causal", "padding", "boolean", "float"])
    if kind == "causal":
        kwargs["attn_mask"] = ~np.tril(np.ones((query_length, key_length), dtype=bool))
    elif kind == "padding":
        padding = draw.rng.random((batch, key_length)) < 0.4
        padding[0] = True  # the first batch element may attend to nothing
        kwargs["key_padding_mask"] = padding
    elif kind == "boolean":
        kwargs["attn_mask"] = draw.rng.random((batch * heads, query_length, key_length)) < 0.4
    elif kind == "float":
        kwargs["attn_mask"] = draw.rng.uniform(-1.0, 1.0, (query_length, key_length))
    return kind, kwargs


def _build_multihead_attention(draw):
    embed_dim, heads = 4, draw.sample([1, 2])
    options = dict(
        bias=draw.boolean(), batch_first=draw.boolean(), add_bias_kv=draw.integers(0, 3) == 0,
        add_zero_attn=draw.integers(0, 3) == 0, generator=_generator(draw),
    )
    if draw.integers(0, 3) == 0:
        options.update(kdim=3, vdim=2)
    module = MultiheadAttention(embed_dim, heads, **options)
    batch, query_length, key_length = draw.integers(1, 2), draw.integers(1, 3), draw.integers(1, 3)
    self_attention = "kdim" not in options and draw.boolean()
    if self_attention:
        key_length = query_length
    kind, masks = _attention_masks(draw, batch, query_length, key_length, heads)
    need_weights, average = draw.boolean(), draw.boolean()

    def layout(length, features):
        return (batch, length, features) if module.batch_first else (length, batch, features)

    query = draw.array(layout(query_length, embed_dim))
    description = f"{options} masks={kind} self_attention={self_attention} need_weights={need_weights}"
    if self_attention:
        return _module_case(module, [query], description,
                            call=lambda m, x: m(x, x, x, need_weights=need_weights, average_attn_weights=average,
                                                **masks))
    key, value = draw.array(layout(key_length, module.kdim)), draw.array(layout(key_length, module.vdim))
    return _module_case(module, [query, key, value], description,
                        call=lambda m, q, k, v: m(q, k, v, need_weights=need_weights, average_attn_weights=average,
                                                  **masks))


def _build_transformer_block(draw):
    options = dict(
        dim_feedforward=3, dropout=0.0, activation=draw.sample(["relu", "gelu", "gelu_tanh"]),
        batch_first=draw.boolean(), norm_first=draw.boolean(), generator=_generator(draw),
    )
    module = TransformerBlock(4, 2, **options)
    batch, length = draw.integers(1, 2), draw.integers(1, 3)
    kind, masks = _attention_masks(draw, batch, length, length, 2)
    src = draw.array((batch, length, 4) if module.batch_first else (length, batch, 4))
    renamed = {"src_mask" if key == "attn_mask" else "src_key_padding_mask": value for key, value in masks.items()}
    return _module_case(module, [src], f"{options} masks={kind}", call=lambda m, x: m(x, **renamed))


def _build_loss_module(kind):
    def build(draw):
        if kind == "cross_entropy":
            logits, target, classes = _class_input(draw)
            module = CrossEntropyLoss(label_smoothing=draw.sample([0.0, 0.1]))
            return _module_case(module, [logits], "index targets", call=lambda m, x: m(x, target))
        if kind == "nll":
            logits, target, classes = _class_input(draw)
            return _module_case(NLLLoss(), [logits], "index targets", call=lambda m, x: m(x, target))
        shape = draw.shape(min_dims=1)
        if kind == "mse":
            return _module_case(MSELoss(), [draw.array(shape), draw.array(shape)], f"{shape}")
        if kind == "bce":
            return _module_case(BCELoss(), [draw.array(shape, 0.05, 0.95), draw.array(shape, 0.0, 1.0)], f"{shape}")
        return _module_case(BCEWithLogitsLoss(), [draw.array(shape, -4.0, 4.0), draw.array(shape, 0.0, 1.0)], f"{shape}")

    return build


def _register_all():
    functional = {
        "relu": (_elementwise(F.relu, away_from=(0.0,)), "away from the kink at 0", True),
        "gelu": (_build_gelu, "all reals", True),
        "sigmoid": (_elementwise(F.sigmoid, -4.0, 4.0), "all reals", True),
        "tanh": (_elementwise(F.tanh, -3.0, 3.0), "all reals", True),
        "softmax": (_build_softmax_family(F.softmax), "all reals", True),
        "log_softmax": (_build_softmax_family(F.log_softmax), "all reals", True),
        "dropout": (_build_dropout, "fixed mask per case", True),
        "linear": (_build_linear, "all reals", True),
        "embedding": (_build_embedding, "integer indices", True),
        "layer_norm": (_build_layer_norm, "rows with at least 2 elements", True),
        "cross_entropy": (_build_cross_entropy, "logits in [-3, 3]", True),
        "nll_loss": (_build_nll_loss, "all reals", True),
        "mse_loss": (_build_mse_loss, "all reals", True),
        "binary_cross_entropy": (_build_binary_cross_entropy, "p in [0.05, 0.95]", True),
        "binary_cross_entropy_with_logits": (_build_binary_cross_entropy_with_logits, "all reals", True),
        "scaled_dot_product_attention": (_build_scaled_dot_product_attention, "all reals", True),
    }
    for name, (build, domain, second_order) in functional.items():
        register(f"nn.functional.{name}", build, domain=domain, second_order=second_order)

    register("nn.rnn_sequence.lstm_sequence", _build_lstm_sequence, second_order=False)
    register("nn.rnn_sequence.gru_sequence", _build_gru_sequence, second_order=False)

    layers = {
        "Linear": _build_linear_layer,
        "Embedding": _build_embedding_layer,
        "LayerNorm": _build_layer_norm_layer,
        "Dropout": _build_dropout_layer,
        "Identity": _build_activation_layer(Identity),
        "ReLU": _build_activation_layer(ReLU, away_from=(0.0,)),
        "Tanh": _build_activation_layer(Tanh),
        "Sigmoid": _build_activation_layer(Sigmoid),
        "GELU": _build_activation_layer(GELU),
        "Softmax": _build_activation_layer(Softmax),
        "LogSoftmax": _build_activation_layer(LogSoftmax),
        "Sequential": _build_sequential,
        "RNN": _build_recurrent(RNN),
        "RNNCell": _build_cell(RNNCell),
        "LSTMCell": _build_cell(LSTMCell),
        "GRUCell": _build_cell(GRUCell),
        "MultiheadAttention": _build_multihead_attention,
        "CrossEntropyLoss": _build_loss_module("cross_entropy"),
        "NLLLoss": _build_loss_module("nll"),
        "MSELoss": _build_loss_module("mse"),
        "BCELoss": _build_loss_module("bce"),
        "BCEWithLogitsLoss": _build_loss_module("bce_with_logits"),
    }
    for name, build in layers.items():
        register(f"nn.{name}", build, domain="eval mode, random sizes and options")
    register("nn.TransformerBlock", _build_transformer_block, domain="relu kinks have probability 0",
             exports=("nn.TransformerBlock", "nn.TransformerEncoderLayer"))

    # The fused sequence ops are once-differentiable; the cell implementation is not.
    register("nn.LSTM", _build_recurrent(LSTM, "fused"), second_order=False)
    register("nn.GRU", _build_recurrent(GRU, "fused"), second_order=False)
    register("nn.LSTM[cells]", _build_recurrent(LSTM, "cells"), exports=("nn.LSTM",))
    register("nn.GRU[cells]", _build_recurrent(GRU, "cells"), exports=("nn.GRU",))


_register_all()
