"""Saving and loading estimators: .npz + JSON round trips, atomic writes, clear errors on bad files."""
from __future__ import annotations

import copy
import json
import os
import pickle

import numpy as np
import pytest

import rnnfast
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
    assert loaded.n_features_in_ == 3 and loaded.window_ == 2 and loaded.derivative_ is True
    assert loaded.random_crop_ == classifier.random_crop_ == 0.3          # "auto" with a window
    assert loaded.window_span_ == classifier.window_span_ == 2
    assert loaded.rnn_.input_size == 24                   # 3 features and their differences, 2 windows of 2
    assert loaded.loss_curve_ == classifier.loss_curve_ and loaded.n_updates_ == classifier.n_updates_
    for name in ("input_mean_", "input_scale_"):         # exact through JSON, and arrays again
        assert isinstance(getattr(loaded, name), np.ndarray) and getattr(loaded, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(loaded, name), getattr(classifier, name))
    assert_same_predictions(classifier, loaded, X)
    assert loaded.score(X, classifier.predict(X)) == 1.0


def test_round_trip_classifier_with_bytes_labels(tmp_path, data):
    X, _ = data
    labels = np.array([b"no", b"yes"])[(X[:, -1, 0] > 0).astype(int)]
    clf = SequenceClassifier(hidden_size=4, max_epochs=1, n_threads=1, random_state=0).fit(X, labels)
    loaded = load(clf.save(tmp_path / "bytes.npz"))
    assert loaded.classes_.dtype == clf.classes_.dtype and list(loaded.classes_) == [b"no", b"yes"]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


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
    for name in ("input_mean_", "input_scale_", "target_mean_", "target_scale_"):
        value = getattr(loaded, name)
        assert isinstance(value, np.ndarray) and value.shape == getattr(reg, name).shape, name
        np.testing.assert_array_equal(value, getattr(reg, name))
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


# ---- hostile, foreign and corrupt files: always ValueError naming the file, never an allocation ----------------

import ast        # noqa: E402
import io         # noqa: E402
import stat       # noqa: E402
import tracemalloc  # noqa: E402
import zipfile    # noqa: E402

from rnnfast import persist  # noqa: E402


def _invalid(path):
    """load(path) raises ValueError naming the file; returns the message."""
    with pytest.raises(ValueError) as info:
        load(path)
    assert repr(str(path)) in str(info.value), info.value
    return str(info.value)


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path, classifier):
    path = tmp_path / "good.npz"
    classifier.save(path)
    return path


def test_plain_npy_and_other_foreign_files(tmp_path):
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    assert "not a zip archive" in _invalid(npy)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _invalid(empty)
    plain_zip = _write_zip(tmp_path / "notes.npz", {"notes.txt": b"hello"})
    assert "not an array of a model" in _invalid(plain_zip)
    with pytest.raises(IsADirectoryError):           # not a file at all: the OS error, as open() gives it
        load(tmp_path)


@pytest.mark.parametrize("name", ["../evil.npy", "/abs.npy", "a/b.npy", "..\\c.npy", "C:evil.npy"])
def test_paths_in_the_archive_are_refused(tmp_path, saved, name):
    members = _members(saved)
    members[name] = _npy(np.zeros(2))
    assert "not an array of a model" in _invalid(_write_zip(tmp_path / "m.npz", members))


def test_pickle_is_never_needed_nor_used(tmp_path, saved):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    payload = _npy(np.array([Boom()], dtype=object), allow_pickle=True)
    for target in ("head.bias.npy", "__metadata__.npy", "classes_.npy"):
        members = _members(saved)
        members[target] = payload
        assert "Python objects" in _invalid(_write_zip(tmp_path / "p.npz", members))


def test_deeply_nested_metadata(tmp_path, saved):
    members = _members(saved)
    meta = json.loads(str(np.load(io.BytesIO(members["__metadata__.npy"]))))
    for depth in (100_000, 500):
        nested = "[" * depth + "]" * depth
        members["__metadata__.npy"] = _npy(np.array(json.dumps(meta)[:-1] + f', "x": {nested}}}'))
        assert "nested" in _invalid(_write_zip(tmp_path / "deep.npz", members))


