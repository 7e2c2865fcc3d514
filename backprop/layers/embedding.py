"""Token embeddings and positional encodings for sequences.

``Embedding(vocab_size, dim)``: integer ids ``(n, t)`` -> ``(n, t, dim)``, ``y[i, s] = E[ids[i, s]]``
with ``E`` ``(vocab_size, dim)`` (torch: ``nn.Embedding.weight``, same shape). Backward scatters
the output gradient into the rows it came from, ``dE[v] = sum over (i, s) with ids[i, s] = v of
dy[i, s]``; there is no gradient for the ids. With ``mask_zero=True`` id 0 is padding: its
output is 0, it gets no gradient, and the layer emits the mask ``ids != 0`` (see
:mod:`.masking`).

``SinusoidalPositionalEncoding()``: ``y = x + P`` with the fixed table of Vaswani et al. (2017),
``P[s, 2j] = sin(s / 10000^(2j/d))``, ``P[s, 2j+1] = cos(s / 10000^(2j/d))``, ``(t, d)``.

``LearnedPositionalEncoding()``: ``y = x + P`` with a trained ``P`` ``(t, d)``,
initialized N(0, 0.02^2); ``dP = sum_i dy[i]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from .base import Layer, check_positive_int
from .masking import check_sequence
from .registry import register_layer


class _SequenceLayer(Layer):
    """Shape bookkeeping for layers that keep ``(t, d)``."""

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects per-sample input (t, features), got {in_shape}"
            )
        return in_shape


@register_layer
class Embedding(Layer):
    """Lookup table ``E`` ``(vocab_size, dim)``: ids ``(n, t)`` -> vectors ``(n, t, dim)``.

    Parameters
    ----------
    vocab_size : int
        number of ids; valid ids are ``0 .. vocab_size - 1``.
    dim : int
        width of each vector.
    mask_zero : bool, default False
        treat id 0 as padding (zero output, no gradient, and a mask for later layers).

    """

    integer_input = True
    supports_mask = True

    def __init__(self, vocab_size: int, dim: int, mask_zero: bool = False) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.dim = check_positive_int("dim", dim)
        self.mask_zero = checks.boolean("mask_zero", mask_zero)
        self._ids: np.ndarray | None = None
        self._dtype: np.dtype = np.dtype(np.float32)

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 1:
            raise ValueError(f"Embedding expects per-sample input (t,) of ids, got {in_shape}")
        return (in_shape[0], self.dim)

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"E": ((self.vocab_size, self.dim), "weight")}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """N(0, 1) like torch.nn.Embedding."""
        E = self.params["E"]
        E[...] = rng.standard_normal(E.shape)

    def _check_ids(self, ids: Any) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind == "f":
            if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
                raise ValueError("Embedding expects integer ids, got non-integer values")
        elif ids.dtype.kind not in "iu":
            raise ValueError(f"Embedding expects integer ids, got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"Embedding expects ids of shape (n, t), got shape {ids.shape}")
        # The range is checked before a float id is cast: 1e20 would wrap to -2**63.
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            shown = int(bad) if abs(float(bad)) < 2**53 else bad
            raise ValueError(
                f"Embedding got id {shown}, outside 0..{self.vocab_size - 1} "
                f"(vocab_size={self.vocab_size})"
            )
        return ids.astype(np.int64) if ids.dtype.kind == "f" else ids

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        ids = self._check_ids(x)
        if not self.params:
            raise self._unallocated()
        y = self.params["E"][ids]
        if self.mask_zero:
            y[ids == 0] = 0
        if training:
            self._ids = ids
        return y

    def compute_mask(self, x: Any, mask: Any) -> np.ndarray | None:
        if not self.mask_zero:
            return mask
        own = np.asarray(x) != 0
        return own if mask is None else own & mask

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        if self._ids is None:
            raise self._missing_cache()
        ids, self._ids = self._ids, None  # released: a trained layer keeps no batch
        dE = self.grads["E"]
        dE.fill(0)
        if not self.trainable:
            return
        np.add.at(dE, ids.reshape(-1), grad_out.reshape(-1, self.dim))
        if self.mask_zero:
            dE[0] = 0

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Given ``dy`` ``(n, t, dim)``, scatter-add each step's gradient into its id's row::

            dE[v] = sum over (i, s) with ids[i, s] = v of dy[i, s]     (vocab_size, dim)
            dx = 0                                                     (n, t): ids have no gradient

        (with ``mask_zero``, row 0, the padding id, gets no gradient)."""
        shape = grad_out.shape[:-1]  # the ids' (n, t)
        self.backward_params_only(grad_out)
        return np.zeros(shape, dtype=grad_out.dtype)

    def config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "dim": self.dim, "mask_zero": self.mask_zero}


def sinusoidal_table(t: int, d: int) -> np.ndarray:
    """``(t, d)`` float64: ``P[s, 2j] = sin(s w_j)``, ``P[s, 2j+1] = cos(s w_j)``,
    ``w_j = 10000^(-2j/d)``."""
    pos = np.arange(t)[:, None]
    w = 10000.0 ** (-np.arange(0, d, 2) / d)
    table = np.zeros((t, d))
    table[:, 0::2] = np.sin(pos * w)
    table[:, 1::2] = np.cos(pos * w[: d // 2])
    return table


@register_layer
class SinusoidalPositionalEncoding(_SequenceLayer):
    """``y = x + P`` with the fixed sinusoidal table ``P`` ``(t, d)``; ``dx = dy``."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        check_sequence(x, self, None if self.in_shape is None else self.in_shape[1])
        table = sinusoidal_table(x.shape[1], x.shape[2])  # float64; float32 x stays float32
        return x + (table.astype(x.dtype) if x.dtype.kind == "f" else table)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``y = x + P`` with a fixed table: ``dx = dy``, ``(n, t, d)``."""
        return grad_out


@register_layer
class LearnedPositionalEncoding(_SequenceLayer):
    """``y = x + P`` with a trained table ``P`` ``(t, d)`` (one row per position)."""

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {} if self.in_shape is None else {"P": (self.in_shape, "weight")}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        P = self.params["P"]
        P[...] = 0.02 * rng.standard_normal(P.shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        check_sequence(x, self, None if self.in_shape is None else self.in_shape[1])
        if self.in_shape is not None and x.shape[1] != self.in_shape[0]:
            raise ValueError(
                f"LearnedPositionalEncoding was built for {self.in_shape[0]} steps, "
                f"got {x.shape[1]}"
            )
        if not self.params:
            raise self._unallocated()
        return x + self.params["P"]

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        if self.trainable:
            np.sum(grad_out, axis=0, out=self.grads["P"])
        else:
            self.zero_grads()

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``y = x + P``: ``dP = sum_i dy_i`` ``(t, d)`` and ``dx = dy`` ``(n, t, d)``."""
        self.backward_params_only(grad_out)
        return grad_out
