"""SequenceClassifier / SequenceRegressor: scikit-learn's contract, the training objective and its options,
inputs and errors, and one-to-many generation (rnnfast.generate)."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import rnnfast
from conftest import CHILD_CWD, child_env
from rnnfast.estimators import _training as training
from rnnfast.estimators import SequenceClassifier, SequenceRegressor, _MinimalBaseEstimator
from rnnfast.generate import generate

FAST = dict(hidden_size=16, n_threads=1, random_state=0)          # small models for the tests


def weights(est):
    return {k: v.copy() for k, v in est._get_weights().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def ragged(n, rng, lo=2, hi=9, features=2):
    return [rng.standard_normal((int(rng.integers(lo, hi)), features)) for _ in range(n)]


# ---------------------------------------------------------------------------------- scikit-learn contract
def test_constructor_stores_parameters_unchanged_and_validates_at_fit():
    est = SequenceClassifier(cell="transformer", optimizer="adagrad", hidden_size="many")   # no error yet
    assert (est.cell, est.optimizer, est.hidden_size) == ("transformer", "adagrad", "many")
    X, y = np.zeros((6, 3, 1)), np.array([0, 1] * 3)
    with pytest.raises(ValueError, match="cell"):
        SequenceClassifier(cell="transformer").fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        SequenceClassifier(optimizer="adagrad").fit(X, y)
    with pytest.raises(ValueError, match="output"):
        SequenceRegressor(output="all").fit(X, y)
    with pytest.raises(ValueError, match="nonlinearity"):
        SequenceRegressor(cell="elman", nonlinearity="gelu").fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        SequenceRegressor(validation_fraction=1.5).fit(X, y)
    with pytest.raises(TypeError, match="hidden_size"):
        SequenceRegressor(hidden_size="many").fit(X, y)


@pytest.mark.parametrize("cls, role", [(SequenceClassifier, "classifier"), (SequenceRegressor, "regressor")])
def test_documented_defaults_are_the_constructors(cls, role):
    """Each ``name : type, default=…`` line of the docstring gives the signature's default; where the two
    estimators differ the line reads "default=A for the classifier, B for the regressor"."""
    import ast
    import inspect
    import re

    signature = inspect.signature(cls.__init__).parameters
    documented = dict(re.findall(r"^    (\w+) : .*?default=(.+)$", cls.__doc__, flags=re.M))
    assert set(documented) == set(signature) - {"self"}
    for name, text in documented.items():
        per_estimator = dict((who, value) for value, who in re.findall(r"(\S+) for the (classifier|regressor)", text))
        value = ast.literal_eval(per_estimator.get(role, text))
        assert signature[name].default == value and type(signature[name].default) is type(value), name


def test_pipeline_grid_search_cross_val_and_clone():
    sk = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    est = SequenceClassifier(max_updates=200, **FAST)
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7
    search = GridSearchCV(est, {"hidden_size": [4, 8], "cell": ["elman", "lstm"]}, cv=2).fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 8) and search.best_score_ > 0.7
    pipe = make_pipeline(StandardScaler(), SequenceRegressor(max_epochs=10, **FAST))
    pipe.fit(X[:, :, 0] * 100 + 7, X[:, -1, 0])                    # 2-D X: columns are timesteps
    assert pipe.predict(X[:, :, 0] * 100 + 7).shape == (90,)
    fitted = SequenceClassifier(max_epochs=2, **FAST).fit(X, y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "rnn_")
    assert sk.base.is_classifier(fitted) and sk.base.is_regressor(SequenceRegressor())


def test_minimal_base_matches_sklearn():
    """The stand-in used without scikit-learn gives the same get_params / set_params / errors."""
    base = pytest.importorskip("sklearn.base")

    class Mine(_MinimalBaseEstimator):
        def __init__(self, *, a=1, b="x", inner=None):
            self.a, self.b, self.inner = a, b, inner

    class Theirs(base.BaseEstimator):
        def __init__(self, *, a=1, b="x", inner=None):
            self.a, self.b, self.inner = a, b, inner

    for cls in (Mine, Theirs):
        est = cls(a=3, inner=SequenceClassifier(hidden_size=5))
        est.set_params(b="y", inner__cell="elman")
        assert est.get_params(deep=False) == {"a": 3, "b": "y", "inner": est.inner}
        deep = est.get_params(deep=True)
        assert deep["inner__cell"] == "elman" and deep["inner__hidden_size"] == 5
        with pytest.raises(ValueError, match="Invalid parameter 'c'"):
            est.set_params(c=1)
    assert repr(Mine(a=3)) == "Mine(a=3)"
    assert repr(SequenceClassifier(hidden_size=8)) == "SequenceClassifier(hidden_size=8)"


def test_import_and_fit_without_sklearn():
    """rnnfast never needs scikit-learn: with it unimportable the estimators use the minimal base."""
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None                      # any `import sklearn...` now fails
        import numpy as np
        import rnnfast
        from rnnfast.estimators import SequenceClassifier, SequenceRegressor, _MinimalBaseEstimator
        assert issubclass(SequenceClassifier, _MinimalBaseEstimator)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 5, 2)); y = (X[:, -1, 0] > 0).astype(int)
        clf = SequenceClassifier(hidden_size=8, max_epochs=3, random_state=0).set_params(cell="elman")
        assert clf.fit(X, y) is clf and clf.get_params()["cell"] == "elman"
        assert 0 <= clf.score(X, y) <= 1 and clf.predict_proba(X).shape == (40, 2)
        reg = SequenceRegressor(hidden_size=8, max_epochs=3, random_state=0).fit(X, X[:, -1, 0])
        assert reg.predict(X).shape == (40,) and reg.score(X, X[:, -1, 0]) <= 1
        try:
            SequenceRegressor().predict(X)
        except ValueError as e:
            assert "not fitted" in str(e)
        print("ok", type(clf).__mro__[-2].__name__)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(),
                         timeout=120, cwd=CHILD_CWD)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok _MinimalBaseEstimator"


# ---------------------------------------------------------------------------------- the training objective
def _first_sgd_step(Estimator, X, y, **kw):
    """Weights before and the gradient of one full-batch SGD step: W(h) = W0 − h·g (momentum starts at g)."""
    def fit(lr):
        kw.setdefault("readout", "last")
        kw.setdefault("derivative", False)                  # the network reads X as given,
        kw.setdefault("window_span", 1)                     # one step at a time
        kw.setdefault("mixup", 0.0)                         # the loss of the sequences themselves
        return Estimator(optimizer="sgd", lr=lr, batch_size=10**6, max_epochs=1, validation_fraction=None,
                         n_iter_no_change=None, clip_norm=None, dtype="float64", scale=False, input_noise=0.0,
                         **kw).fit(X, y)

    h1, h2 = 1e-3, 2e-3
    w1, w2 = weights(fit(h1)), weights(fit(h2))
    grads = {k: (w1[k] - w2[k]) / (h2 - h1) for k in w1}
    return {k: w1[k] + h1 * grads[k] for k in w1}, grads


def _torch_model(torch, cell, w0, input_size, hidden):
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.RNN)(input_size, hidden, dtype=torch.float64)
    for name, p in rnn.named_parameters():
        p.data = torch.tensor(w0[f"rnn.{name}"])
    W = torch.tensor(w0["head.weight"], requires_grad=True)
    b = torch.tensor(w0["head.bias"], requires_grad=True)
    return rnn, W, b


def _torch_grads(rnn, W, b):
    out = {f"rnn.{n}": p.grad.numpy() for n, p in rnn.named_parameters()}
    out.update({"head.weight": W.grad.numpy(), "head.bias": b.grad.numpy()})
    return out


@pytest.mark.parametrize("cell", ["lstm", "elman"])
def test_classifier_gradient_is_mean_cross_entropy_at_each_sequences_own_last_step(cell):
    """The update follows ∇ of L = 1/n Σ_i −log softmax(z_i)[y_i], z_i read at step T_i of each ragged X_i."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    X = ragged(9, rng, lo=2, hi=7, features=3)
    y = rng.integers(0, 3, size=9)
    w0, g = _first_sgd_step(SequenceClassifier, X, y, cell=cell, hidden_size=5, random_state=0)
    rnn, W, b = _torch_model(torch, cell, w0, 3, 5)
    losses = []
    for x_i, y_i in zip(X, y):
        out, _ = rnn(torch.tensor(x_i)[:, None])                    # (T_i, 1, H): this sequence alone
        z = out[-1] @ W.T + b                                       # its own last step
        losses.append(torch.nn.functional.cross_entropy(z, torch.tensor([int(y_i)])))
    torch.stack(losses).mean().backward()
    for k, ref in _torch_grads(rnn, W, b).items():
        np.testing.assert_allclose(g[k], ref, rtol=1e-6, atol=1e-9, err_msg=k)


