"""feature_names_in_: a DataFrame X's column names (a 2-D X: the steps of univariate series), set at fit and
checked at predict, score and partial_fit as scikit-learn's ``_check_feature_names`` does, and kept by
save/load and pickling."""
import pickle
import warnings

import numpy as np
import pytest

import rnnfast
from rnnfast import SequenceClassifier, SequenceRegressor

pd = pytest.importorskip("pandas")

T = 6
NAMES = [f"t{i}" for i in range(T)]
SMALL = dict(max_updates=20, hidden_size=8, n_threads=1, random_state=0)


def _estimator(Estimator):
    return Estimator(**SMALL, **({"network_weight": 1.0} if Estimator is SequenceRegressor else {}))


def _data(n=24):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, T))
    y = (X.sum(axis=1) > 0).astype(int)
    return pd.DataFrame(X, columns=NAMES), y


def _fitted(Estimator, X=None):
    df, y = _data()
    return _estimator(Estimator).fit(df if X is None else X, y), df, y


ESTIMATORS = pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])


@ESTIMATORS
def test_names_set_at_fit_and_absent_otherwise(Estimator):
    est, df, y = _fitted(Estimator)
    assert isinstance(est.feature_names_in_, np.ndarray) and est.feature_names_in_.dtype == object
    assert est.feature_names_in_.tolist() == NAMES
    est.fit(df.to_numpy(), y)                           # a refit without names drops the stale ones
    assert not hasattr(est, "feature_names_in_")
    est.fit(pd.DataFrame(df.to_numpy()), y)             # integer column names are no feature names
    assert not hasattr(est, "feature_names_in_")


@ESTIMATORS
def test_mixed_names_raise_type_error(Estimator):
    df, y = _data()
    mixed = df.set_axis(["a", 1] + NAMES[2:], axis=1)
    with pytest.raises(TypeError, match="Feature names are only supported if all input features have string"):
        _estimator(Estimator).fit(mixed, y)


@ESTIMATORS
def test_other_names_raise(Estimator):
    est, df, y = _fitted(Estimator)
    renamed = df.set_axis([n.upper() for n in NAMES], axis=1)
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit.\n"
                                         "Feature names unseen at fit time:\n- T0\n"):
        est.predict(renamed)
    with pytest.raises(ValueError, match="Feature names must be in the same order as they were in fit"):
        est.score(df[NAMES[::-1]], y)
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing:\n- t5\n"):
        est.predict(df[NAMES[:5]])                      # the names are checked before the shape
    with pytest.raises(ValueError, match="The feature names should match"):
        est.partial_fit(renamed, y)


@ESTIMATORS
def test_names_on_one_side_warn(Estimator):
    est, df, _ = _fitted(Estimator)
    with pytest.warns(UserWarning, match=f"X does not have valid feature names, but {Estimator.__name__} was "
                                         f"fitted with feature names"):
        est.predict(df.to_numpy())
    est, df, _ = _fitted(Estimator, X=_data()[0].to_numpy())
    with pytest.warns(UserWarning, match=f"X has feature names, but {Estimator.__name__} was fitted without "
                                         f"feature names"):
        est.predict(df)
    with warnings.catch_warnings():                     # the same kind of X as at fit: no warning
        warnings.simplefilter("error")
        est.predict(df.to_numpy())
        _fitted(Estimator)[0].predict(df)


def test_predict_proba_checks_names():
    est, df, _ = _fitted(SequenceClassifier)
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        est.predict_proba(df.add_suffix("x"))


@ESTIMATORS
def test_save_load_and_pickle_keep_names(Estimator, tmp_path):
    est, df, _ = _fitted(Estimator)
    for copy in (rnnfast.load(est.save(tmp_path / "m.npz")), pickle.loads(pickle.dumps(est))):
        assert isinstance(copy.feature_names_in_, np.ndarray) and copy.feature_names_in_.dtype == object
        assert copy.feature_names_in_.tolist() == NAMES
        np.testing.assert_array_equal(copy.predict(df), est.predict(df))
        with pytest.raises(ValueError, match="The feature names should match"):
            copy.predict(df.add_prefix("x"))
    plain = _fitted(Estimator, X=df.to_numpy())[0]
    assert not hasattr(rnnfast.load(plain.save(tmp_path / "p.npz")), "feature_names_in_")


@ESTIMATORS
def test_sklearn_dataframe_column_names_consistency(Estimator):
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    estimator_checks.check_dataframe_column_names_consistency(Estimator.__name__, _estimator(Estimator))


def test_the_forecaster_sets_checks_and_keeps_names_too(tmp_path):
    from rnnfast.estimators import SequenceForecaster
    rng = np.random.default_rng(1)
    series = rng.standard_normal((30, T + 2))
    df, Y = pd.DataFrame(series[:, :T], columns=NAMES), series[:, T:]             # 2 steps ahead
    f = SequenceForecaster(horizon=2, max_updates=10, hidden_size=8, n_threads=1, random_state=0).fit(df, Y)
    assert list(f.feature_names_in_) == NAMES and f.feature_names_in_.dtype == object
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        f.predict(df[NAMES[::-1]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        f.predict(df.to_numpy())
    loaded = rnnfast.load(f.save(tmp_path / "f.npz"))
    assert list(loaded.feature_names_in_) == NAMES
    np.testing.assert_array_equal(loaded.predict(df), f.predict(df))
    f.fit(df.to_numpy(), Y)                                                           # a refit without names
    assert not hasattr(f, "feature_names_in_")