WRONG_FIELDS = {
    "arrays is a list": lambda m: m.__setitem__("arrays", list(m["arrays"])),
    "an array entry is a string": lambda m: m["arrays"].__setitem__("head.bias", "float32"),
    "shape is a string": lambda m: m["arrays"]["head.bias"].__setitem__("shape", "abc"),
    "shape has a float": lambda m: m["arrays"]["head.bias"].__setitem__("shape", [3.0]),
    "shape has a bool": lambda m: m["arrays"]["head.bias"].__setitem__("shape", [True]),
    "dtype is a number": lambda m: m["arrays"]["head.bias"].__setitem__("dtype", 5),
    "dtype is garbage": lambda m: m["arrays"]["head.bias"].__setitem__("dtype", "(((f4"),
    "dtype is object": lambda m: m["arrays"]["head.bias"].__setitem__("dtype", "O"),
    "dtype is structured": lambda m: m["arrays"]["head.bias"].__setitem__("dtype", "f4,i4"),
    "class is a number": lambda m: m.__setitem__("class", 7),
    "class is missing": lambda m: m.pop("class"),
    "params is a list": lambda m: m.__setitem__("params", []),
    "params has an unknown name": lambda m: m["params"].__setitem__("colour", "red"),
    "fitted is a list": lambda m: m.__setitem__("fitted", [1]),
    "fitted has an unknown name": lambda m: m["fitted"].__setitem__("__class__", "x"),
    "format_version is text": lambda m: m.__setitem__("format_version", "1"),
    "format_version is a bool": lambda m: m.__setitem__("format_version", True),
    "format is missing": lambda m: m.pop("format"),
    "metadata is a list": None,
    "_arch is text": lambda m: m["fitted"].__setitem__("_arch", "lstm"),
    "_arch has no cell": lambda m: m["fitted"]["_arch"].pop("cell"),
    "cell is unknown": lambda m: m["fitted"]["_arch"].__setitem__("cell", "transformer"),
    "hidden_size is a float": lambda m: m["fitted"]["_arch"].__setitem__("hidden_size", 8.5),
    "hidden_size is text": lambda m: m["fitted"]["_arch"].__setitem__("hidden_size", "8"),
    "num_layers is huge": lambda m: m["fitted"]["_arch"].__setitem__("num_layers", 10**12),
    "num_layers is 0": lambda m: m["fitted"]["_arch"].__setitem__("num_layers", 0),
    "dtype of the model is text": lambda m: m["fitted"]["_arch"].__setitem__("dtype", "float16"),
    "input_size_ is text": lambda m: m["fitted"].__setitem__("input_size_", "3"),
    "input_size_ is missing": lambda m: m["fitted"].pop("input_size_"),
    "classes_dtype is odd": lambda m: m["fitted"].__setitem__("classes_dtype", 5),
}


@pytest.mark.parametrize("case", list(WRONG_FIELDS))
def test_wrongly_typed_metadata_fields(tmp_path, saved, case):
    if WRONG_FIELDS[case] is None:
        members = _members(saved)
        members["__metadata__.npy"] = _npy(np.array("[1, 2]"))
        _invalid(_write_zip(tmp_path / "m.npz", members))
        return
    _invalid(_rewrite(saved, tmp_path / "m.npz", edit_meta=WRONG_FIELDS[case]))


