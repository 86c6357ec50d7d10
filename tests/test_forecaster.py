"""SequenceForecaster: shapes, scikit-learn conventions, free-running forecasts that beat persistence on a
clean periodic series, early stopping, and argument checks."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators import NotFittedError


def sine_windows(n_series=300, T=24, h=6, seed=0):
    """Windows of a sum of two sines (period 17 and 7.5 steps): X (n, T), y (n, h)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_series + T + h)
    series = np.sin(2 * np.pi * t / 17) + 0.5 * np.sin(2 * np.pi * t / 7.5) + 0.02 * rng.standard_normal(t.size)
    w = np.lib.stride_tricks.sliding_window_view(series, T + h)[:n_series]
    return w[:, :T], w[:, T:]


def test_forecasts_a_periodic_series_and_beats_persistence():
    X, y = sine_windows()
    f = rnnfast.SequenceForecaster(horizon=6, random_state=0)                      # the defaults
    f.fit(X[:250], y[:250])
    pred = f.predict(X[250:])
    assert pred.shape == (50, 6)
    err = np.sqrt(np.mean((pred - y[250:]) ** 2))
    persistence = np.sqrt(np.mean((X[250:, -1:] - y[250:]) ** 2))
    assert err < 0.1 * persistence, (err, persistence)
    assert f.score(X[250:], y[250:]) > 0.98


def test_predict_is_the_models_free_running_decode():
    X, y = sine_windows(n_series=60)
    f = rnnfast.SequenceForecaster(horizon=6, hidden_size=8, max_updates=20, random_state=0).fit(X, y)
    x = (X.T[:, :, None] - f.input_mean_) / f.input_scale_                          # (T, n, 1)
    start = (X[:, -1:] - f.target_mean_) / f.target_scale_                           # last input step
    z = f.model_.decode(x, 6, start=start)[..., 0].T                                 # (n, 6) standardized
    np.testing.assert_allclose(f.predict(X), z * f.target_scale_ + f.target_mean_, rtol=1e-5, atol=1e-5)


def test_shapes_multivariate_and_ragged():
    rng = np.random.default_rng(0)
    X3, y3 = rng.standard_normal((40, 10, 3)), rng.standard_normal((40, 4, 2))
    f = rnnfast.SequenceForecaster(horizon=4, hidden_size=8, max_updates=5, random_state=0).fit(X3, y3)
    assert f.predict(X3).shape == (40, 4, 2) and f.n_outputs_ == 2 and f.input_size_ == 3
    ragged = [rng.standard_normal((int(n), 2)) for n in rng.integers(3, 9, 30)]
    y = rng.standard_normal((30, 3, 2))
    f = rnnfast.SequenceForecaster(horizon=3, hidden_size=8, max_updates=5, random_state=0).fit(ragged, y)
    pred = f.predict(ragged)
    assert pred.shape == (30, 3, 2) and np.isfinite(pred).all()
    # a window's forecast depends on its own steps only, not on the padding of a longer neighbour
    np.testing.assert_allclose(f.predict(ragged[:1]), pred[:1], rtol=1e-5, atol=1e-6)


def test_early_stopping_keeps_the_best_epoch():
    X, y = sine_windows(n_series=120)
    f = rnnfast.SequenceForecaster(horizon=6, hidden_size=8, max_updates=300, n_iter_no_change=3,
                                   random_state=0).fit(X, y)
    scores = f.validation_scores_
    assert len(scores) == f.n_iter_ and f.best_epoch_ == int(np.argmin(scores)) + 1
    off = rnnfast.SequenceForecaster(horizon=6, hidden_size=8, max_updates=30, early_stopping=False,
                                     random_state=0).fit(X, y)
    assert off.validation_scores_ is None and off.best_epoch_ == off.n_iter_


def test_estimator_conventions():
    sklearn_base = pytest.importorskip("sklearn.base")
    f = rnnfast.SequenceForecaster(horizon=5, hidden_size=7, lr=0.01)
    assert f.get_params()["hidden_size"] == 7 and f.horizon == 5
    g = sklearn_base.clone(f)
    assert g.get_params() == f.get_params() and not hasattr(g, "model_")
    X, y = sine_windows(n_series=40, h=5)
    a = rnnfast.SequenceForecaster(horizon=5, hidden_size=8, max_updates=10, random_state=3).fit(X, y)
    b = rnnfast.SequenceForecaster(horizon=5, hidden_size=8, max_updates=10, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))                        # same seed, same model
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), a.predict(X))


