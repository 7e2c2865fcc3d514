"""Recurrent layers and backpropagation through time (BPTT): the shared loop.

Sequences are batch first: ``x`` is ``(n, t, d)``. A recurrent layer with ``H = units`` and ``G``
gates keeps a state ``h_s`` ``(n, H)`` (and, for the LSTM, a cell ``c_s``), starting from zeros::

    a_s = x_s @ W + b + h_{s-1} @ U        W: (d, G*H)   U: (H, G*H)   b: (G*H,)
    h_s = cell(a_s, h_{s-1}, c_{s-1})      (the cell equations are in RNN, LSTM and GRU)

(The GRU keeps the two terms of its n block apart: the reset gate multiplies ``h_{s-1} @ U_n +
b_hn`` only; see :mod:`.cells`.)

The input product ``x @ W + b`` is one matrix product over all steps; the loop over steps then does
one ``(n, H) @ (H, G*H)`` product each. The outputs are ``(n, t, H)`` with
``return_sequences=True``; otherwise one vector ``(n, H)`` per sequence: ``reduce="last"`` takes
the state after the last valid step, ``reduce="mean"`` the mean of the states over valid steps.

Backward (BPTT), with ``dh_s`` the gradient reaching ``h_s`` from the output and from step s+1::

    da_s = dcell(dh_s, ...)                          (n, G*H), step by step from s = t-1 down to 0
    dh_{s-1} = da_s @ U.T (+ the cell's direct paths)
    dW = sum_s x_s.T @ da_s     dU = sum_s h_{s-1}.T @ da_s     db = sum_s sum_i da_s[i]
    dx_s = da_s @ W.T

For the GRU, ``da_s`` is two arrays: ``da_in_s`` (of ``x_s @ W + b``) takes the places of ``da_s``
in ``dW``, ``db`` and ``dx_s``; ``da_rec_s`` (of ``h_{s-1} @ U``) in ``dU`` and ``dh_{s-1}``. They
differ in the n block only, where ``da_rec_s = r * da_in_s`` (and ``db_hn = sum_s sum_i`` of
that block).

Padding masks (``mask`` ``(n, t)``, True = real step; see :mod:`backprop.layers.masking`): at a
padded step the state is carried unchanged, ``h_s = h_{s-1}`` (and ``c_s = c_{s-1}``), the
returned sequence holds zeros, and the step's input gets a zero gradient. The padded steps'
inputs are never read (they are zeroed first), so any padding value works, inf and NaN too. A
sequence padded anywhere therefore gives exactly the outputs and parameter gradients of the same
sequence without its padded steps.

Truncated BPTT (``truncate=k``): the forward pass is unchanged. In the backward pass the
recurrent edge from step s to step s-1 (``dh_{s-1}``, and the LSTM's ``dc_{s-1}``, receive nothing
from step s) is cut at every k-th valid step counted back from each sequence's last valid step
(inclusive; padded steps anywhere in the sequence are not counted). The sequence is thus split
into chunks of k steps aligned to its end, and a loss term at step s reaches the inputs and
parameters of its own chunk only: between 1 and k steps. For
``return_sequences=False, reduce="last"`` this is exactly "the gradient goes back k steps".
``truncate=None`` is full BPTT; ``truncate=1`` keeps no recurrent gradient at all.

Initialization follows PyTorch: every parameter uniform in ``[-1/sqrt(H), 1/sqrt(H)]``. Our
``b`` is drawn once, where torch draws ``bias_ih`` and ``bias_hh`` so and adds them (a sum
spanning twice the range); the LSTM then sets its forget block to ``forget_bias`` (1.0 unless
None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from .. import checks
from .base import Layer, check_positive_int
from .masking import check_mask, check_sequence

REDUCTIONS = ("last", "mean")


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-a))``, without overflow (scipy's ``expit``)."""
    return special.expit(a, out=out)


