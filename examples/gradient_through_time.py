"""How far back does the gradient reach? ‖∂L/∂h_t‖ for a loss on the last step, Elman vs LSTM.

Trains nothing. For L = Σ out[T-1]·v (v a fixed random unit direction), rnnfast.diagnostics computes the
exact norm of ∂L/∂h_t at every step t of a T = 100 sequence of random inputs, for an Elman (tanh) layer and
two LSTMs of the same hidden size: torch's default initialisation, and the same with the forget-gate bias
raised by 1 (a common trick: f = σ(·) starts near 0.73 instead of 0.5, so the cell keeps more of its past).
The Elman gradient vanishes geometrically, ∂L/∂h_t = W_hhᵀ diag(1 − h²_{t+1}) ∂L/∂h_{t+1}; the LSTM's cell
path ∂c_t/∂c_{t-1} = diag(f_t) lets it travel further back.

    python examples/gradient_through_time.py        # prints a table; saves a plot if matplotlib is installed
"""
import numpy as np

import rnnfast
from rnnfast.diagnostics import gradient_norms_through_time

T, B, I, H = 100, 2, 8, 32
rnnfast.set_num_threads(1)          # a batch of 2 has nothing to split; spares ~5000 thread hand-offs
x = np.random.default_rng(0).standard_normal((T, B, I))             # (T, B, I)

elman = rnnfast.Elman(I, H, dtype="float64", seed=0)
lstm = rnnfast.LSTM(I, H, dtype="float64", seed=0)
lstm_fb = rnnfast.LSTM(I, H, dtype="float64", seed=0)
lstm_fb.bias_ih_l0.data[H:2 * H] += 1.0                             # gates i, f, g, o: rows H:2H are f

curves = {
    "Elman": gradient_norms_through_time(elman, x),
    "LSTM": gradient_norms_through_time(lstm, x),
    "LSTM, forget bias +1": gradient_norms_through_time(lstm_fb, x),
}

print(f"‖∂L/∂h_t‖ for L = out[{T - 1}]·v, ‖v‖ = 1 (hidden size {H}, batch {B}, random inputs)")
print(f"{'t':>4} " + " ".join(f"{name:>22}" for name in curves))
for t in list(range(0, T, 10)) + [T - 1]:
    print(f"{t:>4} " + " ".join(f"{g[t]:>22.3e}" for g in curves.values()))

try:
    import matplotlib
except ImportError:
    print("matplotlib is optional (pip install matplotlib, or rnnfast[plot]) and not installed: no plot")
else:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, g in curves.items():
        ax.semilogy(np.arange(T), g, label=name)
    ax.set_xlabel("t")
    ax.set_ylabel(f"‖∂L/∂h_t‖,  L on step {T - 1}")
    ax.set_title("Gradient norm through time")
    ax.legend()
    fig.tight_layout()
    fig.savefig("gradient_through_time.png", dpi=120)
    print("saved gradient_through_time.png")
