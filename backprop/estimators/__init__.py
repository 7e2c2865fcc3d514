"""scikit-learn-compatible estimators: thin adapters over Sequential + Trainer.

========================  ===============================================================
module                    concept
========================  ===============================================================
base.py                   BaseMLP: validation, building the model, handing it to Trainer
mlp_params.py             BaseMLP's parameter checks, solvers and activations
classifier.py             MLPClassifier (label encoding, probabilities)
regressor.py              MLPRegressor (squared error, Poisson)
neuralnet.py              NeuralNetClassifier / NeuralNetRegressor over any layer stack
losses.py                 scikit-learn's loss values and gradients, as backprop Losses
conventions.py            RandomState draws: init, split, shuffles; parameter checks
monitor.py                the Trainer callback with scikit-learn's per-epoch bookkeeping
persistence.py            bp.save / bp.load for fitted estimators (the io kind registry)
========================  ===============================================================
"""

from . import persistence  # noqa: F401  (registers the estimators with bp.save / bp.load)
from .classifier import MLPClassifier
from .neuralnet import NeuralNetClassifier, NeuralNetRegressor
from .regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]
