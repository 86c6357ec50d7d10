"""The NumPy reference: rnnfast's mathematics, written for clarity, not speed. It is the specification.

Forward and hand-written BPTT of stacked (and bidirectional) Elman, LSTM and GRU layers in float64: one Python
loop over layers, one over directions, one over time, nothing fused. rnnfast's kernels are checked against it
(so are finite differences and torch autograd, in the tests); a new cell's kernel is written against it.
Time-major layout only, ``x`` is ``(T, B, I)``; callers transpose ``batch_first`` data themselves.

Cells are named as in the table of cells (:mod:`rnnfast._cells`): ``"elman-tanh"``, ``"elman-relu"``,
``"elman-sigmoid"``, ``"lstm"``, ``"gru"`` (or a family, ``"elman"`` being tanh).

Equations
---------
PyTorch's, weights named as in ``torch.nn.RNN`` / ``torch.nn.LSTM`` / ``torch.nn.GRU``, for each layer k::

    Elman:  h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)          φ ∈ {tanh, relu, sigmoid}
    LSTM:   i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), split in that order
            c_t = f ⊙ c_{t-1} + i ⊙ g
            h_t = o ⊙ tanh(c_t)
    GRU:    with a = x_t W_ihᵀ + b_ih and a' = h_{t-1} W_hhᵀ + b_hh, each split r, z, n in that order,
            r = σ(a_r + a'_r),  z = σ(a_z + a'_z)
            n = tanh(a_n + r ⊙ a'_n)                                   (b_hn stays inside the reset product)
            h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

The output of layer ``k`` is the input of layer ``k + 1`` (no dropout here). With ``lengths``, sequence ``b``
runs for ``lengths[b]`` steps; afterwards its output is zero and its state stays frozen, so ``h_n`` is the
state at its own last step (as torch packed sequences). With the mask ``m_t = [t < lengths]``::

    h_t = m_t ⊙ cell(x_t, h_{t-1}) + (1 - m_t) ⊙ h_{t-1}        out_t = m_t ⊙ h_t

Bidirectional layers (weights with a ``_reverse`` twin, e.g. ``weight_ih_l0_reverse``) run a second
recurrence with its own weights over t = T-1, ..., 0, with the same mask: the padded steps t >= lengths[b]
come first and leave the state at h0, so each sequence's reverse pass starts at its own last step and its
``h_n`` is the state after t = 0. The layer's output is ``[out_fwd, out_rev]`` on the last axis (T, B, 2H),
the next layer's input; states are (num_layers * 2, B, H) ordered [l0 fwd, l0 rev, l1 fwd, ...] as in torch.

Gradients
---------
Vector-Jacobian products: given ``dout = ∂L/∂out``, ``dh_n = ∂L/∂h_n`` (and ``dc_n``), :func:`backward`
returns ``∂L/∂p`` for every weight ``p`` (keyed by its torch name) and ``∂L/∂x``, ``∂L/∂h0`` (and ``∂L/∂c0``).
Per step, from ``dh`` (= ∂L/∂h_t: from ``out_t`` and from step t + 1), with ``da`` the gradient of the
pre-activations (input side) and ``da'`` of the recurrent side::

    Elman:  da = dh ⊙ φ'(pre),  da' = da
    LSTM:   dc_t += dh ⊙ o ⊙ (1 − tanh² c_t);  da = [dc⊙g⊙i(1−i), dc⊙c_{t-1}⊙f(1−f), dc⊙i⊙(1−g²),
            dh⊙tanh(c_t)⊙o(1−o)];  da' = da;  dc_{t-1} = dc_t ⊙ f
    GRU:    dn = dh ⊙ (1 − z) ⊙ (1 − n²);  da = [dn⊙a'_n⊙r(1−r), dh⊙(h_{t-1} − n)⊙z(1−z), dn];
            da' = da with its n block r ⊙ dn
    all:    dW_ih += daᵀ x_t,  dW_hh += da'ᵀ h_{t-1},  db_ih += Σ_b da,  db_hh += Σ_b da',
            dx_t = da W_ih,  dh_{t-1} = da' W_hh (+ dh ⊙ z for GRU)

Jordan network
--------------
:func:`jordan_forward` and :func:`jordan_backward`: the previous output is fed back, not the state::

    s_t = φ(x_t W_ihᵀ + y_{t-1} W_yhᵀ + b_h)        φ ∈ {tanh, relu, sigmoid}
    y_t = g(s_t W_hyᵀ + b_y)                        g ∈ {identity, tanh, relu, sigmoid}

with y_0 given (zeros by default). The head is inside the recurrence, so with dy = ∂L/∂y_t (from ``dout_t``
and from step t + 1): dz = dy ⊙ g'(·), da = (dz W_hy) ⊙ φ'(·), and ∂L/∂y_{t-1} gets da W_yh;
dW_ih += daᵀ x_t, dW_yh += daᵀ y_{t-1}, dW_hy += dzᵀ s_t, db_h += Σ_b da, db_y += Σ_b dz, dx_t = da W_ih.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._cells import CellSpec, cell_spec

__all__ = ["forward", "backward", "run", "init_weights", "min_abs_preactivation", "Cache", "Result", "Run",
           "jordan_forward", "jordan_backward", "jordan_init_weights"]

SUFFIXES = ("", "_reverse")  # direction d's parameter suffix


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def activation(phi, pre):
    """φ(pre) for an Elman cell."""
    if phi == "tanh":
        return np.tanh(pre)
    if phi == "relu":
        return np.maximum(pre, 0.0)
    if phi == "sigmoid":
        return sigmoid(pre)
    raise ValueError(f"unknown Elman nonlinearity {phi!r}")


def activation_grad(phi, pre, h):
    """φ'(pre), written with the output h = φ(pre) where that is the usual form."""
    if phi == "tanh":
        return 1.0 - h * h  # d tanh = 1 - tanh²
    if phi == "relu":
        return (pre > 0.0).astype(pre.dtype)  # torch's convention: relu'(0) = 0
    if phi == "sigmoid":
        return h * (1.0 - h)  # dσ = σ(1 - σ)
    raise ValueError(f"unknown Elman nonlinearity {phi!r}")


