"""``python -m rnnfast demo``: the command line, the stream it builds and what it reports."""
from __future__ import annotations

import re
import subprocess
import sys
import types

import numpy as np
import pytest

from rnnfast import __main__ as cli
from rnnfast import demo

from conftest import CHILD_CWD, child_env


def _run(*args, timeout=300):
    """``python -m rnnfast ARGS`` in a child importing the rnnfast under test (see conftest.child_env)."""
    return subprocess.run([sys.executable, "-m", "rnnfast", *args], capture_output=True, text=True,
                          env=child_env(), timeout=timeout, cwd=CHILD_CWD)


def test_demo_quick_runs_end_to_end():
    res = _run("demo", "--quick", "--seed", "1")
    assert res.returncode == 0, res.stderr
    found = re.findall(r"precision (\d\.\d{3})\s+recall (\d\.\d{3})", res.stdout)
    assert len(found) == 3                                           # Elman, LSTM and Jordan
    for precision, recall in found:
        assert 0.0 <= float(precision) <= 1.0 and 0.0 <= float(recall) <= 1.0
    assert re.search(r"^Elman: 3\d\d updates", res.stdout, re.M) and re.search(r"^ LSTM: 3\d\d updates", res.stdout, re.M)
    assert re.search(r"^Jordan: 300 updates \(24 epochs\), 8 outputs fed back", res.stdout, re.M)
    assert re.search(r"training time: \d+\.\d s", res.stdout)
    assert "LSTM on the test stream" in res.stdout and "Jordan on the test stream" in res.stdout
    assert res.stderr.splitlines() == ["training Elman, LSTM and Jordan (300 updates each) ..."]   # one line


def test_command_line_usage_errors_and_help():
    res = _run()
    assert res.returncode == 2 and "COMMAND" in res.stderr
    res = _run("nonsense")
    assert res.returncode == 2 and "invalid choice" in res.stderr
    res = _run("demo", "--help")
    assert res.returncode == 0 and "--quick" in res.stdout and "--seed" in res.stdout
    for option, value, minimum in (("--threads", "0", 1), ("--seed", "-1", 0), ("--jordan-outputs", "0", 1)):
        res = _run("demo", "--quick", option, value)               # refused before any training
        assert res.returncode == 2 and f"{option}: expected an integer >= {minimum}" in res.stderr, res.stderr


def test_commands_dispatch_their_own_arguments(monkeypatch):
    seen = {}
    fake = types.ModuleType("fake_bench")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 3
    monkeypatch.setitem(sys.modules, "fake_bench", fake)
    monkeypatch.setitem(cli.COMMANDS, "bench", ("fake_bench", "time the kernels"))
    assert cli.main(["bench", "--json", "out.json", "-k", "lstm"]) == 3
    assert seen["argv"] == ["--json", "out.json", "-k", "lstm"]


def test_stream_targets_mark_exactly_the_final_y_of_each_word():
    rng = np.random.default_rng(0)
    text, target = demo.make_stream(5000, rng)
    assert len(text) == 5000 and set(text) <= set("udacity")
    ends = [i + 6 for i in (m.start() for m in re.finditer("(?=udacity)", text))]
    np.testing.assert_array_equal(np.flatnonzero(target), ends)
    assert 50 < target.sum() < 300
    assert text.count("udaci") - text.count("udacity") > 20          # partial words that must not fire
    assert text.count("dacity") - text.count("udacity") > 5          # ... nor the word without its "u"
    X = demo.one_hot(text[:10])
    assert X.shape == (10, 7) and np.all(X.sum(axis=1) == 1)
    assert "".join("udacity"[i] for i in X.argmax(axis=1)) == text[:10]


def test_precision_recall_and_excerpts():
    target = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    fired = np.array([0, 1, 1, 0, 0, 0, 1, 0], bool)
    assert demo.precision_recall(fired, target) == pytest.approx((2 / 3, 2 / 3))
    assert demo.precision_recall(np.zeros(8, bool), target) == (0.0, 0.0)
    text = "udacity" * 3
    target = np.zeros(21, np.int64)
    target[[6, 13, 20]] = 1
    fired = np.zeros(21, bool)
    fired[[6, 10]] = True
    lines = "\n".join(demo.excerpts(text, fired, target, n=1, width=21))
    assert "udacityudacityudacity" in lines
    marks = lines.splitlines()[1]
    start = lines.splitlines()[0].index("udacity")
    assert marks[start + 6] == "^" and marks[start + 10] == "!" and marks[start + 13] == "?"


def test_jordan_detector_trains():
    """The demo's Jordan loop lowers its loss on a small set, and only output 0 is read as P(target)."""
    rng = np.random.default_rng(0)
    X, y = demo.training_set(32, 30, rng)
    net, losses = demo.train_jordan(X, y, outputs=4, updates=60, seed=0, threads=1)
    assert net.output_size == 4 and len(losses) == 60
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    proba = demo.jordan_proba(net, X)
    assert proba.shape == (32, 30) and np.all((proba > 0) & (proba < 1))
    out, _ = net(np.ascontiguousarray(X.transpose(1, 0, 2)))
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-out[..., 0].astype(np.float64))).T)
