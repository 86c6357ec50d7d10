"""SequenceRegressor's ``network_weight``: predict = b + w·(the network's part), b the linear part or the
training mean, and "auto" fitting w on the sequences a probe fit left out."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators import SequenceRegressor

FAST = dict(max_updates=60, random_state=0, hidden_size=16, n_threads=1)    # one thread: one probe at a time


def drawn(n=60, T=8, seed=0, noise=0.3):
    """X (n, T, 2) and a target: a linear part, a product no linear model reads, and noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 2))
    return X, X[:, -1, 0] + X[:, -2, 1] * X[:, -3, 0] + noise * rng.standard_normal(n)


@pytest.mark.parametrize("extra", [{}, {"ridge": False}, {"ridge": False, "scale": False}])
def test_predict_is_the_baseline_plus_w_times_the_network_part(extra):
    X, y = drawn()
    y = y + 5.0                                                         # a mean far from 0 (scale=False)
    full, base, half = (SequenceRegressor(network_weight=w, **extra, **FAST).fit(X, y) for w in (1.0, 0.0, 0.3))
    assert full.ridge_ == ("ridge" not in extra)                        # (the same network in all three)
    p1, p0, ph = full.predict(X), base.predict(X), half.predict(X)
    np.testing.assert_allclose(ph, p0 + 0.3 * (p1 - p0), rtol=1e-10, atol=1e-10)
    assert np.abs(p1 - p0).max() > 1e-3
    if "ridge" in extra:                                                # b: the training mean
        np.testing.assert_allclose(p0, y.mean(), rtol=1e-10)
    assert half.network_weight_.tolist() == [0.3]


def test_auto_is_the_least_squares_weight_on_the_probes_out_of_fold_predictions():
    X, y = drawn(n=50, seed=5, noise=1.0)                               # noisy: w inside (0, 1), not clipped
    est = SequenceRegressor(**FAST).fit(X, y)
    rng = np.random.default_rng(0)                                      # the probes' seeds, as fit draws them
    d, r = np.zeros(50), np.zeros(50)                                   # from random_state
    for held in (np.arange(0, 17), np.arange(17, 34), np.arange(34, 50)):   # contiguous thirds, in order
        kept = np.setdiff1d(np.arange(50), held)
        params = {**FAST, "random_state": int(rng.integers(2**31)), "ridge": est.ridge_}   # the model's part
        y_hat = SequenceRegressor(network_weight=1.0, **params).fit(X[kept], y[kept]).predict(X[held])
        b = SequenceRegressor(network_weight=0.0, **params).fit(X[kept], y[kept]).predict(X[held])
        d[held], r[held] = y_hat - b, y[held] - b
    assert est.network_weight_.shape == (1,) and 0.05 < est.network_weight_[0] < 0.95
    np.testing.assert_allclose(est.network_weight_[0], np.clip(r @ d / (d @ d), 0, 1), rtol=1e-9, atol=1e-12)


def test_auto_shrinks_a_network_that_fits_noise_and_keeps_one_that_generalises():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((80, 6, 1))
    noise = rng.standard_normal(80)                                     # nothing to learn
    kw = dict(ridge=False, max_updates=400, random_state=0, hidden_size=32)
    auto = SequenceRegressor(**kw).fit(X[:60], noise[:60])
    alone = SequenceRegressor(network_weight=1.0, **kw).fit(X[:60], noise[:60])
    assert alone.score(X[:60], noise[:60]) > 0.5                        # it fits the noise
    assert auto.network_weight_[0] < 0.5
    assert auto.score(X[60:], noise[60:]) > alone.score(X[60:], noise[60:])
    signal = X[:, -1, 0] * X[:, -2, 0]                                  # learnable, not linear
    assert SequenceRegressor(**kw).fit(X[:60], signal[:60]).network_weight_[0] > 0.7


def test_weight_per_output_and_where_no_probe_runs():
    X, y = drawn(n=40)
    two = SequenceRegressor(**FAST).fit(X, np.c_[y, np.zeros(40) + np.random.default_rng(1).standard_normal(40)])
    assert two.network_weight_.shape == (2,)
    assert SequenceRegressor(**FAST).fit(X[:5], y[:5]).network_weight_.tolist() == [1.0]   # too few to hold out
    seq = SequenceRegressor(output="sequence", **FAST).fit(X, np.repeat(y[:, None], 8, axis=1))
    assert seq.network_weight_.tolist() == [1.0]
    part = SequenceRegressor(**FAST).partial_fit(X, y)
    assert part.network_weight_.tolist() == [1.0]