def test_regressor_gradient_is_half_squared_error_over_every_real_step_and_output():
    """L = 1/(Σ_i T_i · k) Σ_i Σ_{t<T_i} Σ_j ½ (z_itj − y_itj)²: the padding never counts."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    X = ragged(7, rng, lo=1, hi=8, features=2)
    Y = [rng.standard_normal((len(x), 2)) for x in X]
    w0, g = _first_sgd_step(SequenceRegressor, X, Y, cell="lstm", output="sequence", hidden_size=4,
                            random_state=3)
    rnn, W, b = _torch_model(torch, "lstm", w0, 2, 4)
    total = 0
    for x_i, y_i in zip(X, Y):
        out, _ = rnn(torch.tensor(x_i)[:, None])
        z = out[:, 0] @ W.T + b                                     # (T_i, 2)
        total = total + 0.5 * ((z - torch.tensor(y_i)) ** 2).sum()
    (total / (sum(len(x) for x in X) * 2)).backward()
    for k, ref in _torch_grads(rnn, W, b).items():
        np.testing.assert_allclose(g[k], ref, rtol=1e-6, atol=1e-9, err_msg=k)


# ---------------------------------------------------------------------------------- inputs and tasks
def test_ragged_input_reads_each_sequences_own_last_step():
    rng = np.random.default_rng(0)
    X = ragged(300, rng, lo=2, hi=12, features=1)
    y = np.array([int(x[-1, 0] > 0) for x in X])                  # the label sits at the true last step
    clf = SequenceClassifier(max_epochs=30, lr=0.02, **FAST).fit(X, y)
    assert clf.score(X, y) > 0.95                                  # padding read as "last" would be chance
    proba = clf.predict_proba(X[:20])
    alone = np.concatenate([clf.predict_proba([x]) for x in X[:20]])
    np.testing.assert_allclose(proba, alone, rtol=0, atol=1e-6)    # padding does not leak into a sequence
    assert clf.n_features_in_ == 1 and clf.input_size_ == 1
    assert clf.predict(np.stack([x[:2] for x in X[:5]])).shape == (5,)   # any T once fitted


def test_output_sequence_classifier_shapes_and_learning():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10, 1))
    y = np.zeros((200, 10), int)
    y[:, 1:] = X[:, :-1, 0] > 0                                    # the previous step's sign: needs memory
    clf = SequenceClassifier(output="sequence", max_epochs=40, lr=0.02, **FAST).fit(X, y)
    assert clf.predict(X).shape == (200, 10)
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 10, 2)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0)
    assert clf.score(X, y) > 0.9
    assert clf.score(X, y) == pytest.approx(np.mean(clf.predict(X) == y))
    Xr = [x[:n] for x, n in zip(X[:6], [3, 10, 1, 7, 2, 5])]       # ragged: lists back, one entry per step
    pr = clf.predict_proba(Xr)
    assert [p.shape for p in pr] == [(n, 2) for n in [3, 10, 1, 7, 2, 5]]
    for x, p in zip(Xr, pr):
        np.testing.assert_allclose(p, clf.predict_proba(x[None])[0], atol=1e-6)   # float32 rounding


def test_binary_with_string_labels_and_multiclass():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 6, 3))
    names = np.array(["neg", "pos"], dtype=object)
    yb = names[(X[:, :, 0].sum(axis=1) > 0).astype(int)]
    clf = SequenceClassifier(max_epochs=30, **FAST).fit(X, yb)
    assert list(clf.classes_) == ["neg", "pos"]
    assert clf.predict_proba(X).shape == (240, 2) and set(clf.predict(X)) <= {"neg", "pos"}
    assert clf.score(X, yb) > 0.9
    ym = X.sum(axis=1).argmax(axis=1) * 10                         # classes 0, 10, 20
    clf3 = SequenceClassifier(max_epochs=40, **FAST).fit(X, ym)
    assert list(clf3.classes_) == [0, 10, 20]
    assert clf3.predict_proba(X).shape == (240, 3) and clf3.score(X, ym) > 0.85
    np.testing.assert_array_equal(clf3.predict(X), clf3.classes_[clf3.predict_proba(X).argmax(axis=1)])


def test_regressor_multi_output_last_and_sequence():
    from_sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 8, 2))
    y = np.stack([X[:, :, 0].mean(axis=1), X[:, -1, 1]], axis=1)  # (n, 2)
    reg = SequenceRegressor(max_epochs=40, **FAST).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (300, 2) and pred.dtype == np.float64 and reg.n_outputs_ == 2
    assert reg.score(X, y) == pytest.approx(from_sklearn.r2_score(y, pred))
    assert reg.score(X, y) > 0.8
    Y = np.stack([np.cumsum(X[:, :, 0], axis=1) / 4, X[:, :, 1]], axis=-1)    # (n, T, 2)
    seq = SequenceRegressor(output="sequence", max_epochs=40, **FAST).fit(X, Y)
    P = seq.predict(X)
    assert P.shape == (300, 8, 2)
    assert seq.score(X, Y) == pytest.approx(from_sklearn.r2_score(Y.reshape(-1, 2), P.reshape(-1, 2)))
    assert seq.score(X, Y) > 0.8
    one = SequenceRegressor(output="sequence", max_epochs=2, **FAST).fit(X, Y[:, :, 0])
    assert one.predict(X).shape == (300, 8)                        # (n, T) in, (n, T) out


def test_two_dimensional_X_is_univariate_sequences_with_fixed_columns():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 7))
    reg = SequenceRegressor(max_epochs=3, **FAST).fit(X, X[:, -1])
    assert (reg.n_features_in_, reg.input_size_) == (7, 1)
    np.testing.assert_allclose(reg.predict(X), reg.predict(X[:, :, None]), atol=1e-12)   # same model
    with pytest.raises(ValueError, match="X has 5 features, but SequenceRegressor is expecting 7"):
        reg.predict(X[:, :5])
    assert reg.predict(X[:, :5, None]).shape == (50,)               # 3-D: any length of one-feature steps


# ---------------------------------------------------------------------------------- training options
def test_history_and_early_stopping_restore_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8, 3))
    y = (X[:, 0, 0] + 0.8 * rng.standard_normal(60) > 0).astype(int)   # noisy and small: it overfits
    # 42 training sequences in batches of 2: 21 updates an epoch, so the patience counts whole epochs
    kw = dict(hidden_size=32, lr=0.05, validation_fraction=0.3, n_threads=1, random_state=4, early_stopping=True,
              batch_size=2, tol=0.0, lr_schedule="constant", max_updates=None, readout="last")
    est = SequenceClassifier(max_epochs=200, n_iter_no_change=4, **kw).fit(X, y)
    h = est.history_
    assert set(h) == {"loss", "val_loss", "val_score"} and all(len(v) == est.n_epochs_ for v in h.values())
    assert est.loss_curve_ == h["loss"] and est.validation_scores_ == h["val_score"] and est.n_iter_ == est.n_epochs_
    assert est.best_validation_score_ == h["val_score"][est.best_epoch_ - 1] and est.best_loss_ is None
    assert est.n_updates_ == 21 * est.n_epochs_ and est.t_ == 42 * est.n_epochs_
    assert est.best_epoch_ == int(np.argmin(h["val_loss"])) + 1
    assert est.n_epochs_ == est.best_epoch_ + 4 < 200              # stopped 4 epochs after the best
    # The returned model is the best epoch's: the same as training exactly best_epoch_ epochs.
    ref = SequenceClassifier(max_epochs=est.best_epoch_, n_iter_no_change=None, **kw).fit(X, y)
    assert not hasattr(ref, "best_epoch_")
    assert_same_weights(est, ref)
    last = SequenceClassifier(max_epochs=est.n_epochs_, n_iter_no_change=None, **kw).fit(X, y)
    assert not np.array_equal(est.predict_proba(X), last.predict_proba(X))   # not the last epoch's
    no_val = SequenceClassifier(max_epochs=3, validation_fraction=None, n_iter_no_change=None, **FAST).fit(X, y)
    assert set(no_val.history_) == {"loss"} and no_val.n_epochs_ == 3
    assert no_val.validation_scores_ is None and no_val.best_loss_ == min(no_val.loss_curve_)
    default = SequenceClassifier(max_epochs=3, **FAST).fit(X, y)      # early stopping is off by default
    assert set(default.history_) == {"loss"} and default.n_epochs_ == 3 and not hasattr(default, "best_epoch_")


@pytest.mark.parametrize("threads", [1, 2])
def test_same_random_state_same_model_bit_for_bit(threads):
    rng = np.random.default_rng(0)
    X = ragged(70, rng, lo=3, hi=10, features=2)
    y = rng.integers(0, 3, 70)
    kw = dict(hidden_size=12, num_layers=2, dropout=0.3, max_epochs=4, n_threads=threads)
    a = SequenceClassifier(random_state=7, **kw).fit(X, y)
    b = SequenceClassifier(random_state=7, **kw).fit(X, y)
    assert_same_weights(a, b)
    assert a.history_ == b.history_
    c = SequenceClassifier(random_state=8, **kw).fit(X, y)
    assert not np.array_equal(weights(a)["rnn.weight_hh_l0"], weights(c)["rnn.weight_hh_l0"])


def test_n_threads_applies_during_fit_only():
    before = rnnfast.get_num_threads()
    X = np.random.default_rng(0).standard_normal((20, 4, 1))
    SequenceRegressor(hidden_size=4, max_epochs=1, n_threads=1).fit(X, X[:, 0, 0])
    assert rnnfast.get_num_threads() == before


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("cell", ["lstm", "elman"])
def test_tbptt_at_least_T_equals_full_bptt(cell, output):
    rng = np.random.default_rng(0)
    X = ragged(40, rng, lo=2, hi=9, features=2)
    y = [x[:, 0] > 0 for x in X] if output == "sequence" else np.array([x[0, 0] > 0 for x in X])
    kw = dict(cell=cell, output=output, max_epochs=3, batch_size=8, readout="last", **FAST)
    full = SequenceClassifier(tbptt=None, **kw).fit(X, y)
    assert_same_weights(full, SequenceClassifier(tbptt=8, **kw).fit(X, y))       # T_max = 8
    assert_same_weights(full, SequenceClassifier(tbptt=100, **kw).fit(X, y))
    short = SequenceClassifier(tbptt=3, **kw).fit(X, y)
    assert not np.array_equal(weights(short)["rnn.weight_hh_l0"], weights(full)["rnn.weight_hh_l0"])


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("cell", ["lstm", "elman"])
def test_tbptt_carries_the_state_across_chunks(cell, output):
    """At fixed weights (lr so small that no update changes them) every chunk starts from the state the
    previous chunk ended in, so the chunked forward passes give exactly the full sequences' loss."""
    rng = np.random.default_rng(5)
    X = ragged(30, rng, lo=1, hi=11, features=2)
    y = [rng.standard_normal(len(x)) for x in X] if output == "sequence" else rng.standard_normal(30)
    kw = dict(cell=cell, output=output, optimizer="sgd", lr=1e-300, max_epochs=1, batch_size=8, readout="last",
              validation_fraction=None, n_iter_no_change=None, clip_norm=None, dtype="float64", **FAST)
    full = SequenceRegressor(**kw).fit(X, y)
    for k in (1, 3, 4):
        chunked = SequenceRegressor(tbptt=k, **kw).fit(X, y)
        assert_same_weights(full, chunked)                          # the weights did not move
        assert chunked.history_["loss"][0] == pytest.approx(full.history_["loss"][0], rel=1e-12)


