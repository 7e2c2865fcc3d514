"""Sequential: a stack of layers that owns their parameters in two flat buffers.

Shapes. ``forward`` maps ``(n, *in_shape)`` to ``(n, *out_shape)``; ``backward`` takes dL/dy of
the output's shape and returns dL/dX of the input's shape. The model is *built* (every layer's
``build`` called in turn, parameters allocated and initialized) at construction when the input
shape is known: given as ``input_shape``, or implied by the first layer (``Dense(64, 10)``
implies ``(64,)``). Otherwise it is built by the first ``forward`` or ``fit``, from the data.

Storage. Every parameter of every layer is a view into one contiguous array
``flat_parameters`` (and its gradient into ``flat_gradients``), laid out weights first, with
names ``"index.key"`` (``"4.0.W"`` inside a container): the layout and the access by name are
:class:`backprop.parameters.FlatParameters`, a mixin of ``Sequential``.

Randomness. ``seed`` (int, Generator or None) is split into two independent streams: one draws
the initial weights, the other the dropout masks. Turning dropout on therefore never changes the
initial weights, and building at construction or at the first forward gives the same weights.
A ``Sequential`` (re-)initializes every layer it is given from its own seed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import checks
from . import sparse as sparse_mod
from .data import check_range
from .layers import Layer
from .layers.base import Shape, as_float_dtype, as_shape
from .layers.containers import named_layers
from .layers.masking import forward_with_mask
from .layers.registry import not_a_layer_hint
from .parameters import FlatParameters

SeedLike = int | np.random.Generator | None


def spawn_generators(seed: SeedLike, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one seed (an int, a Generator, or None for OS entropy)."""
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(n))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


