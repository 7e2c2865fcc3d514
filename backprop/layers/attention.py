"""Multi-head self-attention with an explicit backward pass.

For ``x`` ``(n, t, d)``, ``h = num_heads`` heads of width ``k = key_dim`` (``hk = h * k``)::

    Q = x @ Wq + bq,  K = x @ Wk,  V = x @ Wv + bv           Wq, Wk, Wv: (d, hk), bq, bv: (hk,)
    split into heads: Q, K, V -> (n, h, t, k)
    S = Q @ K^T / sqrt(k)                                      (n, h, t, t)
    S[..., i, j] = -inf where key j is padding, or j > i when causal
    A = softmax(S) over the keys (last axis)                   (n, h, t, t)
    O = A @ V -> heads concatenated back to (n, t, hk)
    y = O @ Wo + bo                                            Wo: (hk, d), bo: (d,); y: (n, t, d)

The output has the input's width d, so the layer sits inside ``Residual``. Padded steps of ``x``
are read as 0 (so inf or NaN padding cannot reach a real step through ``0 * inf``); at padded
query steps the output is 0. A query with no allowed key gets A = 0: a padded query in a
sequence that is all padding or, when causal, one before the sequence's first real step (a real
query always sees itself).

There is no key bias: it would add ``q_i . bk`` to every score of row i, which the softmax
ignores, so its gradient is exactly 0 (torch has one; it has no effect there either).

Backward, given ``dy`` ``(n, t, d)``::

    dWo = O^T dy,  dbo = sum dy,  dO = dy @ Wo^T -> heads (n, h, t, k)
    dA = dO @ V^T,  dV = A^T @ dO
    dS = A * (dA - sum_j(dA * A))          the softmax Jacobian  dA_ij/dS_il = A_ij (d_jl - A_il)
    dQ = dS @ K / sqrt(k),  dK = dS^T @ Q / sqrt(k)
    dWq = x^T dQ (and likewise K, V),  dx = dQ Wq^T + dK Wk^T + dV Wv^T

Mapping to ``torch.nn.MultiheadAttention(d, h, batch_first=True)`` when ``k = d / h``:
``in_proj_weight = concat(Wq, Wk, Wv, axis=1).T``, ``in_proj_bias = concat(bq, 0, bv)``,
``out_proj.weight = Wo.T``, ``out_proj.bias = bo``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from .base import Layer, check_positive_int
from .masking import check_mask, check_sequence
from .registry import register_layer


@register_layer
class MultiHeadSelfAttention(Layer):
    """Scaled dot-product self-attention over ``(n, t, d)``; see the module docstring.

    Parameters
    ----------
    num_heads : int
        h, the number of heads.
    key_dim : int
        k, the width of each head's queries, keys and values.
    causal : bool, default False
        when True, step i attends only to steps j <= i.

    """

    supports_mask = True

    def __init__(self, num_heads: int, key_dim: int, causal: bool = False) -> None:
        super().__init__()
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.causal = checks.boolean("causal", causal)
        self._cache: dict[str, Any] | None = None

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(
                f"MultiHeadSelfAttention expects per-sample input (t, features), got {in_shape}"
            )
        return in_shape

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        if self.in_shape is None:
            return {}
        d, hk = self.in_shape[1], self.num_heads * self.key_dim
        specs: dict[str, tuple[tuple[int, ...], str]] = {
            key: ((d, hk), "weight") for key in ("Wq", "Wk", "Wv")
        }
        specs["Wo"] = ((hk, d), "weight")
        specs.update({key: ((hk,), "other") for key in ("bq", "bv")})
        specs["bo"] = ((d,), "other")
        return specs

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Glorot uniform weights, zero biases."""
        for key, p in self.params.items():
            if key.startswith("W"):
                limit = np.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p[...] = rng.uniform(-limit, limit, size=p.shape)
            else:
                p.fill(0)

    def _heads(self, a: np.ndarray) -> np.ndarray:
        """``(n, t, h*k)`` -> ``(n, h, t, k)``."""
        n, t, _ = a.shape
        return a.reshape(n, t, self.num_heads, self.key_dim).transpose(0, 2, 1, 3)

    def _merge(self, a: np.ndarray) -> np.ndarray:
        """``(n, h, t, k)`` -> ``(n, t, h*k)``."""
        n, _, t, _ = a.shape
        return a.transpose(0, 2, 1, 3).reshape(n, t, self.num_heads * self.key_dim)

    def _allowed(self, mask: np.ndarray | None, t: int) -> np.ndarray | None:
        """Boolean ``(n or 1, 1, t, t)``: may query i look at key j?"""
        allowed = None
        if self.causal:
            allowed = np.tri(t, dtype=bool)[None, None]
        if mask is not None:
            keys = mask[:, None, None, :]
            allowed = keys if allowed is None else allowed & keys
        return allowed

    def forward(self, x: np.ndarray, training: bool = False, mask: Any = None) -> np.ndarray:
        check_sequence(x, self, None if self.in_shape is None else self.in_shape[1])
        if not self.params:
            raise self._unallocated()
        n, t, _ = x.shape
        mask = check_mask(mask, n, t, self)
        if mask is not None:  # a padded step's values (inf, NaN) must not reach a real one
            x = np.where(mask[:, :, None], x, x.dtype.type(0))
        p = self.params
        q = self._heads(x @ p["Wq"] + p["bq"])
        k = self._heads(x @ p["Wk"])
        v = self._heads(x @ p["Wv"] + p["bv"])
        s = np.matmul(q, k.transpose(0, 1, 3, 2))
        s *= s.dtype.type(1.0 / np.sqrt(self.key_dim))  # s's dtype: x may hold integers
        allowed = self._allowed(mask, t)
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
        # Softmax over keys; a row with no allowed key has max -inf: shift it by 0 instead.
        row_max = s.max(axis=-1, keepdims=True)
        row_max[~np.isfinite(row_max)] = 0
        a = np.exp(s - row_max)
        total = a.sum(axis=-1, keepdims=True)
        total[total == 0] = 1
        a /= total
        o = self._merge(np.matmul(a, v))
        y = o @ p["Wo"] + p["bo"]
        if mask is not None:
            y *= mask[:, :, None]
        if training:
            self._cache = dict(x=x, q=q, k=k, v=v, a=a, o=o, mask=mask)
        return y

    def compute_mask(self, x: np.ndarray, mask: Any) -> np.ndarray | None:
        return mask

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        self._backward(grad_out)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """The gradients of the attention block, given ``dy`` ``(n, t, d)``.

        Per head (shapes ``(n, h, t, k)`` and ``(n, h, t, t)``)::

            dWo = O^T dy   dbo = sum dy   dO = dy @ Wo^T
            dA = dO @ V^T   dV = A^T @ dO
            dS = A * (dA - sum_j dA * A)                 the softmax Jacobian
            dQ = dS @ K / sqrt(k)   dK = dS^T @ Q / sqrt(k)
            dWq = x^T dQ (likewise K, V)   dx = dQ Wq^T + dK Wk^T + dV Wv^T     (n, t, d)
        """
        return self._backward(grad_out)

    def _backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._missing_cache()
        c, p, g = self._cache, self.params, self.grads
        self._cache = None  # released: a trained layer keeps no batch
        x, q, k, v, a, o, mask = (c[key] for key in ("x", "q", "k", "v", "a", "o", "mask"))
        n, t, d = x.shape
        hk = self.num_heads * self.key_dim
        dy = grad_out if mask is None else grad_out * mask[:, :, None]
        do = self._heads(dy @ p["Wo"].T)
        da = np.matmul(do, v.transpose(0, 1, 3, 2))
        dv = np.matmul(a.transpose(0, 1, 3, 2), do)
        # Softmax Jacobian: dS_il = A_il (dA_il - sum_j dA_ij A_ij).
        ds = da - (da * a).sum(axis=-1, keepdims=True)
        ds *= a
        ds *= ds.dtype.type(1.0 / np.sqrt(self.key_dim))
        dq = self._merge(np.matmul(ds, k))
        dk = self._merge(np.matmul(ds.transpose(0, 1, 3, 2), q))
        dv = self._merge(dv)
        x2 = x.reshape(n * t, d)
        if self.trainable:
            np.matmul(o.reshape(n * t, hk).T, dy.reshape(n * t, d), out=g["Wo"])
            np.sum(dy, axis=(0, 1), out=g["bo"])
            for name, dz in (("q", dq), ("k", dk), ("v", dv)):
                np.matmul(x2.T, dz.reshape(n * t, hk), out=g["W" + name])
                if name != "k":
                    np.sum(dz, axis=(0, 1), out=g["b" + name])
        else:
            self.zero_grads()
        return dq @ p["Wq"].T + dk @ p["Wk"].T + dv @ p["Wv"].T

    def config(self) -> dict[str, Any]:
        return {"num_heads": self.num_heads, "key_dim": self.key_dim, "causal": self.causal}