class Recurrent(Layer):
    """Shared bookkeeping of RNN, LSTM and GRU; subclasses give the cell (``_steps_forward`` and
    ``_steps_backward``)."""

    n_gates = 1
    supports_mask = True

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        reduce: str = "last",
        truncate: int | None = None,
    ) -> None:
        super().__init__()
        self.units = check_positive_int("units", units)
        self.return_sequences = checks.boolean("return_sequences", return_sequences)
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        self.reduce = reduce
        self.truncate = None if truncate is None else check_positive_int("truncate", truncate)
        self._cache: dict[str, Any] | None = None
        #: Set True to keep, after each backward, ``state_grad_norms`` ``(t,)``: the mean over
        #: the batch of ``||dL/dh_s||`` (the total gradient reaching each step's state).
        self.record_state_grads = False
        self.state_grad_norms: np.ndarray | None = None
        self._state_grads: np.ndarray | None = None

    # -- shapes and parameters ------------------------------------------------------------------
    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects per-sample input (t, features), got {in_shape}"
            )
        return (in_shape[0], self.units) if self.return_sequences else (self.units,)

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        if self.in_shape is None:
            return {}
        d, gh = self.in_shape[1], self.n_gates * self.units
        return {
            "W": ((d, gh), "weight"),
            "U": ((self.units, gh), "weight"),
            "b": ((gh,), "other"),
        }

    def reset_parameters(self, rng: np.random.Generator) -> None:
        limit = 1.0 / np.sqrt(self.units)
        for p in self.params.values():
            p[...] = rng.uniform(-limit, limit, size=p.shape)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False, mask: Any = None) -> np.ndarray:
        features = None if self.in_shape is None else self.in_shape[1]
        check_sequence(x, self, features)
        if not self.params:
            raise self._unallocated()
        n, t, _ = x.shape
        if t == 0:
            raise ValueError(
                f"{type(self).__name__} needs sequences of at least one step, got an input of "
                f"shape {x.shape}"
            )
        mask = check_mask(mask, n, t, self)
        if mask is not None and not mask.all():
            # Padded steps' inputs never reach the state: zeroed, so that inf or NaN padding
            # (Masking(np.inf)) cannot leak in as 0 * inf = NaN, in the carry or in dW.
            x = np.where(mask[:, :, None], x, x.dtype.type(0))
        W, b = self.params["W"], self.params["b"]
        # Time major from here on: (t, n, ...), so that each step reads contiguous rows.
        a_in = np.matmul(x.transpose(1, 0, 2), W)
        a_in += b
        m = None if mask is None else mask.T[:, :, None].astype(x.dtype)
        hs = np.zeros((t + 1, n, self.units), dtype=a_in.dtype)
        cache = self._steps_forward(a_in, hs, m)
        if mask is not None:
            count = np.maximum(mask.sum(axis=1), 1).astype(x.dtype)[:, None]
        if self.return_sequences:
            seq = hs[1:] if m is None else hs[1:] * m
            # A copy even where the transpose is contiguous (n = 1): never a view of the cache.
            out = np.array(seq.transpose(1, 0, 2), order="C")
        elif self.reduce == "last":
            out = hs[t].copy()
        else:
            out = (hs[1:].sum(axis=0) if m is None else (hs[1:] * m).sum(axis=0)) / (
                t if mask is None else count
            )
        if training:
            cache.update(x=x, hs=hs, m=m, mask=mask)
            self._cache = cache
        return out

    def compute_mask(self, x: np.ndarray, mask: Any) -> np.ndarray | None:
        return mask if self.return_sequences else None

    # -- backward -------------------------------------------------------------------------------
    def _output_grad(self, grad_out: np.ndarray, t: int) -> np.ndarray:
        """dL/dh_s for every step, time major ``(t, n, H)``, from the output's gradient."""
        c = self._cache
        m, mask = c["m"], c["mask"]
        if self.return_sequences:
            dH = np.ascontiguousarray(grad_out.transpose(1, 0, 2))
            return dH if m is None else dH * m
        dH = np.zeros((t,) + grad_out.shape, dtype=grad_out.dtype)
        if self.reduce == "last":
            dH[t - 1] = grad_out
        elif mask is None:
            dH[...] = grad_out / grad_out.dtype.type(t)
        else:
            count = np.maximum(mask.sum(axis=1), 1).astype(grad_out.dtype)[:, None]
            dH[...] = (grad_out / count)[None] * m
        return dH

    def _keep(self, n: int, t: int, dtype: np.dtype) -> np.ndarray | None:
        """``(t, n, 1)``: 0 where truncation cuts the edge from step s back to s-1, else 1."""
        if self.truncate is None:
            return None
        mask = self._cache["mask"]
        if mask is None:
            back = np.broadcast_to(np.arange(t, 0, -1)[:, None], (t, n))
            cut = back % self.truncate == 0
        else:
            # Valid steps only, counted back: 1 at the last valid step, 2 at the valid step
            # before it, ... Padded steps (which carry the state) are never counted nor cut.
            back = np.cumsum(mask.T[::-1], axis=0)[::-1]
            cut = mask.T & (back % self.truncate == 0)
        return (~cut).astype(dtype)[:, :, None]

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        self._backward(grad_out, need_input_grad=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Backpropagation through time, given ``dy`` ``(n, t, H)`` (``return_sequences``) or
        ``(n, H)``; from the last step down, with ``dh_s`` ``(n, H)`` the gradient reaching
        ``h_s`` from the output and from step s+1::

            da_s = dcell(dh_s, ...)                      (n, G*H)
            dh_{s-1} += da_s @ U.T                       (n, H)   (cut every k steps by truncate=k)
            dW = sum_s x_s.T @ da_s   dU = sum_s h_{s-1}.T @ da_s   db = sum_s sum_i da_s[i]
            dx_s = da_s @ W.T                            dx: (n, t, d)

        (The GRU's ``dU`` and ``dh_{s-1}`` take ``da_s`` with its n block times ``r``: see the
        module docstring.) Padded steps pass ``dh`` through unchanged and give ``dx_s = 0``."""
        return self._backward(grad_out, need_input_grad=True)

    def _backward(self, grad_out: np.ndarray, need_input_grad: bool) -> np.ndarray | None:
        if self._cache is None:
            raise self._missing_cache()
        c = self._cache
        x, hs = c["x"], c["hs"]
        n, t, d = x.shape
        dH = self._output_grad(grad_out, t)
        keep = self._keep(n, t, dH.dtype)
        self._state_grads = np.zeros_like(dH) if self.record_state_grads else None
        da_in, da_rec = self._steps_backward(dH, keep)
        self._cache = None  # released: a trained layer keeps no batch
        if self._state_grads is not None:
            self.state_grad_norms = np.linalg.norm(self._state_grads, axis=2).mean(axis=1)
            self._state_grads = None
        if self.trainable:
            gh = da_in.shape[2]
            np.matmul(
                x.transpose(2, 1, 0).reshape(d, t * n),
                da_in.reshape(t * n, gh),
                out=self.grads["W"],
            )
            np.matmul(
                hs[:-1].reshape(t * n, self.units).T, da_rec.reshape(t * n, gh), out=self.grads["U"]
            )
            np.sum(da_in, axis=(0, 1), out=self.grads["b"])
            self._extra_grads(da_rec)
        else:
            self.zero_grads()
        if not need_input_grad:
            return None
        return np.matmul(da_in, self.params["W"].T).transpose(1, 0, 2)

    def _record(self, s: int, dh: np.ndarray) -> np.ndarray:
        """Keep ``dL/dh_s`` when ``record_state_grads`` is on; returns ``dh`` unchanged."""
        if self._state_grads is not None:
            self._state_grads[s] = dh
        return dh

    def _extra_grads(self, da_rec: np.ndarray) -> None:
        """Gradients of parameters beyond W, U, b (GRU's ``b_hn``)."""

    # -- cell interface -------------------------------------------------------------------------
    def _steps_forward(self, a_in: np.ndarray, hs: np.ndarray, m: np.ndarray | None) -> dict:
        """Fill ``hs[1:]`` (``hs[s + 1]`` is the state after step s) and return the cache."""
        raise NotImplementedError

    def _steps_backward(
        self, dH: np.ndarray, keep: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(da_in, da_rec)``, each ``(t, n, G*H)``: the gradients of the input pre-activations
        (``x_s @ W + b``) and of the recurrent products (``h_{s-1} @ U``)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"units": self.units, "return_sequences": self.return_sequences}
        if not self.return_sequences:
            cfg["reduce"] = self.reduce
        if self.truncate is not None:
            cfg["truncate"] = self.truncate
        return cfg


def carry(m: np.ndarray | None, new: np.ndarray, old: np.ndarray, out: np.ndarray) -> None:
    """``out = m * new + (1 - m) * old``: the state moves on at real steps and stays at padding.
    Copied, not computed (``old + m (new - old)`` rounds), so a real step's state is bitwise the
    one it has without a mask."""
    if m is None:
        out[...] = new
    else:
        np.copyto(out, old)
        np.copyto(out, new, where=m != 0)


def split_grad(m: np.ndarray | None, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
    """Of the gradient ``dh`` reaching a carried state: the part through the new value (``m dh``)
    and the part passed straight to the previous state (``(1 - m) dh``)."""
    if m is None:
        return dh, 0.0
    new = m * dh
    return new, dh - new
