"""Layers: the :class:`Layer` protocol, every built-in layer, containers, and the registry."""

from .activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiHeadSelfAttention
from .base import Layer
from .cells import GRU, LSTM, RNN
from .containers import Residual
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .masking import Masking, SequencePool
from .normalization import BatchNorm, LayerNorm
from .registry import REGISTRY, get, layer_from_spec, layer_spec, register_layer

__all__ = [
    "Layer",
    "Dense",
    "Identity",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "GELU",
    "SiLU",
    "Softplus",
    "Softmax",
    "Dropout",
    "BatchNorm",
    "LayerNorm",
    "Embedding",
    "Masking",
    "SequencePool",
    "RNN",
    "LSTM",
    "GRU",
    "MultiHeadSelfAttention",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "Residual",
    "REGISTRY",
    "get",
    "layer_from_spec",
    "layer_spec",
    "register_layer",
]
