"""SequenceRegressor's linear part (``ridge``): the ridge against scikit-learn and brute-force leave-one-out,
the features at each sequence's end, the residuals the network learns, and what fit, predict and the
validation score make of them."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast.estimators import SequenceRegressor
from rnnfast.estimators._data import _Sequences
from rnnfast.estimators._linear import _alpha_grid, _end_features, _ridge_loo, _ridge_steps

FAST = dict(max_updates=150, random_state=0, hidden_size=16)
ONE = dict(FAST, max_updates=1)                  # the linear part alone is under test


def drawn(n=240, T=30, seed=0, noise=0.05):
    """X (n, T, 1) and a target a linear model reads exactly: two steps at fixed places before the end."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 1))
    y = X[:, -5, 0] - X[:, -10, 0]
    return X, y + noise * rng.standard_normal(n)


def brute_force_loo(f, y, w, alpha):
    """Σ_b w_b (y_b − ŷ_(−b))² per output (k,), each ŷ_(−b) from the weighted ridge (with intercept) fitted
    without b."""
    err = 0.0
    for b in range(len(f)):
        keep = np.arange(len(f)) != b
        ww = w[keep] / w[keep].sum()
        fm, ym = ww @ f[keep], ww @ y[keep]
        fc, yc = (f[keep] - fm) * np.sqrt(w[keep])[:, None], (y[keep] - ym) * np.sqrt(w[keep])[:, None]
        coef = np.linalg.solve(fc.T @ fc + alpha * np.eye(f.shape[1]), fc.T @ yc)
        err = err + w[b] * (y[b] - ym - (f[b] - fm) @ coef) ** 2
    return err


@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_loo_matches_brute_force_leave_one_out(weighted):
    rng = np.random.default_rng(1)
    f, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 2))
    y[:, 0] += f @ rng.standard_normal(6)
    w = rng.uniform(0.2, 2.0, 40) if weighted else np.ones(40)
    coef, intercept, alpha, score = _ridge_loo(f, y, w if weighted else None)
    share = w / w.sum()
    fc = (f - share @ f) * np.sqrt(w)[:, None]
    grid = _alpha_grid(np.linalg.eigvalsh(fc.T @ fc))
    errors = [brute_force_loo(f, y, w, a) for a in grid]                               # (len(grid), k)
    best = int(np.argmin([e.sum() for e in errors]))
    assert alpha == pytest.approx(grid[best])
    total = (w[:, None] * (y - share @ y) ** 2).sum(axis=0)                           # (k,)
    assert score == pytest.approx(np.mean(1 - errors[best] / total), rel=1e-9)        # the outputs' mean
    ref = np.linalg.solve(((f - share @ f) * w[:, None]).T @ (f - share @ f) + alpha * np.eye(6),
                          ((f - share @ f) * w[:, None]).T @ (y - share @ y))
    np.testing.assert_allclose(coef, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(intercept, share @ y - (share @ f) @ ref, rtol=1e-9, atol=1e-12)


def test_ridge_loo_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(2)
    f = rng.standard_normal((120, 10))
    y = f @ rng.standard_normal(10) + rng.standard_normal(120)
    w = rng.uniform(0.5, 1.5, 120)
    coef, intercept, alpha, _ = _ridge_loo(f, y[:, None], w)
    share = w / w.sum()
    fc = (f - share @ f) * np.sqrt(w)[:, None]
    ref = linear_model.RidgeCV(alphas=_alpha_grid(np.linalg.eigvalsh(fc.T @ fc))).fit(f, y, sample_weight=w)
    assert alpha == pytest.approx(ref.alpha_)
    np.testing.assert_allclose(coef[:, 0], ref.coef_, rtol=1e-8, atol=1e-10)
    assert intercept[0] == pytest.approx(ref.intercept_, rel=1e-8, abs=1e-10)


def test_end_features_align_each_sequence_at_its_end():
    x = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3) + 1.0                # (T, n, I)
    seqs = _Sequences(x, np.array([3, 5]), "3d")
    f = _end_features(seqs, 4, 2).reshape(2, 4, 2)                                    # levels: first 2 features
    np.testing.assert_array_equal(f[0], np.vstack([np.zeros((1, 2)), x[0:3, 0, :2]]))  # 3 steps, 1 of zeros
    np.testing.assert_array_equal(f[1], x[1:5, 1, :2])
    assert _ridge_steps(1000, 3) == 85 and _ridge_steps(20, 3) == 20 and _ridge_steps(5, 1000) == 0
    np.testing.assert_array_equal(_end_features(seqs, 4, 2, np.array([1])), f[1:].reshape(1, 8))


def test_auto_keeps_the_linear_part_where_it_reads_the_target():
    X, y = drawn()
    model = SequenceRegressor(**FAST).fit(X[:200], y[:200])
    assert model.ridge_ is True and model.ridge_score_ > 0.9
    assert model.ridge_steps_ == 30 and model.ridge_coef_.shape == (30, 1)
    assert model.score(X[200:], y[200:]) > 0.95
    alone = SequenceRegressor(**FAST, ridge=False).fit(X[:200], y[:200])
    assert alone.ridge_ is False and alone.ridge_coef_ is None and alone.ridge_score_ is None
    assert alone.score(X[200:], y[200:]) < model.score(X[200:], y[200:])


