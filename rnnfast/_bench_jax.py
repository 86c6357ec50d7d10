"""The JAX contender of ``rnnfast bench --jax``: one jitted float32 training step per cell, on the weights of
rnnfast's layer, written the way a careful JAX user writes it (the input projection as one matmul over all
T·B rows, ``jax.lax.scan`` over time for the recurrent part, autodiff for BPTT).

Parameters use torch's names and layout (one layer): ``weight_ih_l0`` (G·H, I), ``weight_hh_l0`` (G·H, H),
``bias_ih_l0`` and ``bias_hh_l0`` (G·H,). Time-major input x (T, B, I), as ``rnnfast.bench`` times it, and a
zero initial state.

Elman (tanh):  h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)
LSTM:          [i, f, g, o] = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh          (gate order i, f, g, o)
               c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g),   h_t = σ(o) ⊙ tanh(c_t)
GRU:           [a_r, a_z, a_n] = x_t W_ihᵀ + b_ih,  [h_r, h_z, h_n] = h_{t-1} W_hhᵀ + b_hh   (order r, z, n)
               r = σ(a_r + h_r),  z = σ(a_z + h_z),  n = tanh(a_n + r ⊙ h_n)
               h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

One step computes the loss L = Σ out ⊙ dout (out = h_1 … h_T, (T, B, H)) and, by ``jax.value_and_grad``,
dL/dθ for the four parameters and dL/dx: the same work as rnnfast's ``layer(x); layer.backward(dout)`` and
torch's ``out.backward(dout)`` with x requiring grad. The step is compiled once, ahead of time
(``jax.jit(...).lower(...).compile()``), so compile time is never timed; the timed call blocks until its
results are ready (JAX dispatches asynchronously).

Threads: XLA's CPU client sizes its intra-op thread pool when the backend starts, from the environment
variable ``PJRT_NPROC`` (else one thread per usable core); nothing changes it afterwards. In this JAX (0.10.2)
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``, the setting older answers
give, put no fewer threads to work. :func:`start` sets ``PJRT_NPROC`` to the bench's thread count before the backend starts and
reports whether that held (it cannot when something in the process started JAX's backend before). The pool
does not cap JAX at that many cores: the thread that runs the computation works beside the pool's threads,
so a pool of N keeps up to N + 1 cores busy (benchmarks/README.md has the measurement). Only CPU affinity
holds JAX to one core, and that would hold the other contenders of the same process too; so the bench
measures instead (CPU time over wall time of JAX's timed batches) and prints it. JAX is imported only here,
only when asked.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from ._cells import cell_spec

__all__ = ["INSTALL_HINT", "PARAM_NAMES", "start", "train_step", "loss_and_grads"]

INSTALL_HINT = 'rnnfast bench --jax needs JAX: pip install "jax[cpu]" (or pip install "rnnfast[jax]")'
PARAM_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _backends_started() -> Optional[bool]:
    """Whether JAX's backends have started in this process (None: this JAX does not say)."""
    try:
        from jax._src import xla_bridge           # private: no public API tells, so fail soft
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return None


def start(threads: int) -> Dict[str, Any]:
    """Import JAX and start its CPU backend with an intra-op pool of ``threads`` threads.

    Parameters
    ----------
    threads : int
        The pool size asked for, through ``PJRT_NPROC`` (set only while the backend starts; the previous
        value, or its absence, is put back).

    Returns
    -------
    dict
        ``version``; ``threads``: the pool size in force when the bench set it, else None; ``held``: True when
        the bench set it; False when it could not (the pool is then whatever the backend started with) or
        cannot tell, with the reason in ``why`` (when held, the backend saw ``PJRT_NPROC`` = ``threads``).

    Raises
    ------
    ImportError
        Without JAX, with :data:`INSTALL_HINT` as the message.
    """
    try:
        import jax
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    info: Dict[str, Any] = {"version": jax.__version__, "threads": None, "held": False, "why": None}
    started = _backends_started()
    if started:
        info["why"] = "its backend had started before the bench could size its pool"
        return info
    prior = os.environ.get("PJRT_NPROC")
    os.environ["PJRT_NPROC"] = str(threads)
    try:
        jax.devices("cpu")                        # starts the backends: the pool is sized now, once
    finally:
        if prior is None:
            del os.environ["PJRT_NPROC"]
        else:
            os.environ["PJRT_NPROC"] = prior
    if started is None:
        info["why"] = f"PJRT_NPROC={threads} was set, but this JAX does not tell whether its backend had started"
    else:
        info.update(threads=threads, held=True)
    return info