def num_layers_of(weights):
    return sum(1 for name in weights if name.startswith("weight_ih_l") and not name.endswith("_reverse"))


def directions_of(weights):
    return 2 if "weight_ih_l0_reverse" in weights else 1


def has_bias(weights):
    return "bias_ih_l0" in weights


def params_of(weights, k, d):
    """(w_ih, w_hh, b_ih, b_hh) of layer k, direction d; zero biases for a layer without them."""
    s = SUFFIXES[d]
    w_ih, w_hh = weights[f"weight_ih_l{k}{s}"], weights[f"weight_hh_l{k}{s}"]
    if has_bias(weights):
        return w_ih, w_hh, weights[f"bias_ih_l{k}{s}"], weights[f"bias_hh_l{k}{s}"]
    zeros = np.zeros(w_hh.shape[0])
    return w_ih, w_hh, zeros, zeros


@dataclass
class Run:
    """What one direction of one layer keeps for BPTT, indexed by t whatever the direction."""

    k: int  # layer
    d: int  # direction: 0 forward, 1 reverse
    h_prev: np.ndarray  # (T, B, H) state before step t
    pre: np.ndarray  # (T, B, G*H) pre-activations (GRU: a_r + a'_r, a_z + a'_z, a_n + r ⊙ a'_n)
    act: np.ndarray  # (T, B, G*H) activations (h_new; i f g o; r z n)
    c_prev: np.ndarray | None = None  # (T, B, H) LSTM cell before step t
    c_new: np.ndarray | None = None  # (T, B, H) LSTM cell computed at step t (before masking)
    hn: np.ndarray | None = None  # (T, B, H) GRU a'_n = h_{t-1} W_hnᵀ + b_hn

    @property
    def steps(self):
        """The order in which forward visits t."""
        T = self.h_prev.shape[0]
        return range(T - 1, -1, -1) if self.d else range(T)


@dataclass
class Cache:
    """What forward keeps for BPTT."""

    cell: CellSpec
    weights: dict
    x: np.ndarray  # (T, B, I) input of layer 0
    mask: np.ndarray  # (T, B, 1), 1.0 where t < lengths[b]
    layer_inputs: list = field(default_factory=list)  # [k] (T, B, I_k)
    runs: list = field(default_factory=list)  # [k * D + d] Run, in the order of h_n