class Sequential(FlatParameters):
    """Layers applied in order, with their parameters in one flat buffer.

    Parameters
    ----------
    layers : Iterable[Layer]
        the layers, in order.
    input_shape : Any, default None
        the per-sample input shape (no batch axis); None to take it from the first
        layer when it fixes one, else from the data at the first forward or fit.
    dtype : Any, default 'float32'
        "float32" (default) or "float64": the dtype of every parameter and activation.
    seed : SeedLike, default None
        int, ``np.random.Generator`` or None: initial weights and dropout masks.

    Raises
    ------
    ValueError
        when a layer cannot take the shape the previous one outputs (the message names
        both layers and the shapes).

    """

    _held: list | None = None  # the last backward's layer arrays, until their next forward

    def __init__(
        self,
        layers: Iterable[Layer],
        input_shape: Any = None,
        dtype: Any = "float32",
        seed: SeedLike = None,
    ):
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                hint = not_a_layer_hint(layer)
                raise TypeError(f"layer {i} is {layer!r}, not a backprop Layer{hint}")
            if not all(hasattr(layer, a) for a in ("params", "grads", "buffers", "trainable")):
                raise TypeError(
                    f"layer {i} ({type(layer).__name__}) has no params/grads/buffers: "
                    "its __init__ must call super().__init__()"
                )
        seen: dict[int, str] = {}  # one object at two places would hold one place's parameters
        for name, layer, _ in named_layers(self.layers):  # and cache one place's forward
            if id(layer) in seen:
                raise ValueError(
                    f"layer {name} ({type(layer).__name__}) is the same object as layer "
                    f"{seen[id(layer)]}: weights are not shared, give each place its own layer"
                )
            seen[id(layer)] = name
        self.dtype = as_float_dtype(dtype)
        self.seed = seed if isinstance(seed, int) else None
        self._init_rng, self.rng = spawn_generators(seed, 2)
        self.in_shape: Shape | None = None
        self.out_shape: Shape | None = None
        self.n_weights = 0
        self.flat_parameters = np.zeros(0, dtype=self.dtype)
        self.flat_gradients = np.zeros(0, dtype=self.dtype)
        self._offsets: dict[str, tuple[int, int]] = {}
        # Pruning (issue 15, backprop.pruning): None, or a bool (n_weights,) mask; False = pruned.
        self.weight_mask: np.ndarray | None = None
        shape = input_shape if input_shape is not None else self.layers[0].default_in_shape()
        if shape is not None:
            self.build(shape)

    # -- construction -------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.out_shape is not None

    @property
    def integer_input(self) -> bool:
        """True when the first layer takes integer input (X is then passed uncast)."""
        return bool(self.layers[0].integer_input)

    def build(self, input_shape: Any) -> Shape:
        """Build every layer for ``input_shape`` (no batch axis), allocate the flat buffers and
        initialize from the model's seed; returns the output shape. A no-op once built with the
        same shape."""
        shape = as_shape(input_shape, "input_shape")
        if self.built:
            if shape != self.in_shape:
                raise ValueError(
                    f"the model was built for input shape {self.in_shape}, not {shape}"
                )
            return self.out_shape
        fresh = [lay for _, lay, _ in named_layers(self.layers) if not lay.built]
        before = [dict(vars(lay)) for lay in fresh]
        try:
            out = self._build_shapes(shape)
        except BaseException:  # no layer stays half built for a shape the model refused
            for layer, attrs in zip(fresh, before, strict=True):
                vars(layer).clear()
                vars(layer).update(attrs)
            raise
        self._allocate()
        self.in_shape, self.out_shape = shape, out
        self.reset_parameters(self._init_rng)
        return out

    def _build_shapes(self, shape: Shape) -> Shape:
        source: int | None = None  # the layer that produced the current shape
        for i, layer in enumerate(self.layers):
            try:
                out = layer.build(shape)
            except ValueError as exc:
                raise ValueError(self._mismatch(i, shape, source, exc)) from None
            if out != shape or layer.out_features is not None:
                source = i
            shape = out
        return shape

    def _mismatch(self, i: int, shape: Shape, source: int | None, exc: Exception) -> str:
        layer = self.layers[i]
        name = f"layer {i} ({type(layer).__name__})"
        src = (
            "the input"
            if source is None
            else f"layer {source} ({type(self.layers[source]).__name__})"
        )
        if layer.in_features is not None and shape[-1] != layer.in_features:
            return (
                f"{name} expects {layer.in_features} features but {src} outputs {shape[-1]} "
                f"(it expects shape (..., {layer.in_features}), {src} outputs {shape})"
            )
        return f"{name} cannot take shape {shape} from {src}: {exc}"

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Re-draw every layer's parameters from ``rng`` and reset running statistics."""
        for layer in self.layers:
            layer.reset_parameters(rng)
            layer.reset_buffers()
        self.flat_gradients.fill(0)

    # -- computation --------------------------------------------------------------------------
    def check_input(self, X: Any, name: str = "X") -> np.ndarray:
        """``X`` as an array of shape ``(n, *in_shape)`` in the model's dtype (integer input
        passes uncast when the first layer takes integers); builds the model on first use. A
        scipy.sparse ``X`` stays sparse (CSR) and needs a first layer that takes it
        (:mod:`backprop.sparse`)."""
        self._check_owned()  # another model may have taken this one's layers
        if sparse_mod.is_sparse(X):
            X = sparse_mod.as_model_input(X, self.dtype, self.layers[0], name)
            if not self.built:
                self.build(X.shape[1:])
            if X.shape[1:] != self.in_shape:
                raise self.shape_error(X.shape, name)
            return X
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
        if not self.built:
            if X.ndim < 2:
                raise ValueError(f"{name} must be at least 2-D (n_samples, ...), got {X.shape}")
            self.build(X.shape[1:])
        if X.shape[1:] != self.in_shape:
            raise self.shape_error(X.shape, name)
        if self.integer_input and X.dtype.kind in "iu":
            return X
        if X.dtype.kind == "f" and X.dtype.itemsize > self.dtype.itemsize:
            check_range(X, name, self.dtype)  # float64 values a float32 model cannot hold
        return X if X.dtype == self.dtype else X.astype(self.dtype)

    def shape_error(self, shape: tuple[int, ...], name: str = "X") -> ValueError:
        """The error for data of ``shape`` that does not fit ``(n, *in_shape)``."""
        want = self.in_shape
        if len(shape) == len(want) + 1 and shape[1:-1] == want[:-1]:
            where = f" (samples of shape {want}, got {tuple(shape[1:])})" if len(want) > 1 else ""
            return ValueError(f"{name}: expected {want[-1]} features, got {shape[-1]}{where}")
        dims = ", ".join(str(d) for d in want)
        rank = "have shape" if len(shape) == len(want) + 1 else f"be {len(want) + 1}-D"
        return ValueError(f"{name} must {rank} (n_samples, {dims}), got shape {tuple(shape)}")

    def forward(self, X: Any, training: bool = False) -> np.ndarray:
        """Output ``(n, *out_shape)`` for input ``X`` ``(n, *in_shape)``.

        ``X`` is cast to the model's dtype (a copy only when its dtype differs). A scipy.sparse
        ``X`` stays sparse (CSR) and needs a first layer that takes it (:mod:`backprop.sparse`).

        Parameters
        ----------
        X : Any
            Input ``(n, *in_shape)``.
        training : bool, default False
            Training mode: dropout on, batch statistics, caches for :meth:`backward`.

        Returns
        -------
        np.ndarray
            Output ``(n, *out_shape)`` in the model's dtype.
        """
        out, mask, held = self.check_input(X), None, self._held
        for i, layer in enumerate(self.layers):  # padding masks travel along (layers/masking.py)
            out, mask = forward_with_mask(layer, out, training, mask)
            if held is not None:
                held[i] = None  # the last step's arrays of this layer go as its new ones come
        self._held = None
        return out

    def layer_outputs(
        self, X: Any, training: bool = False
    ) -> Iterator[tuple[int, Layer, np.ndarray]]:
        """``(i, layer, output)`` of every layer in turn, computed as :meth:`forward` computes
        them (``X`` checked and cast, padding masks passed along): for the tools that read the
        activations between layers (``forward`` keeps its own loop: it is the training path)."""
        out, mask = self.check_input(X), None
        for i, layer in enumerate(self.layers):  # padding masks travel along (layers/masking.py)
            out, mask = forward_with_mask(layer, out, training, mask)
            yield i, layer, out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate dL/dy through every layer, filling each layer's ``grads``.

        Returns dL/dX, or None when ``need_input_grad`` is False (which skips the first layer's
        input-gradient product, the trainer's default).

        Parameters
        ----------
        grad_out : np.ndarray
            dL/dy ``(n, *out_shape)`` (not modified).
        need_input_grad : bool, default True
            Compute dL/dX too.

        Returns
        -------
        np.ndarray | None
            dL/dX ``(n, *in_shape)``, or None when ``need_input_grad`` is False.
        """
        # Each layer releases its cache in backward; its arrays stay referenced here until that
        # layer's next forward (or the end of Trainer.fit). Freed all at once at the end of a
        # step, they let glibc hand the heap's top back to the kernel and the next step fault
        # its pages in again (an LSTM's step: 446 page faults, against 7 this way).
        self._held = [_arrays(layer) for layer in self.layers]
        g = grad_out
        for layer in reversed(self.layers[1:]):
            g = layer.backward(g)
        if need_input_grad:
            return self.layers[0].backward(g)
        self.layers[0].backward_params_only(g)
        return None

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Inference in chunks of ``batch_size`` rows, so that only one chunk's activations are
        alive at a time; returns ``(n, *out_shape)`` in the model's dtype. ``X`` may be a
        memmap or another array-like with row slicing: it is read one chunk at a time. A
        scipy.sparse ``X`` of any format is sliced as CSR.

        Parameters
        ----------
        X : Any
            Input ``(n, *in_shape)``: an ndarray, a memmap, a row-sliceable array-like or a
            scipy.sparse matrix.
        batch_size : int, default 1024
            Rows per chunk.

        Returns
        -------
        np.ndarray
            Outputs ``(n, *out_shape)`` in the model's dtype.
        """
        batch_size = checks.positive_int("batch_size", batch_size)  # -1 left rows unwritten
        if sparse_mod.is_sparse(X):
            X = X.tocsr()  # rows are sliced below: DIA, BSR (and COO, slowly) cannot be
        elif not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X.shape) < 2:
            raise ValueError(f"X must be at least 2-D (n_samples, ...), got shape {X.shape}")
        n = X.shape[0]
        if n <= batch_size:
            return self.forward(X)
        first = self.forward(X[:batch_size])
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        out[:batch_size] = first
        for start in range(batch_size, n, batch_size):
            out[start : start + batch_size] = self.forward(X[start : start + batch_size])
        return out

    __call__ = forward

    # -- copies, description -------------------------------------------------------------------
    def copy(self, dtype: Any = None) -> Sequential:
        """An independent model with the same layers, weights and buffers (optionally re-typed)."""
        dtype = self.dtype if dtype is None else dtype
        if not self.built:
            new = copy.deepcopy(self)
            new.dtype = as_float_dtype(dtype)
            return new
        layers = copy.deepcopy(self.layers)
        new = Sequential(layers, input_shape=self.in_shape, dtype=dtype, seed=0)
        new.load_state_dict(self.state_dict())
        new.rng.bit_generator.state = copy.deepcopy(self.rng.bit_generator.state)
        new.seed = self.seed
        new.weight_mask = None if self.weight_mask is None else self.weight_mask.copy()
        return new

    def sparsity(self) -> dict[str, float]:
        """Fraction of exactly-zero weights per weight parameter (``"0.W"``...) and ``"total"``
        (see :mod:`backprop.pruning`)."""
        from .pruning import sparsity

        return sparsity(self)

    def summary(self) -> str:
        """Per-layer type (a container's children indented under it), output shape, parameter
        count, trainability (shown only for layers that have parameters) and settings, as a text
        table.

        Returns
        -------
        str
            The table, one line per layer.
        """
        rows = [("#", "layer", "output", "params", "trainable", "settings")]
        total = trainable_total = 0
        for name, layer, trainable in named_layers(self.layers):
            depth = name.count(".")
            n = sum(p.size for p in layer.params.values())
            if not layer.children():
                total += n
                trainable_total += n if trainable else 0
            status = ("yes" if trainable else "no (frozen)") if n else ""
            settings = "" if layer.children() else layer.extra_repr()
            out = "?" if layer.out_shape is None else str((None, *layer.out_shape))
            rows.append((name, "  " * depth + type(layer).__name__, out, str(n), status, settings))
        widths = [max(len(r[c]) for r in rows) for c in range(6)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
        lines.insert(1, "-" * max(len(line) for line in lines))
        lines.append(
            f"total parameters: {total} ({trainable_total} trainable), dtype {self.dtype}"
            + ("" if self.built else " (not built yet: shapes come with the first input)")
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], dtype='{self.dtype}')"


def _arrays(layer: Layer) -> Any:
    """What a layer (and its children) holds: references that keep its cache's arrays alive
    (not a convolution's: it freed its input mid-backward, where holding it adds to the peak)."""
    if not getattr(layer, "held_by_model", True):
        return None
    kids = layer.children()
    return [vars(layer).copy(), *map(_arrays, kids)] if kids else vars(layer).copy()
