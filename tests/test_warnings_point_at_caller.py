"""The estimators' warnings point at the user's call (``warnings.warn``'s filename and line), not into
rnnfast, whatever frames a subclass adds between (``_compat.warn_at_caller``)."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from rnnfast.estimators import SequenceClassifier, SequenceRegressor

pd = pytest.importorskip("pandas")
FAST = dict(max_updates=20, random_state=0, hidden_size=8, batch_size=8)


def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    assert caught, "no warning"
    return caught


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_the_interrupt_warning_points_at_fit(Estimator, monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 6, 2)), np.arange(32) % 2
    original, calls = Estimator._train_batch, {"n": 0}

    def batch(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread():  # where Ctrl-C lands (not the probes' threads)
            calls["n"] += 1
            if calls["n"] == 10:                                    # in the third epoch (4 batches an epoch)
                raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Estimator, "_train_batch", batch)
    est = Estimator(**FAST)
    (w,) = [c for c in _caught(lambda: est.fit(X, y)) if "interrupted" in str(c.message)]
    assert w.filename == __file__ and calls["n"] == 10


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_the_data_warnings_point_at_the_call(Estimator):
    X = np.random.default_rng(0).standard_normal((16, 5))              # univariate series, a step a column
    y = np.arange(16) % 2
    frame = pd.DataFrame(X, columns=[f"t{i}" for i in range(5)])
    est = Estimator(**FAST)
    if Estimator is SequenceClassifier:                                 # (a regressor's (n, 1) y is one output)
        fit_warnings = _caught(lambda: est.fit(frame, y.reshape(-1, 1)))
        assert any("column-vector y" in str(c.message) and c.filename == __file__ for c in fit_warnings)
    else:
        est.fit(frame, y)
    (w,) = _caught(lambda: est.predict(X))                              # fitted with names, given none
    assert "does not have valid feature names" in str(w.message) and w.filename == __file__
