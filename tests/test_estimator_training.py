"""The estimators' training recipe: readouts, scaling, the time-delay window, the update budget and its
schedule, warm_start / partial_fit, sample and class weights, early stopping, and an interrupted fit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels
from rnnfast.estimators import SequenceClassifier, SequenceRegressor
from rnnfast.estimators._data import _check_X, _input_scaling
from rnnfast.estimators._windows import _cropped_windowed, _offset_windowed, _windowed
from rnnfast.estimators import _training as training
from rnnfast.estimators._training import _planned_epochs
from rnnfast.tdnn import time_delay, time_delay_lengths

from test_estimators import assert_same_weights, ragged, weights  # noqa: E402  (tests/ is on sys.path)

FAST = dict(hidden_size=8, n_threads=1, random_state=0)
# the network's predictions alone: the regressor without its linear part (ridge), which reads the input as given
# and not the passes' noise, crops and alignments (tests/test_estimator_ridge.py), and with its network's part
# whole (network_weight=1: no probe fit, whose weight would scale it)
NETWORK_ALONE = {"classifier": {}, "regressor": {"ridge": False, "network_weight": 1.0}}


# ----------------------------------------------------------------------------------------- readouts
@pytest.mark.parametrize("readout", ["mean", "max", "meanmax", "lastmeanmax", "auto"])
def test_pooled_readout_window_and_scaling_follow_torch_autograd(readout):
    """One full-batch SGD step of the classifier against torch autograd on the same network: inputs
    with their first differences appended (derivative="auto"), standardized with the training set's
    statistics, windowed (k = 2, stride 2, zeros after the end), each window beside the one before it
    (window_span=2, the default; zeros before the first), an LSTM, the readout over each sequence's own
    windowed steps, a Linear head, mean cross-entropy."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X = [3.0 + 2.0 * x for x in ragged(9, rng, lo=2, hi=9, features=3)]
    y = rng.integers(0, 3, size=9)

    def fit(lr):
        return SequenceClassifier(readout=readout, window=2, window_offset=0, random_crop=0, optimizer="sgd", lr=lr,
                                  batch_size=10**6, max_epochs=1, clip_norm=None, dtype="float64", hidden_size=5,
                                  input_noise=0.0, mixup=0.0, random_state=0).fit(X, y)

    h1, h2 = 1e-3, 2e-3
    e1, e2 = fit(h1), fit(h2)
    w1, w2 = weights(e1), weights(e2)
    g = {k: (w1[k] - w2[k]) / (h2 - h1) for k in w1}
    w0 = {k: w1[k] + h1 * g[k] for k in w1}
    features = [np.concatenate([x, np.diff(x, axis=0, prepend=x[:1])], axis=1) for x in X]   # [x_t, x_t − x_{t−1}]
    steps = np.concatenate(features)
    mean, std = steps.mean(axis=0), steps.std(axis=0)                       # (6,)
    np.testing.assert_allclose(e1.input_mean_, mean, rtol=1e-12)
    np.testing.assert_allclose(e1.input_scale_, std, rtol=1e-12)
    rnn = torch.nn.LSTM(24, 5, dtype=torch.float64)
    for name, p in rnn.named_parameters():
        p.data = torch.tensor(w0[f"rnn.{name}"])
    W = torch.tensor(w0["head.weight"], requires_grad=True)
    b = torch.tensor(w0["head.bias"], requires_grad=True)
    losses = []
    for f_i, y_i in zip(features, y):
        s = (f_i - mean) / std
        s = np.concatenate([s, np.zeros((len(s) % 2, 6))]).reshape(-1, 12)  # (⌈T_i/2⌉, 2·6)
        s = np.concatenate([np.vstack([np.zeros((1, 12)), s[:-1]]), s], axis=1)   # (⌈T_i/2⌉, 2·2·6)
        out = rnn(torch.tensor(s)[:, None])[0][:, 0]                         # (T'_i, H)
        parts = {"mean": [out.mean(0)], "max": [out.max(0).values], "meanmax": [out.mean(0), out.max(0).values]}
        parts["lastmeanmax"] = parts["auto"] = [out[-1], out.mean(0), out.max(0).values]   # "auto" without tbptt
        z = torch.cat(parts[readout]) @ W.T + b
        losses.append(torch.nn.functional.cross_entropy(z[None], torch.tensor([int(y_i)])))
    torch.stack(losses).mean().backward()
    ref = {f"rnn.{n}": p.grad.numpy() for n, p in rnn.named_parameters()}
    ref.update({"head.weight": W.grad.numpy(), "head.bias": b.grad.numpy()})
    for k in ref:
        np.testing.assert_allclose(g[k], ref[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_auto_readout_is_last_mean_and_max_and_only_last_with_tbptt():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 10, 2)), np.arange(12) % 2
    clf = SequenceClassifier(max_updates=1, **FAST).fit(X, y)
    assert clf.readout == "auto" and clf.model_[1].what == "lastmeanmax" and clf.head_.in_features == 3 * 8
    reg = SequenceRegressor(max_updates=1, tbptt=4, **FAST).fit(X, rng.standard_normal(12))
    assert reg.model_[1].what == "last" and reg.head_.in_features == 8
    with pytest.raises(ValueError, match="readout='lastmeanmax' pools over every step"):
        SequenceClassifier(readout="lastmeanmax", tbptt=4, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="readout"):
        SequenceClassifier(readout="first", **FAST).fit(X, y)


