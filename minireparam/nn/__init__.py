"""Neural-network layers, losses and initializers with PyTorch's names and state-dict keys.

Layers are built from differentiable ops, so their gradients come from the tape; the
recurrent layers also have fused sequence ops (``rnn_sequence``). Importing this package
registers a gradcheck case for every layer, cell and loss in the op registry.
"""
from . import functional, init, utils
from .attention import MultiheadAttention
from .layers import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Embedding, GELU, Identity, LayerNorm, Linear, LogSoftmax,
    MSELoss, NLLLoss, ReLU, Sigmoid, Softmax, Tanh,
)
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell
from .transformer import TransformerBlock, TransformerEncoderLayer

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
    "Linear", "Embedding", "LayerNorm", "Dropout", "Identity",
    "ReLU", "Tanh", "Sigmoid", "GELU", "Softmax", "LogSoftmax",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase",
    "MultiheadAttention", "TransformerBlock", "TransformerEncoderLayer",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss",
    "functional", "init", "utils",
]

from . import cases  # noqa: E402,F401  (registers a gradcheck case for every layer and loss)
