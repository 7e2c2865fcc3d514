"""backprop: readable, vectorized backpropagation for multi-layer perceptrons in NumPy."""

from . import initializers, layers, losses, regularization
from .gradcheck import GradientCheck, GradientReport, check_gradients
from .layers import (
    ELU,
    GELU,
    BatchNorm,
    Dense,
    Dropout,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .losses import (
    BinaryCrossEntropy,
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCrossEntropy,
)
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "initializers",
    "layers",
    "losses",
    "regularization",
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
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "SoftmaxCrossEntropy",
    "BinaryCrossEntropy",
    "Sequential",
    "check_gradients",
    "GradientReport",
    "GradientCheck",
]