# ------------------------------------------------------------------------------ window and scaling
def test_auto_window_keeps_at_most_32_steps_16_for_the_regressor_and_is_fixed_at_fit():
    rng = np.random.default_rng(0)
    y = np.arange(12) % 2
    for T, k in ((20, 1), (32, 1), (33, 2), (150, 5), (1500, 47)):
        clf = SequenceClassifier(max_updates=1, **FAST).fit(rng.standard_normal((12, T)), y)
        assert clf.window_ == k and clf.window_span_ == 2                 # "auto": 2 with output="last"
        assert clf.rnn_.input_size == 2 * k * 2                           # each step and its difference, 2 windows
        assert clf.predict(rng.standard_normal((3, T))).shape == (3,)
    ragged_X = [rng.standard_normal((int(t), 2)) for t in rng.integers(10, 200, size=12)]
    clf = SequenceClassifier(max_updates=1, **FAST).fit(ragged_X, y)
    longest = max(len(x) for x in ragged_X)
    assert clf.window_ == -(-longest // 32) and clf.rnn_.input_size == 2 * 2 * clf.window_ * 2
    assert SequenceClassifier(window=5, max_updates=1, **FAST).fit(ragged_X, y).window_ == 5
    one = SequenceClassifier(window=5, window_span=1, max_updates=1, **FAST).fit(ragged_X, y)
    assert one.window_span_ == 1 and one.rnn_.input_size == 2 * 2 * 5
    three = SequenceClassifier(window=5, window_span=3, max_updates=1, **FAST).fit(ragged_X, y)
    assert three.window_span_ == 3 and three.rnn_.input_size == 2 * 2 * 5 * 3
    assert three.predict(ragged_X[:3]).shape == (3,)
    assert SequenceClassifier(window=None, max_updates=1, **FAST).fit(ragged_X, y).window_ == 1
    for T, k in ((16, 1), (17, 2), (100, 7)):                         # the regressor: at most 16 steps
        reg = SequenceRegressor(max_updates=1, **FAST).fit(rng.standard_normal((12, T)), rng.standard_normal(12))
        assert reg.window_ == k and reg.window_span_ == 2 and reg.rnn_.input_size == 2 * k * 2
    seq = SequenceRegressor(output="sequence", max_updates=1, **FAST).fit(rng.standard_normal((12, 300)),
                                                                          rng.standard_normal((12, 300)))
    assert seq.window_ == 1 and seq.window_span_ == 1                # one output per input step, read alone
    assert seq.rnn_.input_size == 1                                  # derivative="auto" is off there too
    with pytest.raises(ValueError, match="window"):
        SequenceRegressor(output="sequence", window=3).fit(rng.standard_normal((12, 30)), rng.standard_normal((12, 30)))
    seq2 = SequenceRegressor(output="sequence", window_span=2, max_updates=1, **FAST).fit(
        rng.standard_normal((12, 30)), rng.standard_normal((12, 30)))
    assert seq2.window_span_ == 2 and seq2.rnn_.input_size == 2     # each step beside the one before it
    assert seq2.predict(rng.standard_normal((3, 30))).shape == (3, 30)
    for bad, error in (("wide", ValueError), (0, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="window_span"):
            SequenceClassifier(window_span=bad, max_updates=1, **FAST).fit(rng.standard_normal((12, 20)), y)


def test_window_is_the_time_delay_view():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((t, 2)) for t in (5, 3, 6)]
    seqs = _check_X(X, np.dtype(np.float64))
    w = _windowed(seqs, 2)
    assert w.x.shape == (3, 3, 4) and list(w.lengths) == [3, 2, 3]
    np.testing.assert_array_equal(w.x[0, 0], np.r_[X[0][0], X[0][1]])
    np.testing.assert_array_equal(w.x[2, 0], np.r_[X[0][4], 0, 0])   # past the end: zeros
    np.testing.assert_array_equal(w.x[1, 1], np.r_[X[1][2], 0, 0])
    np.testing.assert_array_equal(w.x[2, 1], 0)                      # padding stays padding
    w = _windowed(seqs, 2, 2)                                        # window_span=2: the window before it too
    assert w.x.shape == (3, 3, 8) and list(w.lengths) == [3, 2, 3]
    np.testing.assert_array_equal(w.x[0, 0], np.r_[0, 0, 0, 0, X[0][0], X[0][1]])     # zeros before the first
    np.testing.assert_array_equal(w.x[1, 0], np.r_[X[0][0], X[0][1], X[0][2], X[0][3]])
    np.testing.assert_array_equal(w.x[2, 0], np.r_[X[0][2], X[0][3], X[0][4], 0, 0])
    np.testing.assert_array_equal(w.x[1, 1], np.r_[X[1][0], X[1][1], X[1][2], 0, 0])
    np.testing.assert_array_equal(w.x[2, 1], 0)                      # past its windows: zeros, history too


def _time_delay_view(seqs, k, span=1):
    """The reference for the estimators' windows: TimeDelay's (rnnfast.tdnn.time_delay, NumPy) over the
    padded batch after (span − 1)·k steps of zeros, then zeros past each sequence's windows."""
    lengths = None if seqs.lengths is None else time_delay_lengths(seqs.lengths, k, k, "pad")
    x = np.concatenate([np.zeros(((span - 1) * k,) + seqs.x.shape[1:], seqs.x.dtype), seqs.x])
    y = np.array(time_delay(x, span * k, k, "pad"))                     # (⌈T/k⌉, n, span·k·I)
    if lengths is not None:
        y[np.arange(y.shape[0])[:, None] >= lengths[None, :]] = 0
    return y, lengths


@pytest.mark.parametrize("span", [1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_window_from_step_0_is_the_time_delay_view(k, span):
    """_windowed (predict's and validation's grid) against the TimeDelay reference, ragged and equal lengths,
    the padding of the ragged batch holding values a window must not read."""
    rng = np.random.default_rng(k + span)
    for X in ([rng.standard_normal((int(t), 3)) for t in (7, 1, 5, 9)], rng.standard_normal((4, 8, 3))):
        seqs = _check_X(X, np.dtype(np.float32))
        want, lengths = _time_delay_view(seqs, k, span)
        if seqs.lengths is not None:
            seqs.x[np.arange(seqs.T)[:, None] >= seqs.lengths[None, :]] = 7.0
        got = _windowed(seqs, k, span)
        if k == span == 1:
            assert got is seqs                  # no window: the sequences as they are, padding and all
            continue
        np.testing.assert_array_equal(got.x, want)
        assert (got.lengths is None) == (lengths is None)
        if lengths is not None:
            np.testing.assert_array_equal(got.lengths, lengths)


@pytest.mark.parametrize("span", [1, 3])
@pytest.mark.parametrize("features", [3, 11])                # a loop copies up to 8 features a row, memcpy more
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_cropped_window_is_the_time_delay_view_of_each_sequence_after_its_first_steps(features, dtype, span):
    """_cropped_windowed(seqs, idx, phase, k): sequence idx[b] without its first min(phase[b], T_b − 1)
    steps, windowed as TimeDelay windows it (zeros past its end, whatever the padding holds), for ragged and
    equal lengths; with random phases and repeated sequences (training batches), with one phase for all
    the sequences in their order (predict's alignments), and with ``stops`` s_b (random_crop's segments:
    steps min(phase[b], s_b − 1) … s_b − 1); with ``span`` each window also holds the (span − 1)·k steps
    of the crop before it (zeros before the crop's first step)."""
    rng = np.random.default_rng(1)
    n = 40
    for X in ([rng.standard_normal((int(t), features)) for t in rng.integers(1, 30, n)],
              rng.standard_normal((n, 29, features))):
        seqs = _check_X(X, np.dtype(dtype))
        if seqs.lengths is not None:
            seqs.x[np.arange(seqs.T)[:, None] >= seqs.lengths[None, :]] = 7.0    # padding the crops must not read
        for k in (1, 2, 5):
            batch = rng.integers(0, n, 36)
            cases = ((batch, rng.integers(0, k + 3, 36), None), (np.arange(n), np.full(n, k + 1), None),
                     (batch, rng.integers(0, k + 3, 36), np.array([rng.integers(1, len(X[i]) + 1) for i in batch])))
            for idx, phase, stops in cases:
                got = _cropped_windowed(seqs, idx, phase, k, stops=stops, span=span)
                ends = [len(X[i]) for i in idx] if stops is None else stops
                crops = [X[i][min(f, s - 1):s] for i, f, s in zip(idx, phase, ends)]
                want, _ = _time_delay_view(_check_X(crops, np.dtype(dtype)), k, span)
                assert got.x.dtype == dtype
                np.testing.assert_array_equal(got.x, want)
                np.testing.assert_array_equal(got.lengths, [-(-len(c) // k) for c in crops])


@pytest.mark.parametrize("k", [1, 4])
def test_random_crops_keep_a_segment_of_at_least_the_share_asked(k):
    """_offset_windowed(..., crop=c): each draw is the time-delay view of one contiguous segment of its
    sequence, at least ⌈(1 − c)·T_b⌉ − (k − 1) steps long (the crop, then the window's offset); over many
    draws the segments start and end all over the allowed range. crop=0: the whole sequence from an offset
    below k."""
    rng = np.random.default_rng(5)
    X = [rng.standard_normal((int(t), 2)) for t in (40, 57, 90)]
    seqs = _check_X(X, np.dtype(np.float64))
    idx = np.repeat(np.arange(3), 200)
    for crop in (0.0, 0.3):
        got = _offset_windowed(seqs, idx, k, np.random.default_rng(0), crop=crop)
        starts, stops = [], []
        for b, i in enumerate(idx):
            rows = got.x[:got.lengths[b], b].reshape(-1, 2)                       # windows back to steps
            rows = rows[:np.flatnonzero(np.any(rows != 0, axis=1)).max() + 1]     # the last window's zeros dropped
            a = int(np.flatnonzero(np.all(X[i] == rows[0], axis=1))[0])
            np.testing.assert_array_equal(rows, X[i][a:a + len(rows)])            # one contiguous segment
            assert len(rows) >= -(-len(X[i]) * (1 - crop) // 1) - (k - 1)
            starts.append(a)
            stops.append(a + len(rows) - len(X[i]))                               # ≤ 0: steps dropped at the end
        starts, stops = np.array(starts), np.array(stops)
        if crop == 0:
            assert starts.max() == k - 1 and (stops == 0).all()
        else:
            assert starts.max() > 0.2 * 40 and stops.min() < -0.2 * 40 and (stops == 0).any()


def test_the_crop_kernel_refuses_what_does_not_fit():
    """_kernels.crop_windows names what is wrong instead of reading outside its arrays."""
    src = np.zeros((10, 4, 3))                                   # (T, n, I)
    ok = dict(idx=np.array([0, 3]), start=np.array([0, 2]), end=np.array([10, 7]))
    dst = np.empty((5, 2, 6))                                    # windows of 2 steps
    _kernels.crop_windows(src, ok["idx"], ok["start"], ok["end"], dst)
    for change, message in ((dict(idx=np.array([0, 4])), "idx\\[1\\] = 4 is not a sequence"),
                            (dict(idx=np.array([-1, 0])), "idx\\[0\\] = -1"),
                            (dict(start=np.array([0, 8])), "start\\[1\\] = 8 and end\\[1\\] = 7"),
                            (dict(end=np.array([11, 7])), "end\\[0\\] = 11"),
                            (dict(start=np.array([-1, 0])), "start\\[0\\] = -1"),
                            (dict(idx=np.array([0])), "must each hold dst's 2 columns")):
        args = {**ok, **change}
        with pytest.raises(ValueError, match=message):
            _kernels.crop_windows(src, args["idx"], args["start"], args["end"], dst)
    with pytest.raises(ValueError, match="whole number of windows of src's 3 features"):
        _kernels.crop_windows(src, ok["idx"], ok["start"], ok["end"], np.empty((5, 2, 7)))
    for stride in (-1, 3):
        with pytest.raises(ValueError, match=f"stride must be 0 \\(the window's 2 steps\\) or in 1 .. 2, "
                                             f"got {stride}"):
            _kernels.crop_windows(src, ok["idx"], ok["start"], ok["end"], dst, stride)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_predict_offsets_all_averages_the_crops_of_every_alignment(kind):
    """predict_offsets="all": the mean, over φ = 0 … k − 1, of what the grid alone predicts for the sequences
    with their first φ steps dropped (the classifier's probabilities, the regressor's outputs); a ragged
    sequence shorter than φ + 1 steps keeps its last step. 0: the grid alone. (derivative=False: a crop made
    here would start its differences afresh, where predict crops the differences of the whole sequence.)"""
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((int(t), 2)) for t in rng.integers(2, 12, size=40)]   # ragged, some shorter than k
    if kind == "classifier":
        y = np.array([int(x[:, 0].sum() > 0) for x in X])
        est = SequenceClassifier(window=3, derivative=False, predict_crops=0, max_updates=30, dtype="float64",
                                 **FAST).fit(X, y)                     # the alignments alone, no crops
        out = est.predict_proba
    else:
        y = np.array([x[:, 0].sum() for x in X])
        est = SequenceRegressor(window=3, derivative=False, predict_noise=0, max_updates=30, dtype="float64",
                                ridge=False, **FAST).fit(X, y)         # the alignments alone, no noise draws
        out = est.predict
    assert SequenceClassifier().predict_offsets == "all" and SequenceRegressor().predict_offsets == "all"
    assert est.predict_offsets == "all" and est.window_ == 3
    averaged = out(X)
    est.set_params(predict_offsets=0)
    grid = out(X)
    crops = [out([x[min(phi, len(x) - 1):] for x in X]) for phi in range(3)]
    np.testing.assert_array_equal(crops[0], grid)
    np.testing.assert_allclose(averaged, np.mean(crops, axis=0), rtol=1e-12, atol=1e-15)
    assert np.abs(averaged - grid).max() > 1e-6                        # the other alignments do count
    est.set_params(predict_offsets="all", window_offset=0)             # what fit trained with counts, not
    np.testing.assert_array_equal(out(X), averaged)                    # the parameter changed after it
    if kind == "classifier":                                           # predict and score follow the average
        est.set_params(predict_offsets="all", window_offset="random")
        labels = est.classes_[averaged.argmax(axis=1)]
        np.testing.assert_array_equal(est.predict(X), labels)
        assert est.score(X, y) == np.mean(labels == y)


@pytest.mark.parametrize("n", [1, 3, 13, 64])
def test_alignments_batched_together_give_the_alignments_one_by_one(n):
    """A few sequences' crops for several φ share one forward (up to 64 sequences): the same average, to
    rounding, as one forward per alignment, for ragged sequences some shorter than the window."""
    rng = np.random.default_rng(7)
    X = [rng.standard_normal((int(t), 2)) for t in rng.integers(3, 40, size=64)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    est = SequenceClassifier(window=9, derivative=False, predict_crops=0, max_updates=10, dtype="float64",
                             **FAST).fit(X, y)
    est.set_params(predict_offsets=0)
    crops = [est.predict_proba([x[min(phi, len(x) - 1):] for x in X[:n]]) for phi in range(9)]
    est.set_params(predict_offsets="all")
    np.testing.assert_allclose(est.predict_proba(X[:n]), np.mean(crops, axis=0), rtol=1e-12, atol=1e-15)


def test_predict_offsets_rejects_other_values():
    X, y = np.zeros((6, 8, 1)), np.arange(6) % 2
    with pytest.raises(ValueError, match="predict_offsets"):
        SequenceClassifier(predict_offsets="mean", **FAST).fit(X, y)
    est = SequenceClassifier(window=2, max_updates=2, **FAST).fit(X, y)
    for bad, error in (("mean", ValueError), (-1, ValueError), (None, ValueError), (1.5, TypeError),
                       (True, TypeError)):
        est.set_params(predict_offsets=bad)
        with pytest.raises(error, match="predict_offsets"):
            est.predict(X)


@pytest.mark.parametrize("m", [0, 1, 2, 3, 5, 7, 8, 100])
def test_predict_offsets_m_averages_m_alignments_spread_over_the_window(m):
    """An integer m: the mean of the grid predictions for the sequences cropped by φ_i = ⌊i·k/m⌋, i < m (all
    k alignments when m >= k; 0 and 1 the grid alone), for a window of k = 7 steps."""
    from rnnfast.estimators._inference import _alignments
    assert _alignments(7, "all") == list(range(7)) and _alignments(7, 100) == list(range(7))
    phases = _alignments(7, m)
    assert phases == ([0] if m <= 1 else sorted({(i * 7) // min(m, 7) for i in range(min(m, 7))}))
    assert len(phases) == max(1, min(m, 7))
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 40, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    est = SequenceClassifier(window=7, derivative=False, predict_crops=0, max_updates=10, dtype="float64",
                             **FAST).fit(X, y)
    est.set_params(predict_offsets=0)
    crops = [est.predict_proba(X[:, phi:]) for phi in phases]
    est.set_params(predict_offsets=m)
    np.testing.assert_allclose(est.predict_proba(X), np.mean(crops, axis=0), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_predict_noise_averages_draws_of_the_training_noise(kind, m, output):
    """predict_noise=m: the mean of what the clean model predicts for X + σ·z_j, j < m (the classifier's
    probabilities, the regressor's outputs), each z_j one fixed draw shared by every sequence; a prediction
    depends on its own sequence alone (a subset, and the sequences reversed, give the same) and repeats
    exactly. Without a window, derivative or scaling the prepared input is X itself, so the draws can be
    added to X here."""
    from rnnfast.estimators._inference import _noise_pattern
    rng = np.random.default_rng(11)
    X = rng.standard_normal((30, 12, 2))
    Est = SequenceClassifier if kind == "classifier" else SequenceRegressor
    total = X[:, :, 0].cumsum(axis=1) if output == "sequence" else X[:, :, 0].sum(axis=1)   # (n, T) or (n,)
    y = (total > 0).astype(int) if kind == "classifier" else total
    est = Est(window=1, window_span=1, derivative=False, instance_norm=False, scale=False, input_noise=0.5,
              output=output, max_updates=30, dtype="float64", **NETWORK_ALONE[kind], **FAST).fit(X, y)
    out = est.predict_proba if kind == "classifier" else est.predict
    est.set_params(predict_noise=0)
    noisy = [out(X + _noise_pattern(j, 12, 2, 0.5, np.float64)) for j in range(m)]
    clean = out(X)
    est.set_params(predict_noise=m)
    averaged = out(X)
    np.testing.assert_allclose(averaged, np.mean(noisy, axis=0), rtol=1e-12, atol=1e-15)
    assert np.abs(averaged - clean).max() > 1e-6                        # the draws do count
    np.testing.assert_allclose(out(X[5:9]), averaged[5:9], rtol=1e-12, atol=1e-15)   # (another batch's rounding)
    np.testing.assert_allclose(out(X[::-1])[::-1], averaged, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out(X), averaged)
    est.set_params(input_noise=0.0)                                     # after fit: what fit trained with
    np.testing.assert_array_equal(out(X), averaged)                    # counts, not the parameter
    est.input_noise_ = 0.0                                              # trained without noise: nothing to draw
    np.testing.assert_array_equal(out(X), clean)


def test_predict_noise_auto_is_eight_draws_for_the_regressor_alone():
    """"auto": the regressor averages 8 draws with output="last" (with a window of k = 3 steps, 9 passes: pass j
    reads alignment φ = j mod 3 with draw j, so each alignment weighs the same), the classifier none; files
    from before load with 0."""
    from rnnfast.estimators._inference import _noise_pattern
    assert SequenceClassifier().predict_noise == "auto" and SequenceRegressor().predict_noise == "auto"
    assert SequenceRegressor._earlier_defaults["predict_noise"] == 0
    rng = np.random.default_rng(12)
    X = rng.standard_normal((20, 9, 1))
    y = X[:, :, 0].sum(axis=1)
    est = SequenceRegressor(window=3, window_span=1, derivative=False, scale=False, max_updates=20,
                            dtype="float64", ridge=False, **FAST).fit(X, y)
    auto = est.predict(X)
    est.set_params(predict_noise=0, predict_offsets=0)
    passes = [(j % 3, j) for j in range(9)]                            # (alignment φ, draw j)
    # pass (φ, j): the sequences less their first φ steps, zeros to the 3rd window's end, and draw j, (3, 3)
    # (windows × steps), laid over those 9 steps
    ref = [est.predict(np.pad(X[:, phi:], ((0, 0), (0, phi), (0, 0)))
                       + _noise_pattern(j, 3, 3, 0.3, np.float64).reshape(1, 9, 1)) for phi, j in passes]
    np.testing.assert_allclose(auto, np.mean(ref, axis=0), rtol=1e-12, atol=1e-15)
    est.set_params(predict_noise=8, predict_offsets="all")
    np.testing.assert_array_equal(est.predict(X), auto)
    est.set_params(predict_noise=0)
    assert np.abs(est.predict(X) - auto).max() > 1e-6
    clf = SequenceClassifier(window=3, max_updates=5, **FAST).fit(X, (y > 0).astype(int))
    proba = clf.predict_proba(X)
    clf.set_params(predict_noise=0)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def _crop_draw(j, T, c):
    """The j-th crop predict_crops documents: the same fraction of every sequence at the same relative place,
    ⌈(1 − c + c·u_j)·T⌉ steps from ⌊v_j·(room + 1)⌋, (u_j, v_j) the first two uniforms of the seed (0xC409, j)."""
    u, v = np.random.default_rng((0xC409, j)).uniform(size=2)
    keep = max(1, int(np.ceil((1.0 - c + c * u) * T)))
    start = int(np.floor(v * (T - keep + 1)))
    return start, keep


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("m", [1, 3])
def test_predict_crops_averages_draws_of_the_training_crop(kind, m):
    """predict_crops=m: the mean of what the model predicts for the whole sequences and for m − 1 … m draws
    of the training crop (pass j ≥ 1: every sequence's own ⌈(1 − c + c·u_j)·T_b⌉ steps, at the fraction v_j of
    its room), of ragged sequences; a prediction depends on its own sequence alone (a subset, and the
    sequences reversed, give the same) and repeats exactly. Without a window, derivative or scaling the
    prepared input is X itself, so the crops can be taken of X here."""
    rng = np.random.default_rng(13)
    X = [rng.standard_normal((int(T), 2)) for T in rng.integers(8, 21, size=24)]
    Est = SequenceClassifier if kind == "classifier" else SequenceRegressor
    total = np.array([x[:, 0].sum() for x in X])
    y = (total > 0).astype(int) if kind == "classifier" else total
    est = Est(window=1, window_span=1, derivative=False, instance_norm=False, scale=False, random_crop=0.4,
              input_noise=0.0, max_updates=30, dtype="float64", **NETWORK_ALONE[kind], **FAST).fit(X, y)
    assert est.random_crop_ == 0.4
    out = est.predict_proba if kind == "classifier" else est.predict
    est.set_params(predict_crops=0)
    whole = out(X)
    passes = [whole]
    for j in range(1, m):                                              # m passes: a = 1 alignment, pass 0 whole
        crops = []
        for x in X:
            start, keep = _crop_draw(j, len(x), 0.4)
            crops.append(x[start:start + keep])
        passes.append(out(crops))
    est.set_params(predict_crops=m)
    averaged = out(X)
    np.testing.assert_allclose(averaged, np.mean(passes, axis=0), rtol=1e-12, atol=1e-15)
    if m > 1:
        assert np.abs(averaged - whole).max() > 1e-6                   # the crops do count
    np.testing.assert_allclose(out(X[5:9]), averaged[5:9], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out(X[::-1])[::-1], averaged, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out(X), averaged)
    est.random_crop_ = 0.0                                               # trained uncropped: nothing to draw
    np.testing.assert_array_equal(out(X), whole)


def test_predict_crops_take_the_alignments_in_turn_with_the_noise():
    """With a window of k = 3 steps and predict_crops=4 (no noise): a·⌈4/a⌉ = 6 passes, pass j the crop of
    draw j (none for j = 0) read from alignment φ = j mod 3; with predict_noise=4 as well, pass j adds noise
    draw j too. "auto" is 16 crops for the classifier, none for the regressor, and files from before load
    with 0."""
    from rnnfast.estimators._inference import _noise_pattern
    assert SequenceClassifier().predict_crops == "auto" and SequenceRegressor().predict_crops == "auto"
    assert SequenceClassifier._auto_predict_crops == 16 and SequenceRegressor._auto_predict_crops == 0
    assert SequenceClassifier._earlier_defaults["predict_crops"] == 0
    rng = np.random.default_rng(14)
    X = rng.standard_normal((20, 30, 1))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    est = SequenceClassifier(window=3, window_span=1, derivative=False, instance_norm=False, scale=False,
                             random_crop=0.3, max_updates=20, dtype="float64", **FAST).fit(X, y)
    sigma = est.input_noise
    for draws in (0, 4):
        est.set_params(predict_crops=4, predict_noise=draws, predict_offsets="all")
        averaged = est.predict_proba(X)
        est.set_params(predict_crops=0, predict_noise=0, predict_offsets=0)
        ref = []
        for j in range(6):
            phi = j % 3
            start, keep = _crop_draw(j, 30, 0.3) if j else (0, 30)
            part = X[:, start + phi:start + keep]                        # (n, T', 1)
            T_pad = -(-part.shape[1] // 3) * 3                            # zeros to the last window's end
            part = np.pad(part, ((0, 0), (0, T_pad - part.shape[1]), (0, 0)))
            if draws:
                part = part + _noise_pattern(j, T_pad // 3, 3, sigma, np.float64).reshape(1, T_pad, 1)
            ref.append(est.predict_proba(part))
        np.testing.assert_allclose(averaged, np.mean(ref, axis=0), rtol=1e-12, atol=1e-15)
    auto = SequenceClassifier(window=3, max_updates=5, **FAST).fit(X, y)
    assert auto.random_crop_ == 0.3
    proba = auto.predict_proba(X)
    auto.set_params(predict_crops=16)
    np.testing.assert_array_equal(auto.predict_proba(X), proba)
    auto.set_params(predict_crops=0)
    assert np.abs(auto.predict_proba(X) - proba).max() > 1e-6


@pytest.mark.parametrize("name, Est", [("predict_noise", SequenceRegressor), ("predict_crops", SequenceClassifier)])
def test_predict_draws_reject_other_values(name, Est):
    X, y = np.zeros((6, 8, 1)), np.arange(6) % 2
    with pytest.raises(ValueError, match=name):
        Est(**{name: "all"}, **FAST).fit(X, y)
    est = Est(max_updates=2, **FAST).fit(X, y)
    for bad, error in (("mean", ValueError), (-1, ValueError), (None, TypeError), (1.5, TypeError),
                       (True, TypeError)):
        est.set_params(**{name: bad})
        with pytest.raises(error, match=name):
            est.predict(X)


# ---------------------------------------------------------------------------------------------- mixup
def test_mixed_losses_are_the_soft_target_losses():
    """The classifier's mixup loss is cross-entropy against the soft target λ·e_y + (1 − λ)·e_y', each label
    weighted by its own sequence's weight (NumPy reference); the regressor's has the gradient of the squared
    error against the weighted mixed target."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4))
    y, y2, lam = rng.integers(0, 4, 6), rng.integers(0, 4, 6), 0.3
    w, w2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    value, total, dz = SequenceClassifier()._mixed_loss(z, y, y2, lam, w, w2)
    a, b = lam * w, (1 - lam) * w2                                                 # (6,) each label's weight
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    W = (a + b).sum()
    np.testing.assert_allclose(total, W, rtol=1e-12)
    np.testing.assert_allclose(value, -(a * logp[np.arange(6), y] + b * logp[np.arange(6), y2]).sum() / W,
                               rtol=1e-12)
    soft = (a[:, None] * np.eye(4)[y] + b[:, None] * np.eye(4)[y2]) / (a + b)[:, None]
    np.testing.assert_allclose(dz, (a + b)[:, None] * (np.exp(logp) - soft) / W, rtol=1e-12, atol=1e-15)
    value, total, dz = SequenceClassifier()._mixed_loss(z, y, y2, lam, None, None)    # no weights: λ, 1 − λ
    soft = lam * np.eye(4)[y] + (1 - lam) * np.eye(4)[y2]
    np.testing.assert_allclose(dz, (np.exp(logp) - soft) / 6, rtol=1e-12, atol=1e-15)
    t, t2 = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    _, _, dz = SequenceRegressor()._mixed_loss(z, t, t2, lam, w, w2)
    mixed = (a[:, None] * t + b[:, None] * t2) / (a + b)[:, None]
    np.testing.assert_allclose(dz, (a + b)[:, None] * (z - mixed) / (4 * W), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("lengths", ["equal", "ragged"])
def test_mixup_trains_on_mixtures_of_pairs_and_their_targets(monkeypatch, lengths):
    """Each training row is λ·x_i + (1 − λ)·x_j of two training sequences (no noise, scaling or window here),
    scored against y_i and y_j with that λ, and runs to the longer of the two sequences' ends."""
    rng = np.random.default_rng(3)
    n = 12
    X = [rng.standard_normal((int(t), 2)) for t in rng.integers(3, 9, n)] if lengths == "ragged" \
        else rng.standard_normal((n, 6, 2))
    y = np.arange(n) % 3
    seen = []
    backprop = rnnfast.estimators._training.Engine.backprop
    mixed_loss = SequenceClassifier._mixed_loss

    def spy_backprop(engine, x, state, objective, lens=None):
        seen.append({"x": np.array(x, np.float64), "lens": None if lens is None else np.array(lens)})
        return backprop(engine, x, state, objective, lens)

    def spy_loss(est, z, target, partner, lam, weights, partner_weights):
        seen[-1].update(target=np.array(target), partner=np.array(partner), lam=lam)
        return mixed_loss(est, z, target, partner, lam, weights, partner_weights)

    monkeypatch.setattr(rnnfast.estimators._training.Engine, "backprop", spy_backprop)
    monkeypatch.setattr(SequenceClassifier, "_mixed_loss", spy_loss)
    SequenceClassifier(mixup=0.4, input_noise=0.0, scale=False, derivative=False, instance_norm=False,
                       window=1, window_span=1, random_crop=0.0, batch_size=4, max_updates=6,
                       dtype="float64", **FAST).fit(X, y)
    assert len(seen) == 6 and len({b["lam"] for b in seen}) == 6 and all(0 < b["lam"] < 1 for b in seen)
    Xs = [np.asarray(x) for x in X]
    for b in seen:
        for r in range(b["x"].shape[1]):
            steps = b["x"].shape[0] if b["lens"] is None else b["lens"][r]
            found = [(i, j) for i in range(n) for j in range(n)
                     if y[i] == b["target"][r] and y[j] == b["partner"][r]
                     and max(len(Xs[i]), len(Xs[j])) == steps
                     and np.allclose(b["x"][:steps, r], b["lam"] * np.pad(Xs[i], ((0, steps - len(Xs[i])), (0, 0)))
                                     + (1 - b["lam"]) * np.pad(Xs[j], ((0, steps - len(Xs[j])), (0, 0))),
                                     rtol=1e-12, atol=1e-12)]
            assert found, f"row {r} is no mixture of two training sequences with its targets"


def test_mixup_auto_and_bad_values():
    """"auto": α = 0.2 for the classifier, none for the regressor, none with output="sequence"."""
    X, y = np.random.default_rng(0).standard_normal((8, 5, 1)), np.arange(8) % 2
    assert SequenceClassifier().mixup == SequenceRegressor().mixup == "auto"
    assert SequenceClassifier()._checked_params()["mixup"] == 0.2
    assert SequenceRegressor()._checked_params()["mixup"] == 0.0
    assert SequenceClassifier(output="sequence")._checked_params()["mixup"] == 0.0
    assert SequenceRegressor(mixup=0.5)._checked_params()["mixup"] == 0.5
    for bad, error in ((-0.1, ValueError), ("on", ValueError), (None, TypeError), (float("nan"), ValueError)):
        with pytest.raises(error, match="mixup"):
            SequenceClassifier(mixup=bad, max_updates=1, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="mixup.*output='sequence'"):
        SequenceRegressor(mixup=0.2, output="sequence", max_updates=1, **FAST).fit(X, X[:, :, 0])


def test_scaling_ignores_padding_and_weighs_sequences():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((t, 2)) * 5 + 1 for t in (4, 1, 7)]
    seqs = _check_X(X, np.dtype(np.float64))
    _, _, mean, scale = _input_scaling(seqs)
    steps = np.concatenate(X)
    np.testing.assert_allclose(mean, steps.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scale, steps.std(0), rtol=1e-12)
    _, _, mean_w, scale_w = _input_scaling(seqs, np.array([2.0, 0.0, 1.0]))   # weight 2 = the sequence twice
    twice = np.concatenate([X[0], X[0], X[2]])
    np.testing.assert_allclose(mean_w, twice.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scale_w, twice.std(0), rtol=1e-12)
    const = _input_scaling(_check_X(np.full((3, 4, 1), 7.0), np.dtype(np.float64)))
    assert const.mean[0] == 7.0 and const.scale[0] == 1.0              # a constant feature: scale 1
    assert const.asinh_scale is None                                   # and not a heavy-tailed one


def test_heavy_tailed_features_are_compressed_before_standardization():
    rng = np.random.default_rng(5)
    n, T = 30, 12
    counts = np.round(rng.lognormal(1.0, 2.5, size=(n, T)))           # counts with a few huge values
    normal = rng.standard_normal((n, T))
    onehot = (rng.random((n, T)) < 0.02).astype(float)                 # rare symbol: 4th moment ~ 50
    X = np.stack([counts, normal, onehot], axis=2)                     # (n, T, 3)
    seqs = _check_X(X, np.dtype(np.float64))
    sc = _input_scaling(seqs)
    v = counts.ravel()
    center = np.median(v)
    dev = np.abs(v - center)
    assert sc.asinh_center[0] == center and sc.asinh_scale[0] == np.median(dev[dev > 0])
    assert sc.asinh_scale[1] == 0                                      # the normal feature is left alone
    z = np.arcsinh((v - center) / sc.asinh_scale[0])
    np.testing.assert_allclose(sc.mean[0], z.mean(), rtol=1e-12)
    np.testing.assert_allclose(sc.scale[0], z.std(), rtol=1e-12)
    plain = _input_scaling(seqs, heavy_tails=False)
    assert plain.asinh_scale is None
    out, out_plain = sc(seqs.x), plain(seqs.x)                         # (T, n, 3)
    np.testing.assert_allclose(out[..., 0], (np.arcsinh((seqs.x[..., 0] - center) / sc.asinh_scale[0])
                                             - sc.mean[0]) / sc.scale[0], rtol=1e-12)
    assert np.abs(out[..., 0]).max() < 0.5 * np.abs(out_plain[..., 0]).max()   # the tail no longer dominates
    np.testing.assert_allclose(out[..., 1:], out_plain[..., 1:], rtol=1e-12, atol=1e-12)  # two values: as before
    y = (counts.sum(1) > np.median(counts.sum(1))).astype(int)
    kw = dict(max_updates=10, dtype="float64", **FAST)
    a = SequenceClassifier(**kw).fit(X, y)
    b = SequenceClassifier(**kw).fit(X * 1000 + 50, y)                 # units do not matter
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X * 1000 + 50), rtol=1e-8)
    std = SequenceClassifier(scale="standard", **kw).fit(X, y)
    assert std.input_asinh_scale_ is None and a.input_asinh_scale_[0] > 0
    assert not np.allclose(a.predict_proba(X), std.predict_proba(X))


def test_scaling_makes_the_model_invariant_to_the_inputs_units():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 10, 2))
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    kw = dict(max_updates=20, dtype="float64", **FAST)
    a = SequenceClassifier(**kw).fit(X, y)
    b = SequenceClassifier(**kw).fit(X * 1000 + 50, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X * 1000 + 50), rtol=1e-8)
    reg = SequenceRegressor(**kw).fit(X, 1e4 * y + 3)
    assert reg.target_mean_[0] == pytest.approx(1e4 * y.mean() + 3) and reg.target_scale_[0] > 1e3
    assert abs(reg.predict(X).mean() - (1e4 * y.mean() + 3)) < 2e3     # predictions in the targets' units
    raw = SequenceRegressor(scale=False, **kw).fit(X, y)
    assert raw.input_mean_ is None and raw.target_mean_ is None


# ---------------------------------------------------------------------------- budget and schedule
def test_update_budget_counts_whole_epochs_and_the_schedule_spans_it():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 5, 2)), np.arange(50) % 2
    clf = SequenceClassifier(batch_size=16, max_updates=30, **FAST).fit(X, y)   # 4 batches (13, 13, 12, 12)
    assert clf.n_epochs_ == 8 and clf.n_updates_ == 32 and clf.t_ == 400
    assert clf._optimizer.lr == pytest.approx(0.0, abs=1e-12)         # annealed to 0 at the planned end
    capped = SequenceClassifier(batch_size=16, max_updates=30, max_epochs=2, **FAST).fit(X, y)
    assert capped.n_epochs_ == 2 and capped.n_updates_ == 8
    big = SequenceClassifier(batch_size=16, max_updates=3, **FAST).fit(X, y)
    assert big.n_epochs_ == 1 and big.n_updates_ == 4                 # at least one whole epoch
    const = SequenceClassifier(batch_size=16, max_updates=30, lr_schedule="constant", **FAST).fit(X, y)
    assert const._optimizer.lr == const.lr == 0.003
    with pytest.raises(ValueError, match="max_updates and max_epochs"):
        SequenceClassifier(max_updates=None, max_epochs=None).fit(X, y)



def test_auto_budget_is_2000_updates_or_10_epochs_whichever_is_more():
    assert _planned_epochs("auto", None, 4) == 500 and _planned_epochs("auto", None, 199) == 11
    assert _planned_epochs("auto", None, 200) == 10 and _planned_epochs("auto", None, 6250) == 10
    assert _planned_epochs("auto", 3, 6250) == 3 and _planned_epochs(2000, None, 6250) == 1
    assert _planned_epochs(None, 7, 6250) == 7
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((250, 3, 1)), np.arange(250) % 2        # 250 batches of 1 per epoch
    small = dict(batch_size=1, hidden_size=2, n_threads=1, random_state=0, window=None)
    clf = SequenceClassifier(**small).fit(X, y)
    assert clf.max_updates == "auto" and clf.n_epochs_ == 10 and clf.n_updates_ == 2500
    assert SequenceClassifier(max_updates=2000, **small).fit(X, y).n_epochs_ == 8
    with pytest.raises(ValueError, match="max_updates must be one of 'auto'"):
        SequenceRegressor(max_updates="many").fit(X, y)
    with pytest.raises(ValueError, match="batch_size must be one of 'auto'"):
        SequenceRegressor(batch_size="large").fit(X, y)
    with pytest.raises(TypeError, match="max_updates must be an integer"):
        SequenceRegressor(max_updates=2.5).fit(X, y)

def test_auto_budget_stops_at_its_work_limit_and_ints_do_not():
    """"auto" plans no more epochs than _AUTO_MAX_MACS multiply-adds of the recurrent forward allow (at
    least one); an integer max_updates and max_epochs keep their own count."""
    limit = training._AUTO_MAX_MACS
    assert _planned_epochs("auto", None, 6250, limit / 4) == 4 and _planned_epochs("auto", None, 4, limit / 4) == 4
    assert _planned_epochs("auto", None, 6250, 2 * limit) == 1 and _planned_epochs("auto", None, 6250, 0.0) == 10
    assert _planned_epochs("auto", 3, 6250, limit / 4) == 3 and _planned_epochs(4000, None, 200, limit) == 20
    assert _planned_epochs(None, 7, 6250, limit) == 7
    p = dict(cell="lstm", bidirectional=False, hidden_size=64, num_layers=1)
    assert training._recurrent_macs(30, 12, p) == 30 * 4 * 64 * (12 + 64)
    p2 = dict(cell="gru", bidirectional=True, hidden_size=8, num_layers=2)
    assert training._recurrent_macs(5, 3, p2) == 5 * (2 * 3 * 8 * (3 + 8) + 2 * 3 * 8 * (16 + 8))
    assert training._recurrent_macs(5, 3, {**p2, "cell": "elman"}) == 5 * (2 * 8 * (3 + 8) + 2 * 8 * (16 + 8))


def test_fit_plans_its_epochs_by_the_work_limit(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6, 1)), np.arange(40) % 2
    kw = dict(hidden_size=4, n_threads=1, random_state=0, window=None, window_span=1, derivative=False,
              instance_norm=False)
    macs = training._recurrent_macs(40 * 6, 1, dict(cell="lstm", bidirectional=False, hidden_size=4, num_layers=1))
    assert SequenceClassifier(**kw).fit(X, y).n_epochs_ == 667          # 2000 updates of 3 batches (16, ±1)
    monkeypatch.setattr(training, "_AUTO_MAX_MACS", 7.5 * macs)
    clf = SequenceClassifier(**kw).fit(X, y)
    assert clf.n_epochs_ == 7 and clf.n_updates_ == 21
    assert SequenceClassifier(max_updates=30, **kw).fit(X, y).n_epochs_ == 10    # an integer budget: no limit


def test_auto_batch_size_keeps_an_epoch_to_1000_batches(monkeypatch):
    assert [training._auto_batch_size(n) for n in (1, 16_000, 16_001, 32_000, 32_001, 64_001, 10**7)] == \
        [16, 16, 32, 32, 64, 128, 128]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3, 1)), np.arange(40) % 2
    kw = dict(hidden_size=2, n_threads=1, random_state=0, window=None, max_updates=None, max_epochs=2)
    auto, sixteen = SequenceClassifier(**kw).fit(X, y), SequenceClassifier(batch_size=16, **kw).fit(X, y)
    assert auto.batch_size == "auto" and auto.n_updates_ == sixteen.n_updates_ == 6
    assert_same_weights(auto, sixteen)
    assert auto._optimizer.lr == sixteen._optimizer.lr
    monkeypatch.setattr(training, "_AUTO_EPOCH_UPDATES", 1)             # 40 sequences: one batch of 64
    kw.update(lr_schedule="constant", lr=0.004)
    big = SequenceClassifier(**kw).fit(X, y)
    assert big.n_updates_ == 2 and big._optimizer.lr == pytest.approx(0.008)      # lr·√(64 / 16)
    assert big.batch_size_ == 64 and SequenceClassifier(batch_size=64, **kw).fit(X, y)._optimizer.lr == 0.004
    assert SequenceClassifier(optimizer="sgd", **kw).fit(X, y)._optimizer.lr == 0.004  # adaptive optimizers only


# ----------------------------------------------------------------------- warm_start and partial_fit
@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_partial_fit_and_warm_start_continue_one_long_fit_bit_for_bit(Estimator):
    rng = np.random.default_rng(0)
    X = ragged(45, rng, lo=3, hi=12)
    y = np.arange(45) % 3 if Estimator is SequenceClassifier else rng.standard_normal(45)
    kw = dict(batch_size=10, lr_schedule="constant", max_updates=None, **FAST)
    long = Estimator(max_epochs=3, **kw).fit(X, y)
    partial = Estimator(**{**kw, "max_epochs": 1})
    for _ in range(3):
        partial.partial_fit(X, y)
    assert_same_weights(long, partial)
    assert partial.n_epochs_ == 3 and partial.loss_curve_ == long.loss_curve_ and partial.n_updates_ == 15
    warm = Estimator(max_epochs=1, warm_start=True, **kw).fit(X, y)
    warm.fit(X, y).fit(X, y)
    assert_same_weights(long, warm)
    cold = Estimator(max_epochs=1, **kw).fit(X, y).fit(X, y)          # without warm_start: starts over
    assert_same_weights(Estimator(max_epochs=1, **kw).fit(X, y), cold)


def test_partial_fit_classes_and_new_labels():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4, 2))
    clf = SequenceClassifier(**FAST).partial_fit(X[:10], np.zeros(10, int), classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.head_.out_features == 3
    clf.partial_fit(X[10:], np.full(10, 2))
    with pytest.raises(ValueError, match="not fitted with: \\[7\\]"):
        clf.partial_fit(X[:2], np.array([0, 7]))
    with pytest.raises(ValueError, match="not in classes"):
        SequenceClassifier(**FAST).partial_fit(X[:4], np.array([0, 1, 5, 1]), classes=[0, 1])
    with pytest.raises(ValueError, match="features per step"):
        clf.partial_fit(rng.standard_normal((3, 4, 5)), np.zeros(3, int))
    with pytest.raises(ValueError, match="classes=\\[0, 1, 2, 3\\] is not the same"):     # as scikit-learn's SGD
        clf.partial_fit(X[:2], np.array([0, 1]), classes=[0, 1, 2, 3])
    clf.partial_fit(X[:2], np.array([0, 1]), classes=[2, 1, 0])                          # the same set


# ------------------------------------------------------------------------------- sample and class weights
def test_mixup_weighs_each_label_by_its_own_sequences_weight(monkeypatch):
    """With weights that are a function of the label (w = 1 + 2·class), every mixed loss must get, for each
    row, the weight of its own label and the weight of its partner's label."""
    calls = []
    original = SequenceClassifier._mixed_loss

    def recording(self, z, target, partner, lam, weights, partner_weights):
        calls.append((target.copy(), partner.copy(), weights, partner_weights))
        return original(self, z, target, partner, lam, weights, partner_weights)
    monkeypatch.setattr(SequenceClassifier, "_mixed_loss", recording)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2))
    y = (rng.random(40) < 0.4).astype(int)
    sw = 1.0 + 2.0 * y
    SequenceClassifier(mixup=0.4, max_updates=8, batch_size=8, **FAST).fit(X, y, sample_weight=sw)
    assert calls and any((t != p).any() for t, p, _, _ in calls)        # some rows mixed across the classes
    for target, partner, weights, partner_weights in calls:             # (targets as class indices)
        np.testing.assert_array_equal(weights, 1.0 + 2.0 * target)
        np.testing.assert_array_equal(partner_weights, 1.0 + 2.0 * partner)


