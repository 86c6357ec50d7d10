"""The estimators' ``instance_norm``: each sequence's own standardization appended to its features, when
"auto" appends it, and what fit, predict and files keep of it."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators import SequenceClassifier, SequenceRegressor
from rnnfast.estimators._data import _check_X, _instance_normalized, _scales_differ

FAST = dict(hidden_size=16, n_threads=1, random_state=0)
F64 = np.dtype(np.float64)


def own_standardization(x):
    """NumPy reference: (T_i, I) → (T_i, 2I), [x, (x − mean) / std] over the sequence's own steps."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return np.concatenate([x, (x - mean) / std], axis=1)


def shapes_at_gains(n, rng, T=40, span=6):
    """Two classes told apart by shape only (a sine, a triangle wave), each sequence at a gain of
    10^U(−span/2, span/2) plus a small offset: (n, T, 1), labels (n,)."""
    t = np.linspace(0, 4 * np.pi, T)
    y = rng.integers(0, 2, n)
    phase = rng.uniform(0, 2 * np.pi, n)[:, None]
    sine = np.sin(t + phase)
    triangle = 2 / np.pi * np.arcsin(np.sin(t + phase))
    shape = np.where(y[:, None] == 0, sine, np.sign(triangle) * np.abs(triangle) ** 0.3)
    gain = 10.0 ** rng.uniform(-span / 2, span / 2, (n, 1))
    x = gain * (shape + 0.05 * rng.standard_normal((n, T)))
    return x[:, :, None], y


def test_appended_standardization_matches_numpy_over_each_sequences_own_steps():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((int(T), 3)) * rng.uniform(0.1, 100, 3) + rng.uniform(-5, 5, 3)
         for T in rng.integers(2, 12, 9)]
    seqs = _instance_normalized(_check_X(X, F64))
    assert seqs.x.shape == (max(len(x) for x in X), 9, 6)
    for b, x in enumerate(X):
        np.testing.assert_allclose(seqs.x[:len(x), b], own_standardization(x), rtol=1e-12, atol=1e-12)
        assert not seqs.x[len(x):, b].any()                                   # the padding stays 0
    np.testing.assert_array_equal(seqs.lengths, [len(x) for x in X])


def test_a_constant_sequence_standardizes_to_zeros_not_to_blown_up_rounding():
    x = np.full((20, 1), 0.1, np.float32) + np.float32(1e-8) * np.arange(20, dtype=np.float32)[:, None]
    out = _instance_normalized(_check_X([x, -x], np.dtype(np.float32))).x                    # (20, 2, 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :, 0], np.stack([x[:, 0], -x[:, 0]], axis=1))
    assert np.abs(out[:, :, 1]).max() < 1e-4 * 1.8          # (x − mean) / 1, not scaled to unit size


@pytest.mark.parametrize("case, expected", [
    ("same scale", False), ("gains", True), ("offsets", True), ("short gains", False)])
def test_auto_appends_when_the_training_sequences_do_not_share_a_scale(case, expected):
    rng = np.random.default_rng(1)
    T = 4 if case == "short gains" else 30                 # fewer than 10 steps: moments too noisy to count
    x = rng.standard_normal((200, T, 2))
    if case in ("gains", "short gains"):
        x[:, :, 1] *= 10.0 ** rng.uniform(-2, 2, (200, 1))                  # one feature's gains span 10^4
    if case == "offsets":
        x[:, :, 0] += rng.uniform(-20, 20, (200, 1))
    assert _scales_differ(_check_X(x, F64)) is expected


def test_auto_is_the_classifiers_default_and_off_for_the_regressor_and_for_per_step_output():
    assert SequenceClassifier().instance_norm == "auto" and SequenceRegressor().instance_norm is False
    rng = np.random.default_rng(2)
    X, y = shapes_at_gains(40, rng)
    assert SequenceClassifier(max_updates=2, **FAST).fit(X, y).instance_norm_ is True
    assert SequenceRegressor(max_updates=2, **FAST).fit(X, y.astype(float)).instance_norm_ is False
    Y = (X[:, :, 0] > 0).astype(int)
    seq = SequenceClassifier(output="sequence", max_updates=2, **FAST).fit(X, Y)
    assert seq.instance_norm_ is False
    with pytest.raises(ValueError, match="instance_norm=True: output='sequence'"):
        SequenceClassifier(output="sequence", instance_norm=True, max_updates=2, **FAST).fit(X, Y)
    with pytest.raises(ValueError, match="instance_norm"):
        SequenceClassifier(instance_norm="yes", **FAST).fit(X, y)


@pytest.mark.parametrize("ragged", [False, True])
def test_the_network_reads_the_sequence_then_its_standardization_both_scaled(ragged):
    rng = np.random.default_rng(3)
    X, y = shapes_at_gains(30, rng, T=24)
    Xs = [x[:int(n)] for x, n in zip(X, rng.integers(12, 25, len(X)))] if ragged else X
    est = SequenceRegressor(instance_norm=True, derivative=False, window=1, window_span=1, max_updates=3,
                            **FAST).fit(Xs, y.astype(float))
    assert est.instance_norm_ is True and est.rnn_.input_size == 2 and est.input_size_ == 1
    assert est.input_mean_.shape == est.input_scale_.shape == (2,)
    seqs = est._scaled_steps(_check_X(Xs, np.dtype(np.float32)))       # window=1: what the network reads
    for b, x in enumerate(Xs):
        want = own_standardization(np.asarray(x, np.float64))
        if est.input_asinh_scale_ is not None:
            cols = np.flatnonzero(est.input_asinh_scale_)
            want[:, cols] = np.arcsinh((want[:, cols] - est.input_asinh_center_[cols]) / est.input_asinh_scale_[cols])
        want = (want - est.input_mean_) / est.input_scale_
        np.testing.assert_allclose(seqs.x[:len(x), b], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.predict(Xs[:5]), [est.predict([x])[0] for x in Xs[:5]], rtol=1e-5, atol=1e-6)


def test_shapes_recorded_at_gains_six_orders_apart_are_learned_with_it():
    rng = np.random.default_rng(4)
    X, y = shapes_at_gains(240, rng)
    clf = SequenceClassifier(max_updates=1000, **FAST).fit(X[:160], y[:160])
    assert clf.instance_norm_ is True
    assert clf.score(X[160:], y[160:]) >= 0.9
    without = SequenceClassifier(instance_norm=False, max_updates=1000, **FAST).fit(X[:160], y[:160])
    assert without.score(X[160:], y[160:]) <= 0.7            # the global scaling alone cannot serve every gain


@pytest.mark.parametrize("kind", ["file", "pickle"])
def test_files_and_pickles_keep_it(tmp_path, kind):
    import pickle
    rng = np.random.default_rng(5)
    X, y = shapes_at_gains(30, rng, T=20)
    est = SequenceClassifier(max_updates=3, **FAST).fit(X, y)
    assert est.instance_norm_ is True
    if kind == "file":
        est.save(tmp_path / "m.npz")
        again = rnnfast.load(tmp_path / "m.npz")
    else:
        again = pickle.loads(pickle.dumps(est))
    assert again.instance_norm_ is True and again.instance_norm == "auto"
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
