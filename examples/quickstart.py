"""The README's usage example: an LSTM forward and BPTT, checked against a finite difference."""
import numpy as np

import rnnfast

lstm = rnnfast.LSTM(input_size=8, hidden_size=32, num_layers=2, dtype="float64", seed=0)
x = np.random.default_rng(0).standard_normal((50, 16, 8))      # (T, B, I)
out, (h_n, c_n) = lstm(x)                                       # out (50, 16, 32), h_n (2, 16, 32)
loss = out[-1].sum()                                            # a loss on the last step
dout = np.zeros_like(out)
dout[-1] = 1.0
dx, (dh0, dc0) = lstm.backward(dout)                            # BPTT: fills every .grad
w = lstm.weight_hh_l0                                           # a Parameter: .data, .grad

# The same gradient by a central finite difference on one weight:
eps = 1e-6
w.data[5, 3] += eps
up = lstm(x)[0][-1].sum()
w.data[5, 3] -= 2 * eps
down = lstm(x)[0][-1].sum()
w.data[5, 3] += eps
print(f"out {out.shape}, h_n {h_n.shape}, loss {loss:.6f}")
print(f"dL/dW_hh[5, 3]: BPTT {w.grad[5, 3]:.9f}, finite difference {(up - down) / (2 * eps):.9f}")
print(f"threads: {rnnfast.get_num_threads()}, OpenMP: {rnnfast.openmp_enabled()}")