def test_class_weight_is_a_per_class_sample_weight():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2))
    y = np.where(rng.random(40) < 0.25, "rare", "common")
    kw = dict(max_updates=10, batch_size=8, scale=False, **FAST)     # (sample weights also weigh the scaling)
    by_dict = SequenceClassifier(class_weight={"rare": 3.0}, **kw).fit(X, y)
    by_sw = SequenceClassifier(**kw).fit(X, y, sample_weight=np.where(y == "rare", 3.0, 1.0))
    np.testing.assert_array_equal(by_dict.predict_proba(X), by_sw.predict_proba(X))
    counts = {c: (y == c).sum() for c in ("common", "rare")}
    balanced = SequenceClassifier(class_weight="balanced", **kw).fit(X, y)
    sw = np.array([len(y) / (2 * counts[c]) for c in y])
    np.testing.assert_array_equal(balanced.predict_proba(X),
                                  SequenceClassifier(**kw).fit(X, y, sample_weight=sw).predict_proba(X))
    with pytest.raises(ValueError, match="class_weight"):
        SequenceClassifier(class_weight="even", **kw).fit(X, y)
    with pytest.raises(ValueError, match="not in classes_"):
        SequenceClassifier(class_weight={"other": 2}, **kw).fit(X, y)
    for bad in ("x", None, -1.0, np.inf):
        with pytest.raises(ValueError, match="class_weight\\['rare'\\] must be a finite number >= 0"):
            SequenceClassifier(class_weight={"rare": bad}, **kw).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        by_sw.score(X, y, sample_weight=np.ones(3))
    reg = SequenceRegressor(**kw).fit(X, (y == "rare") * 1.0)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        reg.score(X, (y == "rare") * 1.0, sample_weight=np.ones(3))