# ------------------------------------------------------------------------------------------ the model
def _forward(cell: str, params: Mapping[str, Any], x: Any) -> Any:
    """out = h_1 … h_T (T, B, H) of a one-layer cell from a zero state; ``params`` and ``x`` are JAX arrays."""
    import jax
    import jax.numpy as jnp

    family = cell_spec(cell).family
    w_ih, w_hh = params["weight_ih_l0"], params["weight_hh_l0"]            # (GH, I), (GH, H)
    b_ih, b_hh = params["bias_ih_l0"], params["bias_hh_l0"]                # (GH,), (GH,)
    H = w_hh.shape[1]
    B = x.shape[1]
    # The input side of every step at once: one (T·B, I) × (I, GH) matmul.
    if family == "gru":
        a = x @ w_ih.T + b_ih                                               # (T, B, 3H): b_hn stays in r ⊙ (·)
    else:
        a = x @ w_ih.T + (b_ih + b_hh)                                      # (T, B, GH)
    h0 = jnp.zeros((B, H), x.dtype)                                         # (B, H)

    if family == "elman":
        def step(h, a_t):                                                   # h (B, H), a_t (B, H)
            h = jnp.tanh(a_t + h @ w_hh.T)
            return h, h
        _, out = jax.lax.scan(step, h0, a)                                  # (T, B, H)
    elif family == "lstm":
        def step(hc, a_t):                                                  # a_t (B, 4H)
            h, c = hc
            z = a_t + h @ w_hh.T                                            # (B, 4H): i, f, g, o
            i, f = jax.nn.sigmoid(z[:, :H]), jax.nn.sigmoid(z[:, H:2 * H])
            g, o = jnp.tanh(z[:, 2 * H:3 * H]), jax.nn.sigmoid(z[:, 3 * H:])
            c = f * c + i * g                                               # (B, H)
            h = o * jnp.tanh(c)
            return (h, c), h
        _, out = jax.lax.scan(step, (h0, h0), a)
    elif family == "gru":
        def step(h, a_t):                                                   # a_t (B, 3H): a_r, a_z, a_n
            hh = h @ w_hh.T + b_hh                                          # (B, 3H): h_r, h_z, h_n
            r = jax.nn.sigmoid(a_t[:, :H] + hh[:, :H])
            z = jax.nn.sigmoid(a_t[:, H:2 * H] + hh[:, H:2 * H])
            n = jnp.tanh(a_t[:, 2 * H:] + r * hh[:, 2 * H:])
            h = (1 - z) * n + z * h
            return h, h
        _, out = jax.lax.scan(step, h0, a)
    else:
        raise ValueError(f"cell must be 'lstm', 'gru' or 'elman', got {cell!r}")
    return out


def _loss(cell: str, params: Mapping[str, Any], x: Any, dout: Any) -> Any:
    """L = Σ out ⊙ dout: its gradient is the BPTT of upstream gradient ``dout`` (T, B, H)."""
    import jax.numpy as jnp

    return jnp.sum(_forward(cell, params, x) * dout)


def train_step(cell: str, state_dict: Mapping[str, np.ndarray], x: np.ndarray, dout: np.ndarray
               ) -> Callable[[], Any]:
    """A closure running one compiled float32 training step of ``cell`` and waiting for its results.

    Parameters
    ----------
    cell : str
        ``"lstm"``, ``"gru"`` or ``"elman"`` (tanh).
    state_dict : mapping
        torch's parameter names (:data:`PARAM_NAMES`) to arrays, as ``layer.state_dict()`` gives them.
    x : ndarray
        (T, B, I) input.
    dout : ndarray
        (T, B, H) upstream gradient of the output.

    Returns
    -------
    callable
        With no arguments, returns ``(loss, (param_grads, dx))`` as ready JAX arrays. Compiled before it is
        returned, so the first call does not compile.
    """
    import jax
    import jax.numpy as jnp

    cpu = jax.devices("cpu")[0]
    put = lambda a: jax.device_put(jnp.asarray(np.asarray(a, np.float32)), cpu)  # noqa: E731
    params = {k: put(state_dict[k]) for k in PARAM_NAMES}
    xj, dj = put(x), put(dout)                                              # (T, B, I), (T, B, H)
    grad = jax.value_and_grad(lambda p, xx, d: _loss(cell, p, xx, d), argnums=(0, 1))
    compiled = jax.jit(grad).lower(params, xj, dj).compile()                # compile time stays out of timing

    def step() -> Any:
        return jax.block_until_ready(compiled(params, xj, dj))

    return step


def loss_and_grads(cell: str, state_dict: Mapping[str, np.ndarray], x: np.ndarray, dout: np.ndarray
                   ) -> Dict[str, Any]:
    """One step of :func:`train_step` as NumPy: ``loss`` (float), the four parameter gradients by name, ``x``
    (dL/dx, (T, B, I)). For the tests."""
    loss, (dparams, dx) = train_step(cell, state_dict, x, dout)()
    out: Dict[str, Any] = {k: np.asarray(v) for k, v in dparams.items()}
    out["x"], out["loss"] = np.asarray(dx), float(loss)
    return out
