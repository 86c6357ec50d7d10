"""SequenceForecaster as the other estimators: predict from several threads at once, ``verbose`` checked as an
integer, and a KeyboardInterrupt during fit that keeps the last complete epoch and warns."""
from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from rnnfast.estimators import _forecaster
from rnnfast.estimators._compat import ConvergenceWarning

FAST = dict(horizon=3, hidden_size=6, n_threads=1, random_state=0)


def windows(n=40, T=10, h=3):
    """Windows of a noisy sine: X (n, T), y (n, h)."""
    t = np.arange(n + T + h)
    series = np.sin(t / 3) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    w = np.lib.stride_tricks.sliding_window_view(series, T + h)[:n]
    return w[:, :T], w[:, T:]


def test_predict_from_several_threads_at_once_gives_the_serial_forecasts(monkeypatch):
    # here, not at the top: test_concurrency skips itself without threadpoolctl (tests/ is on sys.path)
    from test_concurrency import _Gate        # a kernel whose first call waits inside it until released

    X, y = windows()
    f = rnnfast.SequenceForecaster(max_updates=4, **FAST).fit(X, y)
    expected = f.predict(X)
    gate = _Gate(_kernels._recurrent.step)                       # the decoder's step: the other thread waits in it
    monkeypatch.setattr(_kernels._recurrent, "step", gate)
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(f.predict, X)
        try:
            assert gate.inside.wait(30)
            np.testing.assert_array_equal(f.predict(X[:7]), expected[:7])   # model_ is busy: a copy forecasts
        finally:
            gate.release.set()
        np.testing.assert_array_equal(busy.result(30), expected)
    monkeypatch.undo()
    f.partial_fit(X, y)                                          # new weights: the threads' copies follow them
    expected = f.predict(X)
    for est in (f, pickle.loads(pickle.dumps(f))):
        with ThreadPoolExecutor(3) as pool:
            for got in pool.map(lambda i: est.predict(X), range(6)):
                np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("verbose", ["x", None, 1.7])
def test_verbose_must_be_an_integer(verbose):
    X, y = windows(n=12)
    with pytest.raises(TypeError, match="verbose must be an integer"):
        rnnfast.SequenceForecaster(max_updates=1, verbose=verbose, **FAST).fit(X, y)
    rnnfast.SequenceForecaster(max_updates=1, verbose=False, **FAST).fit(X, y)    # a bool, as the classifier


def _interrupt_at(monkeypatch, call):
    """A KeyboardInterrupt in the ``call``-th training batch (its loss: one call a batch without validation)."""
    original, count = _forecaster.mse_loss, {"n": 0}

    def loss(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(_forecaster, "mse_loss", loss)


def test_an_interrupted_fit_keeps_its_last_complete_epoch_and_warns(monkeypatch):
    X, y = windows()
    kw = dict(batch_size=10, lr_schedule="constant", max_updates=None, early_stopping=False, **FAST)
    ref = rnnfast.SequenceForecaster(max_epochs=2, **kw).fit(X, y)
    _interrupt_at(monkeypatch, 11)                               # in epoch 3 (4 batches an epoch)
    f = rnnfast.SequenceForecaster(max_epochs=5, **kw)
    with pytest.warns(ConvergenceWarning, match="interrupted by user after 2 epoch") as caught:
        try:
            f.fit(X, y)
        except KeyboardInterrupt:                                # not out of the test run: a failure
            pytest.fail("the interrupt threw the two complete epochs away")
    assert caught[0].filename == __file__                       # (pointed at the caller's fit)
    assert f.n_iter_ == 2 and f.best_epoch_ == 2 and f.n_updates_ == 8 and f.loss_curve_ == ref.loss_curve_
    for name, w in ref.model_.state_dict().items():
        np.testing.assert_array_equal(f.model_.state_dict()[name], w)
    np.testing.assert_array_equal(f.predict(X), ref.predict(X))


def test_an_interrupt_before_the_first_epoch_leaves_the_forecaster_as_it_was(monkeypatch):
    X, y = windows()
    kw = dict(batch_size=10, max_updates=4, early_stopping=False, **FAST)
    fresh = rnnfast.SequenceForecaster(**kw)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "loss_curve_")
    monkeypatch.undo()
    f = rnnfast.SequenceForecaster(**kw).fit(X, y)
    attrs, pred = dict(f.__dict__), f.predict(X)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        f.fit(X, y)
    assert f.__dict__.keys() == attrs.keys() and f.model_ is attrs["model_"]
    np.testing.assert_array_equal(f.predict(X), pred)
