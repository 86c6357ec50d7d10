"""Saving and loading estimators: .npz + JSON round trips, atomic writes, clear errors on bad files."""
from __future__ import annotations

import copy
import json
import os
import pickle

import numpy as np
import pytest

from rnnfast.estimators import NotFittedError, SequenceClassifier, SequenceRegressor
from rnnfast.persist import FORMAT_VERSION, load

FAST = dict(hidden_size=8, max_epochs=3, n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 3))
    ragged = [x[:n] for x, n in zip(X, rng.integers(1, 7, 40))]
    return X, ragged


@pytest.fixture(scope="module")
def classifier(data):
    X, _ = data
    labels = np.array(["cat", "dog", "emu"], dtype=object)[np.argmax(X[:, -1], axis=1)]
    return SequenceClassifier(cell="elman", num_layers=2, early_stopping=True, window=2, **FAST).fit(X, labels)


def _predictions(est, X):
    out = {"predict": est.predict(X)}
    if hasattr(est, "predict_proba"):
        out["predict_proba"] = est.predict_proba(X)
    return out


def assert_same_predictions(a, b, X):
    pa, pb = _predictions(a, X), _predictions(b, X)
    for k in pa:
        if isinstance(pa[k], list):
            assert len(pa[k]) == len(pb[k])
            for u, v in zip(pa[k], pb[k]):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


def test_round_trip_classifier_with_object_labels(tmp_path, data, classifier):
    X, _ = data
    path = tmp_path / "clf.npz"
    assert classifier.save(path) == str(path)
    loaded = load(path)
    assert type(loaded) is SequenceClassifier
    assert loaded.get_params() == classifier.get_params()
    assert loaded.classes_.dtype == object and list(loaded.classes_) == ["cat", "dog", "emu"]
    assert loaded.history_ == classifier.history_ and loaded.n_epochs_ == classifier.n_epochs_
    assert loaded.best_epoch_ == classifier.best_epoch_
    assert loaded.n_features_in_ == 3 and loaded.window_ == 2 and loaded.rnn_.input_size == 6
    assert loaded.loss_curve_ == classifier.loss_curve_ and loaded.n_updates_ == classifier.n_updates_
    np.testing.assert_array_equal(loaded.input_mean_, classifier.input_mean_)   # exact through JSON
    np.testing.assert_array_equal(loaded.input_scale_, classifier.input_scale_)
    assert_same_predictions(classifier, loaded, X)
    assert loaded.score(X, classifier.predict(X)) == 1.0


@pytest.mark.parametrize("output", ["last", "sequence"])
def test_round_trip_regressor_ragged_multi_output(tmp_path, data, output):
    _, ragged = data
    y = np.stack([[x.sum(), x[-1, 0]] for x in ragged]) if output == "last" else [x[:, :2] for x in ragged]
    reg = SequenceRegressor(output=output, validation_fraction=None, n_iter_no_change=None, dtype="float64",
                            **FAST).fit(ragged, y)
    path = tmp_path / "reg.npz"
    reg.save(path)
    loaded = load(path)
    assert loaded.n_outputs_ == 2 and loaded.rnn_.dtype == np.float64 and not hasattr(loaded, "best_epoch_")
    assert_same_predictions(reg, loaded, ragged)


def test_file_is_plain_npz_with_json_metadata(tmp_path, classifier):
    path = tmp_path / "m.npz"
    classifier.save(path)
    with np.load(path, allow_pickle=False) as npz:                 # no pickle needed to read it
        meta = json.loads(str(npz["__metadata__"]))
        names = set(npz.files)
        assert npz["rnn.weight_hh_l1"].shape == (8, 8)
    assert meta["format_version"] == FORMAT_VERSION and meta["class"] == "SequenceClassifier"
    assert meta["params"]["cell"] == "elman" and meta["params"]["num_layers"] == 2
    assert {"rnn.weight_ih_l0", "head.weight", "head.bias", "classes_"} <= names
    assert set(meta["arrays"]) == names - {"__metadata__"}
    assert [f for f in os.listdir(tmp_path)] == ["m.npz"]          # no temporary files left


def test_pickle_and_deepcopy(classifier, data):
    X, _ = data
    blob = pickle.dumps(classifier)
    assert_same_predictions(classifier, pickle.loads(blob), X)
    assert_same_predictions(classifier, copy.deepcopy(classifier), X)
    assert b"_workspace" not in blob and b"_cache" not in blob       # weights only, not layer scratch


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch, data, classifier):
    X, _ = data
    path = tmp_path / "model.npz"
    classifier.save(path)
    before = path.read_bytes()
    other = SequenceClassifier(cell="lstm", **FAST).fit(X, np.arange(40) % 2)

    def crash_midway(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")                  # some bytes reach the disk, then...
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before                             # the old model, untouched
    assert os.listdir(tmp_path) == ["model.npz"]                   # and the temporary file is gone
    assert_same_predictions(classifier, load(path), X)


def test_missing_corrupt_and_foreign_files(tmp_path, classifier):
    with pytest.raises(FileNotFoundError, match="no rnnfast model file"):
        load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="not a valid rnnfast model file"):
        load(junk)
    good = tmp_path / "good.npz"
    classifier.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a valid rnnfast model file"):
        load(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="no metadata"):
        load(foreign)


def _rewrite(src, dst, edit_meta=None, edit_arrays=None):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__metadata__")))
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    np.savez(dst, __metadata__=np.array(json.dumps(meta)), **arrays)
    return dst


def test_newer_format_and_inconsistent_contents(tmp_path, classifier):
    good = tmp_path / "good.npz"
    classifier.save(good)

    def newer(meta):
        meta["format_version"] = FORMAT_VERSION + 1

    with pytest.raises(ValueError, match="newer than this rnnfast reads"):
        load(_rewrite(good, tmp_path / "newer.npz", edit_meta=newer))

    def shrink(arrays):
        arrays["head.weight"] = arrays["head.weight"][:, :4]

    with pytest.raises(ValueError, match="'head.weight' has shape"):
        load(_rewrite(good, tmp_path / "shape.npz", edit_arrays=shrink))

    def to64(arrays):
        arrays["rnn.weight_ih_l0"] = arrays["rnn.weight_ih_l0"].astype(np.float64)

    with pytest.raises(ValueError, match="dtype"):
        load(_rewrite(good, tmp_path / "dtype.npz", edit_arrays=to64))

    def drop(arrays):
        del arrays["rnn.bias_hh_l1"]

    with pytest.raises(ValueError, match="do not match the metadata"):
        load(_rewrite(good, tmp_path / "missing.npz", edit_arrays=drop))

    def wider(meta):                      # metadata consistent with the arrays, not with the model it describes
        meta["fitted"]["_arch"]["hidden_size"] = 9

    with pytest.raises(ValueError, match="shape"):
        load(_rewrite(good, tmp_path / "arch.npz", edit_meta=wider))

    def other_class(meta):
        meta["class"] = "Pipeline"

    with pytest.raises(ValueError, match="unknown estimator class"):
        load(_rewrite(good, tmp_path / "class.npz", edit_meta=other_class))


def test_save_needs_a_fitted_estimator(tmp_path):
    with pytest.raises(NotFittedError):
        SequenceRegressor().save(tmp_path / "x.npz")
    assert not os.listdir(tmp_path)
