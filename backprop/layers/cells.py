"""RNN, LSTM and GRU: the cells, with PyTorch's equations (BPTT loop in :mod:`.recurrent`).

Per step s, with ``x_s`` ``(n, d)``, ``h = h_{s-1}`` ``(n, H)`` and ``a = x_s @ W + b + h @ U``
split into gate blocks of width H in the order given:

RNN (one block)::

    h_s = act(a)                                   act = tanh (default) or relu

LSTM (blocks i, f, g, o, PyTorch's order)::

    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_s = f * c_{s-1} + i * g
    h_s = o * tanh(c_s)

GRU (blocks r, z, n; the reset gate multiplies the recurrent product plus its own bias)::

    r = sigmoid(x_s W_r + b_r + h U_r)   z = sigmoid(x_s W_z + b_z + h U_z)
    n = tanh(x_s W_n + b_n + r * (h U_n + b_hn))
    h_s = (1 - z) * n + z * h

Mapping to ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (one layer, ``batch_first=True``):

=======  =============  =================================================================
ours     shape          torch
=======  =============  =================================================================
``W``    (d, G*H)       ``weight_ih_l0.T``          (torch: (G*H, d))
``U``    (H, G*H)       ``weight_hh_l0.T``          (torch: (G*H, H))
``b``    (G*H,)         ``bias_ih_l0 + bias_hh_l0`` (GRU: ``bias_hh_l0`` with its n block
                        zeroed, since that block lives in ``b_hn``)
``b_hn`` (H,)           GRU only: ``bias_hh_l0[2H:]``
=======  =============  =================================================================

with G = 1 (RNN), 4 (LSTM, blocks i, f, g, o) or 3 (GRU, blocks r, z, n). Our output with
``return_sequences=True`` is torch's ``output``; with ``reduce="last"`` it is ``h_n[0]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import real
from .recurrent import Recurrent, carry, sigmoid, split_grad
from .registry import register_layer

ACTIVATIONS = ("tanh", "relu")


@register_layer
class RNN(Recurrent):
    """Elman RNN ``h_s = act(x_s @ W + b + h_{s-1} @ U)``; see the module docstring.

    Parameters
    ----------
    units : int
        H, the size of the state.
    activation : str, default 'tanh'
        "tanh" (default) or "relu".
    return_sequences : bool, default False
        output every step's state ``(n, t, H)`` instead of one ``(n, H)``.
    reduce : str, default 'last'
        without return_sequences, "last" (state after the last valid step) or "mean"
        (mean of the states over valid steps).
    truncate : int | None, default None
        truncated BPTT through at most this many steps (see :mod:`.recurrent`).

    """

    n_gates = 1

    def __init__(
        self,
        units: int,
        activation: str = "tanh",
        return_sequences: bool = False,
        reduce: str = "last",
        truncate: int | None = None,
    ) -> None:
        super().__init__(units, return_sequences, reduce, truncate)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation

    def _steps_forward(self, a_in, hs, m):
        U = self.params["U"]
        new = np.empty_like(a_in)  # act(a_s) before the carry at padded steps
        for s in range(a_in.shape[0]):
            a = np.matmul(hs[s], U, out=new[s])
            a += a_in[s]
            if self.activation == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0, out=a)
            carry(None if m is None else m[s], a, hs[s], hs[s + 1])
        return {"new": new}

    def _steps_backward(self, dH, keep):
        c = self._cache
        new, m = c["new"], c["m"]
        U_T = np.ascontiguousarray(self.params["U"].T)
        deriv = 1 - new * new if self.activation == "tanh" else (new > 0).astype(new.dtype)
        da = np.empty_like(new)
        dh_next = np.zeros_like(dH[0])
        for s in range(dH.shape[0] - 1, -1, -1):
            dh = self._record(s, dH[s] + dh_next)
            dnew, dpass = split_grad(None if m is None else m[s], dh)
            np.multiply(dnew, deriv[s], out=da[s])
            dh_next = da[s] @ U_T
            dh_next += dpass
            if keep is not None:
                dh_next *= keep[s]
        return da, da

    def config(self) -> dict[str, Any]:
        return {**super().config(), "activation": self.activation}


@register_layer
class LSTM(Recurrent):
    """Long short-term memory with PyTorch's gates (i, f, g, o); see the module docstring.

    Parameters
    ----------
    units : int
        H, the size of the state and of the cell.
    forget_bias : float | None, default 1.0
        initial value of the forget-gate block of ``b`` (1.0 by default, which keeps
        the cell open early in training); None keeps PyTorch's uniform initialization.
    return_sequences, reduce, truncate
        As for :class:`RNN` (bool, default False; str, default 'last'; int | None, default
        None).

    """

    n_gates = 4

    def __init__(
        self,
        units: int,
        forget_bias: float | None = 1.0,
        return_sequences: bool = False,
        reduce: str = "last",
        truncate: int | None = None,
    ) -> None:
        super().__init__(units, return_sequences, reduce, truncate)
        self.forget_bias = None if forget_bias is None else real("forget_bias", forget_bias)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        super().reset_parameters(rng)
        if self.forget_bias is not None:
            H = self.units
            self.params["b"][H : 2 * H] = self.forget_bias

    def _steps_forward(self, a_in, hs, m):
        H = self.units
        t = a_in.shape[0]
        # One tanh per step for all four blocks: sigmoid(a) = tanh(a / 2) / 2 + 1 / 2, with the
        # halving folded into U and a_in once (columns of i, f, o), the rest done after the tanh.
        half = np.ones(4 * H, dtype=a_in.dtype)
        half[: 2 * H] = half[3 * H :] = 0.5
        shift = np.full(4 * H, 0.5, dtype=a_in.dtype)
        shift[2 * H : 3 * H] = 0
        U = self.params["U"] * half
        a_in = a_in * half
        gates = np.empty_like(a_in)  # activated i, f, g, o
        cs = np.zeros_like(hs)  # cs[s + 1]: the (carried) cell after step s
        tanh_c = np.empty_like(hs[1:])  # tanh(c_s) of the new cell, before the carry
        c_new = np.empty_like(hs[0])
        ig = np.empty_like(hs[0])
        for s in range(t):
            a = np.matmul(hs[s], U, out=gates[s])
            a += a_in[s]
            np.tanh(a, out=a)
            a *= half
            a += shift
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            np.multiply(f, cs[s], out=c_new)
            c_new += np.multiply(i, g, out=ig)
            np.tanh(c_new, out=tanh_c[s])
            if m is None:
                cs[s + 1] = c_new
                np.multiply(o, tanh_c[s], out=hs[s + 1])
            else:
                carry(m[s], c_new, cs[s], cs[s + 1])
                carry(m[s], o * tanh_c[s], hs[s], hs[s + 1])
        return {"gates": gates, "cs": cs, "tanh_c": tanh_c}

    def _steps_backward(self, dH, keep):
        c, H = self._cache, self.units
        gates, cs, tanh_c, m = c["gates"], c["cs"], c["tanh_c"], c["m"]
        U_T = np.ascontiguousarray(self.params["U"].T)
        # The activations' derivatives for every step at once: i(1-i), f(1-f), 1-g^2, o(1-o),
        # and dh_s/dc_s = o (1 - tanh(c_s)^2).
        deriv = gates * (1 - gates)
        g_block = gates[:, :, 2 * H : 3 * H]
        np.subtract(1, g_block * g_block, out=deriv[:, :, 2 * H : 3 * H])
        out_gain = gates[:, :, 3 * H :] * (1 - tanh_c * tanh_c)
        da = np.empty_like(gates)
        dh_next = np.zeros_like(dH[0])
        dc_next = np.zeros_like(dH[0])
        for s in range(dH.shape[0] - 1, -1, -1):
            ms = None if m is None else m[s]
            dh, dh_pass = split_grad(ms, self._record(s, dH[s] + dh_next))
            dc, dc_pass = split_grad(ms, dc_next)
            g4, d = gates[s], da[s]
            dc = dc + dh * out_gain[s]
            np.multiply(dc, g4[:, 2 * H : 3 * H], out=d[:, :H])  # through i
            np.multiply(dc, cs[s], out=d[:, H : 2 * H])  # through f
            np.multiply(dc, g4[:, :H], out=d[:, 2 * H : 3 * H])  # through g
            np.multiply(dh, tanh_c[s], out=d[:, 3 * H :])  # through o
            d *= deriv[s]
            dh_next = d @ U_T
            dh_next += dh_pass
            dc_next = dc * g4[:, H : 2 * H]
            dc_next += dc_pass
            if keep is not None:
                dh_next *= keep[s]
                dc_next *= keep[s]
        return da, da

    def config(self) -> dict[str, Any]:
        return {**super().config(), "forget_bias": self.forget_bias}


@register_layer
class GRU(Recurrent):
    """Gated recurrent unit with PyTorch's equations (r, z, n); see the module docstring.

    Parameters
    ----------
    units, return_sequences, reduce, truncate
        As for :class:`RNN` (there is no ``activation``).

    Notes
    -----
    Learned parameters: ``W``, ``U``, ``b`` and the recurrent bias of the n block ``b_hn``
    ``(H,)``, which the reset gate multiplies.
    """

    n_gates = 3

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        specs = super().param_specs()
        if specs:
            specs["b_hn"] = ((self.units,), "other")
        return specs

    def _steps_forward(self, a_in, hs, m):
        U, b_hn, H = self.params["U"], self.params["b_hn"], self.units
        t = a_in.shape[0]
        gates = np.empty_like(a_in)  # activated r, z, n
        hn = np.empty_like(hs[1:])  # h U_n + b_hn, which the reset gate multiplies
        h_new = np.empty_like(hs[0])
        for s in range(t):
            a = np.matmul(hs[s], U, out=gates[s])
            np.add(a[:, 2 * H :], b_hn, out=hn[s])
            a[:, : 2 * H] += a_in[s, :, : 2 * H]
            sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])
            r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
            np.multiply(r, hn[s], out=n)
            n += a_in[s, :, 2 * H :]
            np.tanh(n, out=n)
            # h_s = (1 - z) n + z h = n + z (h - n)
            np.subtract(hs[s], n, out=h_new)
            h_new *= z
            h_new += n
            carry(None if m is None else m[s], h_new, hs[s], hs[s + 1])
        return {"gates": gates, "hn": hn}

    def _steps_backward(self, dH, keep):
        c, H = self._cache, self.units
        gates, hn, hs, m = c["gates"], c["hn"], c["hs"], c["m"]
        U_T = np.ascontiguousarray(self.params["U"].T)
        r, z, n = gates[:, :, :H], gates[:, :, H : 2 * H], gates[:, :, 2 * H :]
        # Per-step factors for every step at once: dh_s -> the pre-activations of n, r, z.
        n_gain = (1 - z) * (1 - n * n)
        r_gain = hn * r * (1 - r)
        z_gain = (hs[:-1] - n) * z * (1 - z)
        da_in = np.empty_like(gates)
        da_rec = np.empty_like(gates)
        dh_next = np.zeros_like(dH[0])
        for s in range(dH.shape[0] - 1, -1, -1):
            ms = None if m is None else m[s]
            dh, dh_pass = split_grad(ms, self._record(s, dH[s] + dh_next))
            di, dr = da_in[s], da_rec[s]
            dn = np.multiply(dh, n_gain[s], out=di[:, 2 * H :])
            np.multiply(dn, r_gain[s], out=di[:, :H])
            np.multiply(dh, z_gain[s], out=di[:, H : 2 * H])
            dr[:, : 2 * H] = di[:, : 2 * H]
            np.multiply(dn, r[s], out=dr[:, 2 * H :])
            dh_next = dr @ U_T
            dh_next += dh * z[s]
            dh_next += dh_pass
            if keep is not None:
                dh_next *= keep[s]
        return da_in, da_rec

    def _extra_grads(self, da_rec: np.ndarray) -> None:
        np.sum(da_rec[:, :, 2 * self.units :], axis=(0, 1), out=self.grads["b_hn"])
