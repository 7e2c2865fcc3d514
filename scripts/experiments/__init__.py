"""Guided experiments: classic behaviours of backpropagation, each built from backprop's public
API and documented in docs/experiments/NAME.md.

modes, vanishing, exploding, regularization, optimizers, initialization, transfer: each module
has ``run(out_dir, fast=False, plots=True) -> dict`` and a command line
(``python -m scripts.experiments.NAME``); ``python -m scripts.experiments`` runs them all.
"""
