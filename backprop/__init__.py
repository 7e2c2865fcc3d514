"""backprop: readable, vectorized backpropagation in NumPy (dense, convolutional, recurrent and
attention layers)."""

from . import (
    callbacks,
    data,
    inference,
    initializers,
    landscape,
    layers,
    losses,
    optimizers,
    pruning,
    regularization,
    schedules,
    structured,
    uncertainty,
)
from ._version import __version__ as __version__
from .callbacks import Callback, CSVLogger, EarlyStopping, History
from .cartography import Cartography
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .gradcheck import GradientCheck, GradientReport, check_gradients
from .io import ModelFileError, load, register_kind, save
from .landscape import TrajectoryRecorder
from .layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    LearnedPositionalEncoding,
    Masking,
    MaxPool1D,
    MaxPool2D,
    MultiHeadSelfAttention,
    PReLU,
    RandomShift2D,
    ReLU,
    Reshape,
    Residual,
    SequencePool,
    Sigmoid,
    SiLU,
    SinusoidalPositionalEncoding,
    Softmax,
    Softplus,
    Standardize,
    Tanh,
    register_layer,
)
from .lbfgs import LBFGS
from .losses import (
    BinaryCrossEntropy,
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    Poisson,
    SequenceCrossEntropy,
    SoftmaxCrossEntropy,
)
from .lr_finder import LRFinderResult, lr_find
from .memory import keep_freed_memory
from .model import Sequential
from .monitors import ActivationRecorder, GradientMonitor, UpdateRatioMonitor
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .progress import ProgressBar
from .schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseScaling,
    ReduceLROnPlateau,
    Schedule,
    StepDecay,
)
from .trainer import Trainer, TrainingDivergedError
from .uncertainty import (
    MCPrediction,
    TemperatureScaling,
    expected_calibration_error,
    mc_dropout_predict,
    reliability_curve,
)
from .view import TrainingView

PLOTS = (
    "plot_activations",
    "plot_dead_relu",
    "plot_decision_boundary",
    "plot_first_layer",
    "plot_gradient_norms",
    "plot_history",
    "plot_update_ratio",
    "plot_weights",
)


def __getattr__(name: str):
    """Names imported on first use. The scikit-learn estimators: importing scikit-learn takes
    seconds, which ``import backprop`` and the command line should not pay. ``load_config`` and
    ``ConfigError`` live in the application (:mod:`backprop.app`), which the library never
    imports; so do the ``plot_*`` figures (matplotlib loads on the first one)."""
    if name in ("MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name in PLOTS:  # matplotlib loads on the first figure, never on `import backprop`
        from .app import plots

        return getattr(plots, name)
    if name in ("load_config", "ConfigError"):
        from .app import config

        return getattr(config, name)
    raise AttributeError(f"module 'backprop' has no attribute {name!r}")


__all__ = [
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
    "MLPClassifier",
    "MLPRegressor",
    "NeuralNetClassifier",
    "NeuralNetRegressor",
    *PLOTS,
    "ActivationRecorder",
    "UpdateRatioMonitor",
    "callbacks",
    "data",
    "inference",
    "initializers",
    "layers",
    "losses",
    "optimizers",
    "regularization",
    "schedules",
    "pruning",
    "structured",
    "Callback",
    "CSVLogger",
    "EarlyStopping",
    "GradientMonitor",
    "History",
    "ProgressBar",
    "GradientCheck",
    "GradientReport",
    "check_gradients",
    "keep_freed_memory",
    "ELU",
    "GELU",
    "BatchNorm",
    "Dense",
    "Dropout",
    "RandomShift2D",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "PReLU",
    "ReLU",
    "Residual",
    "register_layer",
    "Sigmoid",
    "SiLU",
    "Softmax",
    "Softplus",
    "Standardize",
    "Tanh",
    "Embedding",
    "Masking",
    "SequencePool",
    "RNN",
    "LSTM",
    "GRU",
    "MultiHeadSelfAttention",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "SequenceCrossEntropy",
    "LBFGS",
    "BinaryCrossEntropy",
    "Huber",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Poisson",
    "SoftmaxCrossEntropy",
    "Sequential",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "InverseScaling",
    "ReduceLROnPlateau",
    "Schedule",
    "StepDecay",
    "Trainer",
    "TrainingView",
    "TrainingDivergedError",
    # files, checkpoints and configs
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "ConfigError",
    "load_config",
    "ModelFileError",
    "load",
    "register_kind",
    "save",
    # tools for a training run: learning rate, landscape, uncertainty, training dynamics
    "landscape",
    "uncertainty",
    "Cartography",
    "LRFinderResult",
    "lr_find",
    "MCPrediction",
    "TemperatureScaling",
    "TrajectoryRecorder",
    "expected_calibration_error",
    "mc_dropout_predict",
    "reliability_curve",
]