@pytest.mark.parametrize("output", ["last", "sequence"])
def test_sample_weight_zero_is_removal_and_bad_weights_raise(output):
    """Full batches in float64: a weight of 0 is the sample removed, up to the order of the sums."""
    rng = np.random.default_rng(0)
    X = ragged(30, rng, lo=3, hi=9)
    y = rng.standard_normal(30) if output == "last" else [rng.standard_normal(len(x)) for x in X]
    sw = (rng.random(30) < 0.7).astype(float)
    keep = np.flatnonzero(sw)
    kw = dict(output=output, batch_size=10**6, max_updates=20, dtype="float64", input_noise=0.0, **FAST)
    a = SequenceRegressor(**kw).fit(X, y, sample_weight=sw)
    b = SequenceRegressor(**kw).fit([X[i] for i in keep], [y[i] for i in keep] if output == "sequence" else y[keep])
    for k, v in weights(a).items():
        np.testing.assert_allclose(v, weights(b)[k], rtol=1e-9, atol=1e-12, err_msg=k)
    for bad, match in ((np.ones(3), "shape"), (-sw, ">= 0"), (sw * np.nan, "finite"), (0 * sw, "zero")):
        with pytest.raises(ValueError, match=match):
            SequenceRegressor(**kw).fit(X, y, sample_weight=bad)


