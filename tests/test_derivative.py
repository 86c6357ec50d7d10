"""The estimators' ``derivative``: each feature's first difference appended to the features, when "auto"
appends it, the order of the features the network reads, and what fit and predict keep of it (files and
pickles: tests/test_persist.py)."""
from __future__ import annotations

import numpy as np
import pytest

from rnnfast.estimators import SequenceClassifier, SequenceRegressor
from rnnfast.estimators._data import _check_X, _with_differences

FAST = dict(hidden_size=16, n_threads=1, random_state=0)
F64 = np.dtype(np.float64)


def with_slopes(x):
    """NumPy reference: (T_i, I) → (T_i, 2I), [x_t, x_t − x_{t−1}] with 0 at the first step."""
    return np.concatenate([x, np.vstack([np.zeros((1, x.shape[1])), x[1:] - x[:-1]])], axis=1)


def own_standardization(x):
    """(T_i, F) → (T_i, 2F), [x, (x − mean) / std] over the sequence's own steps (tests/test_instance_norm.py)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return np.concatenate([x, (x - mean) / np.where(std > 0, std, 1.0)], axis=1)


def test_appended_differences_match_numpy_within_each_sequences_own_steps():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((int(T), 3)) * 10 + 5 for T in rng.integers(1, 12, 9)]   # some of one step
    seqs = _with_differences(_check_X(X, F64))
    assert seqs.x.shape == (max(len(x) for x in X), 9, 6)
    for b, x in enumerate(X):
        np.testing.assert_array_equal(seqs.x[:len(x), b], with_slopes(x))
        assert not seqs.x[len(x):, b].any()              # the padding stays 0: no step from the last value to 0
    np.testing.assert_array_equal(seqs.lengths, [len(x) for x in X])
    equal = _with_differences(_check_X(np.stack([x[:1] for x in X]), F64))          # (n, 1, I): one step each
    assert not equal.x[:, :, 3:].any()


def test_auto_is_on_for_one_output_per_sequence_and_off_per_step():
    assert SequenceClassifier().derivative == "auto" and SequenceRegressor().derivative == "auto"
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 12, 3)), np.arange(20) % 2
    clf = SequenceClassifier(max_updates=2, window=1, window_span=1, **FAST).fit(X, y)
    assert clf.derivative_ is True and clf.rnn_.input_size == 6 and clf.input_size_ == 3
    assert clf.input_mean_.shape == clf.input_scale_.shape == (6,)
    reg = SequenceRegressor(max_updates=2, window=1, window_span=1, **FAST).fit(X, y.astype(float))
    assert reg.derivative_ is True and reg.rnn_.input_size == 6
    seq = SequenceRegressor(output="sequence", max_updates=2, **FAST).fit(X, X[:, :, 0])
    assert seq.derivative_ is False and seq.rnn_.input_size == 3
    off = SequenceClassifier(derivative=False, max_updates=2, window=1, window_span=1, **FAST).fit(X, y)
    assert off.derivative_ is False and off.rnn_.input_size == 3
    clf.set_params(derivative=False)                      # fixed at fit: predict reads what fit chose
    assert clf.predict_proba(X).shape == (20, 2) and clf.derivative_ is True
    with pytest.raises(ValueError, match="derivative"):
        SequenceClassifier(derivative="yes", **FAST).fit(X, y)


@pytest.mark.parametrize("ragged", [False, True])
def test_the_network_reads_steps_differences_then_their_own_standardization_all_scaled(ragged):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 24, 2)) * 10.0 ** rng.uniform(-2, 2, (30, 1, 1))
    y = rng.standard_normal(30)
    Xs = [x[:int(n)] for x, n in zip(X, rng.integers(12, 25, len(X)))] if ragged else X
    est = SequenceRegressor(instance_norm=True, window=1, window_span=1, max_updates=3, scale="standard",
                            **FAST).fit(Xs, y)
    assert est.derivative_ is True and est.instance_norm_ is True and est.rnn_.input_size == 8
    seqs = est._scaled_steps(_check_X(Xs, np.dtype(np.float32)))       # window=1: what the network reads
    for b, x in enumerate(Xs):
        want = (own_standardization(with_slopes(np.asarray(x, np.float64))) - est.input_mean_) / est.input_scale_
        np.testing.assert_allclose(seqs.x[:len(x), b], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.predict(Xs[:5]), [est.predict([x])[0] for x in Xs[:5]], rtol=1e-5, atol=1e-6)


def test_a_label_carried_by_the_slope_alone_is_learned():
    """Two classes of random walks that differ only in the spread of their steps' sizes, read through a window
    of 4 steps: the slope features make the step sizes visible at once."""
    rng = np.random.default_rng(4)
    n, T = 240, 64
    y = rng.integers(0, 2, n)
    steps = rng.standard_normal((n, T)) * np.where(y[:, None] == 1, 1.0, 0.5)
    X = np.cumsum(steps, axis=1)
    X -= X.mean(axis=1, keepdims=True)
    # without mixup, which lets the plain walks reach 0.925 in these 300 updates, and without predict's draws of
    # the crop (0.9125): the slope's effect alone
    plain = dict(max_updates=300, mixup=0.0, predict_crops=0, **FAST)
    with_it = SequenceClassifier(**plain).fit(X[:160], y[:160])
    assert with_it.derivative_ is True and with_it.score(X[160:], y[160:]) >= 0.95       # 1.0 on our machine
    without = SequenceClassifier(derivative=False, **plain).fit(X[:160], y[:160])
    assert without.score(X[160:], y[160:]) <= 0.9                                       # 0.85 on our machine

