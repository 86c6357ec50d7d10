"""Forecast a noisy sum of sines one step ahead with SequenceRegressor, against the naive last-value forecast.

Each sample is a window of the last 40 observations (n_samples, T=40); the target is the next one.
Prints R² on the held-out end of the series for the LSTM and for "tomorrow = today".
Run: python examples/forecast.py
"""
import time

import numpy as np

import rnnfast

rng = np.random.default_rng(0)
t = np.arange(6000)
series = np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 23 + 1.0) + 0.1 * rng.standard_normal(t.size)

T = 40
windows = np.lib.stride_tricks.sliding_window_view(series, T + 1)     # (n, T + 1)
X, y = windows[:, :T], windows[:, T]                                  # 2-D X: univariate sequences
split = int(0.8 * len(X))                                             # train on the past, test on the future
X_train, y_train, X_test, y_test = X[:split], y[:split], X[split:], y[split:]

reg = rnnfast.SequenceRegressor(cell="lstm", hidden_size=32, max_epochs=30, random_state=0, verbose=1)
start = time.perf_counter()
reg.fit(X_train, y_train)
print(f"trained {reg.n_epochs_} epochs in {time.perf_counter() - start:.1f} s")


def r2(truth, pred):
    return 1 - np.sum((truth - pred) ** 2) / np.sum((truth - truth.mean()) ** 2)


print(f"R² of the LSTM forecast:        {reg.score(X_test, y_test):.3f}")
print(f"R² of the last-value baseline:  {r2(y_test, X_test[:, -1]):.3f}")
print(f"(the noise alone caps R² at about {1 - 0.01 / np.var(y_test):.3f})")