# ---------------------------------------------------------------------------------- early stopping
def test_early_stopping_patience_counts_updates_on_small_sets():
    """36 training sequences in 2 batches: 10 epochs of patience would be 20 updates; it waits 10 × 20."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5, 2))
    y = rng.integers(0, 2, 40)                                       # noise: the validation loss soon rises
    clf = SequenceClassifier(early_stopping=True, max_updates=4000, lr=0.05, batch_size=18, tol=0.0, **FAST).fit(X, y)
    assert clf.validation_scores_ is not None and len(clf.validation_scores_) == clf.n_epochs_
    assert clf.n_epochs_ - clf.best_epoch_ == 100                     # 10 × 20 updates of 2 an epoch
    assert clf.n_epochs_ < 2000                                      # it did stop before the budget


# ------------------------------------------------------------------------------------ interruption
def _interrupt_at(monkeypatch, call):
    original = SequenceClassifier._train_batch
    count = {"n": 0}

    def batch(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SequenceClassifier, "_train_batch", batch)


def test_an_interrupted_fit_keeps_its_last_complete_epoch_and_warns(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5, 2)), np.arange(40) % 2
    kw = dict(batch_size=10, lr_schedule="constant", max_updates=None, **FAST)
    ref = SequenceClassifier(max_epochs=2, **kw).fit(X, y)
    _interrupt_at(monkeypatch, 11)                                   # in epoch 3 (4 batches an epoch)
    clf = SequenceClassifier(max_epochs=5, **kw)
    with pytest.warns(rnnfast.estimators._compat.ConvergenceWarning, match="interrupted"):
        clf.fit(X, y)
    assert clf.n_epochs_ == 2 and len(clf.loss_curve_) == 2 and clf.n_updates_ == 8 and clf.t_ == 80
    assert_same_weights(ref, clf)
    assert clf.loss_curve_ == ref.loss_curve_


def test_an_interrupt_before_the_first_epoch_leaves_the_estimator_as_it_was(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5, 2)), np.arange(40) % 2
    clf = SequenceClassifier(max_updates=8, batch_size=10, **FAST).fit(X, y)
    before, proba = weights(clf), clf.predict_proba(X)
    attrs = dict(clf.__dict__)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X[:, :3], 1 - y)                                     # another shape of model, interrupted
    assert clf.__dict__.keys() == attrs.keys() and clf.n_epochs_ == attrs["n_epochs_"]
    assert clf.model_ is attrs["model_"] and clf.rnn_ is clf.model_[0] and clf.head_ is clf.model_[2]
    assert all(np.array_equal(v, weights(clf)[k]) for k, v in before.items())
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    fresh = SequenceClassifier(**FAST)
    _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    assert not hasattr(fresh, "rnn_") and not hasattr(fresh, "classes_")
    warm = SequenceClassifier(warm_start=True, max_updates=4, batch_size=10, **FAST).fit(X, y)
    before = weights(warm)
    _interrupt_at(monkeypatch, 3)                                    # a warm start, mid-epoch
    with pytest.raises(KeyboardInterrupt):
        warm.fit(X, y)
    assert all(np.array_equal(v, weights(warm)[k]) for k, v in before.items())


def test_a_warm_start_interrupted_then_continued_is_the_fit_never_interrupted(monkeypatch):
    """The interrupted call leaves the weights, the optimizer's moments and the random stream as they were, and
    the optimizer still updates the model's own parameters, so the next call trains as if it never ran."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5, 2)), np.arange(40) % 2
    kw = dict(warm_start=True, max_updates=8, batch_size=10, **FAST)
    ref = SequenceClassifier(**kw).fit(X, y).fit(X, y)
    clf = SequenceClassifier(**kw).fit(X, y)
    _interrupt_at(monkeypatch, 3)                                    # the second call, mid-epoch
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    monkeypatch.undo()
    clf.fit(X, y)
    assert_same_weights(ref, clf)
    assert clf.loss_curve_ == ref.loss_curve_ and clf.n_updates_ == 16


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_a_failed_refit_leaves_the_fitted_model_as_it_was(Estimator, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6, 2))
    y = np.arange(24) % 2 if Estimator is SequenceClassifier else rng.standard_normal(24)
    est = Estimator(max_updates=4, **FAST).fit(X, y)
    attrs, proba = dict(est.__dict__), est.predict(X)
    bad_y = np.zeros(24, int) if Estimator is SequenceClassifier else np.where(y > 0, np.nan, 0.0)
    with pytest.raises(ValueError, match="only one class" if Estimator is SequenceClassifier else "NaN"):
        est.fit(X[:, :, :1], bad_y)                                  # another shape of model, then bad targets
    assert est.__dict__.keys() == attrs.keys() and est.model_ is attrs["model_"]
    np.testing.assert_array_equal(est.predict(X), proba)
    np.testing.assert_array_equal(rnnfast.load(est.save(tmp_path / "m.npz")).predict(X), proba)
    warm = Estimator(warm_start=True, max_updates=4, **FAST).fit(X, y)
    before = weights(warm)
    with pytest.raises(ValueError, match="sample_weight"):
        warm.fit(X, y, sample_weight=np.ones(3))
    assert all(np.array_equal(v, weights(warm)[k]) for k, v in before.items())


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
@pytest.mark.parametrize("how", ["pickle", "file"])
def test_warm_start_and_partial_fit_continue_an_unpickled_or_loaded_model(Estimator, how, tmp_path):
    """A copy carries no optimizer (nor, from a file, the random stream): continuing starts new ones."""
    import pickle
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6, 2))
    y = np.arange(24) % 3 if Estimator is SequenceClassifier else rng.standard_normal(24)
    est = Estimator(warm_start=True, max_updates=4, batch_size=8, **FAST).fit(X, y)
    for method in ("fit", "partial_fit"):
        copy = (pickle.loads(pickle.dumps(est)) if how == "pickle"
                else rnnfast.load(est.save(tmp_path / f"{method}.npz")))
        before = weights(copy)
        getattr(copy, method)(X, y)
        assert copy.n_updates_ > est.n_updates_
        assert all(not np.array_equal(v, weights(copy)[k]) for k, v in before.items())
        getattr(copy, method)(X, y)                                  # and once more, with the new optimizer