@dataclass
class Result:
    out: np.ndarray  # (T, B, D*H)
    h_n: np.ndarray  # (L*D, B, H)
    c_n: np.ndarray | None  # (L*D, B, H) for LSTM
    grads: dict | None  # torch names and "x", "h0", "c0"
    cache: Cache


def _mask(T, B, lengths):
    if lengths is None:
        return np.ones((T, B, 1))
    lengths = np.asarray(lengths)
    return (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)[:, :, None]


def _forward_direction(cell, inp, params, h, c, mask, k, d):
    """One direction of one layer over inp (T, B, I_k): returns (out (T, B, H), h_n, c_n, Run)."""
    w_ih, w_hh, b_ih, b_hh = params
    T, B, _ = inp.shape
    H = w_hh.shape[1]
    G = cell.gates
    run = Run(k, d, h_prev=np.zeros((T, B, H)), pre=np.zeros((T, B, G * H)), act=np.zeros((T, B, G * H)))
    if cell.family == "lstm":
        run.c_prev, run.c_new = np.zeros((T, B, H)), np.zeros((T, B, H))
    if cell.family == "gru":
        run.hn = np.zeros((T, B, H))
    out = np.zeros((T, B, H))
    for t in run.steps:
        m = mask[t]  # (B, 1)
        run.h_prev[t] = h
        a = inp[t] @ w_ih.T + b_ih  # (B, G*H) input part
        a_h = h @ w_hh.T + b_hh  # (B, G*H) recurrent part
        if cell.family == "lstm":
            pre = a + a_h
            i, f, g, o = np.split(pre, 4, axis=1)
            i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
            c_new = f * c + i * g
            h_new = o * np.tanh(c_new)
            run.act[t] = np.concatenate([i, f, g, o], axis=1)
            run.c_prev[t], run.c_new[t] = c, c_new
            c = m * c_new + (1 - m) * c  # frozen outside the sequence
        elif cell.family == "gru":
            a_r, a_z, a_n = np.split(a, 3, axis=1)
            ah_r, ah_z, ah_n = np.split(a_h, 3, axis=1)
            r, z = sigmoid(a_r + ah_r), sigmoid(a_z + ah_z)
            pre_n = a_n + r * ah_n  # b_hn is inside ah_n, so inside the reset product
            n = np.tanh(pre_n)
            h_new = (1 - z) * n + z * h
            pre = np.concatenate([a_r + ah_r, a_z + ah_z, pre_n], axis=1)
            run.act[t] = np.concatenate([r, z, n], axis=1)
            run.hn[t] = ah_n
        else:
            pre = a + a_h
            h_new = activation(cell.nonlinearity, pre)
            run.act[t] = h_new
        run.pre[t] = pre
        h = m * h_new + (1 - m) * h
        out[t] = m * h
    return out, h, c, run


