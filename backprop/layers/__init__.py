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
from .augment import RandomShift2D
from .base import Layer
from .cells import GRU, LSTM, RNN
from .containers import Residual
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .masking import Masking, SequencePool
from .normalization import BatchNorm, LayerNorm
from .pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    MaxPool1D,
    MaxPool2D,
)
from .preprocessing import Standardize
from .registry import REGISTRY, get, layer_from_spec, layer_spec, register_layer
from .reshape import Flatten, Reshape

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
    "RandomShift2D",
    "BatchNorm",
    "LayerNorm",
    "Standardize",
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
    "Conv1D",
    "Conv2D",
    "MaxPool1D",
    "MaxPool2D",
    "AvgPool1D",
    "AvgPool2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "Flatten",
    "Reshape",
    "REGISTRY",
    "get",
    "layer_from_spec",
    "layer_spec",
    "register_layer",
]