@pytest.mark.parametrize("change, value", [("hidden_size", 16), ("cell", "gru"), ("num_layers", 2),
                                           ("bidirectional", True), ("output", "sequence"), ("dtype", "float64"),
                                           ("readout", "mean"), ("window", 3)])
def test_warm_start_and_partial_fit_refuse_parameters_the_model_was_not_built_with(change, value):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 6, 2)), np.arange(24) % 2
    for method in ("fit", "partial_fit"):
        est = SequenceClassifier(warm_start=True, max_updates=4, window=2 if change == "window" else "auto",
                                 **FAST).fit(X, y)
        before = weights(est)
        est.set_params(**{change: value})
        with pytest.raises(ValueError, match=f"{change}={value!r} \\(fitted with"):
            getattr(est, method)(X, y)
        assert all(np.array_equal(v, weights(est)[k]) for k, v in before.items())
    est = SequenceClassifier(warm_start=True, max_updates=4, **FAST).fit(X, y)
    est.set_params(n_threads=2, lr=0.01, input_noise=0.0, window=est.window_).fit(X, y)   # these may change
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        est.set_params(n_threads=0).predict(X)


# ------------------------------------------------------------------------------------ long series
def test_defaults_train_on_series_of_1500_steps_without_diverging():
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.standard_normal((24, 1500)), axis=1) * 10     # random walks, far from unit scale
    y = (X[:, -1] > X[:, 0]).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                              # no overflow warning either
        clf = SequenceClassifier(max_updates=60, random_state=0).fit(X, y)
        reg = SequenceRegressor(max_updates=60, random_state=0).fit(X, X[:, -1] - X[:, 0])
    assert clf.window_ == 47 and np.isfinite(clf.loss_curve_).all()
    assert clf.score(X, y) > 0.8
    assert reg.window_ == 94 and np.isfinite(reg.loss_curve_).all()
    assert reg.score(X, X[:, -1] - X[:, 0]) > 0.8


