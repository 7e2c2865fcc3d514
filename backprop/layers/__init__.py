"""Layers: the :class:`Layer` protocol and every built-in layer, plus the name registry."""

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
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .masking import Masking, SequencePool
from .normalization import BatchNorm, LayerNorm

#: Layer types by class name: the only way a saved model or a config names a layer.
REGISTRY: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Identity,
        Sigmoid,
        Tanh,
        ReLU,
        LeakyReLU,
        ELU,
        PReLU,
        GELU,
        SiLU,
        Softplus,
        Softmax,
        Dropout,
        BatchNorm,
        LayerNorm,
        # sequences (issue 14)
        Embedding,
        Masking,
        SequencePool,
        RNN,
        LSTM,
        GRU,
        MultiHeadSelfAttention,
        SinusoidalPositionalEncoding,
        LearnedPositionalEncoding,
    )
}


def get(name: str) -> type[Layer]:
    """Return the layer class called ``name``; an unknown name lists the valid ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown layer type {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


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
    "REGISTRY",
    "get",
]