def test_bad_arguments_name_themselves():
    X, y = sine_windows(n_series=20)
    with pytest.raises(NotFittedError):
        rnnfast.SequenceForecaster().predict(X)
    with pytest.raises(ValueError, match="horizon"):
        rnnfast.SequenceForecaster(horizon=12).fit(X, y)                            # y has 6 steps
    with pytest.raises(ValueError, match="horizon"):
        rnnfast.SequenceForecaster(horizon=0).fit(X, y)
    with pytest.raises(ValueError, match="cell"):
        rnnfast.SequenceForecaster(horizon=6, cell="transformer").fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        rnnfast.SequenceForecaster(horizon=6, validation_fraction=1.5).fit(X, y)
    with pytest.raises(ValueError, match="y"):
        rnnfast.SequenceForecaster(horizon=6).fit(X, np.full(y.shape, np.nan))
    f = rnnfast.SequenceForecaster(horizon=6, hidden_size=4, max_updates=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        f.predict(X[:, :10])


# ---- save / load, warm_start and partial_fit ------------------------------------------------------------
def test_partial_fit_and_warm_start_continue_one_long_fit_bit_for_bit():
    """Three partial_fit calls are the three epochs of one fit at a constant rate (same stream, same optimizer
    state); a warm start continues, a cold second fit starts over."""
    X, y = sine_windows(n_series=40, h=5)
    kw = dict(horizon=5, hidden_size=6, lr_schedule="constant", early_stopping=False, n_threads=1, random_state=2)
    long = rnnfast.SequenceForecaster(max_epochs=3, **kw).fit(X, y)
    partial = rnnfast.SequenceForecaster(max_epochs=1, **kw)
    for _ in range(3):
        partial.partial_fit(X, y)
    assert partial.loss_curve_ == long.loss_curve_ and partial.n_iter_ == 3 and partial.n_updates_ == long.n_updates_
    np.testing.assert_array_equal(partial.predict(X), long.predict(X))
    warm = rnnfast.SequenceForecaster(max_epochs=1, warm_start=True, **kw).fit(X, y)
    warm.fit(X, y).fit(X, y)
    assert warm.loss_curve_ == long.loss_curve_ and warm.best_epoch_ == 3
    np.testing.assert_array_equal(warm.predict(X), long.predict(X))
    cold = rnnfast.SequenceForecaster(max_epochs=1, **kw).fit(X, y).fit(X, y)
    assert cold.n_iter_ == 1 and cold.loss_curve_ == long.loss_curve_[:1]


def test_a_failed_call_leaves_the_forecaster_as_it_was():
    """A diverged warm start leaves the weights, the optimizer's state and the random stream as they were: the
    next call trains as if it never ran. A fresh fit that fails leaves no model; changed sizes are refused."""
    X, y = sine_windows(n_series=40, h=5)
    kw = dict(horizon=5, hidden_size=6, max_epochs=1, warm_start=True, early_stopping=False, n_threads=1,
              random_state=2)
    ref = rnnfast.SequenceForecaster(**kw).fit(X, y).fit(X, y)
    f = rnnfast.SequenceForecaster(**kw).fit(X, y)
    attrs, pred = dict(f.__dict__), f.predict(X)
    with pytest.raises(FloatingPointError, match="left as it was"), np.errstate(over="ignore"):
        f.set_params(lr=1e30).fit(X, y)
    assert f.__dict__.keys() == attrs.keys() and f.model_ is attrs["model_"]
    np.testing.assert_array_equal(f.predict(X), pred)
    f.set_params(lr=ref.lr).fit(X, y)
    assert f.loss_curve_ == ref.loss_curve_
    np.testing.assert_array_equal(f.predict(X), ref.predict(X))
    with pytest.raises(ValueError, match="hidden_size=8 \\(fitted with 6\\), horizon=3 \\(fitted with 5\\)"):
        f.set_params(hidden_size=8, horizon=3).fit(X, y[:, :3])
    fresh = rnnfast.SequenceForecaster(**{**kw, "lr": 1e30})
    with pytest.raises(FloatingPointError), np.errstate(over="ignore"):
        fresh.fit(X, y)
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "loss_curve_")


def test_warm_start_with_early_stopping_counts_epochs_over_every_call():
    X, y = sine_windows(n_series=60, h=5)
    f = rnnfast.SequenceForecaster(horizon=5, hidden_size=6, max_epochs=2, warm_start=True, random_state=0).fit(X, y)
    f.fit(X, y)
    # the curves run on over both calls; the kept epoch is this call's best (as the other estimators keep it)
    assert f.n_iter_ == 4 and len(f.validation_scores_) == 4 and len(f.loss_curve_) == 4
    assert f.best_epoch_ == 3 + int(np.argmin(f.validation_scores_[2:]))


@pytest.mark.parametrize("multi", [False, True], ids=["univariate", "multivariate"])
def test_save_load_and_continue(tmp_path, multi):
    X, y = sine_windows(n_series=40, h=5)
    if multi:
        X = np.stack([X, -X], axis=-1)                                               # (n, T, 2)
        y = np.stack([y, -y], axis=-1)                                               # (n, 5, 2)
    f = rnnfast.SequenceForecaster(horizon=5, hidden_size=6, num_layers=2, cell="gru", max_updates=20,
                                   random_state=0).fit(X, y)
    path = f.save(tmp_path / "forecaster.npz")
    g = rnnfast.load(path)
    assert type(g) is rnnfast.SequenceForecaster and g.get_params() == f.get_params()
    np.testing.assert_array_equal(g.predict(X), f.predict(X))                         # the same model, bit for bit
    assert g.loss_curve_ == f.loss_curve_ and g.best_epoch_ == f.best_epoch_ and g.horizon_ == 5
    assert sorted(g._get_weights()) == sorted(f.model_.state_dict())
    for name in ("input_mean_", "input_scale_", "target_mean_", "target_scale_"):     # arrays, as fit left them
        assert isinstance(getattr(g, name), np.ndarray), name
        np.testing.assert_array_equal(getattr(g, name), getattr(f, name))
    g.partial_fit(X, y)                                                              # a new optimizer, from the weights
    assert g.n_iter_ == f.n_iter_ + 1 and np.isfinite(g.predict(X)).all()
    with pytest.raises(ValueError, match="features per step"):
        g.partial_fit(X[..., :1] if multi else X[:, :, None].repeat(2, axis=2), y)
    with pytest.raises(ValueError, match="horizon"):
        g.partial_fit(X, y[:, :4])