@pytest.mark.parametrize("max_norm", [1.0, None])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_the_engine_refuses_a_non_finite_update_and_leaves_the_weights(max_norm, bad):
    """With clipping the check reads the gradient's norm (1e30 is finite, but its square overflows float32,
    so the norm is inf); without it each gradient. Either way Diverged comes before the step."""
    from rnnfast._engine import Diverged, Engine
    lstm = rnnfast.LSTM(3, 4, seed=0)
    engine = Engine(lstm, None, rnnfast.SGD(lstm.parameters(), lr=0.1), max_norm, check_finite=True)
    before = [p.data.copy() for p in lstm.parameters()]
    x = np.ones((5, 2, 3), np.float32)

    def objective(output):
        dout = np.zeros_like(output[0])
        dout[2, 1, 3] = bad
        return 1.0, 1.0, (dout, None)

    engine.zero_grad()
    engine.backprop(x, None, objective)
    if bad == 1e30 and max_norm is None:     # finite gradients, no norm taken: a (huge) step is made
        engine.update(1.0, 1.0)
        assert not np.array_equal(lstm.weight_hh_l0.data, before[1])
        return
    with pytest.raises(Diverged):
        engine.update(1.0, 1.0)
    for p, w in zip(lstm.parameters(), before):
        np.testing.assert_array_equal(p.data, w)
    engine.zero_grad()
    engine.backprop(x, None, lambda output: (float("nan"), 1.0, (np.zeros_like(output[0]), None)))
    with pytest.raises(Diverged):                                   # a NaN loss alone
        engine.update(float("nan"), 1.0)


# ------------------------------------------------------------------------------ concurrent predict
def test_predict_from_several_threads_gives_the_serial_results():
    """Threaded servers and joblib's threading backend call predict on one fitted estimator at once."""
    import copy
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    X = ragged(60, rng, lo=3, hi=30)
    clf = SequenceClassifier(max_updates=5, **FAST).fit(X, np.arange(60) % 3)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: clf.predict_proba(X[i % 7:]), range(48)))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, expected[i % 7:])
    clf.partial_fit(X, np.arange(60) % 3)                          # new weights: the copies follow them
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(lambda i: clf.predict_proba(X), range(12)):
            np.testing.assert_array_equal(got, expected)
    for other in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        with ThreadPoolExecutor(3) as pool:
            for got in pool.map(lambda i: other.predict_proba(X), range(6)):
                np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- inputs changed before backward
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_changing_the_inputs_after_forward_does_not_change_the_gradient(cell):
    """x, h0, c0 and lengths (already contiguous, of the layer's dtype: the layer would keep them as
    given) and Linear's x, overwritten between forward and backward: the gradient is forward's."""
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 4, 3, 5
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((1, B, H))
    c0 = rng.standard_normal((1, B, H))
    lengths = np.array([7, 3, 5, 1], dtype=np.intc)
    dout = rng.standard_normal((T, B, H))
    features = rng.standard_normal((B, H))

    def grads(mutate):
        layer = rnnfast.layers.recurrent_layer(cell, I, H, dtype="float64", seed=0)
        head = rnnfast.Linear(H, 2, dtype="float64", seed=0)
        xi, h, c, n = x.copy(), h0.copy(), c0.copy(), lengths.copy()
        out, _ = layer(xi, (h, c) if cell == "lstm" else h, lengths=n)
        feats = features.copy()
        head(feats)
        if mutate:
            for a in (xi, h, c, feats):
                a[...] = 1e3
            n[...] = 7
        dfeats = head.backward(np.ones((B, 2)))
        dx, _ = layer.backward(dout)
        return [dx, dfeats] + [p.grad.copy() for p in layer.parameters() + head.parameters()]

    for a, b in zip(grads(False), grads(True)):
        np.testing.assert_array_equal(a, b)


def test_input_noise_jitters_training_batches_only():
    rng = np.random.default_rng(0)
    X = ragged(30, rng, lo=3, hi=9)
    y = np.arange(30) % 2
    kw = dict(max_updates=20, batch_size=10, dtype="float64", **FAST)
    quiet = SequenceClassifier(input_noise=0.0, **kw).fit(X, y)
    noisy = SequenceClassifier(input_noise=0.3, **kw).fit(X, y)
    assert not np.array_equal(weights(quiet)["rnn.weight_ih_l0"], weights(noisy)["rnn.weight_ih_l0"])
    assert_same_weights(noisy, SequenceClassifier(input_noise=0.3, **kw).fit(X, y))   # seeded by random_state
    np.testing.assert_array_equal(noisy.predict_proba(X), noisy.predict_proba(X))    # predict adds none
    for name in ("input_noise", "lr", "weight_decay", "mixup"):
        for bad in (-1, np.inf, np.nan):
            with pytest.raises(ValueError, match=f"{name} must be in [\\[(]0, inf\\), got"):
                SequenceClassifier(**{name: bad}).fit(X, y)