def test_a_small_file_claiming_a_huge_model_allocates_nothing(tmp_path, saved):
    def deeper(meta):
        meta["fitted"]["_arch"].update(num_layers=10**9)

    assert "more weights than the 10 arrays" in _invalid(_rewrite(saved, tmp_path / "deep.npz", edit_meta=deeper))

    def huge(meta):
        meta["fitted"]["_arch"].update(hidden_size=512, cell="lstm")

    path = _rewrite(saved, tmp_path / "huge.npz", edit_meta=huge)
    assert path.stat().st_size < 20_000
    tracemalloc.start()
    try:
        message = _invalid(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "needs" in message and "shape" in message
    assert peak < 2_000_000, peak                     # the old load built the 512-unit LSTM (> 60 MB) first


def test_array_headers_claiming_more_than_the_file_holds(tmp_path, saved, monkeypatch):
    members = _members(saved)
    head = np.load(io.BytesIO(members["head.bias.npy"]))
    members["head.bias.npy"] = _npy(np.zeros((10**6,), head.dtype))[:128] + head.tobytes()  # header: 10**6 values
    tracemalloc.start()
    try:
        message = _invalid(_write_zip(tmp_path / "lie.npz", members))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "needs 4000000 bytes" in message or "needs 8000000 bytes" in message, message
    assert peak < 2_000_000, peak
    monkeypatch.setattr(persist, "_memory_cap", lambda: 1000)
    assert "more than this machine's memory" in _invalid(saved)


def test_zip_features_npz_files_do_not_use(tmp_path, saved):
    data = bytearray(saved.read_bytes())
    # head.bias.npy's entry in the central directory: its flags at +8 (bit 0: encrypted), its method at +10
    at = data.find(b"head.bias.npy", data.find(b"PK\x01\x02")) - 46
    assert data[at:at + 4] == b"PK\x01\x02"
    encrypted = bytearray(data)
    encrypted[at + 8] |= 1
    (tmp_path / "enc.npz").write_bytes(encrypted)
    assert "encrypted" in _invalid(tmp_path / "enc.npz")
    method = bytearray(data)
    method[at + 10] = 99
    (tmp_path / "method.npz").write_bytes(method)
    assert "compression method 99" in _invalid(tmp_path / "method.npz")
    compressed = _write_zip(tmp_path / "deflated.npz", _members(saved), zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(load(compressed).head_.weight.data, load(saved).head_.weight.data)


def test_every_truncation_is_a_value_error(tmp_path, saved):
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    for n in list(range(0, 200, 7)) + list(range(200, len(data), max(1, len(data) // 60))):
        cut.write_bytes(data[:n])
        _invalid(cut)


def _same_model(a, b):
    assert type(a) is type(b) and a.get_params() == b.get_params()
    assert a.history_ == b.history_ and list(a.classes_) == list(b.classes_)
    wa, wb = a._get_weights(), b._get_weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_single_bit_flips_give_a_value_error_or_the_same_model(tmp_path, saved):
    """Bounded fuzz: 250 flips anywhere, 250 in the zip and .npy headers; each gives ValueError naming the
    file or (a flip in a field nobody reads, such as a date) exactly the saved model."""
    original = load(saved)
    data = saved.read_bytes()
    with zipfile.ZipFile(saved) as z:
        infos = z.infolist()
    structure = [b for i in infos for b in range(i.header_offset, i.header_offset + 30 + len(i.filename) + 128)]
    structure += range(data.rfind(b"PK\x01\x02") - 600, len(data))          # the central directory, the end
    structure = [b for b in structure if 0 <= b < len(data)]
    rng = np.random.default_rng(0)
    positions = list(rng.integers(0, len(data), 250)) + list(rng.choice(structure, 250))
    flipped = tmp_path / "flipped.npz"
    outcomes = {"ValueError": 0, "same model": 0}
    for pos in positions:
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << int(rng.integers(8))
        flipped.write_bytes(corrupt)
        try:
            loaded = load(flipped)
        except ValueError as exc:
            assert repr(str(flipped)) in str(exc), exc
            outcomes["ValueError"] += 1
        else:
            _same_model(original, loaded)
            outcomes["same model"] += 1
    assert outcomes["ValueError"] > 300, outcomes


def test_save_honours_the_umask_and_keeps_a_replaced_files_mode(tmp_path, classifier):
    old = os.umask(0o027)
    try:
        new = tmp_path / "new.npz"
        classifier.save(new)
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
        os.umask(0o022)
        classifier.save(tmp_path / "other.npz")
        assert stat.S_IMODE((tmp_path / "other.npz").stat().st_mode) == 0o644
        os.chmod(new, 0o604)
        classifier.save(new)                                     # replaced: keeps its mode, as open(..., "w")
        assert stat.S_IMODE(new.stat().st_mode) == 0o604
    finally:
        os.umask(old)
    link = tmp_path / "latest.npz"
    link.symlink_to(new)
    classifier.save(link)                                        # writes through the link, as open() does
    assert link.is_symlink() and load(link).n_epochs_ == classifier.n_epochs_
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "new.npz", "other.npz"]


def test_save_into_a_missing_folder_names_the_folder(tmp_path, classifier):
    with pytest.raises(FileNotFoundError, match="no folder"):
        classifier.save(tmp_path / "nope" / "m.npz")
    for folder in (tmp_path, f"{tmp_path}{os.sep}"):
        with pytest.raises(IsADirectoryError, match="it is a folder"):
            classifier.save(folder)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("labels, class_weight", [(np.arange(24) % 2, {0: 1.0, 1: 3.0}),
                                                   (np.arange(24) % 2 == 1, {True: 2.5}),
                                                   (np.where(np.arange(24) % 2, "b", "a"), {"a": 0.5})])
def test_a_class_weight_dict_keeps_its_labels(tmp_path, labels, class_weight):
    """JSON keys are strings; the labels 0, 1 and True come back as they were, and the model trains on."""
    X = np.random.default_rng(0).standard_normal((24, 5, 2))
    est = SequenceClassifier(class_weight=class_weight, **FAST).fit(X, labels)
    loaded = load(est.save(tmp_path / "cw.npz"))
    assert loaded.class_weight == class_weight
    assert [type(k) for k in loaded.class_weight] == [type(k) for k in class_weight]
    loaded.partial_fit(X, labels)
    type(loaded)(**loaded.get_params()).fit(X, labels)                # what clone does


def test_persist_depends_on_nothing_above_it():
    tree = ast.parse(open(persist.__file__).read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m and ("estimators" in m or "layers" in m or "distributed" in m)}, imported


def test_registered_classes_save_their_declared_attributes(tmp_path, monkeypatch, data):
    X, _ = data

    class Tagged(SequenceRegressor):
        _persisted_attrs = SequenceRegressor._persisted_attrs + ("tag_",)

    reg = Tagged(**FAST).fit(X, X[:, -1, 0])
    reg.tag_ = {"trained_on": "X", "n": [1, 2]}
    with pytest.raises(TypeError, match="register"):
        reg.save(tmp_path / "t.npz")
    monkeypatch.setitem(persist._REGISTRY, "Tagged", Tagged)
    reg.save(tmp_path / "t.npz")
    loaded = load(tmp_path / "t.npz")
    assert type(loaded) is Tagged and loaded.tag_ == reg.tag_
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    with pytest.raises(TypeError, match="_weight_spec"):
        persist.register(type("Bare", (), {"get_params": None}))
    with pytest.raises(ValueError, match="registered already"):
        persist.register(type("SequenceRegressor", (Tagged,), {}))


# A file written by the first version-1 writer (rnnfast before the registry; zlib + base64 here so the sdist,
# which takes tests/*.py, carries it): SequenceClassifier(cell="gru", bidirectional=True, hidden_size=2,
# max_epochs=2, n_threads=1, random_state=0, validation_fraction=None) fitted on
# default_rng(0).standard_normal((12, 4, 2)) with object labels "no"/"yes" alternating.
V1_FILE = (
    "eNrdWn1sU1UUv2OAyRwbjC7AYKPMkE3p5rp13cT2NbIEgYkZyCCEwMtr+8YrdO18rwwHjjCQSRCJiTLQxDgSw18aiXyYOPYaJ6LzDzFGwx8o"
    "xvgdg4lfwaCg78G58bzrbbvSDjaa3L1+3PM753e+7ulbW5pzJ1aRG495pHHfWeUfeEwlNiKK7XJMCkoxSRSrIx1dOWQq2T/jxm56ff7R1uUt"
    "a3NIJ9leEZS1gFqx0F7haXW6GuorHPaKtqgaU6WIGFWDsvnRYimsycb7miJ1yMbrynsd9m77zT/yths2lBurzVhRY6nGajeWZKwYfLbQWHZ4"
    "bn4egdUG+zTYa3pCRq9DDBbFN3EcCDORbtFYnYCpAm4I9kYY25wMZjI708E1n9cYqxp0VMNrlkPAWGGkR+PgPAY6HzfWFngeAVnzeRMHIwT2"
    "h5C9rO4OkFHh2s7RT+PsR/419SrgD6prG+jBsnXGqmV0+mF/EK4qyAVQ7Kk/JeCFMWMgQ/3A+lIGmTDHjxuRbKI4hMAvItiA84vNGxpTFicK"
    "+1mZCOim9mG5IOiJgv4o7GVrqSaB3iDs7QJ5mcO/DfRGUSxpjFh/KChOQZRzqWLOxjuMco/Hga0/WsdPgC4Z+YPmnZZCJ7UzBBxp/uOYighP"
    "gvc3cvg4Ob6m+DGQpzksga+0FD0mgnKc5lwEYajI9i5OHGPIZoUTO5pn7WAn7Q1dTO9KZiPNQ9yPccxVjl2Uv4Ryn8WkOd2RIL/LmV4W4+Co"
    "iH8Q1ZuIZCQUezb3HIwv/YhrLI2a7UQ9KoS4s31MhNqjdvN6XTo6qf/9IK+NgOdW2BOCPFfQmRZEPVji5Byu127OGRxCvpMBj3eGYF/IyFdb"
    "UA1pqHbp/mS1TvfhfOL1qFQ4mAdbM1EGm83XOsSZ10M1Zo7p4uBsR7kfTTALrEOxaDBWI9SteXUZqx6uD8Dn9fBZI9ho7nXDcjCxbYD3G8E3"
    "9YDjBNkawHYivBpYptx6Tm5EUvTwVDHxM3NhIqxUOGIWe4+IenQA9V82jpnMItk6e7NxDoz2WZXp3DOa82Q2ZqruEcz7uO+NRGcUeG9iuPL0"
    "0RipKPaJZnz83ac6xZkRQrUXRt9tWEwNzVg8PuuYflQLvSTdOHggFq4EfkiHmzLOudGakJjzNJucbhcPZRzySLeORNTH2PsN8h1eZ3cS95HW"
    "4WhyHkt1Ot54Ksz3+mT5fLO245nNdQt5sDHLxP7RsDnVnHQ77G2F2Y7aS1eL5W6+fej9Sno330ZsRI1EqrfKoY1KTAwpYriG3tE/BhL0yr+j"
    "3+Ya0e18t8Nem9kt/Tz31fn6Im25vuTTXzzk7l2DlbuvCMc3XxQGDk70NVU5hQU9c+MXVq0Wnt5UGm851ixYWa9pO/B1AtbKWGa9YeXL3m2n"
    "hoUXh3/X104fFk7u/mbwSXe+7/sf9uhLG2qEYluV7+fyq3pr0ZDw0tJe3cp60YGH8yjrImDtD0maNdKHYf/h7HDO8F839ryCtbN8i08vFYqa"
    "Xxd2DsjeLZ97hDPFxT4rt6b1G65xuSljmVuPb0BQBj7Qy2w9+tC6XP3VyScGp53aNWjl5q56rZlym8OpUVGVO2VVk8dq1oZL//BeqFzj3dlQ"
    "Kjy7tdB3beBNwd1fFn/2XGM89uU1vfvsd3rfKwf19Qcnxv1lO5isvRroOZeAvTIe2P/lvuTtO3RIUE6u9rQPLxbO/7bBW/F3ibDvq8BguLzY"
    "V0beEi4tO6m/8M70uDZUweT1ilVNRyn7kv/VLMt9rOV3vDonvqD3Ed3+xXl90pIfhc33TfA9997suJXjguEjBVyOynjgaHvonvhTR4p89irn"
    "6fbCd4UC73zfr0N7mBPnQc8qlXIsNDgqshSENKbE+mFzfzaI1TrsrgwTt7npmcGZ3x4VNv20X592uVfYseKcfqX/Lo9L6tWXFfR5rQQvfub7"
    "kBKcQgmaUaT09sLWvdmhl3Hc7q87LrxxuYzpNn9+8rGN0sg3aATCkqbJmphe9rXW3SoW9I4nQXdKtetTXs6EqlzrrzbMX2OYayr577Ezx/zL"
    "/oaDlTanxGPQU20W6Y8MPN7MyCKYExcf4cxMwp2/WARzejkMni+yILw9i3BmGVbenBD48n0lhDMvsPLmKUwZzLHIq7NJ0jOZRTJPND5SxxyS"
    "9HxjkczTgXIqsSBFSkmSs4LFMTswH2dlGUnSj1kcs8v1QwsrtOC45xK257HCZgfZCw1iikV4hp1Y+wkralYttT/fInrREMU13NI8aTK5viuf"
    "zMwl5MQ889W/Hf03kQ=="
)
V1_PROBA = [[0.613878743105152, 0.3861212568948479], [0.7284108679041215, 0.27158913209587854],
            [0.6731646602399495, 0.32683533976005047]]


def test_version_1_files_of_the_first_writer_still_load(tmp_path):
    import base64
    import zlib

    path = tmp_path / "v1.npz"
    path.write_bytes(zlib.decompress(base64.b64decode(V1_FILE)))
    est = load(path)
    assert type(est) is SequenceClassifier and est.classes_.dtype == object and list(est.classes_) == ["no", "yes"]
    X = np.random.default_rng(0).standard_normal((12, 4, 2))
    # the same model: V1_PROBA came from an AVX-512 machine, and other CPUs' kernels round in another order
    np.testing.assert_allclose(est.predict_proba(X[:3]), V1_PROBA, rtol=1e-6, atol=0)


# A file and a pickle written by rnnfast before the estimators held their network as a Sequential (rnn_ and
# head_ were attributes of their own then; the format is the same): SequenceClassifier(cell="lstm",
# bidirectional=True, readout="meanmax", hidden_size=2, max_epochs=2, n_threads=1, random_state=0,
# validation_fraction=None) fitted on the ragged X of main_model_data() with y = arange(12) % 3.
MAIN_FILE = (
    "eNrdWntsVFUav1BbsVLo1oKKRKctUKhtnc5MSzEz9+quShR0u7qgCHj3tnPLjE5n6r3T1loIiujqWiLBR9oobtdIlpiqG41v5wwi/yDLuiHGxi"
    "gGjWYfRtysgo+YZe/V7+g3H+fOg5li6yQnd+7c871+3+N8585pW1Z0SoP0/adKal+z6uFj8CmXKiVV7dLjWlCLa6raGO3unyKVSyOu72fz6/1X"
    "rbiybdUUqVcaqA3qZodRe6Gr1r/C425uqa131XbGjLihRdWYEdTtR5dpEVO3fjdDWrdu3S9cVO/a4DrxT+mApUO1NTqtEbOGYY0ua2jWiMOzC6"
    "3hgu/28yiMTphnwlwbCR3dhwkvzt/mU494OslWrdELPA3gG4a5UaJbE+GZTs9c+Nrf3dZoBBmNcE9t6LBGBMkxBXyuAZk3W6MHvkeB1v7+KwGP"
    "MOgfRvpS2d1AY8C1SyCf+7kd4WvLDQEeXNatIIdi20JktsP8IFwNoOtAvud4amAX5hkHGo4D5d0DvG6C5/Ec6DmeEYHcaviNx0JXlr60MeoDvr"
    "Zt6wA7qlcUdOKyRXzD4DMV5uPYp7jzeKN8YjC/Kwf5QZATA/kxmEttcDvIDcLcfqDXBdh2gtwYijOvNTwCnHUUtxHgqyLfcD27AbMo4I5ldqL4"
    "MgWxEEJxGkQ5lynmPYQPl9+NMMP+CyP5Iiy9hF8E5bIId3caGq47z18dbON+F/mFx4yJbNEFPuH19xaQo6NY4fLMDFhRHj3AI4hiQhfwaUK209"
    "jjPgsjeoP4QEU6aihedAc5Iv5xoDdQfAYddKX0vN5FCMY8xsMof6h/4kjnkMAvPK+7QE9en/rJOpZOR55PeG3G8W8I9NKQ30S1EteQbod6Uk3q"
    "aVzAx0D2B1F9w/UAxw7NG8oL+y6WRq8uNDdKYpfqyHNOc8izdGtSHNY1jn8u6wavhZEM9cIt8Hkv0jdMchCv0SrUUu4H0Tqerb64t2pHdSeT3/"
    "pQroh8bwhwy1T/ndZsFa0HHSiXslkH+1B+8/jqc8idHuQ/+7cNgt43jGKC13JR74b9pCM/9qCYN1Gd5PNPZF2ja2MmPtgOWp9ihLdoT6GBf9YR"
    "DLLBXc1Q95xs1Mh6GEJrCO8T6FqTbQ7kKlNUWwohj9Y3ynM1iXO751hijcXW8FmjGXztg+eL4Te+J2hGNBh3zNMDdC3AxwM0Xvidy7NHK4wWmL"
    "c2h3jNhN9q0lN7kD7cJg88a4HBayrdA3H7liC9W8AmN+LZDDKWwHDDfRPQrRX0eDGy7+hAOd6bhW28v2mGayvIaiJ2eYnN1EbKz4fsbIbvXmQX"
    "vm+Fq09gYy5rkol6V1rjss2NdvJeQnXAWbT3ytf2THrki0UuOKTrodPV9mgWfXwmHnGHOT6H/ZpJ3hn1C+gHHHJmMuXFBgesnfZdmXBWC9iTq6"
    "jv6kD7Eop/vu9bCrVHL8Qeabz3cfm+gxnP927jtW8qxHujDYJc4f4wkJ+d3nvi98GNGfYFYdSXRdD7XsrTRO8aRHathnyvR/G69gSw8QM+Poc9"
    "RC62hSa5bTz+NbLXKaRNP5UdoUloR655pKI6Q/+D0X/mefZzsj3bPBxPmydSnk42O0NkrW/M8v+tXHTH/1+cTDuoz/LRfzx0Fv2/6LSPOln6hs"
    "FHuNeyR1vKCYcz2X3/5iccKqVKyYhGG/v08LpQXA2H1Iibn3LYBRT8Kj7l0OnL6ohDa73Lk98xh9Itc2az8mt09spX6/wvnzGSWDJQpBS/dkDe"
    "mZym9FxQJS+/sya56YVL5LqRmuTSRz3yu+tXBh4oYvLmZ75l/wu8JqeiULGvq9YBhdBERsH9wZ7ES95ypfvTOFu/aalccWaTMvucI+ys096QD/"
    "9pPatYOUs5WO2XA54d8s6xkUDle8vltjfnKF+89JR897S3GEFh5VtLOQoVgEJ7WDNTI2EE5o8UBoM8j7u4Ss8eGmT9T40lZoU2JVprahLNe8cC"
    "8fn3BqrrG+Sjvz5dSbUxfvbuY0IbQxPZxju0P8sHP6pOFg97ku/cVZTcvOAw2/HcFtYwVpr8fK9O/Pjqsc+mcRvnCnJaNfRe3TD1iRrVXwbK5L"
    "rRrXJg0dZXhrep8tsXbwuUTD9dvvu6eYmjJb9Qrv/tbvn9159ngb0zk89trFJuePFr9uxwkB3615vM9+QRktufjK543wGN0GRA45axYuXg8Kzk"
    "/d6q5AtDM5Qh7Xf++afuk3ufXqAcuWqb3F9yvrL/mXvYY6N/YAu21CVHTzvKLm4qlx860KTcvNBF0PhLbO0wR2POcTlOsZhoeTBjzWzlkZ1r2L"
    "XXnevfMdWrfPr4Vnkw2cg+Xl+snOGrIrnu//0vXUJbQ5PB1o2732G7V93Ghr6Zymq3fybPuGsPq7qyKPnYxi2BryrvIH6d+fl9H3FbZ1q2hnQt"
    "CGHODTwEkw8VwkBvvas1z8DePiYlri3vlR/1+9h5xfWydt4jrOec37x643+XssXbBwLFHZvlF/8hsZ7EH+X9j1/Ohv5+BRu9sUK+dN89bL+xUN"
    "5aWiYvv31XYOSy/yTMv+ps3senJr7pNuS/PV3HtpU8GSDBULa4mQNUxgGyo4HDMwhTBwsDT97+j2560H/1t3PZmoYPEqmmfHlRxQ8923TLlI6I"
    "Zpq6+cOJ1CGYOZTWknDrybIE1JCmwHUqXNuWTZnaUJR62tY+RWuPcunHz23fEdKzt5Ta7mR3Qd2uTKH+0OIn6mspB7sLFHP4Z5Uk7AmP42B1UC"
    "NQQypSOByulgT9FKW3uxMx/YEaSdCrUHp75ecWzE2hf36elLYPoJzsVVPMac98Ke0aSjnZKw63aU6qTQukNOsP5WNXczEfViulqe2Uj10pD0EZ"
    "nJnC54mFEq2bxylhVZFBKBJlKcT7FkmpNYWS2lk7BFk5PYX0oTopJYfblhWXSN/Nmi6dVWTtLM+37/4PGBg1dQ=="
)
MAIN_PICKLE = (
    "eNqNVXtwFEUa3+xmH9kscQ0QuWCpAeUSNKuQiK/sDFTUlCyuKCJ4xdnOzvZuD87OrPNIWM0dEgkm2KmiyOiFK+JxFJTcFWAVFueL7T05qxQVtf"
    "TqIiqWXJ13PgpFPVApy7tvZjY8YgDnj5np7u/x+37fox+qfOzdsMd56EWaomQE3Yhh3ZBygqFqegyJsqDrUkbCmkVrF+H7TayIuP3k5qDVtMr6"
    "jdVIK0UsyxatlHUjZ9FqIqXTWEG69AC2El4aVswckoUC1nQrUUEjiqrIkoIFTTIKoGQICrFoMK2pedU0rA5P+aETUlJa0rBoSKoiyFYfDcB5Hk"
    "TAEUAFHQ0LaVuHBnNYUHLCCosGuiQlrXaBjGAaqkX9uijIGJSrJQV0kaJKOrY6+HdanIdWqXkIGJBqtkpaAPxeWQMBMmjsWf7b47Ra1pAuEpw2"
    "wQwNiKoO2C0a6cJSlhgojUWhcArocEowRFKOPUoDKVO8Dxu2f4CHzHxaMLBu3fqJj4btDZxXRaLbLFWJspQHeFoOnB8pW/MbqbxhWElaA3TJBa"
    "Qbaj4vKVmrn07sFGQJrAE5KKMJDksgGFWQZGANDCGRCEoWUISpz1BlsFo/55+fX9jeTMNdgpYDW4JmgKGIJgBjztoAaQ+tUpBBbGqddAU7sZZS"
    "defEnzYKeQg+mJFVwWiZDZSJai4HbiNOrSCXFFhXIg1Q0kmQ+nwh5nqIobwk3mezGEUoixWs2XWGRHhBKZEYnYRQSjJ+ekQnjjEjZue0QmoXtn"
    "fAd9Dqte5wynDCadonBKAGnNBAhNyw9vyIfudXu7+5/ZqdM/6MVh9u+p2H+iRFtNZG/6SvuHFPy6qlPfXfXv/+ewPzTBomgo5MSbFDBSpC9i/O"
    "Qqms9e/4umvAY9L605CN8T8VoXwBkq64caNFGKdH28iOeC6NjNmaP23zZ77kIxBPY8IDhNe55pGoajiWM2VDEjQN6o1GEDSGquiGZoqGTZHfkY"
    "TUKGlXZBAS1mu1V6Qs11xForLXIvNHcwgqXrPV6u9zT320os1KJpPz/weP80p4DCvV3x4Nfj73xznXz7lt2LMr+eQDv3/Fgu1EZRO811gpm3ka"
    "ROW+JDW0BooRC4apYR1JCrILu9x4dke46wywBOMAlBA0lCZkszgNOXbFBGgvgkSs2EUMhVR76rbTy/Zu2abd9cgit5AFdqwkORqpFxaLqDdz7c"
    "n4yJJxo8tkMse7797Cw/ffNyU38nZ0NFJG7Hob33wOlJsPPH3DYvEI73vnZXxk4ZeuctAdQMguGD8SNJE4hecnARJMeEkoUUGqSJhUnxgZJNJH"
    "ziNR0nSyrUwacvoJSBzHvc+NTjpndFNGXVSUv97y1wFaLavQsaKpdUKQv7YaO/ivdqqHFi9eDD87HtkPP5jWnjJkdLsIdZv9uhTcEmjskX0Sdk"
    "4cw9YJM1CT7kxyxpxSnnnIvRpGR6Kz9EJFJKbQEJFg0GkFBMzBrAdrZ8Cn01B55OjOAIjCLRYrD2aJIPmqcdgLJbxr3OpoPRd/cwfq61h0EWYv"
    "fJdte37ipuJ1D/p4/4tvc9tKId68soFb0Du91PPMjdzMTdNLHU/M5t7vvitu+Ri3etcP7Mf4i5zD86mgyFlBDYPLqw69VHyuJcrnDxusu6eDq7"
    "1gFl839SibUvUq98Ufu1ntXZP5g9PauPjsrdy2kU3xSR8s4Ba+Wc//97mdXF/o78xxWWO7TEkwvM7IQq/j7pJfDFFW2DlSnEx6itdOn168et9I"
    "3Ljs0fi0K5q5Y7dV82PMkXOYe1h4kjv4r2kl/4bZpQNrfKXVM75gW3cPsOaRcOmbfdhFN2VslmCWwSUDV8zZiPk2PoGbuX0dF29a98KG9Yj7x7"
    "z18UCkmutbemnxWOB8/ld37uU+/NtfWHzfeaXdKxv4e579nj29Ic0++vRN1rrjKPcT1+Rnu14x4ucPbphcGmxpKD0zVMMPCfe2XRZ8jet8agZ/"
    "NLmeKwQu5/fv6mebt69lMwZmlrZXHWPzZkW5x9+exd/feInruu70nJzNcZnMmmV1/MZty9iSpRe1bfW28Ie3rONoKcY+7vbzE1sb+DFmyc80u3"
    "LvAbb37ofY0HEv++Xwl1zNmpdYw62+0uaVA/HvJj3soq0mcP+XmRpvBCVCLjf3Do94ikuindwTba3sYv8VnHDxRmZOvX3P8q872DXDD8b94mru"
    "2f94mFn8A7d/yy1s6K35bPvyWu6m1/rZfq2RWxeewC1Y9df4ppuPFPXXMbv042DxeF7j3nhqJlsf2BF30FQ5aOwozzAOAUlE6Xms7Y4fLmTLmg"
    "8VbS3TTMX+D4GBY4I="
)
MAIN_PROBA = [[0.3513967088971039, 0.3148646625160997, 0.3337386285867963], [0.3624615599448588, 0.2878175376749404, 0.3497209023802009], [0.3538887644328831, 0.30513180677602886, 0.34097942879108817]]


def main_model_data():
    X = np.random.default_rng(0).standard_normal((12, 5, 2))
    return [x[:n] for x, n in zip(X, [5, 3, 4, 2, 5, 1, 5, 3, 4, 2, 5, 1])]


@pytest.mark.parametrize("kind", ["file", "pickle"])
def test_files_and_pickles_from_before_the_sequential_still_load(tmp_path, kind):
    import base64
    import zlib

    blob = zlib.decompress(base64.b64decode(MAIN_FILE if kind == "file" else MAIN_PICKLE))
    if kind == "file":
        path = tmp_path / "main.npz"
        path.write_bytes(blob)
        est = load(path)
    else:
        est = pickle.loads(blob)
    assert isinstance(est.model_, rnnfast.Sequential) and est.rnn_ is est.model_[0] and est.head_ is est.model_[2]
    assert est.model_[1].what == "meanmax" and est.head_.in_features == 8
    assert est.window_offset == 0                  # added later: the value that reproduces how it trained
    assert est.predict_offsets == 0                # likewise (files before it predicted on the grid alone)
    assert est.instance_norm is False and not getattr(est, "instance_norm_", False)   # likewise
    assert est.derivative is False and not getattr(est, "derivative_", False)         # likewise
    assert est.random_crop == 0.0                                                     # likewise
    assert est.predict_noise == 0                                                     # likewise
    assert est.predict_crops == 0                                                     # likewise
    # the same model, to float32 rounding (MAIN_PROBA came from an AVX-512 machine)
    np.testing.assert_allclose(est.predict_proba(main_model_data()[:3]), MAIN_PROBA, rtol=1e-6, atol=0)
    names = sorted(est._get_weights())
    assert names[:2] == ["head.bias", "head.weight"] and names[2:] == sorted(
        f"rnn.{n}" for n, _ in est.rnn_.named_parameters())                      # the names files hold
    again = tmp_path / "again.npz"
    est.save(again)
    np.testing.assert_array_equal(load(again).predict_proba(main_model_data()[:3]),
                                  est.predict_proba(main_model_data()[:3]))   # saved again: bit for bit


def test_forecaster_files_are_checked_against_the_model_they_describe(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 12)), rng.standard_normal((30, 4))
    good = rnnfast.SequenceForecaster(horizon=4, hidden_size=4, max_updates=5, random_state=0).fit(X, y).save(
        tmp_path / "f.npz")
    assert load(good).predict(X).shape == (30, 4)

    def wider(meta):
        meta["fitted"]["_arch"]["hidden_size"] = 5                                  # the arrays are for 4

    edits = [(dict(edit_meta=wider), "the model its metadata describes needs"),
             (dict(edit_arrays=lambda arrays: arrays.pop("decoder.bias_hh_l0")), "do not match the metadata")]
    for i, (edit, match) in enumerate(edits):
        with pytest.raises(ValueError, match=match):
            load(_rewrite(good, tmp_path / f"bad{i}.npz", **edit))


def test_import_rnnfast_leaves_the_estimators_and_scikit_learn_until_first_use(tmp_path, classifier, data):
    """The layers alone do not import scikit-learn (a second and its own OpenMP runtime); rnnfast.load and
    rnnfast.persist.load of a file in a fresh process import the estimators they need."""
    import subprocess
    import sys
    from conftest import CHILD_CWD, child_env
    path = classifier.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", data[0])
    code = f"""if True:
        import sys, numpy as np
        import rnnfast
        assert "sklearn" not in sys.modules and "rnnfast.estimators" not in sys.modules
        rnnfast.LSTM(3, 4)(np.zeros((2, 1, 3)))
        assert "sklearn" not in sys.modules and "rnnfast.estimators" not in sys.modules
        from rnnfast.persist import load
        model = load({path!r})
        assert type(model) is rnnfast.SequenceClassifier and "estimators" in dir(rnnfast)
        print(list(model.predict(np.load({str(tmp_path / "x.npy")!r}, allow_pickle=True))))
    """
    out = subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=child_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(list(classifier.predict(data[0])))


def test_a_save_that_load_would_refuse_raises_and_keeps_the_old_file(tmp_path, classifier, monkeypatch):
    path = tmp_path / "m.npz"
    classifier.save(path)
    before = path.read_bytes()
    big = copy.deepcopy(classifier)
    big.loss_curve_ = list(big.loss_curve_) + [0.5] * 5000       # a long history (many partial_fit calls)
    monkeypatch.setattr(persist, "_MAX_METADATA_BYTES", 80_000)
    with pytest.raises(ValueError, match=r"more than load reads \(80000\); the largest part is loss_curve_.*"
                                         r"Nothing was written"):
        big.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]
    classifier.save(path)                                            # what fits is saved and loads
    assert type(load(path)) is SequenceClassifier
    size = zipfile.ZipFile(path).getinfo("__metadata__.npy").file_size   # the member load measures
    monkeypatch.setattr(persist, "_MAX_METADATA_BYTES", size)
    classifier.save(path)                                            # right at the limit: saved, and loads
    assert type(load(path)) is SequenceClassifier
    monkeypatch.setattr(persist, "_MAX_METADATA_BYTES", size - 1)
    with pytest.raises(ValueError, match="more than load reads"):
        classifier.save(path)


def test_save_refuses_a_file_it_may_not_write_as_open_does(tmp_path, classifier, monkeypatch):
    path = tmp_path / "kept.npz"
    classifier.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(persist.os, "access", lambda p, mode: False)   # (root may write anything: pretend)
    with pytest.raises(PermissionError, match="kept.npz.*not writable"):
        classifier.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["kept.npz"]


def test_save_paths_as_bytes_and_paths_that_name_no_file(tmp_path, classifier, data):
    path = os.fsencode(tmp_path / "b.npz")
    assert classifier.save(path) == os.fsdecode(path)
    np.testing.assert_array_equal(load(path).predict(data[0]), classifier.predict(data[0]))
    for bad in ("", f"{tmp_path}{os.sep}missing{os.sep}"):
        with pytest.raises(ValueError, match="path must name a file"):
            classifier.save(bad)
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, got int"):
        classifier.save(3)
    assert sorted(os.listdir(tmp_path)) == ["b.npz"]


def test_save_into_a_folder_it_may_not_write_names_the_target(tmp_path, classifier, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", args[0])
    monkeypatch.setattr(persist.os, "open", refused)                  # (root may write anything: pretend)
    with pytest.raises(PermissionError, match=r"cannot save to '.*m\.npz': no permission to write in"):
        classifier.save(tmp_path / "m.npz")


@pytest.mark.parametrize("edit", ["reversed", "repeated"])
def test_classes_edited_by_hand_are_refused(tmp_path, classifier, edit):
    """classes_ out of order loaded, and every prediction came out as the other label."""
    def edited(arrays):
        key = next(k for k in arrays if "classes_" in k)
        arrays[key] = arrays[key][::-1] if edit == "reversed" else arrays[key][:1].repeat(len(arrays[key]))
    good = tmp_path / "good.npz"
    classifier.save(good)
    with pytest.raises(ValueError, match="classes_ must hold two or more labels, sorted and unique"):
        load(_rewrite(good, tmp_path / "edited.npz", edit_arrays=edited))


@pytest.mark.parametrize("name, value, match", [
    ("input_mean_", [5.0], r"input_mean_ must hold \d+ finite numbers"),         # would broadcast silently
    ("input_scale_", "negative", "input_scale_ must be > 0"),
    ("input_mean_", "nan", r"input_mean_ must hold \d+ finite numbers"),
    ("derivative_", "yes", "derivative_ must be True or False"),
    ("n_features_in_", "x", "n_features_in_"),
    ("n_features_in_", 5, r"n_features_in_ \(5\) and input_size_"),        # another width than the network's
])
def test_learned_input_attributes_edited_by_hand_are_refused(tmp_path, classifier, name, value, match):
    def edit(meta):
        fitted = meta["fitted"]
        if value == "negative":
            fitted[name] = [-abs(v) for v in fitted[name]]
        elif value == "nan":
            fitted[name] = [float("nan")] + fitted[name][1:]

        else:
            fitted[name] = value
    assert classifier.input_mean_ is not None                            # (scale is on: there is something to edit)
    good = tmp_path / "good.npz"
    classifier.save(good)
    with pytest.raises(ValueError, match=f"learned attributes do not describe a model.*{match}"):
        load(_rewrite(good, tmp_path / "edited.npz", edit_meta=edit))