def test_a_warm_start_keeps_the_weight_and_a_float_replaces_it(tmp_path):
    X, y = drawn(n=40)
    est = SequenceRegressor(warm_start=True, **FAST).fit(X, y)
    w = est.network_weight_.copy()
    est.fit(X, y)
    np.testing.assert_array_equal(est.network_weight_, w)
    est.set_params(network_weight=0.25).fit(X, y)
    assert est.network_weight_.tolist() == [0.25]
    path = os.path.join(tmp_path, "m.npz")
    loaded = rnnfast.load(est.save(path))
    assert loaded.network_weight_.tolist() == [0.25]
    np.testing.assert_array_equal(loaded.target_center_, est.target_center_)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.parametrize("value, error, message", [
    ("x", ValueError, "network_weight must be one of 'auto'"), (1.5, ValueError, r"network_weight must be in \[0, 1\]"),
    (True, TypeError, "network_weight must be a real number")])
def test_bad_network_weight_is_refused_by_name(value, error, message):
    X, y = drawn(n=20)
    with pytest.raises(error, match=message):
        SequenceRegressor(network_weight=value, **FAST).fit(X, y)


def test_an_interrupt_in_the_probe_keeps_the_model_with_the_network_whole(monkeypatch):
    X, y = drawn(n=40)
    original = SequenceRegressor._train_batch
    calls = {"n": 0}

    def batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 64:                                            # the model's own 60 updates, then the probe
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SequenceRegressor, "_train_batch", batch)
    est = SequenceRegressor(batch_size=16, **FAST)
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning, match="network_weight's probe fit"):
        est.fit(X, y)
    assert calls["n"] == 64                                           # (the probe stopped there)
    assert est.n_updates_ == 60 and est.network_weight_.tolist() == [1.0]
    np.testing.assert_array_equal(est.predict(X), SequenceRegressor(batch_size=16, network_weight=1.0,
                                                                    **FAST).fit(X, y).predict(X))


def test_an_interrupt_between_the_probes_fits_keeps_the_fitted_model(monkeypatch):
    X, y = drawn(n=40)
    expected = SequenceRegressor(network_weight=1.0, **FAST).fit(X, y).predict(X)
    original = SequenceRegressor._predicted
    monkeypatch.setattr(SequenceRegressor, "_predicted", lambda self, X: (
        _ for _ in ()).throw(KeyboardInterrupt) if self.network_weight == 1.0 else original(self, X))
    est = SequenceRegressor(**FAST)
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning, match="network_weight's probe fit") as caught:
        est.fit(X, y)                                                   # (the first probe's predict interrupted)
    assert caught[0].filename == __file__                               # (pointed at the caller's fit)
    monkeypatch.undo()
    assert est.n_updates_ == 60 and est.network_weight_.tolist() == [1.0]
    np.testing.assert_array_equal(est.predict(X), expected)


def test_the_probes_have_the_model_s_linear_part(monkeypatch):
    """A probe's own "auto" could decide the linear part otherwise on its two thirds: it is given the model's."""
    seen = []
    original = SequenceRegressor.fit
    monkeypatch.setattr(SequenceRegressor, "fit", lambda self, *a, **k: seen.append(self.ridge) or original(
        self, *a, **k))
    X, y = drawn(n=40)
    for ridge in (True, False):
        seen.clear()
        monkeypatch.setattr(SequenceRegressor, "_AUTO_RIDGE_SCORE", -np.inf if ridge else np.inf)
        est = SequenceRegressor(**FAST).fit(X, y)
        assert est.ridge_ is ridge and seen == ["auto", ridge, ridge, ridge]


def test_a_diverged_fit_keeps_its_weight():
    X, y = drawn(n=40)
    est = SequenceRegressor(network_weight=0.0, optimizer="sgd", lr=1e20, clip_norm=None, **FAST)
    with pytest.raises(FloatingPointError), np.errstate(all="ignore"):
        est.fit(X, y * 1e3)
    assert hasattr(est, "model_") and est.network_weight_.tolist() == [0.0]


def test_output_sequence_refuses_a_weight_it_would_not_use():
    X, y = drawn(n=20)
    with pytest.raises(ValueError, match="network_weight=0.5: .* with output='sequence' use 'auto' or 1"):
        SequenceRegressor(output="sequence", network_weight=0.5, **FAST).fit(X, np.repeat(y[:, None], 8, axis=1))


def test_no_probe_after_an_interrupted_fit_or_beyond_the_work_limit(monkeypatch):
    X, y = drawn(n=40)
    fits = []
    original_fit = SequenceRegressor.fit
    monkeypatch.setattr(SequenceRegressor, "fit", lambda self, *a, **k: fits.append(1) or original_fit(self, *a, **k))
    monkeypatch.setattr(rnnfast.estimators._regressor, "_AUTO_MAX_MACS", 1.0)    # 4 × the fit's work is more
    assert SequenceRegressor(**FAST).fit(X, y).network_weight_.tolist() == [1.0] and len(fits) == 1
    monkeypatch.undo()
    original = SequenceRegressor._train_batch
    calls = {"n": 0}

    def batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30:                                            # in the model's own fit
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SequenceRegressor, "_train_batch", batch)
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning, match="Training interrupted by user after"):
        est = SequenceRegressor(batch_size=16, **FAST).fit(X, y)
    assert calls["n"] == 30 and est.network_weight_.tolist() == [1.0]   # the user asked to stop: no probe