def test_tbptt_trains_a_short_memory_task_on_long_sequences():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 60, 1))
    y = np.zeros((64, 60), int)
    y[:, 2:] = X[:, :-2, 0] > 0                                    # sign two steps back
    clf = SequenceClassifier(output="sequence", tbptt=10, max_epochs=40, lr=0.02, **FAST).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_auto_tbptt_chunks_per_step_outputs_of_long_sequences_only():
    """tbptt="auto": 128-step chunks for output="sequence" (an update each), whole sequences for "last" and
    for a bidirectional layer, which reads each sequence from its end."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 300, 1))
    y_seq, y_last = X[:, :, 0] > 0, X[:, -1, 0] > 0
    kw = dict(max_epochs=1, batch_size=6, hidden_size=4, n_threads=1, random_state=0)
    auto = SequenceClassifier(output="sequence", **kw).fit(X, y_seq)
    assert auto.tbptt == "auto" and auto.n_updates_ == 3 and auto.tbptt_ == 100    # ⌈300 / 128⌉ equal chunks
    assert_same_weights(auto, SequenceClassifier(output="sequence", tbptt=100, **kw).fit(X, y_seq))
    assert SequenceClassifier(output="sequence", **kw).fit(X[:, :130], y_seq[:, :130]).tbptt_ == 65  # no 2-step tail
    assert SequenceClassifier(output="sequence", tbptt=None, **kw).fit(X, y_seq).n_updates_ == 1
    last = SequenceClassifier(**kw).fit(X, y_last)
    assert last.n_updates_ == 1
    assert_same_weights(last, SequenceClassifier(tbptt=None, **kw).fit(X, y_last))
    bi = SequenceClassifier(output="sequence", bidirectional=True, **kw).fit(X, y_seq)
    assert bi.n_updates_ == 1 and bi.tbptt_ is None and last.tbptt_ is None
    # the readout "auto" resolves to follows tbptt, and output="sequence" reads no readout: switching tbptt
    # continues the model
    auto.set_params(tbptt=None, warm_start=True).fit(X, y_seq)
    SequenceClassifier(output="sequence", tbptt=None, **kw).fit(X, y_seq).set_params(tbptt="auto").partial_fit(
        X, y_seq)
    with pytest.raises(ValueError, match="readout"):
        last.set_params(tbptt=5, warm_start=True).fit(X, y_last)
    with pytest.raises(ValueError, match="tbptt must be one of 'auto'"):
        SequenceClassifier(tbptt="some", **kw).fit(X, y_last)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_optimizer_reduces_the_loss(optimizer):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 5, 2))
    y = X[:, :, 0].mean(axis=1)
    lr = {"adam": 0.01, "adamw": 0.01, "sgd": 0.05, "rmsprop": 0.003}[optimizer]
    reg = SequenceRegressor(optimizer=optimizer, lr=lr, weight_decay=1e-4, max_epochs=15,
                            validation_fraction=None, n_iter_no_change=None, **FAST).fit(X, y)
    assert reg.history_["loss"][-1] < 0.5 * reg.history_["loss"][0]


def test_float64_and_elman_nonlinearity():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4, 2))
    reg = SequenceRegressor(cell="elman", nonlinearity="relu", dtype="float64", max_epochs=3, **FAST)
    reg.fit(X, X[:, -1, 0])
    assert reg.rnn_.dtype == np.float64 and reg.rnn_.nonlinearity == "relu"


def test_verbose_progress_on_stderr_with_and_without_tqdm(capsys, monkeypatch):
    X = np.random.default_rng(0).standard_normal((30, 4, 1))
    y = X[:, -1, 0]
    SequenceRegressor(max_epochs=3, verbose=1, early_stopping=True, **FAST).fit(X, y)
    out, err = capsys.readouterr()
    assert out == "" and "val_loss" in err and "loss" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)                   # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    SequenceRegressor(max_epochs=3, verbose=1, early_stopping=True, **FAST).fit(X, y)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 5 and "epoch 3/3" in lines[-2] and "val_score" in lines[-2]
    assert lines[0].endswith(": 3 epochs of 2 batches of at most 16 sequences, lr 0.003; linear part (ridge) "
                             "kept: leave-one-out R² 1.000 on the last 4 steps")             # the plan first
    assert re.search(r"\]: network weight \[[0-9. ]+\], from 3 probe fits, each predicting the 10 of the 30 "
                     r"sequences it did not train on$", lines[-1])  # network_weight="auto"'s, last
    SequenceRegressor(max_epochs=95, verbose=1, network_weight=1.0, **FAST).fit(X, y)   # about ten lines, the
    lines = capsys.readouterr().err.strip().splitlines()                                # last epoch's last
    assert len(lines) == 11 and "epoch 95/95" in lines[-1] and "val_score" not in lines[-1]
    monkeypatch.setattr(training, "_AUTO_MAX_MACS", 1.0)            # the work limit: one epoch, and it says so
    SequenceRegressor(verbose=1, network_weight=1.0, **FAST).fit(X, y)
    lines = capsys.readouterr().err.strip().splitlines()
    assert "1 epoch of 2 batches" in lines[0] and "stopped at its work limit (1 multiply-adds), 1000 epochs" \
        in lines[0] and "epoch 1/1" in lines[-1]
    SequenceRegressor(max_epochs=2, verbose=0, **FAST).fit(X, y)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_bad_inputs_raise_value_errors(Estimator):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5, 2))
    y = np.array([0, 1] * 6)
    est = Estimator(max_epochs=1, **FAST)
    for bad, what in ((np.nan, "NaN"), (np.inf, "infinity")):
        Xb = X.copy()
        Xb[3, 2, 1] = bad
        with pytest.raises(ValueError, match=what):
            est.fit(Xb, y)
        with pytest.raises(ValueError, match=what):
            est.fit([x for x in Xb[:, :4]] + [X[0, :2]], y)          # in a ragged list too
    with pytest.raises(ValueError, match="X\\[1\\] has 3 features per step, but X\\[0\\] has 2"):
        est.fit([X[0], np.zeros((4, 3))] + list(X[2:]), y)
    with pytest.raises(ValueError, match="Reshape your data"):
        est.fit(X[0, :, 0], y[:5])
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        est.fit(X[None], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="requires y"):
        est.fit(X, None)
    with pytest.raises(ValueError, match="Complex"):
        est.fit(X + 1j, y)
    with pytest.raises(rnnfast.estimators.NotFittedError):
        est.predict(X)
    est.fit(X, y)
    with pytest.raises(ValueError, match="features per step"):
        est.predict(X[:, :, :1])
    Xn = X.copy()
    Xn[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(Xn)
    with pytest.raises(ValueError, match="shape"):
        Estimator(output="sequence", max_epochs=1, **FAST).fit(X, np.zeros((12, 4)))   # T = 5 steps


def test_a_missing_value_in_a_nullable_pandas_column_is_named_as_nan():
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).standard_normal((12, 5))
    frame = pd.DataFrame(X).astype("Float64")                       # pandas' nullable floats: NA is missing
    frame.iloc[2, 3] = pd.NA
    with pytest.raises(ValueError, match="Input X contains NaN"):
        SequenceClassifier(max_epochs=1, **FAST).fit(frame, np.arange(12) % 2)


def test_bad_targets():
    X = np.random.default_rng(0).standard_normal((8, 3, 1))
    for bad in (np.nan, np.inf):
        y = np.arange(8.0)
        y[2] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            SequenceRegressor(max_epochs=1).fit(X, y)
        with pytest.raises(ValueError, match="NaN|infinity"):
            SequenceClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        SequenceClassifier(max_epochs=1).fit(X, np.linspace(0, 1, 8))
    with pytest.raises(ValueError, match="2 classes"):
        SequenceClassifier(max_epochs=1).fit(X, np.ones(8))
    with pytest.raises(ValueError, match="one target per step"):
        SequenceRegressor(output="sequence", max_epochs=1).fit([X[0], X[1, :2]], [np.zeros(3), np.zeros(3)])


# ---------------------------------------------------------------------------------- one-to-many
def test_generate_classifier_continues_a_cycle_and_matches_the_forward_pass():
    alphabet = "abcd"
    text = "abcd" * 40
    onehot = np.eye(4)
    X = np.stack([onehot[[alphabet.index(c) for c in text[s:s + 12]]] for s in range(0, 140, 2)])
    y = np.stack([list(text[s + 1:s + 13]) for s in range(0, 140, 2)])
    clf = SequenceClassifier(output="sequence", max_epochs=30, lr=0.02, **FAST).fit(X, y)
    out = generate(clf, "bc", 10, temperature=0)                    # labels are the inputs' one-hot order
    assert "".join(out) == "dabcdabcda"
    # The step loop agrees with one forward over prime + its own outputs (greedy = argmax per step).
    inputs = np.stack([onehot[alphabet.index(c)] for c in "bc" + "".join(out[:-1])])
    np.testing.assert_array_equal(clf.predict(inputs[None])[0][1:], out)
    sampled = generate(clf, ["a"], 50, temperature=1.0, random_state=0)
    assert sampled.shape == (50,) and set(sampled) <= set(alphabet)
    np.testing.assert_array_equal(sampled, generate(clf, ["a"], 50, temperature=1.0, random_state=0))


@pytest.mark.parametrize("derivative, span", [(False, 1), (True, 1), (False, 2), (True, 3)])
def test_generate_regressor_feeds_values_back(derivative, span):
    t = np.arange(2000) * 0.3
    wave = np.sin(t)
    X = np.stack([wave[s:s + 30] for s in range(0, 1900, 5)])[:, :, None]
    Y = np.stack([wave[s + 1:s + 31] for s in range(0, 1900, 5)])[:, :, None]
    reg = SequenceRegressor(output="sequence", cell="lstm", derivative=derivative, window_span=span, max_epochs=30,
                            **FAST).fit(X, Y)
    assert reg.derivative_ is derivative and reg.rnn_.input_size == (1 + derivative) * span
    prime = wave[:20]
    out = generate(reg, prime, 15)
    assert out.shape == (15,)
    np.testing.assert_allclose(out, np.sin(t[20:35]), atol=0.15)       # it continues the wave
    fed = np.concatenate([prime, out[:-1]])[None, :, None]
    np.testing.assert_allclose(reg.predict(fed)[0, 19:, 0], out, rtol=1e-5, atol=1e-6)


def test_generate_errors():
    X = np.random.default_rng(0).standard_normal((10, 3, 2))
    last = SequenceClassifier(max_epochs=1, **FAST).fit(X, np.arange(10) % 2)
    with pytest.raises(ValueError, match="output='sequence'"):
        generate(last, X[0], 3)
    reg = SequenceRegressor(output="sequence", max_epochs=1, **FAST).fit(X, X[:, :, 0])
    with pytest.raises(ValueError, match="feedback"):                # 1 output cannot feed 2 inputs
        generate(reg, X[0], 3)
    assert generate(reg, X[0], 3, feedback=lambda v: np.r_[v, 0.0]).shape == (3,)
    assert generate(reg, X[0], 0, feedback=lambda v: np.r_[v, 0.0]).shape == (0,)
    with pytest.raises(ValueError, match="n_steps"):
        generate(reg, X[0], -1, feedback=lambda v: np.r_[v, 0.0])
    with pytest.raises(TypeError):
        generate(object(), X[0], 3)


# ------------------------------------------------------------------------------------ GRU, bidirectional
@pytest.mark.parametrize("cell", ["gru", "lstm", "elman"])
def test_bidirectional_reads_the_first_step_for_a_many_to_one_head(cell):
    """With output="last", a label that depends only on the first step is out of a forward cell's reach
    after long sequences, but the reverse direction has read the first step last. (window_offset=0 and
    random_crop=0: a random offset or crop would drop the first step, which alone holds the label, from
    many of the batches.)"""
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((int(t), 3)) for t in rng.integers(30, 40, size=240)]
    y = np.array([int(x[0, 0] > 0) for x in X])
    scores = {}
    for bi in (False, True):
        clf = SequenceClassifier(cell=cell, hidden_size=16, max_epochs=15, random_state=0, bidirectional=bi,
                                 readout="last", window_offset=0, random_crop=0, n_threads=1).fit(X[:180], y[:180])
        assert clf.rnn_.bidirectional is bi and clf.head_.in_features == 16 * (2 if bi else 1)
        scores[bi] = clf.score(X[180:], y[180:])
    assert scores[True] >= 0.85 and scores[True] > scores[False] + 0.15, scores


def test_bidirectional_rejects_truncated_bptt():
    X, y = np.zeros((4, 5, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="tbptt"):
        SequenceClassifier(bidirectional=True, tbptt=2).fit(X, y)


def test_gru_bidirectional_sequence_regressor_round_trips(tmp_path):
    """y_t = x_{T-1-t}: half the targets lie in the future, which only the reverse direction sees."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 8, 2))
    y = X[:, ::-1, 0].copy()
    scores = {}
    for bi in (False, True):
        reg = SequenceRegressor(cell="gru", bidirectional=bi, output="sequence", hidden_size=32, max_epochs=300,
                                lr=0.02, validation_fraction=None, random_state=0, n_threads=1).fit(X, y)
        scores[bi] = reg.score(X, y)
    assert scores[True] > 0.95 and scores[True] > scores[False] + 0.1, scores
    reg.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(rnnfast.load(tmp_path / "m.npz").predict(X), reg.predict(X))


