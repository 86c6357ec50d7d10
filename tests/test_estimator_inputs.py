"""Targets given in other containers, parameters changed after fit, and labels that a file cannot hold: what
the estimators make of them (each found by a user-style review, each test failing before its fix)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators import SequenceClassifier, SequenceRegressor

FAST = dict(max_updates=20, hidden_size=8, random_state=0)


def ragged(n=24, seed=0):
    """X: n sequences of 5–11 steps of 2 features; per-step targets of 2 outputs for each."""
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((5 + i % 7, 2)) for i in range(n)]
    return X, [2.0 * x for x in X]


@pytest.mark.parametrize("outputs", [1, 2])
def test_sequence_targets_as_an_object_array_keep_their_outputs(outputs):
    X, Y = ragged()
    as_list = [y[:, :outputs] for y in Y]                             # (T_i, k) each
    as_objects = np.empty(len(X), dtype=object)
    as_objects[:] = as_list                                           # as a pandas Series of arrays holds them
    a = SequenceRegressor(output="sequence", **FAST).fit(X, as_list).predict(X[:3])
    b = SequenceRegressor(output="sequence", **FAST).fit(X, as_objects).predict(X[:3])
    assert [p.shape for p in b] == [p.shape for p in a] == [(len(x), outputs) for x in X[:3]]
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    flat = np.empty(len(X), dtype=object)
    flat[:] = [y[:, 0] for y in Y]                                    # (T_i,) each: no output axis
    assert [p.shape for p in SequenceRegressor(output="sequence", **FAST).fit(X, flat).predict(X[:2])] == \
        [(len(x),) for x in X[:2]]


def test_rows_of_targets_as_objects_get_an_error_naming_y():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6, 1))
    rows = np.empty(20, dtype=object)
    rows[:] = list(rng.standard_normal((20, 2)))                      # each row an array of 2 outputs
    with pytest.raises(ValueError, match=r"y must be numbers shaped \(n_samples,\) or \(n_samples, k\)"):
        SequenceRegressor(**FAST).fit(X, rows)


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_predict_follows_the_noise_and_offset_fit_trained_with(Estimator, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 40, 2))                              # 40 steps: a window, random offsets
    y = (X[:, :, 0].sum(1) > 0).astype(int) if Estimator is SequenceClassifier else X[:, -3:, 0].sum(1)
    extra = {} if Estimator is SequenceClassifier else {"ridge": False}
    est = Estimator(input_noise=0.3, **extra, **FAST).fit(X, y)
    assert est.window_ > 1 and est.input_noise_ == 0.3 and est.window_offset_ == "random"
    out = est.predict_proba if Estimator is SequenceClassifier else est.predict
    before = out(X[:5])
    est.set_params(input_noise=3.0, window_offset=0)                  # not trained with: predict unchanged
    np.testing.assert_array_equal(out(X[:5]), before)
    path = os.path.join(tmp_path, "m.npz")
    loaded = rnnfast.load(est.save(path))
    assert loaded.input_noise_ == 0.3 and loaded.window_offset_ == "random"
    np.testing.assert_array_equal((loaded.predict_proba if Estimator is SequenceClassifier
                                   else loaded.predict)(X[:5]), before)
    est.fit(X, y)                                                     # the next fit trains with the new values
    assert est.input_noise_ == 3.0 and est.window_offset_ == 0


def test_save_refuses_labels_a_file_cannot_hold_and_keeps_the_old_file(tmp_path):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 6, 1)), np.arange(20) % 2
    path = os.path.join(tmp_path, "m.npz")
    SequenceClassifier(**FAST).fit(X, y).save(path)
    before = open(path, "rb").read()
    labels = np.array(["a", "a\x00"], dtype=object)[y]                # numpy's text drops the trailing NUL
    est = SequenceClassifier(**FAST).fit(X, labels)
    assert est.classes_.tolist() == ["a", "a\x00"]
    with pytest.raises(ValueError, match=r"cannot save classes_: .* would load as \['a', 'a'\]"):
        est.save(path)
    assert open(path, "rb").read() == before
    assert type(rnnfast.load(path)) is SequenceClassifier


def test_sequences_in_a_pandas_series_are_a_list_of_them():
    pd = pytest.importorskip("pandas")
    X, Y = ragged()
    y = np.array([x[:, 0].sum() for x in X])
    as_list = SequenceRegressor(network_weight=1.0, **FAST).fit(X, y)
    as_series = SequenceRegressor(network_weight=1.0, **FAST).fit(pd.Series(X), y)
    np.testing.assert_array_equal(as_series.predict(pd.Series(X[:4])), as_list.predict(X[:4]))
