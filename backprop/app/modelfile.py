"""A run's model file as the command line reads it: ``bp.load_file`` plus the checks on what
evaluate, predict and plot take from it (the metadata and preprocessing arrays that
``experiment.save_model`` writes), so a malformed or hostile file is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import schemas
from ..io import ModelFile, ModelFileError, load_file
from ..model import Sequential
from .config import ConfigError

METADATA = schemas.table(
    {
        "task": schemas.text(["classification", "regression"]),
        "classes": schemas.optional(schemas.list_of(schemas.label)),
        "image_shape": schemas.optional(schemas.list_of(schemas.integer(1))),
        "n_features": schemas.integer(1),
    },
    optional=["task", "classes", "image_shape", "n_features"],
    extra=True,
)


def checked_model_file(path: str | Path) -> ModelFile:
    """``load_file(path)`` plus what evaluate and predict rely on: a Sequential, metadata of the
    right kinds, preprocessing arrays of its widths, and one class name per class it outputs."""
    mf = load_file(path)
    if not isinstance(mf.obj, Sequential) or mf.obj.in_shape is None:
        raise ConfigError(
            f"{path}: holds a {type(mf.obj).__name__}; evaluate and predict take the model.npz "
            "of a `backprop train` run (load other files with bp.load)"
        )
    schemas.check(mf.metadata, METADATA, path, "metadata")
    in_shape, n_out = tuple(mf.obj.in_shape), mf.obj.n_outputs
    for key, shape in (("x_mean", in_shape), ("x_scale", in_shape)) + (
        ("y_mean", (n_out,)),
        ("y_scale", (n_out,)),
    ):
        v = mf.extras.get(key)
        if v is None:
            continue
        scale = key.endswith("scale")
        ok = v.shape == shape and v.dtype.kind == "f" and bool(np.all(np.isfinite(v)))
        if not ok or (scale and np.any(v <= 0)):
            what = shape[0] if len(shape) == 1 else f"{shape} of"
            raise ModelFileError(
                f"{path}: extra/{key} must hold {what} finite numbers{' > 0' if scale else ''} "
                f"(the model's width), got {v.dtype} {v.shape}"
            )
    if mf.metadata.get("task") == "classification":
        classes, k = mf.metadata.get("classes"), 2 if n_out == 1 else n_out
        if not isinstance(classes, list) or len(classes) != k:
            raise ModelFileError(
                f"{path}: metadata.classes must name the {k} classes of the model's {n_out} "
                f"outputs, got {classes!r}"
            )
    return mf