def test_divergence_raises_naming_the_epoch_and_batch_and_keeps_good_weights():
    """A learning rate that blows the weights up: a clear error before the update that would break them."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 10, 3))
    y = X[:, :, 0].sum(axis=1) * 1e3                               # large targets, huge gradients
    reg = SequenceRegressor(cell="elman", nonlinearity="relu", optimizer="sgd", lr=1e4, clip_norm=None,
                            hidden_size=8, max_epochs=50, batch_size=8, validation_fraction=None,
                            n_iter_no_change=None, random_state=0, n_threads=1)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+"), np.errstate(over="ignore"):
        reg.fit(X, y)
    weights = [p.data for p in reg.rnn_.parameters() + reg.head_.parameters()]
    assert all(np.isfinite(w).all() for w in weights)


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_score_with_sample_weight_and_ragged_steps_is_scikit_learns_metric(kind, output):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    X = ragged(40, rng, lo=3, hi=9)
    sw = rng.uniform(0.1, 3.0, len(X))                                # (n,) one weight per sequence
    if output == "last":
        y = [int(x[:, 0].sum() > 0) for x in X] if kind == "classifier" else [float(x.sum()) for x in X]
    else:
        y = [(x[:, 0] > 0).astype(int) for x in X] if kind == "classifier" else [x[:, 0] * 2.0 for x in X]
    cls = SequenceClassifier if kind == "classifier" else SequenceRegressor
    est = cls(output=output, max_updates=30, hidden_size=4, n_threads=1, random_state=0).fit(X, y)
    pred = est.predict(X)
    if output == "last":
        truth, guess, w = np.asarray(y), np.asarray(pred), sw
    else:                                   # every real step of every sequence, weighted by its sequence's weight
        truth = np.concatenate(y)
        guess = np.concatenate([p[:len(x)] for p, x in zip(pred, X)]).reshape(truth.shape)
        w = np.concatenate([np.full(len(x), s) for x, s in zip(X, sw)])
    metric = metrics.accuracy_score if kind == "classifier" else metrics.r2_score
    expected, unweighted = metric(truth, guess, sample_weight=w), metric(truth, guess)
    assert expected != pytest.approx(unweighted, abs=1e-6)            # the weights matter here
    assert est.score(X, y, sample_weight=sw) == pytest.approx(expected, rel=1e-12)
    assert est.score(X, y) == pytest.approx(unweighted, rel=1e-12)


# ---- review fixes: weights, warm starts and scores (each found by a repro, 2026-12-07) --------------------
def _labelled(n=40, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 2)).astype(np.float32)
    return X, (X[:, :, 0].sum(1) > 0).astype(int)


def test_loss_weights_zero_everywhere_are_refused():
    """class_weight, or sample_weight times class_weight, zero for every sample: fit ran no update and
    reported a loss of 0."""
    X, y = _labelled()
    with pytest.raises(ValueError, match="zero for every sample"):
        SequenceClassifier(class_weight={0: 0, 1: 0}, max_updates=5, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="zero for every sample"):
        SequenceClassifier(class_weight={1: 0.0}, max_updates=5, **FAST).fit(X, y, sample_weight=(y == 1) * 1.0)
    # a partial_fit batch of a stream may weigh nothing, as SGDClassifier's may: it makes no update
    est = SequenceClassifier(class_weight={0: 0.0, 1: 1.0}, **FAST).partial_fit(X, y, classes=[0, 1])
    before = (est.n_updates_, [p.data.copy() for p in est.model_.parameters()])
    est.partial_fit(X[y == 0], y[y == 0])
    est.partial_fit(X, y, sample_weight=np.zeros(len(y)))
    assert est.n_updates_ == before[0]
    for p, q in zip(est.model_.parameters(), before[1]):
        np.testing.assert_array_equal(p.data, q)


def test_partial_fit_refuses_balanced_class_weight():
    """Each call sees a part of y, so "balanced" was recomputed from one batch (SGDClassifier refuses too)."""
    X, y = _labelled()
    est = SequenceClassifier(class_weight="balanced", max_updates=5, **FAST)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by partial_fit"):
        est.partial_fit(X, y, classes=[0, 1])
    est.set_params(class_weight={0: 1.0, 1: 2.0}).partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("cls", [SequenceClassifier, SequenceRegressor])
def test_warm_start_refuses_a_changed_scale(cls):
    """The learned scaling follows ``scale``: a warm start after set_params(scale=False) kept applying it."""
    X, y = _labelled()
    est = cls(warm_start=True, max_updates=5, **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"scale=False \(fitted with True\)"):
        est.set_params(scale=False).fit(X, y)
    del est._arch["scale"]                  # as a model saved before _arch kept it: told by its learned scaling
    with pytest.raises(ValueError, match=r"scale=False \(fitted with True\)"):
        est.fit(X, y)


def test_early_stopping_after_a_fit_without_it_and_partial_fit_after_it():
    """A warm start with early_stopping after a fit without a validation split raised IndexError after the
    whole budget; partial_fit after an early-stopped fit dropped its validation scores."""
    X, y = _labelled()
    est = SequenceClassifier(warm_start=True, max_updates=20, **FAST).fit(X, y)
    before = est.n_iter_
    est.set_params(early_stopping=True).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ - before
    assert est.best_validation_score_ in est.validation_scores_
    scores = list(est.validation_scores_)
    est.partial_fit(X, y)
    assert est.validation_scores_ == scores and est.best_validation_score_ is None
    assert len(est.history_["val_score"]) == len(scores)


def test_regressor_score_refuses_another_number_of_outputs():
    """As r2_score: a 1-output model scored against y of 2 outputs broadcast to a number."""
    X, _ = _labelled()
    y2 = np.stack([X[:, :, 0].sum(1), X[:, :, 1].sum(1)], axis=1)
    one = SequenceRegressor(max_updates=5, **FAST).fit(X, y2[:, 0])
    two = SequenceRegressor(max_updates=5, **FAST).fit(X, y2)
    for est, bad in [(one, y2), (two, y2[:, 0]), (two, np.hstack([y2, y2[:, :1]]))]:
        with pytest.raises(ValueError, match="outputs, but the model was fitted with"):
            est.score(X, bad)


def test_forecaster_score_checks_sample_weight():
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.standard_normal(300))
    X = np.stack([series[i:i + 24] for i in range(200)])
    y = np.stack([series[i + 24:i + 28] for i in range(200)])
    f = rnnfast.SequenceForecaster(horizon=4, hidden_size=8, max_updates=5, random_state=0).fit(X, y)
    for bad, what in [(np.ones(3), "shape"), (-np.ones(200), ">= 0"), (np.zeros(200), "zero for every")]:
        with pytest.raises(ValueError, match=what):
            f.score(X, y, sample_weight=bad)
    assert f.score(X, y, sample_weight=np.ones(200)) == pytest.approx(f.score(X, y))


def test_early_stopping_scores_the_validation_split_with_the_sample_weights():
    """Each sequence twice, the copy with the flipped label and weight 0: the validation split is scored with
    the weights, as scikit-learn's MLP scores it, so the scores see the weighted problem (unweighted they
    stayed near 0.5 and early stopping kept an early epoch)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 6, 1)).astype(np.float32)
    y = (X[:, :, 0].mean(1) > 0).astype(int)
    est = SequenceClassifier(early_stopping=True, max_updates=200, validation_fraction=0.5, n_iter_no_change=100,
                             mixup=0, input_noise=0.0, **FAST)
    est.fit(np.concatenate([X, X]), np.concatenate([y, 1 - y]), sample_weight=np.r_[np.ones(80), np.zeros(80)])
    assert max(est.validation_scores_) > 0.8, est.validation_scores_