def test_bucketing_batches_sequences_of_similar_length():
    from rnnfast.estimators._data import _BUCKET_POOL, _epoch_batches
    rng = np.random.default_rng(0)
    n, batches = 1000, 63                                              # 15-16 per batch, pools of 32 batches
    lengths = rng.integers(30, 3001, size=n)
    order = rng.permutation(n)
    plain = _epoch_batches(order, batches, lengths, False, np.random.default_rng(1))
    for a, b in zip(plain, np.array_split(order, batches)):
        np.testing.assert_array_equal(a, b)
    equal = _epoch_batches(order, batches, np.full(n, 7), True, np.random.default_rng(1))
    for a, b in zip(equal, np.array_split(order, batches)):             # equal lengths: as without buckets
        np.testing.assert_array_equal(a, b)
    bucketed = _epoch_batches(order, batches, lengths, True, np.random.default_rng(1))
    assert len(bucketed) == batches and {len(b) for b in bucketed} <= {n // batches, n // batches + 1}
    np.testing.assert_array_equal(np.sort(np.concatenate(bucketed)), np.arange(n))   # every index once
    spread = lambda bs: np.mean([lengths[b].max() - lengths[b].min() for b in bs])
    assert spread(bucketed) < 0.1 * spread(plain)                       # similar lengths in a batch
    padded = lambda bs: sum(len(b) * lengths[b].max() for b in bs)
    assert padded(bucketed) < 1.1 * lengths.sum() < 0.75 * padded(plain)   # near the real steps
    first = [b[0] for b in bucketed]
    assert not np.all(np.diff(lengths[first]) >= 0)                     # the batches' order is shuffled
    assert _BUCKET_POOL * 16 < n                                        # (more than one pool was sorted)


def test_bucketing_changes_nothing_for_equal_lengths_and_trains_ragged_sets():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 12, 2))
    y = (X[:, :, 0].sum(1) > 0).astype(int)
    kw = dict(max_updates=12, batch_size=8, dtype="float64", **FAST)
    a = SequenceClassifier(bucket=True, **kw).fit(X, y)
    b = SequenceClassifier(bucket=False, **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    ragged = [x[: rng.integers(3, 13)] for x in X]
    c = SequenceClassifier(bucket=True, **kw).fit(ragged, y)
    d = SequenceClassifier(bucket=False, **kw).fit(ragged, y)
    assert c.n_updates_ == d.n_updates_ and not np.allclose(c.predict_proba(ragged), d.predict_proba(ragged))
    with pytest.raises(ValueError, match="bucket"):
        SequenceClassifier(bucket="yes").fit(X, y)


# ------------------------------------------------------------------- the estimator is its Sequential, trained
def reference_fit(X, y, *, cell, readout, bidirectional, hidden_size, max_epochs, batch_size, lr, random_state):
    """The classifier's recipe written out with rnnfast's public pieces (scale=False, input_noise=0,
    window=1, no validation, bucket=False): the same seeds drawn in the same order, Sequential(layer,
    Readout, Linear), Adam, the cosine schedule, clipping to 1 and the mean cross-entropy of each batch.
    ``readout="sequence"`` trains one label per step (y (n, T), masked past each length).
    Returns (model, loss curve)."""
    n = len(X)
    lengths = np.array([len(x) for x in X])                                       # (n,)
    T = int(lengths.max())
    xs = np.zeros((T, n, X[0].shape[1]), np.float32)                               # (T, n, I) zero padded
    for b, x in enumerate(X):
        xs[:len(x), b] = x
    rng = np.random.default_rng(random_state)
    seed_rnn, seed_head = (int(v) for v in rng.integers(0, 2**63 - 1, size=2))
    rnn = rnnfast.layers.recurrent_layer(cell, xs.shape[2], hidden_size, bidirectional=bidirectional, seed=seed_rnn)
    read = rnnfast.Readout(readout)
    classes = int(np.max(np.concatenate([np.ravel(t) for t in y]))) + 1
    model = rnnfast.Sequential(rnn, read, rnnfast.Linear(read.width(hidden_size * (1 + bidirectional)), classes,
                                                         seed=seed_head))
    opt = rnnfast.optim.Adam(model.parameters(), lr=lr)
    batches = -(-n // batch_size)
    schedule = rnnfast.optim.CosineAnnealingLR(opt, max_epochs * batches)
    curve = []
    for _ in range(max_epochs):
        model.train()
        total = count = 0.0
        for idx in np.array_split(rng.permutation(n), batches):
            steps = int(lengths[idx].max())
            z = model(xs[:steps, idx], lengths=lengths[idx])                    # (B, C) or (steps, B, C)
            if readout == "sequence":
                mask = (np.arange(steps)[:, None] < lengths[idx][None, :]).astype(np.float64)   # (steps, B)
                target = np.zeros((steps, len(idx)), np.int64)
                for j, b in enumerate(idx):
                    target[:lengths[b], j] = y[b]
                value, dz = rnnfast.cross_entropy(z, target, mask=mask)
                scored = mask.sum()
            else:
                value, dz = rnnfast.cross_entropy(z, np.asarray(y)[idx])
                scored = len(idx)
            opt.zero_grad()
            model.backward(dz)
            rnnfast.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            schedule.step()
            total, count = total + value * scored, count + scored
        curve.append(total / count)
    return model.eval(), curve


@pytest.mark.parametrize("cell, readout, bidirectional", [
    ("lstm", "meanmax", True), ("gru", "last", False), ("elman", "max", False), ("lstm", "sequence", False)])
def test_the_classifier_trains_and_predicts_as_its_sequential_in_a_plain_loop(cell, readout, bidirectional):
    """Same weights and the same loss curve bit for bit as the reference loop over public pieces, and the
    same probabilities (the estimator applies the head's affine map in float64)."""
    rng = np.random.default_rng(5)
    X = ragged(20, rng, lo=2, hi=10, features=3)
    sequence = readout == "sequence"
    y = [rng.integers(0, 3, len(x)) for x in X] if sequence else rng.integers(0, 3, 20)
    kw = dict(hidden_size=5, max_epochs=3, batch_size=6, lr=0.01, random_state=0)
    clf = SequenceClassifier(cell=cell, bidirectional=bidirectional, output="sequence" if sequence else "last",
                             readout="last" if sequence else readout, scale=False, derivative=False,
                             input_noise=0.0, mixup=0.0, window=1, window_span=1, bucket=False, max_updates=None,
                             n_threads=1,
                             **kw).fit(X, y)
    model, curve = reference_fit(X, y, cell=cell, readout=readout, bidirectional=bidirectional, **kw)
    assert clf.loss_curve_ == curve
    assert isinstance(clf.model_, rnnfast.Sequential) and clf.model_[1].what == readout
    for name, w in model.state_dict().items():
        np.testing.assert_array_equal(clf.model_.state_dict()[name], w, err_msg=name)
    head = model[2]
    proba = []
    with rnnfast.no_grad():
        for x in X:
            feats = model[:2](x[:, None].astype(np.float32)).astype(np.float64)    # (1, F') or (T, 1, F)
            z = feats @ head.weight.data.T.astype(np.float64) + head.bias.data.astype(np.float64)
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            proba.append((e / e.sum(axis=-1, keepdims=True))[..., 0, :] if sequence else e[0] / e[0].sum())
    got = clf.predict_proba(X)
    for p_ref, p in zip(proba, got if sequence else list(got)):
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-15)


def test_random_crop_auto_crops_windowed_classifier_sequences_alone():
    """random_crop="auto" is the classifier's 0.3 where the sequences get a window (k > 1), and no crop without a
    window or in the regressor: the same fits, bit for bit, as those values given by hand; random_crop_ says
    which."""
    rng = np.random.default_rng(5)
    X = [rng.standard_normal((int(t), 2)) for t in rng.integers(5, 60, size=30)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    r = np.array([x[:, 0].mean() for x in X])

    def proba(cls, target, crop_used=None, **kw):                      # (the regressor's network whole: its
        whole = {"network_weight": 1.0} if cls is SequenceRegressor else {}     # 12 updates would get w = 0)
        est = cls(max_updates=12, **FAST, **whole, **kw).fit(X, target)
        assert crop_used is None or est.random_crop_ == crop_used          # "auto" resolved, as fit used it
        return est.predict_proba(X) if cls is SequenceClassifier else est.predict(X)
    for cls, target, windowed_crop in ((SequenceClassifier, y, 0.3), (SequenceRegressor, r, 0.0)):
        for window, crop in ((3, windowed_crop), (None, 0.0)):
            auto = proba(cls, target, crop, window=window, random_crop="auto")
            np.testing.assert_array_equal(auto, proba(cls, target, window=window, random_crop=crop))
            other = 0.3 if crop == 0.0 else 0.0
            assert np.abs(auto - proba(cls, target, window=window, random_crop=other)).max() > 1e-6


def test_random_crop_trains_on_segments_and_checks_its_value():
    """random_crop > 0 changes what a fit trains on (with or without a window), keeps predict's shapes, and a
    value outside [0, 1) or a crop with output="sequence" is refused by name."""
    rng = np.random.default_rng(4)
    X = [rng.standard_normal((int(t), 2)) for t in rng.integers(5, 60, size=40)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    for window in (None, 3):
        plain = SequenceClassifier(window=window, random_crop=0, max_updates=20, **FAST).fit(X, y)
        cropped = SequenceClassifier(window=window, random_crop=0.3, max_updates=20, **FAST).fit(X, y)
        assert cropped.predict_proba(X).shape == (40, 2)
        assert np.abs(cropped.predict_proba(X) - plain.predict_proba(X)).max() > 1e-6
    assert SequenceClassifier().random_crop == "auto" and SequenceRegressor().random_crop == "auto"
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="random_crop"):
            SequenceClassifier(random_crop=bad).fit(X, y)
    with pytest.raises(ValueError, match="random_crop"):
        SequenceClassifier(random_crop="half").fit(X, y)
    with pytest.raises(TypeError, match="random_crop"):
        SequenceClassifier(random_crop=[0.3]).fit(X, y)
    with pytest.raises(ValueError, match="random_crop"):
        SequenceRegressor(output="sequence", random_crop=0.2).fit(rng.standard_normal((12, 30)),
                                                                    rng.standard_normal((12, 30)))


@pytest.mark.parametrize("output, per_batch", [("sequence", 3), ("last", 1)])
def test_with_tbptt_the_budget_and_n_updates_count_optimizer_steps(monkeypatch, output, per_batch):
    steps = []
    original = rnnfast.optim.Adam.step
    monkeypatch.setattr(rnnfast.optim.Adam, "step", lambda self, *a: steps.append(1) or original(self, *a))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 12, 2))                          # 12 steps: 3 chunks of tbptt=4
    y = rng.standard_normal((32, 12)) if output == "sequence" else rng.standard_normal(32)
    reg = SequenceRegressor(output=output, tbptt=4, readout="last", window=1, batch_size=16, max_updates=12,
                            hidden_size=4, n_threads=1, random_state=0, network_weight=1.0).fit(X, y)   # (no probe)
    assert reg.n_updates_ == len(steps)                            # every optimizer step, no other
    assert reg.n_updates_ == reg.n_epochs_ * 2 * per_batch         # 2 batches an epoch, per_batch steps each
    assert reg.n_epochs_ == -(-12 // (2 * per_batch))             # the budget of 12 steps, in whole epochs


@pytest.mark.parametrize("output", ["sequence", "last"])
def test_with_tbptt_and_ragged_lengths_the_budget_is_about_the_steps_made(output):
    rng = np.random.default_rng(1)
    X = [rng.standard_normal((int(t), 1)) for t in rng.integers(5, 61, 100)]
    y = [rng.standard_normal(len(x)) for x in X] if output == "sequence" else rng.standard_normal(100)
    reg = SequenceRegressor(output=output, tbptt=5, readout="last", window=1, batch_size=16, max_updates=300,
                            hidden_size=4, n_threads=1, random_state=0).fit(X, y)
    per_epoch = reg.n_updates_ / reg.n_epochs_
    assert 300 <= reg.n_updates_ + per_epoch / 2 and reg.n_updates_ < 300 + per_epoch    # whole epochs