def test_probes_side_by_side_give_the_model_and_weight_of_one_thread(monkeypatch):
    """With n threads, the model's training and its three probes share them: min(4, n) fits at once on
    n // min(4, n) kernel threads each, the probes in threads of their own. Each fit's seed and thread count fix
    its result, so two threads (the training beside a probe, then two probes) give the model one thread gives."""
    X, y = drawn(n=50, seed=5, noise=1.0)
    runs = []                                                           # (n_threads, Python thread) per fit
    original = SequenceRegressor.fit
    monkeypatch.setattr(SequenceRegressor, "fit", lambda self, *a, **k: runs.append(
        (self.n_threads, threading.current_thread().name)) or original(self, *a, **k))
    one = SequenceRegressor(**FAST).fit(X, y)
    assert [t for t, _ in runs] == [1, 1, 1, 1] and {name for _, name in runs} == {threading.current_thread().name}
    runs.clear()
    two = SequenceRegressor(**{**FAST, "n_threads": 2}).fit(X, y)
    assert [t for t, _ in runs] == [2, 1, 1, 1]
    probe_threads = {name for _, name in runs[1:]}
    assert len(probe_threads) == 2 and all(name.startswith("rnnfast-probe") for name in probe_threads)
    assert 0.05 < one.network_weight_[0] < 0.95
    np.testing.assert_array_equal(two.network_weight_, one.network_weight_)
    for name, value in one.model_.state_dict().items():                # the training ran on one thread too
        np.testing.assert_array_equal(two.model_.state_dict()[name], value)
    runs.clear()
    SequenceRegressor(**{**FAST, "n_threads": 8}).fit(X, y)           # all four at once, two threads each
    assert [t for t, _ in runs] == [8, 2, 2, 2] and len({name for _, name in runs[1:]}) == 3


def _probe_threads():
    return [t for t in threading.enumerate() if t.name.startswith("rnnfast-probe")]


def test_an_interrupt_of_the_training_stops_the_probe_beside_it(monkeypatch):
    """Ctrl-C reaches the calling thread: in the model's own training (a probe beside it), the model keeps its
    complete epochs with the weight 1, and the probe stops at its next batch, is joined and does not warn."""
    X, y = drawn(n=40)
    original = SequenceRegressor._train_batch
    calls = {"main": 0, "probes": []}

    def batch(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            calls["main"] += 1
            if calls["main"] == 30:                                     # in the model's own fit
                raise KeyboardInterrupt
        else:
            calls["probes"].append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SequenceRegressor, "_train_batch", batch)
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning) as caught:
        est = SequenceRegressor(batch_size=16, **{**FAST, "n_threads": 2}).fit(X, y)
    assert [str(c.message).split(" after")[0] for c in caught] == ["Training interrupted by user"]   # the model's
    assert not _probe_threads()
    stopped = len(calls["probes"])
    assert 0 < stopped < 60                                             # the probe had started, and stopped
    assert calls["main"] == 30 and est.n_updates_ == 27 and est.network_weight_.tolist() == [1.0]
    assert len(calls["probes"]) == stopped


def test_an_interrupt_while_the_probes_run_side_by_side_stops_them_all(monkeypatch):
    X, y = drawn(n=40)
    calls = []
    original = SequenceRegressor._train_batch
    monkeypatch.setattr(SequenceRegressor, "_train_batch", lambda self, *a, **k: calls.append(1) or original(
        self, *a, **k))
    monkeypatch.setattr(rnnfast.estimators._regressor, "wait", lambda *a, **k: (   # Ctrl-C while fit waits
        _ for _ in ()).throw(KeyboardInterrupt))
    est = SequenceRegressor(batch_size=16, **{**FAST, "n_threads": 2})
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning, match="network_weight's probe fit") as caught:
        est.fit(X, y)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert not _probe_threads()
    stopped = len(calls)
    assert stopped < 60 + 3 * 60                                        # not all three probes ran
    assert len(calls) == stopped and est.n_updates_ == 60 and est.network_weight_.tolist() == [1.0]
    monkeypatch.undo()
    np.testing.assert_array_equal(est.predict(X), SequenceRegressor(batch_size=16, network_weight=1.0,
                                                                    **FAST).fit(X, y).predict(X))