def test_ragged_sequences_in_an_object_array_and_clear_layout_errors():
    """An object array of ragged sequences is a list of them (it raised "setting an array element with a
    sequence"); sktime's nested DataFrame is named; a 2-D X against a multivariate model says so."""
    X, y = _labelled(n=12, T=6)
    ragged = [x[: 2 + i % 3] for i, x in enumerate(X)]
    as_list = SequenceClassifier(max_updates=5, **FAST).fit(ragged, y)
    as_object = SequenceClassifier(max_updates=5, **FAST).fit(np.array(ragged, dtype=object), y)
    np.testing.assert_array_equal(as_list.predict_proba(ragged), as_object.predict_proba(np.array(ragged, object)))
    pd = pytest.importorskip("pandas")
    nested = pd.DataFrame({"dim_0": [pd.Series(x[:, 0]) for x in ragged]})
    with pytest.raises(TypeError, match="nested format"):
        SequenceClassifier(max_updates=5, **FAST).fit(nested, y)
    with pytest.raises(ValueError, match=r"X is 2-D \(univariate sequences: 1 feature per step\), but "
                                         r"SequenceClassifier is expecting 2 features per step"):
        as_list.predict(X[:, :, 0])


@pytest.mark.parametrize("cls", [SequenceClassifier, SequenceRegressor])
def test_a_first_partial_fit_batch_of_zero_weights_builds_the_model_and_records_nothing(cls):
    """It raised numpy's ZeroDivisionError from the weighted scaling, and a later zero-weight batch was
    recorded as a loss of 0.0 (best_loss_ 0.0 for good)."""
    X, y = _labelled()
    est = cls(**FAST).partial_fit(X, y, sample_weight=np.zeros(len(y)), **({"classes": [0, 1]}
                                                                        if cls is SequenceClassifier else {}))
    assert est.loss_curve_ == [] and est.n_updates_ == 0 and est.best_loss_ is None
    est.partial_fit(X, y)
    est.partial_fit(X, y, sample_weight=np.zeros(len(y)))
    assert len(est.loss_curve_) == 1 and est.best_loss_ == est.loss_curve_[0] > 0