def test_auto_leaves_it_out_where_it_reads_nothing():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((150, 12, 2)), rng.standard_normal(150)
    model = SequenceRegressor(**FAST).fit(X, y)
    assert model.ridge_ is False and model.ridge_coef_ is None
    assert model.ridge_score_ is not None and model.ridge_score_ <= 0.0
    forced = SequenceRegressor(**FAST, ridge=True).fit(X, y)
    assert forced.ridge_ is True and forced.ridge_coef_.shape == (24, 1)


def test_predict_is_the_ridge_plus_the_network_in_the_targets_units():
    X, y = drawn(n=120)
    y = 50.0 + 10.0 * y
    model = SequenceRegressor(**FAST, ridge=True).fit(X, y)
    z, _ = model._predicted(X)          # the network's outputs, averaged over predict's passes (noise, alignments)
    steps = model._scaled_steps(model._check_X_fitted(rnnfast.estimators._data._check_X(X, np.dtype(np.float64))))
    f = _end_features(steps, model.ridge_steps_, 1)
    want = (f @ model.ridge_coef_ + model.ridge_intercept_ + model.ridge_residual_scale_ * z)
    want = want[:, 0] * model.target_scale_[0] + model.target_mean_[0]
    np.testing.assert_allclose(model.predict(X), want, rtol=1e-10)


def test_validation_score_is_the_whole_models_r2():
    # the residuals of a linear target are noise, which the network cannot predict: their R² is about 0,
    # the model's (ridge and network) about 1
    X, y = drawn(n=300)
    model = SequenceRegressor(**FAST, early_stopping=True).fit(X, y)
    assert model.ridge_ is True
    assert model.best_validation_score_ > 0.9 and min(model.validation_scores_) > 0.9
    assert not hasattr(model, "_validation_ridge")


def test_the_linear_part_is_fixed_at_the_first_fit():
    X, y = drawn(n=120)
    model = SequenceRegressor(**FAST, warm_start=True).fit(X, y)
    coef = model.ridge_coef_.copy()
    model.fit(X, 2 * y)
    np.testing.assert_array_equal(model.ridge_coef_, coef)
    stream = SequenceRegressor(**FAST)
    stream.partial_fit(X[:60], y[:60])
    coef = stream.ridge_coef_.copy()
    stream.partial_fit(X[60:], y[60:])
    np.testing.assert_array_equal(stream.ridge_coef_, coef)
    model.set_params(ridge=False)
    with pytest.raises(ValueError, match="ridge"):
        model.fit(X, y)


def test_ridge_is_checked():
    X, y = drawn(n=40, T=12)
    with pytest.raises(ValueError, match="ridge"):
        SequenceRegressor(ridge="yes").fit(X, y)
    with pytest.raises(ValueError, match="ridge=True"):
        SequenceRegressor(ridge=True, output="sequence").fit(X, np.repeat(y[:, None], 12, axis=1))
    per_step = SequenceRegressor(output="sequence", max_updates=5).fit(X, np.repeat(y[:, None], 12, axis=1))
    assert per_step.ridge_ is False and per_step.ridge_score_ is None


def test_saved_and_loaded_with_the_model(tmp_path):
    X, y = drawn(n=120)
    model = SequenceRegressor(**FAST).fit(X, y)
    back = rnnfast.load(model.save(tmp_path / "model.npz"))
    assert back.ridge_ is True and back.ridge_steps_ == model.ridge_steps_
    np.testing.assert_array_equal(back.ridge_coef_, model.ridge_coef_)
    np.testing.assert_allclose(back.predict(X), model.predict(X), rtol=1e-12)


def test_the_choice_does_not_depend_on_the_units():
    # without scaling, inputs and targets in small units: the penalties follow the features' size
    X, y = drawn(n=120, noise=0.0)
    big = SequenceRegressor(**ONE, scale=False).fit(X, y)
    small = SequenceRegressor(**ONE, scale=False).fit(1e-3 * X, 1e-3 * y)
    assert big.ridge_ and small.ridge_ and small.ridge_score_ == pytest.approx(big.ridge_score_, abs=1e-6)
    assert small.ridge_alpha_ == pytest.approx(1e-6 * big.ridge_alpha_)


@pytest.mark.parametrize("value, kept", [(0, False), (np.False_, False), (1, True), (np.True_, True)])
def test_integers_and_numpy_bools_are_false_and_true(value, kept):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((40, 6, 1)), rng.standard_normal(40)                   # a linear model reads nothing
    assert SequenceRegressor(**ONE, ridge=value).fit(X, y).ridge_ is kept


def test_wide_steps_have_no_linear_part():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((30, 3, 300)), rng.standard_normal(30)
    assert SequenceRegressor(**ONE).fit(X, y).ridge_ is False
    with pytest.raises(ValueError, match="at most 256 inputs"):
        SequenceRegressor(**ONE, ridge=True).fit(X, y)


def test_multi_output_score_is_the_mean_of_the_outputs():
    # one output a linear model reads, one it does not: the score is their mean, not the pooled one
    X, y = drawn(n=200, noise=0.0)
    noise = np.random.default_rng(6).standard_normal(200)
    model = SequenceRegressor(**ONE, scale=False, ridge=True).fit(X, np.c_[100 * y, noise])
    assert 0.4 < model.ridge_score_ < 0.55
