"""A plain NumPy reference for Elman and LSTM layers: forward and hand-written BPTT, in float64.

Written for clarity, not speed: one Python loop over layers, one over time, nothing fused. Tests compare
rnnfast's Cython kernels against it. Time-major layout only, ``x`` is ``(T, B, I)``; callers transpose
``batch_first`` data themselves.

Equations (PyTorch's, weights named as in ``torch.nn.RNN`` / ``torch.nn.LSTM``; ``k`` is the layer)::

    Elman:  h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)          φ ∈ {tanh, relu, sigmoid}
    LSTM:   i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), split in that order
            c_t = f ⊙ c_{t-1} + i ⊙ g
            h_t = o ⊙ tanh(c_t)

The output of layer ``k`` is the input of layer ``k + 1`` (no dropout here). With ``lengths``, sequence ``b``
runs for ``lengths[b]`` steps; afterwards its output is zero and its state stays frozen, so ``h_n`` is the
state at its own last step (as torch packed sequences). With the mask ``m_t = [t < lengths]``::

    h_t = m_t ⊙ cell(x_t, h_{t-1}) + (1 - m_t) ⊙ h_{t-1}        out_t = m_t ⊙ h_t

Gradients are vector-Jacobian products: given ``dout = ∂L/∂out``, ``dh_n = ∂L/∂h_n`` (and ``dc_n``),
:func:`backward` returns ``∂L/∂p`` for every weight ``p`` (keyed by its torch name) and ``∂L/∂x``,
``∂L/∂h0`` (and ``∂L/∂c0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODES = ("tanh", "relu", "sigmoid", "lstm")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def activation(mode, pre):
    """φ(pre) for an Elman cell."""
    if mode == "tanh":
        return np.tanh(pre)
    if mode == "relu":
        return np.maximum(pre, 0.0)
    if mode == "sigmoid":
        return sigmoid(pre)
    raise ValueError(f"unknown Elman nonlinearity {mode!r}")


def activation_grad(mode, pre, h):
    """φ'(pre), written with the output h = φ(pre) where that is the usual form."""
    if mode == "tanh":
        return 1.0 - h * h  # d tanh = 1 - tanh²
    if mode == "relu":
        return (pre > 0.0).astype(pre.dtype)  # torch's convention: relu'(0) = 0
    if mode == "sigmoid":
        return h * (1.0 - h)  # dσ = σ(1 - σ)
    raise ValueError(f"unknown Elman nonlinearity {mode!r}")


def gate_count(mode):
    return 4 if mode == "lstm" else 1


def num_layers_of(weights):
    return sum(1 for name in weights if name.startswith("weight_ih_l"))


def has_bias(weights):
    return "bias_ih_l0" in weights


@dataclass
class Cache:
    """What forward keeps for BPTT, one list entry per layer."""

    mode: str
    weights: dict
    x: np.ndarray  # (T, B, I) input of layer 0
    mask: np.ndarray  # (T, B, 1), 1.0 where t < lengths[b]
    layer_inputs: list = field(default_factory=list)  # [k] (T, B, I_k)
    h_prev: list = field(default_factory=list)  # [k] (T, B, H) state before step t
    c_prev: list = field(default_factory=list)  # [k] (T, B, H) LSTM cell before step t
    pre: list = field(default_factory=list)  # [k] (T, B, G*H) pre-activations
    act: list = field(default_factory=list)  # [k] (T, B, G*H) activations (h_new, or i f g o)
    c_new: list = field(default_factory=list)  # [k] (T, B, H) LSTM cell computed at step t (before masking)


@dataclass
class Result:
    out: np.ndarray  # (T, B, H)
    h_n: np.ndarray  # (L, B, H)
    c_n: np.ndarray | None  # (L, B, H) for LSTM
    grads: dict | None  # torch names and "x", "h0", "c0"
    cache: Cache


def _mask(T, B, lengths):
    if lengths is None:
        return np.ones((T, B, 1))
    lengths = np.asarray(lengths)
    return (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)[:, :, None]