def forward(cell: Any, x, weights, h0=None, c0=None, lengths=None):
    """Run the stacked layer over ``x``.

    Parameters
    ----------
    cell : str or CellSpec
        A name in the table of cells (``"elman-relu"``, ``"lstm"``, ...).
    x : array_like (T, B, I)
    weights : dict of array_like
        torch's names and shapes (``weight_ih_l0`` (G·H, I), ...); the layer is bidirectional when they
        have ``_reverse`` twins, and without biases when there is no ``bias_ih_l0``.
    h0, c0 : array_like (L·D, B, H), optional
        Initial states (``c0`` for LSTM); zeros by default.
    lengths : array_like of int (B,), optional
        Steps of each sequence, in [1, T]; default all T.

    Returns
    -------
    out : ndarray (T, B, D·H)
    h_n : ndarray (L·D, B, H)
    c_n : ndarray (L·D, B, H) for LSTM, else None
    cache : Cache
        What :func:`backward` needs.
    """
    cell = cell_spec(cell)
    lstm = cell.has_cell_state
    x = np.asarray(x, dtype=np.float64)
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    T, B, _ = x.shape
    L, D = num_layers_of(weights), directions_of(weights)
    H = weights["weight_hh_l0"].shape[1]
    h0 = np.zeros((L * D, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    if lstm:
        c0 = np.zeros((L * D, B, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    mask = _mask(T, B, lengths)
    cache = Cache(cell, weights, x, mask)
    h_n, c_n = np.zeros((L * D, B, H)), np.zeros((L * D, B, H))

    inp = x
    for k in range(L):
        outs = []
        for d in range(D):
            j = k * D + d
            out, h_n[j], c, run = _forward_direction(cell, inp, params_of(weights, k, d), h0[j],
                                                     c0[j] if lstm else None, mask, k, d)
            if lstm:
                c_n[j] = c
            outs.append(out)
            cache.runs.append(run)
        cache.layer_inputs.append(inp)
        inp = np.concatenate(outs, axis=2)  # (T, B, D*H): [forward, reverse]
    return inp, h_n, (c_n if lstm else None), cache


def _backward_direction(cell, run, inp, params, mask, d_out, dh, dc, grads):
    """BPTT through one Run: adds into ``grads``; returns (∂L/∂inp (T, B, I_k), ∂L/∂h0, ∂L/∂c0)."""
    w_ih, w_hh, _, _ = params
    s = SUFFIXES[run.d]
    d_inp = np.zeros_like(inp)
    dh, dc = dh.copy(), dc.copy()  # ∂L/∂h_t (∂L/∂c_t) flowing back from the steps visited later
    for t in reversed(run.steps):
        m = mask[t]
        dh = dh + m * d_out[t]  # out_t = m ⊙ h_t
        dh_new = m * dh  # only live steps reach the cell
        h_prev = run.h_prev[t]
        dh_direct = 0.0  # the part of ∂L/∂h_prev that skips W_hh (GRU's z ⊙ h_prev)
        if cell.family == "lstm":
            i, f, g, o = np.split(run.act[t], 4, axis=1)
            c_prev, c_new = run.c_prev[t], run.c_new[t]
            dc_new = m * dc
            tc = np.tanh(c_new)
            do = dh_new * tc  # h = o ⊙ tanh(c)
            dc_tot = dc_new + dh_new * o * (1 - tc * tc)  # backprop through tanh(c)
            di, df, dg = dc_tot * g, dc_tot * c_prev, dc_tot * i  # c = f ⊙ c_prev + i ⊙ g
            da = np.concatenate([di * i * (1 - i),  # σ'
                                 df * f * (1 - f),
                                 dg * (1 - g * g),  # tanh'
                                 do * o * (1 - o)], axis=1)  # (B, 4H)
            da_h = da  # pre = a + a_h
            dc = (1 - m) * dc + dc_tot * f  # frozen steps pass dc straight through
        elif cell.family == "gru":
            r, z, n = np.split(run.act[t], 3, axis=1)
            dn = dh_new * (1 - z)  # h = (1 - z) ⊙ n + z ⊙ h_prev
            dz = dh_new * (h_prev - n)
            dh_direct = dh_new * z
            dpre_n = dn * (1 - n * n)  # tanh'
            dr = dpre_n * run.hn[t]  # pre_n = a_n + r ⊙ a'_n
            dpre_r, dpre_z = dr * r * (1 - r), dz * z * (1 - z)  # σ'
            da = np.concatenate([dpre_r, dpre_z, dpre_n], axis=1)  # (B, 3H) ∂L/∂a
            da_h = np.concatenate([dpre_r, dpre_z, dpre_n * r], axis=1)  # (B, 3H) ∂L/∂a'
        else:
            da = dh_new * activation_grad(cell.nonlinearity, run.pre[t], run.act[t])  # (B, H)
            da_h = da
        grads[f"weight_ih_l{run.k}{s}"] += da.T @ inp[t]
        grads[f"weight_hh_l{run.k}{s}"] += da_h.T @ h_prev
        if f"bias_ih_l{run.k}{s}" in grads:
            grads[f"bias_ih_l{run.k}{s}"] += da.sum(axis=0)
            grads[f"bias_hh_l{run.k}{s}"] += da_h.sum(axis=0)
        d_inp[t] = da @ w_ih
        dh = (1 - m) * dh + dh_direct + da_h @ w_hh  # frozen steps pass dh straight through
    return d_inp, dh, dc


def backward(cache, dout, dh_n=None, dc_n=None):
    """BPTT through a :func:`forward`'s ``cache``.

    Parameters
    ----------
    cache : Cache
    dout : array_like (T, B, D·H)
        ∂L/∂out.
    dh_n, dc_n : array_like (L·D, B, H), optional
        ∂L/∂h_n and (LSTM) ∂L/∂c_n; zeros by default.

    Returns
    -------
    dict
        Gradients keyed by torch's parameter names, and ``"x"``, ``"h0"`` (``"c0"`` for LSTM).
    """
    cell, weights, mask = cache.cell, cache.weights, cache.mask
    L, D = num_layers_of(weights), directions_of(weights)
    _, B, H = cache.runs[0].h_prev.shape
    dout = np.asarray(dout, dtype=np.float64)
    dh_n = np.zeros((L * D, B, H)) if dh_n is None else np.asarray(dh_n, dtype=np.float64)
    dc_n = np.zeros((L * D, B, H)) if dc_n is None else np.asarray(dc_n, dtype=np.float64)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}
    dh0, dc0 = np.zeros((L * D, B, H)), np.zeros((L * D, B, H))

    d_layer_out = dout  # (T, B, D*H) ∂L/∂(output of layer k), starting from the top
    for k in reversed(range(L)):
        inp = cache.layer_inputs[k]
        d_inp = np.zeros_like(inp)
        for d in range(D):
            j = k * D + d
            d_inp_d, dh0[j], dc0[j] = _backward_direction(cell, cache.runs[j], inp, params_of(weights, k, d), mask,
                                                          d_layer_out[..., d * H:(d + 1) * H], dh_n[j], dc_n[j],
                                                          grads)
            d_inp += d_inp_d  # both directions read the same input
        d_layer_out = d_inp
    grads["x"] = d_layer_out
    grads["h0"] = dh0
    if cell.has_cell_state:
        grads["c0"] = dc0
    return grads


def run(cell: Any, x, weights, h0=None, c0=None, lengths=None, dout=None, dh_n=None, dc_n=None):
    """Forward (as :func:`forward`), and BPTT when ``dout`` (T, B, D·H) is given (as :func:`backward`).

    Returns
    -------
    Result
        ``out``, ``h_n``, ``c_n``, ``grads`` (None without ``dout``) and the ``cache``.
    """
    out, h_n, c_n, cache = forward(cell, x, weights, h0, c0, lengths)
    grads = None if dout is None else backward(cache, dout, dh_n, dc_n)
    return Result(out, h_n, c_n, grads, cache)


def min_abs_preactivation(cache):
    """Smallest |pre-activation| over live steps; finite differences of relu need it away from the kink."""
    live = cache.mask[..., 0].astype(bool)  # (T, B)
    return min(np.abs(run.pre[live]).min() for run in cache.runs)


def init_weights(rng, cell: Any, input_size, hidden_size, num_layers, bias=True, bidirectional=False):
    """Random weights with torch's names and shapes, U(-1/sqrt(H), 1/sqrt(H)) like torch's default."""
    G, H = cell_spec(cell).gates, hidden_size
    D = 2 if bidirectional else 1
    bound = 1.0 / np.sqrt(H)
    weights = {}
    for k in range(num_layers):
        i_k = input_size if k == 0 else D * H
        for s in SUFFIXES[:D]:
            weights[f"weight_ih_l{k}{s}"] = rng.uniform(-bound, bound, (G * H, i_k))
            weights[f"weight_hh_l{k}{s}"] = rng.uniform(-bound, bound, (G * H, H))
            if bias:
                weights[f"bias_ih_l{k}{s}"] = rng.uniform(-bound, bound, G * H)
                weights[f"bias_hh_l{k}{s}"] = rng.uniform(-bound, bound, G * H)
    return weights


# ------------------------------------------------------------------------------------------------ Jordan
def _output_activation(g, pre):
    return pre.copy() if g == "identity" else activation(g, pre)


def _output_activation_grad(g, pre, y):
    return np.ones_like(pre) if g == "identity" else activation_grad(g, pre, y)


def jordan_forward(x, weights, y0=None, nonlinearity="tanh", output_activation="identity"):
    """The Jordan network over x (T, B, I): returns (y (T, B, O), y_n (B, O), cache).

    ``weights``: ``weight_ih`` (H, I), ``weight_yh`` (H, O), ``weight_hy`` (O, H) and optionally ``bias_h``
    (H,), ``bias_y`` (O,) (zeros when absent).
    """
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    w_ih, w_yh, w_hy = (np.asarray(weights[k], np.float64) for k in ("weight_ih", "weight_yh", "weight_hy"))
    H, O = w_ih.shape[0], w_hy.shape[0]
    b_h = np.asarray(weights.get("bias_h", np.zeros(H)), np.float64)
    b_y = np.asarray(weights.get("bias_y", np.zeros(O)), np.float64)
    y_prev = np.zeros((B, O)) if y0 is None else np.asarray(y0, np.float64)
    y_prevs, s_pre, s, y_pre, y = [], [], [], [], []
    for t in range(T):
        y_prevs.append(y_prev)
        a = x[t] @ w_ih.T + y_prev @ w_yh.T + b_h           # (B, H)
        s_t = activation(nonlinearity, a)
        z = s_t @ w_hy.T + b_y                              # (B, O)
        y_t = _output_activation(output_activation, z)
        s_pre.append(a), s.append(s_t), y_pre.append(z), y.append(y_t)
        y_prev = y_t
    stack = lambda seq, n: np.stack(seq) if seq else np.zeros((0, B, n))   # noqa: E731
    cache = dict(x=x, weights=dict(weight_ih=w_ih, weight_yh=w_yh, weight_hy=w_hy, bias_h=b_h, bias_y=b_y),
                 nonlinearity=nonlinearity, output_activation=output_activation,
                 y_prev=stack(y_prevs, O), s_pre=stack(s_pre, H), s=stack(s, H), y_pre=stack(y_pre, O),
                 y=stack(y, O))
    return cache["y"], y_prev, cache


def jordan_backward(cache, dy, dy_n=None):
    """BPTT through :func:`jordan_forward`: ∂L/∂ of every weight (its name), of ``"x"`` and of ``"y0"``,
    given dy = ∂L/∂y (T, B, O) and dy_n = ∂L/∂y_n (B, O)."""
    w = cache["weights"]
    x, phi, g = cache["x"], cache["nonlinearity"], cache["output_activation"]
    T, B, _ = x.shape
    grads = {name: np.zeros_like(value) for name, value in w.items()}
    dx = np.zeros_like(x)
    d_next = np.zeros((B, w["weight_hy"].shape[0])) if dy_n is None else np.array(dy_n, np.float64)
    for t in reversed(range(T)):
        d_y = np.asarray(dy[t], np.float64) + d_next                     # ∂L/∂y_t
        dz = d_y * _output_activation_grad(g, cache["y_pre"][t], cache["y"][t])
        da = (dz @ w["weight_hy"]) * activation_grad(phi, cache["s_pre"][t], cache["s"][t])
        grads["weight_hy"] += dz.T @ cache["s"][t]
        grads["bias_y"] += dz.sum(0)
        grads["weight_ih"] += da.T @ x[t]
        grads["weight_yh"] += da.T @ cache["y_prev"][t]
        grads["bias_h"] += da.sum(0)
        dx[t] = da @ w["weight_ih"]
        d_next = da @ w["weight_yh"]                                      # ∂L/∂y_{t-1} through s_t
    grads["x"], grads["y0"] = dx, d_next
    return grads


def jordan_init_weights(rng, input_size, hidden_size, output_size, bias=True):
    """Random Jordan weights, U(-1/sqrt(H), 1/sqrt(H)) (the head's U(-1/sqrt(H), ·) too, as a Linear(H, O))."""
    bound = 1.0 / np.sqrt(hidden_size)
    weights = dict(weight_ih=rng.uniform(-bound, bound, (hidden_size, input_size)),
                   weight_yh=rng.uniform(-bound, bound, (hidden_size, output_size)),
                   weight_hy=rng.uniform(-bound, bound, (output_size, hidden_size)))
    if bias:
        weights["bias_h"] = rng.uniform(-bound, bound, hidden_size)
        weights["bias_y"] = rng.uniform(-bound, bound, output_size)
    return weights