def test_dropout_streams_survive_a_failed_call_and_two_loads_train_alike(tmp_path):
    """With dropout: a partial_fit that failed mid-epoch left the layers' mask stream moved on (the next call
    differed from an uninterrupted run), and two loads (or unpickles) of one model drew different masks."""
    import pickle

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 12, 2))
    y = X[:, :, 0].sum(1)
    make = lambda: SequenceRegressor(hidden_size=6, num_layers=2, dropout=0.3, max_updates=20,   # noqa: E731
                                     batch_size=8, n_threads=1, random_state=0)
    ref = make().partial_fit(X, y).partial_fit(X, y)
    est = make().partial_fit(X, y)
    step, calls = est._optimizer.step, [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("injected")
        return step(*args, **kwargs)

    est._optimizer.step = failing
    with pytest.raises(RuntimeError, match="injected"):
        est.partial_fit(X, y)
    del est._optimizer.step
    np.testing.assert_array_equal(est.partial_fit(X, y).predict(X), ref.predict(X))
    ref.save(tmp_path / "m.npz")
    blob = pickle.dumps(ref)
    for a, b in [(rnnfast.load(tmp_path / "m.npz"), rnnfast.load(tmp_path / "m.npz")),
                 (pickle.loads(blob), pickle.loads(blob))]:
        np.testing.assert_array_equal(a.partial_fit(X, y).predict(X), b.partial_fit(X, y).predict(X))


def test_a_large_common_offset_in_x_keeps_the_signal():
    """Series around 1e9 (timestamps, counters, prices): X was cast to float32, whose steps are 64 there,
    before the standardization, so the unit-size signal was gone (test accuracy 0.47 against 0.85 at no
    offset); now X stays float64 until it is scaled."""
    rng = np.random.default_rng(1)
    X0 = rng.standard_normal((200, 30))
    y = (X0[:, :10].mean(1) > 0).astype(int)
    est = SequenceClassifier(n_threads=1, random_state=0).fit(X0[:100] + 1e9, y[:100])
    assert est.score(X0[100:] + 1e9, y[100:]) > 0.75
    np.testing.assert_allclose(est.input_mean_[0] - 1e9, X0[:100].mean(), atol=1e-4)    # in float64 (float32: 64)