def forward(mode, x, weights, h0=None, c0=None, lengths=None):
    """Run the stacked layer over ``x`` (T, B, I). Returns ``(out, h_n, c_n, cache)``; ``c_n`` is None for Elman."""
    assert mode in MODES, mode
    x = np.asarray(x, dtype=np.float64)
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    T, B, _ = x.shape
    L = num_layers_of(weights)
    H = weights["weight_hh_l0"].shape[1]
    h0 = np.zeros((L, B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    if mode == "lstm":
        c0 = np.zeros((L, B, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    mask = _mask(T, B, lengths)
    cache = Cache(mode, weights, x, mask)
    h_n, c_n = np.zeros((L, B, H)), np.zeros((L, B, H))

    inp = x
    for k in range(L):
        w_ih, w_hh = weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"]
        b = weights[f"bias_ih_l{k}"] + weights[f"bias_hh_l{k}"] if has_bias(weights) else 0.0
        h = h0[k]
        c = c0[k] if mode == "lstm" else None
        out = np.zeros((T, B, H))
        hp, cp, pres, acts, cn = [], [], [], [], []
        for t in range(T):
            m = mask[t]  # (B, 1)
            pre = inp[t] @ w_ih.T + h @ w_hh.T + b  # (B, G*H)
            hp.append(h)
            pres.append(pre)
            if mode == "lstm":
                i, f, g, o = np.split(pre, 4, axis=1)
                i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
                c_new = f * c + i * g
                h_new = o * np.tanh(c_new)
                acts.append(np.concatenate([i, f, g, o], axis=1))
                cp.append(c)
                cn.append(c_new)
                c = m * c_new + (1 - m) * c  # frozen after the sequence ends
            else:
                h_new = activation(mode, pre)
                acts.append(h_new)
            h = m * h_new + (1 - m) * h
            out[t] = m * h
        cache.layer_inputs.append(inp)
        cache.h_prev.append(np.stack(hp))
        cache.pre.append(np.stack(pres))
        cache.act.append(np.stack(acts))
        if mode == "lstm":
            cache.c_prev.append(np.stack(cp))
            cache.c_new.append(np.stack(cn))
            c_n[k] = c
        h_n[k] = h
        inp = out
    return inp, h_n, (c_n if mode == "lstm" else None), cache


def backward(cache, dout, dh_n=None, dc_n=None):
    """BPTT through ``cache``: returns a dict of gradients keyed by torch names and "x", "h0" ("c0" for LSTM)."""
    mode, weights, mask = cache.mode, cache.weights, cache.mask
    L = num_layers_of(weights)
    T, B, H = cache.h_prev[0].shape
    dout = np.asarray(dout, dtype=np.float64)
    dh_n = np.zeros((L, B, H)) if dh_n is None else np.asarray(dh_n, dtype=np.float64)
    dc_n = np.zeros((L, B, H)) if dc_n is None else np.asarray(dc_n, dtype=np.float64)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}
    dh0, dc0 = np.zeros((L, B, H)), np.zeros((L, B, H))

    d_layer_out = dout  # ∂L/∂(output of layer k), starting from the top
    for k in reversed(range(L)):
        w_ih, w_hh = weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"]
        inp = cache.layer_inputs[k]
        d_inp = np.zeros_like(inp)
        dh = dh_n[k].copy()  # ∂L/∂h_t flowing back from the future
        dc = dc_n[k].copy()
        for t in reversed(range(T)):
            m = mask[t]
            dh = dh + m * d_layer_out[t]  # out_t = m ⊙ h_t
            dh_new = m * dh  # only live steps reach the cell
            h_prev = cache.h_prev[k][t]
            if mode == "lstm":
                i, f, g, o = np.split(cache.act[k][t], 4, axis=1)
                c_prev, c_new = cache.c_prev[k][t], cache.c_new[k][t]
                dc_new = m * dc
                tc = np.tanh(c_new)
                do = dh_new * tc  # h = o ⊙ tanh(c)
                dc_tot = dc_new + dh_new * o * (1 - tc * tc)  # backprop through tanh(c)
                di, df, dg = dc_tot * g, dc_tot * c_prev, dc_tot * i  # c = f ⊙ c_prev + i ⊙ g
                dpre = np.concatenate([di * i * (1 - i),  # σ'
                                       df * f * (1 - f),
                                       dg * (1 - g * g),  # tanh'
                                       do * o * (1 - o)], axis=1)  # (B, 4H)
                dc = (1 - m) * dc + dc_tot * f  # frozen steps pass dc straight through
            else:
                dpre = dh_new * activation_grad(mode, cache.pre[k][t], cache.act[k][t])  # (B, H)
            grads[f"weight_ih_l{k}"] += dpre.T @ inp[t]
            grads[f"weight_hh_l{k}"] += dpre.T @ h_prev
            if has_bias(weights):
                grads[f"bias_ih_l{k}"] += dpre.sum(axis=0)
                grads[f"bias_hh_l{k}"] += dpre.sum(axis=0)
            d_inp[t] = dpre @ w_ih
            dh = (1 - m) * dh + dpre @ w_hh  # frozen steps pass dh straight through
        dh0[k], dc0[k] = dh, dc
        d_layer_out = d_inp
    grads["x"] = d_layer_out
    grads["h0"] = dh0
    if mode == "lstm":
        grads["c0"] = dc0
    return grads


def run(mode, x, weights, h0=None, c0=None, lengths=None, dout=None, dh_n=None, dc_n=None):
    """Forward, and BPTT when ``dout`` is given. Returns a :class:`Result`."""
    out, h_n, c_n, cache = forward(mode, x, weights, h0, c0, lengths)
    grads = None if dout is None else backward(cache, dout, dh_n, dc_n)
    return Result(out, h_n, c_n, grads, cache)


def min_abs_preactivation(cache):
    """Smallest |pre-activation| over live steps; finite differences of relu need it away from the kink."""
    live = cache.mask[..., 0].astype(bool)  # (T, B)
    return min(np.abs(pre[live]).min() for pre in cache.pre)


def init_weights(rng, mode, input_size, hidden_size, num_layers, bias=True):
    """Random weights with torch's names and shapes, U(-1/sqrt(H), 1/sqrt(H)) like torch's default."""
    G, H = gate_count(mode), hidden_size
    bound = 1.0 / np.sqrt(H)
    weights = {}
    for k in range(num_layers):
        i_k = input_size if k == 0 else H
        weights[f"weight_ih_l{k}"] = rng.uniform(-bound, bound, (G * H, i_k))
        weights[f"weight_hh_l{k}"] = rng.uniform(-bound, bound, (G * H, H))
        if bias:
            weights[f"bias_ih_l{k}"] = rng.uniform(-bound, bound, G * H)
            weights[f"bias_hh_l{k}"] = rng.uniform(-bound, bound, G * H)
    return weights
