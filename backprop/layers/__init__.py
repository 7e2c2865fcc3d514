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
from .base import Layer
from .containers import Residual
from .dense import Dense
from .dropout import Dropout
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
    "Residual",
    "REGISTRY",
    "get",
    "layer_from_spec",
    "layer_spec",
    "register_layer",
]
