"""The NumPy baseline of ``python -m rnnfast.bench``: a careful vectorised NumPy training step (forward + BPTT)
for Elman (tanh), LSTM and GRU, the fastest plain NumPy we know how to write, so that the comparison is fair.

It is not the specification: :mod:`rnnfast.reference` is (one Python loop per step, nothing fused, written to
be read), and it would be a slow strawman here. ``benchmarks/test_numpy_reference.py`` checks that this
baseline computes what rnnfast computes.

Structure, the one a straightforward kernel has:
- the input projection as one matmul over all T·B rows:  A = X W_ihᵀ + (b_ih + b_hh)       # (T·B, G·H)
- per step, one matmul  A_t += h_{t-1} W_hhᵀ  and in-place pointwise ufuncs (``out=``, no temporaries
  in the loop beyond a few preallocated buffers);
- BPTT keeps every value the forward computed (activated gates, c_t, tanh(c_t), h_t), so its loop calls no
  transcendental function; per step it does only  dh_{t-1} = dA_t W_hh;
- the weight gradients and dx as single matmuls after the loop:
  dW_ih = dAᵀ X,  dW_hh = dAᵀ [h_0; h_1 … h_{T-1}],  db = Σ dA,  dX = dA W_ih.

Elman:  h_t = tanh(a_t),                 dA_t = (1 − h_t²) ⊙ dh_t
LSTM:   i, f, g, o = σ, σ, tanh, σ (a_t),  c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
        dc_t = dc_{t+1}·f_{t+1} + dh_t ⊙ o ⊙ (1 − tanh²c_t)
        dA = [dc⊙g⊙i(1−i), dc⊙c_{t-1}⊙f(1−f), dc⊙i⊙(1−g²), dh⊙tanh(c_t)⊙o(1−o)]
GRU:    r, z = σ(a_{r,z} + h_{t-1} W_h{r,z}ᵀ),  hn = h_{t-1} W_hnᵀ + b_hn,  n = tanh(a_n + r ⊙ hn)
        h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}   (a = x W_ihᵀ + b_ih + [b_hr, b_hz, 0])
        dA = [da_n⊙hn⊙r(1−r), dh⊙(h_{t-1} − n)⊙z(1−z), da_n],  da_n = dh⊙(1 − z)⊙(1 − n²); the recurrent
        side uses r ⊙ da_n in the n block, and dh_{t-1} = dh ⊙ z + dA^h W_hh

Parameters use torch's names and shapes (``weight_ih_l0`` (G·H, I), ...), one layer, zero initial state
unless given. Everything runs in the dtype of the weights (float32 in the benchmark).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from scipy.special import expit

from ._cells import cell_spec

__all__ = ["NumpyRNN"]


class NumpyRNN:
    """One-layer Elman (tanh), LSTM or GRU with a vectorised NumPy ``train_step``.

    ``train_step(x, dout)`` runs forward + BPTT for the loss ``sum(out * dout)`` and returns
    ``(out, dx, grads)``; ``grads`` maps torch's parameter names to their gradients (fresh arrays).
    """

    def __init__(self, cell: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
        spec = cell_spec(cell)
        if spec.key not in ("elman-tanh", "lstm", "gru"):
            raise ValueError(f"cell must be 'lstm', 'gru' or 'elman' (tanh), got {cell!r}")
        self.cell = spec.family
        self.G = spec.gates
        self.w_ih = np.ascontiguousarray(w_ih)                     # (GH, I)
        self.w_hh = np.ascontiguousarray(w_hh)                     # (GH, H)
        self.dtype = self.w_ih.dtype
        self.H = self.w_hh.shape[1]
        self.bias = (np.asarray(b_ih) + np.asarray(b_hh)).astype(self.dtype)   # (GH,)
        if self.cell == "gru":                                      # b_hn stays inside r ⊙ (·)
            self.bias[2 * self.H:] = np.asarray(b_ih)[2 * self.H:]
            self.b_hn = np.asarray(b_hh, self.dtype)[2 * self.H:]  # (H,)
        self.w_ih_T = np.ascontiguousarray(self.w_ih.T)             # (I, GH): row-major operands for matmul
        self.w_hh_T = np.ascontiguousarray(self.w_hh.T)             # (H, GH)

    @classmethod
    def from_state_dict(cls, cell: str, sd: Dict[str, np.ndarray], dtype=np.float32) -> "NumpyRNN":
        return cls(cell, *(np.asarray(sd[k], dtype=dtype) for k in
                           ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))

    # ------------------------------------------------------------------------------------------ forward
    def _forward(self, x: np.ndarray, h0: np.ndarray, c0: Optional[np.ndarray]):
        T, B, I = x.shape
        H, GH = self.H, self.G * self.H
        A = np.matmul(x.reshape(T * B, I), self.w_ih_T).reshape(T, B, GH)   # (T, B, GH) input projection
        A += self.bias
        hs = np.empty((T + 1, B, H), self.dtype)                     # (T+1, B, H): h_0 … h_T
        hs[0] = h0
        rec = np.empty((B, GH), self.dtype)                          # (B, GH) h_{t-1} W_hhᵀ
        if self.cell == "elman":
            for t in range(T):
                np.matmul(hs[t], self.w_hh_T, out=rec)
                np.add(A[t], rec, out=A[t])
                np.tanh(A[t], out=hs[t + 1])
            return A, hs, None, None
        if self.cell == "gru":
            hn = np.empty((T, B, H), self.dtype)                     # (T, B, H) h_{t-1} W_hnᵀ + b_hn
            tmp = np.empty((B, H), self.dtype)
            for t in range(T):
                a = A[t]                                             # (B, 3H) becomes r, z, n
                np.matmul(hs[t], self.w_hh_T, out=rec)
                np.add(a[:, :2 * H], rec[:, :2 * H], out=a[:, :2 * H])
                expit(a[:, :2 * H], out=a[:, :2 * H])                # r, z
                np.add(rec[:, 2 * H:], self.b_hn, out=hn[t])
                np.multiply(a[:, :H], hn[t], out=tmp)
                a[:, 2 * H:] += tmp
                np.tanh(a[:, 2 * H:], out=a[:, 2 * H:])              # n
                z, n = a[:, H:2 * H], a[:, 2 * H:]
                np.subtract(hs[t], n, out=tmp)
                tmp *= z
                np.add(n, tmp, out=hs[t + 1])                        # h = n + z (h_prev − n)
            return A, hs, hn, None
        cs = np.empty((T + 1, B, H), self.dtype)                     # (T+1, B, H): c_0 … c_T
        cs[0] = c0
        tanh_c = np.empty((T, B, H), self.dtype)
        tmp = np.empty((B, H), self.dtype)
        for t in range(T):
            a = A[t]                                                 # (B, 4H) becomes the activated gates
            np.matmul(hs[t], self.w_hh_T, out=rec)
            np.add(a, rec, out=a)
            expit(a[:, :2 * H], out=a[:, :2 * H])                    # i, f
            np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])        # g
            expit(a[:, 3 * H:], out=a[:, 3 * H:])                    # o
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            np.multiply(f, cs[t], out=cs[t + 1])
            np.multiply(i, g, out=tmp)
            cs[t + 1] += tmp                                         # c_t = f c_{t-1} + i g
            np.tanh(cs[t + 1], out=tanh_c[t])
            np.multiply(o, tanh_c[t], out=hs[t + 1])                 # h_t = o tanh(c_t)
        return A, hs, cs, tanh_c

    def forward(self, x: np.ndarray, h0=None, c0=None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.dtype)
        B = x.shape[1]
        h0 = np.zeros((B, self.H), self.dtype) if h0 is None else h0
        c0 = np.zeros((B, self.H), self.dtype) if c0 is None and self.cell == "lstm" else c0
        return self._forward(x, h0, c0)[1][1:]

    # --------------------------------------------------------------------------------------- train step
    def train_step(self, x: np.ndarray, dout: np.ndarray, h0=None, c0=None
                   ) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
        x = np.ascontiguousarray(x, dtype=self.dtype)                # (T, B, I)
        dout = np.ascontiguousarray(dout, dtype=self.dtype)          # (T, B, H)
        T, B, I = x.shape
        H, GH = self.H, self.G * self.H
        h0 = np.zeros((B, H), self.dtype) if h0 is None else np.asarray(h0, self.dtype)
        if self.cell == "lstm":
            c0 = np.zeros((B, H), self.dtype) if c0 is None else np.asarray(c0, self.dtype)
        A, hs, cs, tanh_c = self._forward(x, h0, c0)
        dA = A                                                       # (T, B, GH) overwritten step by step
        dh = np.zeros((B, H), self.dtype)                            # dL/dh_t flowing back
        tmp = np.empty((B, H), self.dtype)
        dAh = None                                                   # GRU: the recurrent side's n block
        if self.cell == "gru":
            hn = cs                                                  # (T, B, H), overwritten by r ⊙ da_n
            dtmp = np.empty((B, H), self.dtype)
            rec = np.empty((B, GH), self.dtype)                      # (B, 3H) dA^h_t
            for t in reversed(range(T)):
                a = A[t]
                r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                dh += dout[t]
                # da_z = dh ⊙ (h_prev − n) ⊙ z(1 − z), into rec's z block
                np.subtract(hs[t], n, out=tmp)
                tmp *= dh
                np.subtract(1, z, out=dtmp)
                dtmp *= z
                np.multiply(tmp, dtmp, out=rec[:, H:2 * H])
                # da_n = dh ⊙ (1 − z) ⊙ (1 − n²), written over n
                np.subtract(1, z, out=dtmp)
                dtmp *= dh
                np.multiply(n, n, out=tmp)
                np.subtract(1, tmp, out=tmp)
                np.multiply(dtmp, tmp, out=n)
                # da_r = da_n ⊙ hn ⊙ r(1 − r), into rec's r block; recurrent n block r ⊙ da_n
                np.subtract(1, r, out=tmp)
                tmp *= r
                tmp *= hn[t]
                np.multiply(n, tmp, out=rec[:, :H])
                np.multiply(n, r, out=rec[:, 2 * H:])
                hn[t] = rec[:, 2 * H:]
                dh *= z                                              # the direct path h_prev → h
                a[:, H:2 * H] = rec[:, H:2 * H]
                a[:, :H] = rec[:, :H]                                # dA (input side): [da_r, da_z, da_n]
                dh += np.matmul(rec, self.w_hh)                      # dh_{t-1} = dh ⊙ z + dA^h_t W_hh
            dAh = np.concatenate([dA[:, :, :2 * H], hn], axis=2).reshape(T * B, GH)
        elif self.cell == "elman":
            for t in reversed(range(T)):
                dh += dout[t]
                h = hs[t + 1]
                np.multiply(h, h, out=tmp)
                np.subtract(1, tmp, out=tmp)
                np.multiply(dh, tmp, out=dA[t])                      # backprop through tanh
                np.matmul(dA[t], self.w_hh, out=dh)                  # dh_{t-1} = dA_t W_hh
        else:
            dc = np.zeros((B, H), self.dtype)
            dtmp = np.empty((B, H), self.dtype)
            for t in reversed(range(T)):
                a = A[t]
                i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                tc = tanh_c[t]
                dh += dout[t]
                # dc += dh ⊙ o ⊙ (1 − tanh²c)
                np.multiply(tc, tc, out=tmp)
                np.subtract(1, tmp, out=tmp)
                tmp *= o
                tmp *= dh
                dc += tmp
                # do = dh ⊙ tanh c ⊙ o(1 − o), written over o
                np.multiply(dh, tc, out=dtmp)
                np.subtract(1, o, out=tmp)
                tmp *= o
                np.multiply(dtmp, tmp, out=o)
                # dg = dc ⊙ i ⊙ (1 − g²), written over g; needs i and g before they are overwritten
                np.multiply(g, g, out=tmp)
                np.subtract(1, tmp, out=tmp)
                tmp *= i
                np.multiply(dc, g, out=dtmp)                          # keep dc ⊙ g for di
                np.multiply(dc, tmp, out=g)
                # di = dc ⊙ g ⊙ i(1 − i), written over i
                np.subtract(1, i, out=tmp)
                tmp *= i
                np.multiply(dtmp, tmp, out=i)
                # df = dc ⊙ c_{t-1} ⊙ f(1 − f), written over f; then dc_{t-1} = dc ⊙ f
                np.subtract(1, f, out=tmp)
                tmp *= f
                np.multiply(dc, f, out=dtmp)
                np.multiply(dc, cs[t], out=dc)
                np.multiply(dc, tmp, out=f)
                dc, dtmp = dtmp, dc                                  # dc_{t-1}
                np.matmul(a, self.w_hh, out=dh)                      # dh_{t-1} = dA_t W_hh
        dA2 = dA.reshape(T * B, GH)
        dAh2 = dA2 if dAh is None else dAh                          # (T·B, GH) the recurrent side
        grads = {
            "weight_ih_l0": np.matmul(dA2.T, x.reshape(T * B, I)),   # (GH, I)
            "weight_hh_l0": np.matmul(dAh2.T, hs[:T].reshape(T * B, H)),   # (GH, H)
        }
        grads["bias_ih_l0"] = dA2.sum(axis=0)
        grads["bias_hh_l0"] = dAh2.sum(axis=0)
        dx = np.matmul(dA2, self.w_ih).reshape(T, B, I)              # (T, B, I)
        return hs[1:], dx, grads
