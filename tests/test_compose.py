"""Embedding, Dropout, Readout and Sequential: against torch with the same weights (and the same dropout mask),
a plain NumPy reference, finite differences in float64, and their argument checks."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import rnnfast
from conftest import DTYPES, FD_TOL, assert_close, numerical_gradient

param_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])


def dname(dtype):
    return np.dtype(dtype).name


# ---- torch twins ----------------------------------------------------------------------------------------
def torch_twin(torch, module):
    """The torch module with module's configuration, in float64 (an Identity for Readout and Dropout, which
    torch_forward applies by hand)."""
    nn = torch.nn
    f64 = dict(dtype=torch.float64)
    if isinstance(module, rnnfast.Embedding):
        return nn.Embedding(module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx, **f64)
    if isinstance(module, rnnfast.Linear):
        return nn.Linear(module.in_features, module.out_features, bias=module.bias is not None, **f64)
    if isinstance(module, (rnnfast.LSTM, rnnfast.GRU, rnnfast.Elman)):
        family = module.cell.family
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(family)
        kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      bidirectional=module.bidirectional, **f64)
        if cls is None:
            return nn.RNN(module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **kwargs)
        return cls(module.input_size, module.hidden_size, **kwargs)
    return nn.Identity()


def torch_model(torch, model):
    """A torch.nn.Sequential of twins holding model's weights, loaded by model's own state_dict names (strict:
    the names must be torch's)."""
    twin = torch.nn.Sequential(*[torch_twin(torch, m) for m in model])
    twin.load_state_dict({k: torch.tensor(np.asarray(v, np.float64)) for k, v in model.state_dict().items()})
    return twin


def torch_forward(torch, twin, model, x, lengths=None):
    """Run the twin as model runs: Readout's choice written out in torch, Dropout with the mask model's
    Dropout drew in its last forward."""
    y = x
    for t, m in zip(twin, model):
        if isinstance(m, rnnfast.Readout) and m.what in ("mean", "max", "meanmax", "lastmeanmax"):
            seq = y[0].transpose(0, 1) if m.batch_first else y[0]                   # (T, B, F)
            steps = [seq.shape[0]] * seq.shape[1] if lengths is None else lengths
            # out.mean(0) / out.max(0).values over each sequence's own steps
            mean = torch.stack([seq[:n, b].mean(0) for b, n in enumerate(steps)])
            top = torch.stack([seq[:n, b].max(0).values for b, n in enumerate(steps)])
            h_n = y[1][0] if isinstance(y[1], tuple) else y[1]
            last = torch.cat(list(h_n[-(seq.shape[-1] // h_n.shape[-1]):]), dim=-1)
            y = {"mean": mean, "max": top, "meanmax": torch.cat([mean, top], dim=-1),
                 "lastmeanmax": torch.cat([last, mean, top], dim=-1)}[m.what]
        elif isinstance(m, rnnfast.Readout):
            out, state = y
            h_n = state[0] if isinstance(state, tuple) else state
            D = out.shape[-1] // h_n.shape[-1]
            y = {"sequence": out, "state": h_n, "last": torch.cat(list(h_n[-D:]), dim=-1)}[m.what]
        elif isinstance(m, rnnfast.Dropout):
            y = y * torch.as_tensor(m.last_mask) / (1 - m.p)
        elif isinstance(t, torch.nn.RNNBase) and lengths is not None:
            T = y.shape[1] if t.batch_first else y.shape[0]
            packed = torch.nn.utils.rnn.pack_padded_sequence(y, torch.as_tensor(lengths), batch_first=t.batch_first,
                                                             enforce_sorted=False)
            out, state = t(packed)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=t.batch_first, total_length=T)
            y = (out, state)
        else:
            y = t(y)
    return y


# ---- Embedding --------------------------------------------------------------------------------------------
IDS = np.array([[1, 2, 0], [2, 2, 5], [0, 9, 1], [5, 2, 2]])     # (4, 3): repeats, 0, the last id 9; 3, 4… unused


def numpy_embedding_grad(V, ids, dy):
    """∂L/∂W by a plain loop over positions (float64)."""
    grad = np.zeros((V, dy.shape[-1]))
    for position in np.ndindex(ids.shape):
        grad[ids[position]] += dy[position]
    return grad


@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
@pytest.mark.parametrize("shape", [(12,), (4, 3), (2, 2, 3)], ids=["1d", "2d", "3d"])
@param_dtype
def test_embedding_matches_torch(dtype, shape, padding_idx):
    torch = pytest.importorskip("torch")
    emb = rnnfast.Embedding(10, 4, padding_idx=padding_idx, dtype=dname(dtype), seed=0)
    ids = IDS.reshape(shape)
    dy = np.random.default_rng(1).uniform(-1, 1, shape + (4,)).astype(dtype)
    y = emb(ids)
    assert emb.backward(dy) is None
    t_emb = torch_twin(torch, emb)
    t_emb.load_state_dict({"weight": torch.tensor(emb.weight.data.astype(np.float64))})
    t_y = t_emb(torch.as_tensor(ids))
    t_y.backward(torch.tensor(dy.astype(np.float64)))
    assert y.dtype == dtype and y.shape == shape + (4,)
    assert_close(y, t_y.detach().numpy(), dtype, "y")
    assert_close(emb.weight.grad, t_emb.weight.grad.numpy(), dtype, "weight.grad")
    expected = numpy_embedding_grad(10, ids, dy.astype(np.float64))
    if padding_idx is not None:
        expected[padding_idx % 10] = 0
        assert not emb.weight.grad[padding_idx].any()
    assert_close(emb.weight.grad, expected, dtype, "weight.grad (numpy)")
    assert not emb.weight.grad[[3, 4, 6, 7, 8]].any()                # rows never used get nothing


def test_embedding_gradient_finite_differences():
    emb = rnnfast.Embedding(10, 3, dtype="float64", seed=0)
    dy = np.random.default_rng(2).uniform(-1, 1, IDS.shape + (3,))
    emb(IDS)
    emb.backward(dy)
    numeric = numerical_gradient(lambda: float(np.sum(emb(IDS) * dy)), emb.weight.data)
    np.testing.assert_allclose(emb.weight.grad, numeric, **FD_TOL)


def test_embedding_init_is_torchs():
    emb = rnnfast.Embedding(400, 50, padding_idx=3, dtype="float64", seed=0)
    w = np.delete(emb.weight.data, 3, axis=0)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02      # N(0, 1), 19 950 draws
    assert not emb.weight.data[3].any()
    assert emb.padding_idx == 3 and rnnfast.Embedding(400, 50, padding_idx=-1).padding_idx == 399
    np.testing.assert_array_equal(emb.weight.data, rnnfast.Embedding(400, 50, 3, "float64", seed=0).weight.data)
    assert repr(emb) == "Embedding(400, 50, padding_idx=3, dtype='float64')"


def test_embedding_padding_row_is_never_updated():
    emb = rnnfast.Embedding(6, 3, padding_idx=0, seed=0)
    opt = rnnfast.Adam(emb.parameters(), lr=0.1)
    ids = np.array([[0, 1, 0], [2, 0, 0]])
    for _ in range(3):
        opt.zero_grad()
        emb.backward(np.ones_like(emb(ids)))
        opt.step()
    assert not emb.weight.data[0].any()
    assert emb(ids)[0, 0].tolist() == [0, 0, 0]


def test_embedding_ids_changed_after_forward_do_not_change_the_gradient():
    emb = rnnfast.Embedding(5, 2, dtype="float64", seed=0)
    ids = np.array([1, 1, 2])
    emb(ids)
    ids[:] = 4
    emb.backward(np.ones((3, 2)))
    assert emb.weight.grad[:, 0].tolist() == [0, 2, 1, 0, 0]


@pytest.mark.parametrize("make, error, match", [
    (lambda: rnnfast.Embedding(0, 3), ValueError, "num_embeddings"),
    (lambda: rnnfast.Embedding(5, 0), ValueError, "embedding_dim"),
    (lambda: rnnfast.Embedding(5, 2.5), TypeError, "embedding_dim"),
    (lambda: rnnfast.Embedding(5, 3, padding_idx=5), ValueError, "padding_idx"),
    (lambda: rnnfast.Embedding(5, 3, padding_idx=-6), ValueError, "padding_idx"),
    (lambda: rnnfast.Embedding(5, 3, dtype="int32"), ValueError, "dtype"),
    (lambda: rnnfast.Embedding(5, 3)(np.array([0, 5])), ValueError, r"ids must lie in \[0, num_embeddings\)"),
    (lambda: rnnfast.Embedding(5, 3)(np.array([-1, 2])), ValueError, "ids"),
    (lambda: rnnfast.Embedding(5, 3)(np.array([0.0, 1.0])), TypeError, "ids must be an integer array"),
    (lambda: rnnfast.Embedding(5, 3).backward(np.zeros((2, 3))), ValueError, "forward first"),
], ids=["V=0", "E=0", "E float", "padding_idx=V", "padding_idx=-V-1", "dtype", "id=V", "id<0", "float ids",
        "backward first"])
def test_embedding_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_embedding_backward_checks_dy():
    emb = rnnfast.Embedding(5, 3)
    emb(np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"dy must have shape \(\*ids.shape, embedding_dim\) = \(1, 2, 3\)"):
        emb.backward(np.zeros((2, 3)))


# ---- Dropout ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@param_dtype
def test_dropout_matches_torch_with_its_mask(dtype, p):
    """torch draws the mask; ours runs with it (recovered from torch's output) and must agree both ways."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.uniform(0.5, 1.5, (6, 4, 5)) * rng.choice([-1, 1], (6, 4, 5))).astype(dtype)   # no zeros
    dy = rng.uniform(-1, 1, x.shape).astype(dtype)
    t_x = torch.tensor(x.astype(np.float64), requires_grad=True)
    t_y = torch.nn.Dropout(p)(t_x)
    t_y.backward(torch.tensor(dy.astype(np.float64)))
    mask = t_y.detach().numpy() != 0
    assert 0 < mask.mean() < 1
    drop = rnnfast.Dropout(p)
    y = drop(x, mask=mask)
    dx = drop.backward(dy)
    assert y.dtype == dtype and dx.dtype == dtype
    assert_close(y, t_y.detach().numpy(), dtype, "y")
    assert_close(dx, t_x.grad.numpy(), dtype, "dx")
    np.testing.assert_array_equal(drop.last_mask, mask)


def test_dropout_random_masks():
    drop = rnnfast.Dropout(0.3, seed=0)
    x = np.ones((200, 500))
    y = drop(x)
    keep = drop.last_mask
    assert abs(keep.mean() - 0.7) < 0.01 and abs(y.mean() - 1) < 0.02      # 10⁵ draws; E[y] = x
    np.testing.assert_array_equal(y, keep / 0.7)
    dy = np.random.default_rng(0).standard_normal(x.shape)
    np.testing.assert_allclose(drop.backward(dy), dy * keep / 0.7)           # the same mask
    np.testing.assert_array_equal(rnnfast.Dropout(0.3, seed=0)(x), y)        # seeded
    assert (drop(x) != y).any()                                                # a new mask each forward


def test_dropout_eval_and_edge_probabilities():
    x = np.arange(6.0).reshape(2, 3)
    drop = rnnfast.Dropout(0.5).eval()
    assert drop(x, mask=np.zeros((2, 3))) is x and drop.last_mask is None    # identity, the mask ignored
    np.testing.assert_array_equal(drop.backward(np.ones((2, 3))), np.ones((2, 3)))
    np.testing.assert_array_equal(rnnfast.Dropout(0.0)(x), x)
    everything = rnnfast.Dropout(1.0)
    assert not everything(x + 1).any() and not everything.backward(np.ones((2, 3))).any()
    assert rnnfast.Dropout(0.5)(np.array([1, 2])).dtype == np.float64       # integers become float64
    assert repr(rnnfast.Dropout(0.25)) == "Dropout(p=0.25)"


@pytest.mark.parametrize("make, error, match", [
    (lambda: rnnfast.Dropout(1.5), ValueError, "p must be in"),
    (lambda: rnnfast.Dropout(-0.1), ValueError, "p must be in"),
    (lambda: rnnfast.Dropout("0.5"), TypeError, "p must be a real number"),
    (lambda: rnnfast.Dropout(0.5)(np.ones(3), mask=np.ones(4)), ValueError, r"mask must have shape"),
    (lambda: rnnfast.Dropout(0.5)(np.ones(3), mask=np.array([0, 2, 1])), ValueError, "mask must hold only 0/1"),
    (lambda: rnnfast.Dropout(0.5).backward(np.ones(3)), ValueError, "forward first"),
], ids=["p>1", "p<0", "p str", "mask shape", "mask values", "backward first"])
def test_dropout_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---- Sequential against torch -----------------------------------------------------------------------------
def seq_embedding_lstm_last(dtype):
    """Many-to-one on ids: the issue's model."""
    d = dname(dtype)
    return rnnfast.Sequential(rnnfast.Embedding(10, 5, padding_idx=0, dtype=d, seed=0),
                              rnnfast.LSTM(5, 6, num_layers=2, dtype=d, seed=1),
                              rnnfast.Readout("last"), rnnfast.Linear(6, 4, dtype=d, seed=2))


def seq_embedding_dropout_gru_sequence(dtype):
    """Many-to-many, batch first, bidirectional, with dropout between the embedding and the GRU."""
    d = dname(dtype)
    return rnnfast.Sequential(rnnfast.Embedding(10, 5, dtype=d, seed=0), rnnfast.Dropout(0.4, seed=0),
                              rnnfast.GRU(5, 6, batch_first=True, bidirectional=True, dtype=d, seed=1),
                              rnnfast.Readout("sequence"), rnnfast.Linear(12, 4, dtype=d, seed=2))


def seq_embedding_bilstm(dtype, what="last"):
    """A stacked bidirectional LSTM's last states, or ``what="mean"``: out.mean(0) over each sequence's steps
    (``"lastmeanmax"``: the last states, the mean and the max side by side)."""
    d = dname(dtype)
    readout = rnnfast.Readout(what)
    return rnnfast.Sequential(rnnfast.Embedding(10, 5, dtype=d, seed=0),
                              rnnfast.LSTM(5, 3, num_layers=2, bidirectional=True, dtype=d, seed=1),
                              readout, rnnfast.Linear(readout.width(6), 4, dtype=d, seed=2))


def seq_linear_elman_state(dtype):
    """Float inputs (so dx is checked too), every layer's final state on to the head."""
    d = dname(dtype)
    return rnnfast.Sequential(rnnfast.Linear(3, 5, dtype=d, seed=0),
                              rnnfast.Elman(5, 6, num_layers=2, dtype=d, seed=1),
                              rnnfast.Readout("state"), rnnfast.Linear(6, 4, dtype=d, seed=2))


def seq_linear_elman_max(dtype):
    d = dname(dtype)
    return rnnfast.Sequential(rnnfast.Linear(3, 5, dtype=d, seed=0), rnnfast.Elman(5, 6, dtype=d, seed=1),
                              rnnfast.Readout("max"), rnnfast.Linear(6, 4, dtype=d, seed=2))


def seq_linear_bigru_meanmax_bf(dtype):
    """Mean and max side by side, batch first, bidirectional."""
    d = dname(dtype)
    return rnnfast.Sequential(rnnfast.Linear(3, 5, dtype=d, seed=0),
                              rnnfast.GRU(5, 6, batch_first=True, bidirectional=True, dtype=d, seed=1),
                              rnnfast.Readout("meanmax", batch_first=True), rnnfast.Linear(24, 4, dtype=d, seed=2))


MODELS = {"embedding-lstm-last": seq_embedding_lstm_last,
          "embedding-dropout-bigru-sequence": seq_embedding_dropout_gru_sequence,
          "embedding-bilstm-last": seq_embedding_bilstm,
          "linear-elman-state": seq_linear_elman_state,
          "embedding-bilstm-mean": lambda dtype: seq_embedding_bilstm(dtype, "mean"),
          "embedding-bilstm-lastmeanmax": lambda dtype: seq_embedding_bilstm(dtype, "lastmeanmax"),
          "linear-elman-max": seq_linear_elman_max,
          "linear-bigru-meanmax-bf": seq_linear_bigru_meanmax_bf}


def model_inputs(name, dtype, T=7, B=3, seed=0):
    """Inputs (ids, or floats for a Linear first), in the model's layout, and labels for every output row."""
    rng = np.random.default_rng(seed)
    batch_first = name == "embedding-dropout-bigru-sequence" or name.endswith("-bf")
    shape = (B, T) if batch_first else (T, B)
    if name.startswith("linear"):
        return rng.uniform(-1, 1, shape + (3,)).astype(dtype)
    ids = rng.integers(0, 10, shape)
    ids[0, :2] = 0                                                     # padding ids and repeats
    return ids


def labels_for(logits, seed=1):
    return np.random.default_rng(seed).integers(0, logits.shape[-1], logits.shape[:-1])


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", list(MODELS))
@param_dtype
def test_sequential_matches_torch(dtype, name, lengths):
    """Forward, cross-entropy loss and every parameter's gradient (and dx for float inputs) against torch's
    model with the same weights, loaded through the Sequential's own state_dict names."""
    torch = pytest.importorskip("torch")
    model = MODELS[name](dtype)
    x = model_inputs(name, dtype)
    lens = np.array([7, 4, 1]) if lengths else None
    model.zero_grad()
    logits = model(x, lengths=lens)
    labels = labels_for(logits)
    loss, dlogits = rnnfast.cross_entropy(logits, labels)
    dx = model.backward(dlogits)

    twin = torch_model(torch, model)
    t_x = torch.as_tensor(x) if x.dtype.kind == "i" else torch.tensor(x.astype(np.float64), requires_grad=True)
    t_logits = torch_forward(torch, twin, model, t_x, lens)
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, logits.shape[-1]),
                                               torch.as_tensor(labels.reshape(-1)))
    t_loss.backward()

    assert logits.dtype == dtype
    assert_close(logits, t_logits.detach().numpy(), dtype, "logits")
    assert_close(loss, t_loss.item(), dtype, "loss")
    t_grads = dict(twin.named_parameters())
    assert [n for n, _ in model.named_parameters()] == list(t_grads)
    for n, p in model.named_parameters():
        assert_close(p.grad, t_grads[n].grad.numpy(), dtype, f"grad {n}")
    if x.dtype.kind == "f":
        assert_close(dx, t_x.grad.numpy(), dtype, "dx")
    else:
        assert dx is None


def test_readout_last_is_each_sequences_own_last_step():
    lstm = rnnfast.LSTM(3, 4, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3, 3))
    lengths = np.array([6, 2, 4])
    out, _ = lstm(x, lengths=lengths)
    y = rnnfast.Readout("last")(lstm(x, lengths=lengths))
    np.testing.assert_array_equal(y, out[lengths - 1, np.arange(3)])


# ---- Readout's pooling over time: a plain NumPy loop, finite differences, its checks -------------------------
def numpy_pooled(seq, steps, what, last=None):
    """The pooled readout and its gradient map by a loop over sequences: seq (T, B, F) time-major, steps (B,),
    ``last`` (B, F) the final states "lastmeanmax" puts first. Returns y (B, F, 2F or 3F) and
    grad(dy) -> dseq (T, B, F)."""
    T, B, F = seq.shape
    mean = np.stack([seq[:steps[b], b].mean(axis=0) for b in range(B)])
    top = np.stack([seq[:steps[b], b].max(axis=0) for b in range(B)])
    y = {"mean": mean, "max": top, "meanmax": np.concatenate([mean, top], axis=1),
         "lastmeanmax": None if last is None else np.concatenate([last, mean, top], axis=1)}[what]
    first = F if what == "lastmeanmax" else 0                              # where the mean's columns start

    def grad(dy):
        dseq = np.zeros(seq.shape)
        for b in range(B):
            if what in ("mean", "meanmax", "lastmeanmax"):
                dseq[:steps[b], b] += dy[b, first:first + F] / steps[b]    # mean: spread over the real steps
            if what in ("max", "meanmax", "lastmeanmax"):
                for f in range(F):
                    t = int(np.argmax(seq[:steps[b], b, f]))               # max: the one step that won
                    dseq[t, b, f] += dy[b, -F:][f]
        return dseq
    return y, grad


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("what", ["mean", "max", "meanmax", "lastmeanmax"])
@param_dtype
def test_readout_pooling_matches_numpy_by_hand(dtype, what, batch_first):
    """A bidirectional LSTM's output with ragged lengths through the pooled readouts, forward and backward,
    against a loop over each sequence's own steps; the padding gets no gradient."""
    lstm = rnnfast.LSTM(3, 4, bidirectional=True, batch_first=batch_first, dtype=dname(dtype), seed=0)
    lengths = np.array([6, 2, 5, 1])
    shape = (4, 6, 3) if batch_first else (6, 4, 3)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    readout = rnnfast.Readout(what, batch_first=batch_first)
    output = lstm(x, lengths=lengths)
    y = readout(output, lengths=lengths)
    seq = output[0].swapaxes(0, 1) if batch_first else output[0]                   # (T, B, 8)
    h_n = output[1][0].astype(np.float64)                                          # (2, B, 4)
    last = np.concatenate([h_n[0], h_n[1]], axis=1)           # forward direction's last state, then reverse's
    want, grad = numpy_pooled(seq.astype(np.float64), lengths, what, last)
    assert y.dtype == dtype and y.shape == (4, {"meanmax": 16, "lastmeanmax": 24}.get(what, 8))
    assert_close(y, want, dtype, "y")
    with rnnfast.no_grad():                     # inference pools without recording the maxima's steps
        np.testing.assert_array_equal(rnnfast.Readout(what, batch_first=batch_first)(output, lengths=lengths), y)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dout, dstate = readout.backward(dy)
    if what == "lastmeanmax":                  # the first 8 columns go to h_n, forward direction first
        dh_n, dc_n = dstate
        assert dc_n is None and dh_n.dtype == dtype
        assert_close(dh_n, dy.astype(np.float64)[:, :8].reshape(4, 2, 4).transpose(1, 0, 2), dtype, "dh_n")
    else:
        assert dstate is None
    assert dout.shape == output[0].shape and dout.dtype == dtype
    dseq = dout.swapaxes(0, 1) if batch_first else dout
    assert_close(dseq, grad(dy.astype(np.float64)), dtype, "dout")
    assert not dseq[np.arange(6)[:, None] >= lengths[None, :]].any()             # nothing into the padding
    lstm.backward(dout, dstate)                                                     # the pair the layer takes


@pytest.mark.parametrize("what", ["last", "mean", "max", "meanmax", "lastmeanmax"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_readout_backward_is_the_gradient_of_its_forward(what, bidirectional):
    """Finite differences of Σ c·readout((out, h_n)) over out and h_n, with ragged lengths (float64)."""
    rng = np.random.default_rng(0)
    T, B, H = 6, 4, 3
    D = 2 if bidirectional else 1
    lengths = np.array([6, 2, 5, 1])
    out = rng.standard_normal((T, B, D * H))
    out[np.arange(T)[:, None] >= lengths[None, :]] = 0.0                           # the layer's zeros past each end
    h_n = rng.standard_normal((2 * D, B, H))                                        # two layers' final states
    readout = rnnfast.Readout(what)
    c = rng.standard_normal(readout((out, h_n), lengths).shape)
    dout, dh_n = readout.backward(c)

    def loss():
        return float(np.sum(c * readout((out, h_n), lengths)))

    num_out, num_h = numerical_gradient(loss, out), numerical_gradient(loss, h_n)
    np.testing.assert_allclose(dout, num_out, **FD_TOL)
    np.testing.assert_allclose(np.zeros_like(h_n) if dh_n is None else dh_n, num_h, **FD_TOL)
    assert not dout[np.arange(T)[:, None] >= lengths[None, :]].any()


def test_readout_pooling_without_lengths_is_torchs_mean_and_max_over_time():
    out = np.random.default_rng(0).standard_normal((5, 3, 4))
    h_n = np.zeros((1, 3, 4))
    np.testing.assert_array_equal(rnnfast.Readout("mean")((out, h_n)), out.sum(0) / 5)
    np.testing.assert_array_equal(rnnfast.Readout("max")((out, h_n)), out.max(0))
    np.testing.assert_array_equal(rnnfast.Readout("meanmax")((out, h_n)),
                                  np.concatenate([out.sum(0) / 5, out.max(0)], axis=1))
    np.testing.assert_array_equal(rnnfast.Readout("lastmeanmax")((out, h_n)),
                                  np.concatenate([h_n[-1], out.sum(0) / 5, out.max(0)], axis=1))


@param_dtype
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("ragged", [True, False], ids=["ragged", "all-steps"])   # all T: one sweep over B·F
def test_pooling_kernels_are_numpys_argmax_and_sum_over_each_sequences_own_steps(dtype, batch_first, ragged):
    """csrc/_pool.pxi against numpy: the first step attaining the maximum (ties included, a NaN counting as
    largest, as np.argmax has it), over each sequence's first T_b steps only, and its backward adding dy
    there; the sum over the same steps, and its backward adding g at each of them."""
    from rnnfast import _kernels

    rng = np.random.default_rng(0)
    T, B, F = 7, 6, 5
    seq = rng.integers(-3, 4, (B, T, F) if batch_first else (T, B, F)).astype(dtype)    # small ints: ties
    seq[rng.random(seq.shape) < 0.05] = np.nan
    view = seq.swapaxes(0, 1) if batch_first else seq                              # (T, B, F), strided if batch-first
    steps = np.array([7, 1, 3, 7, 2, 5], np.int64) if ragged else np.full(B, T, np.int64)
    y, argmax = np.empty((B, F), dtype), np.empty((B, F), np.int64)
    _kernels.max_over_time(view, steps, y, argmax)
    masked = np.where(np.arange(T)[:, None, None] < steps[None, :, None], view, -np.inf)
    np.testing.assert_array_equal(argmax, masked.argmax(axis=0))
    np.testing.assert_array_equal(y, np.take_along_axis(view, argmax[None], axis=0)[0])
    dout = rng.standard_normal(seq.shape).astype(dtype)
    want = dout.copy()
    want_view = want.swapaxes(0, 1) if batch_first else want
    dy = rng.standard_normal((B, F)).astype(dtype)
    want_view[argmax, np.arange(B)[:, None], np.arange(F)[None, :]] += dy
    _kernels.max_over_time_backward(argmax, dy, dout.swapaxes(0, 1) if batch_first else dout)
    np.testing.assert_array_equal(dout, want)
    finite = np.nan_to_num(view)                                                   # the sum and its spread
    total = np.empty((B, F), dtype)
    _kernels.sum_over_time(finite, steps, total)
    want_total = np.where(np.arange(T)[:, None, None] < steps[None, :, None], finite, 0).sum(axis=0)
    np.testing.assert_array_equal(total, want_total)
    spread = np.zeros_like(finite)
    _kernels.spread_over_time(dy, steps, spread)
    np.testing.assert_array_equal(spread, (np.arange(T)[:, None] < steps[None, :])[:, :, None] * dy[None])
    with pytest.raises(ValueError, match=r"steps\[1\] = 0 is outside \[1, 7\]"):
        _kernels.max_over_time(view, np.array([7, 0, 3, 7, 2, 5]), y, argmax)
    with pytest.raises(ValueError, match=r"steps\[5\] = 8 is outside \[1, 7\]"):
        _kernels.sum_over_time(finite, np.array([7, 1, 3, 7, 2, 8]), total)
    wide = np.repeat(finite, 2, axis=2)                                            # (T, B, 2F)
    with pytest.raises(ValueError, match="last axis must be contiguous"):
        _kernels.sum_over_time(wide[:, :, ::2], steps, total)
    pooled = rnnfast.Readout("lastmeanmax")                                        # copies such rows first
    state = np.zeros((1, B, F), dtype)
    np.testing.assert_array_equal(pooled((wide[:, :, ::2], state), lengths=steps),
                                  pooled((np.ascontiguousarray(finite), state), lengths=steps))
    backwards = np.ascontiguousarray(finite[::-1])                                 # a time-reversed view of it
    with pytest.raises(ValueError, match="positive whole number of elements apart"):
        _kernels.max_over_time(backwards[::-1], steps, y)
    np.testing.assert_array_equal(pooled((backwards[::-1], state), lengths=steps),
                                  pooled((np.ascontiguousarray(finite), state), lengths=steps))
    with pytest.raises(ValueError, match=r"argmax\[0, 0\] = 7 is outside \[0, 7\)"):
        _kernels.max_over_time_backward(np.full((B, F), 7, np.int64), dy, view)
    with pytest.raises(TypeError, match=r"Readout\('max'\) pools float32 or float64 outputs, got int64"):
        rnnfast.Readout("max")((np.zeros((T, B, F), np.int64), np.zeros((1, B, F))))


def test_readout_pooling_checks():
    lstm = rnnfast.LSTM(2, 3, dtype="float64", seed=0)
    x = np.zeros((4, 2, 2))
    with pytest.raises(ValueError, match="lengths must lie in"):
        rnnfast.Readout("mean")(lstm(x), lengths=[5, 1])
    with pytest.raises(ValueError, match="lengths must have shape"):
        rnnfast.Readout("max")(lstm(x), lengths=[1, 2, 3])
    meanmax = rnnfast.Readout("meanmax")
    meanmax(lstm(x))
    with pytest.raises(ValueError, match=r"dy must have shape .* = \(2, 6\)"):
        meanmax.backward(np.zeros((2, 3)))
    with rnnfast.no_grad():
        pooled = rnnfast.Readout("mean")
        pooled(lstm(x))
    with pytest.raises(RuntimeError, match="no_grad"):
        pooled.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Readout\('max'\)\) has batch_first=False but the layer"):
        rnnfast.Sequential(rnnfast.GRU(2, 3, batch_first=True), rnnfast.Readout("max"))
    model = rnnfast.Sequential(rnnfast.GRU(2, 3, dtype="float64"), rnnfast.Readout("mean"))
    with pytest.raises(TypeError, match=r"Readout\('mean'\) pools over every step"):
        model.step(np.zeros((2, 2)))
    assert repr(rnnfast.Readout("max", batch_first=True)) == "Readout('max', batch_first=True)"


# ---- Sequential: finite differences -----------------------------------------------------------------------
@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("lstm", True), ("gru", True), ("elman", False)])
@pytest.mark.parametrize("what", ["sequence", "last", "state", "mean", "max", "meanmax", "lastmeanmax"])
def test_sequential_backward_finite_differences(what, cell, bidirectional):
    D = 2 if bidirectional else 1
    layer = rnnfast.layers.recurrent_layer(cell, 4, 3, num_layers=2, bidirectional=bidirectional,
                                           dtype="float64", seed=1)
    width = rnnfast.Readout(what).width(3 if what == "state" else D * 3)
    model = rnnfast.Sequential(rnnfast.Linear(2, 4, dtype="float64", seed=0), layer, rnnfast.Readout(what),
                               rnnfast.Linear(width, 2, dtype="float64", seed=2))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 2))
    lengths = np.array([5, 2, 4])
    y = model(x, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    model.zero_grad()
    model(x, lengths=lengths)
    dx = model.backward(dy)

    def loss():
        return float(np.sum(model(x, lengths=lengths) * dy))

    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, numerical_gradient(loss, p.data), **FD_TOL, err_msg=n)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), **FD_TOL, err_msg="x")


def test_sequential_embedding_finite_differences():
    model = seq_embedding_lstm_last(np.float64)
    ids = model_inputs("embedding-lstm-last", np.float64)
    dy = np.random.default_rng(3).standard_normal((3, 4))
    model(ids)
    model.backward(dy)

    def loss():
        return float(np.sum(model(ids) * dy))

    for n, p in model.named_parameters():
        numeric = numerical_gradient(loss, p.data)
        if n == "0.weight":                                         # the padding row: no gradient, by definition
            assert numeric[0].any() and not p.grad[0].any()
            numeric[0] = 0
        np.testing.assert_allclose(p.grad, numeric, **FD_TOL, err_msg=n)


# ---- Sequential: the container ----------------------------------------------------------------------------
def test_sequential_names_are_torchs_and_parameters_are_the_layers_own():
    torch = pytest.importorskip("torch")
    model = seq_embedding_lstm_last(np.float32)
    twin = torch.nn.Sequential(*[torch_twin(torch, m) for m in model])
    assert list(model.state_dict()) == list(twin.state_dict())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in twin.named_parameters()]
    assert model.parameters() == model[0].parameters() + model[1].parameters() + model[3].parameters()
    inner = rnnfast.Sequential(rnnfast.Linear(2, 3), rnnfast.Sequential(rnnfast.Linear(3, 3)))
    assert list(inner.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias"]


def test_sequential_state_dict_round_trip():
    model, other = seq_embedding_lstm_last(np.float32), seq_embedding_lstm_last(np.float64)
    for p in other.parameters():
        p.data[...] = 0.5
    other.load_state_dict(model.state_dict())
    ids = model_inputs("embedding-lstm-last", np.float32)
    assert_close(other(ids), model(ids), np.float32)
    for (n, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=n)
    sd = model.state_dict()
    sd["0.weight"][...] = 7                                        # a copy: the model is unchanged
    assert not (model[0].weight.data == 7).any()


def test_sequential_load_state_dict_checks_everything_first():
    model = seq_embedding_lstm_last(np.float64)
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["3.bias"] = np.zeros(5)                                    # the last entry is wrong: nothing changes
    with pytest.raises(ValueError, match=r"'3.bias' has shape \(5,\), expected \(4,\)"):
        model.load_state_dict(bad)
    del bad["3.bias"]
    with pytest.raises(KeyError, match="3.bias"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_sequential_modes_zero_grad_indexing_and_repr():
    model = seq_embedding_dropout_gru_sequence(np.float32)
    assert model.eval() is model and not any(m.training for m in model)
    ids = model_inputs("embedding-dropout-bigru-sequence", np.float32)
    np.testing.assert_array_equal(model(ids), model(ids))          # eval: no dropout
    model.train()
    assert all(m.training for m in model) and model.training
    model.backward(np.ones_like(model(ids)))
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())
    assert len(model) == 5 and isinstance(model[1], rnnfast.Dropout) and model[-1] is list(model)[4]
    head = model[4:]
    assert isinstance(head, rnnfast.Sequential) and len(head) == 1 and head[0] is model[4]
    with pytest.raises(ValueError, match="Readout"):
        model[3:]                                                   # a Readout without its layer
    assert repr(rnnfast.Sequential(rnnfast.Linear(2, 3), rnnfast.Dropout(0.1))) == (
        "Sequential(\n  Linear(2, 3, dtype='float32'),\n  Dropout(p=0.1),\n)")
    assert repr(rnnfast.Sequential()) == "Sequential()"


def test_sequential_copies_keep_parameters_shared_with_their_layers():
    model = seq_embedding_lstm_last(np.float64)
    ids = model_inputs("embedding-lstm-last", np.float64)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone.parameters()[0] is clone[0].weight and clone[0].weight is not model[0].weight
        clone.load_state_dict({k: v * 0 for k, v in clone.state_dict().items()})
        assert not clone(ids).any() and model(ids).any()


def test_sequential_training_loop_learns():
    """forward, loss, backward, clip, step: a toy task (is token 1 in the sequence?) is learned."""
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 8, (12, 64))
    labels = rng.integers(0, 2, 64)
    ids[rng.integers(0, 12, 64), np.arange(64)] = np.where(labels == 1, 1, 2)
    model = rnnfast.Sequential(rnnfast.Embedding(8, 8, seed=0), rnnfast.LSTM(8, 16, seed=0),
                               rnnfast.Readout("last"), rnnfast.Linear(16, 2, seed=0))
    opt = rnnfast.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        loss, dlogits = rnnfast.cross_entropy(model(ids), labels)
        opt.zero_grad()
        model.backward(dlogits)
        rnnfast.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert loss < 0.1 and (model(ids).argmax(-1) == labels).all()


@pytest.mark.parametrize("make, error, match", [
    (lambda: rnnfast.Sequential(rnnfast.LSTM(2, 3), rnnfast.Linear(3, 1)), ValueError,
     r"modules\[0\] \(LSTM\) returns \(out, state\): follow it with rnnfast.Readout"),
    (lambda: rnnfast.Sequential(rnnfast.Linear(2, 2), rnnfast.GRU(2, 3)), ValueError, r"modules\[1\] \(GRU\)"),
    (lambda: rnnfast.Sequential(rnnfast.Linear(2, 2), rnnfast.Readout("last")), ValueError,
     r"modules\[1\] \(a Readout\) must come right after"),
    (lambda: rnnfast.Sequential(rnnfast.Linear(2, 2), np.tanh), TypeError, r"modules\[1\] must be an rnnfast module"),
    (lambda: rnnfast.Sequential(*[rnnfast.Dropout(0.1)] * 2), ValueError, r"modules\[1\] \(Dropout\) is already"),
    (lambda: rnnfast.Readout("first"), ValueError, "what must be one of 'sequence', 'last', 'state'"),
    (lambda: rnnfast.Readout("last")(np.zeros((2, 3))), TypeError, r"Readout takes a recurrent layer's output"),
    (lambda: rnnfast.Readout("last").backward(np.zeros((2, 3))), ValueError, "forward first"),
    (lambda: rnnfast.Sequential(rnnfast.Linear(2, 2))(np.zeros((1, 2)), lengths=[1]), ValueError,
     "lengths is given but this Sequential has no recurrent layer"),
    (lambda: rnnfast.Sequential(rnnfast.Linear(2, 2))(np.zeros((1, 3))), ValueError, "in_features"),
], ids=["rnn without readout", "rnn last", "readout misplaced", "not a module", "twice", "bad what",
        "readout input", "readout backward first", "lengths without rnn", "wrong width"])
def test_sequential_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_sequential_backward_checks_dy():
    model = seq_embedding_lstm_last(np.float32)
    model(model_inputs("embedding-lstm-last", np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape"):
        model.backward(np.zeros((3, 5)))


def test_a_forward_that_raises_part_of_the_way_leaves_no_backward():
    """The modules before the failing one hold the new forward's caches, the rest the old one's: a backward
    would mix the two, so it raises until a forward completes."""
    model = rnnfast.Sequential(rnnfast.Linear(2, 3, dtype="float64", seed=0),
                               rnnfast.LSTM(3, 4, dtype="float64", seed=0), rnnfast.Readout("last"),
                               rnnfast.Linear(4, 1, dtype="float64", seed=0))
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    y = model(x)
    with pytest.raises(ValueError, match="lengths"):
        model(x * 2, lengths=np.array([9, 1]))                 # the LSTM refuses it, after the first Linear ran
    with pytest.raises(ValueError, match="a forward that completed"):
        model.backward(np.ones_like(y))
    model(x)
    model.backward(np.ones_like(y))


# ---- Sequential.step and generate on a Sequential ----------------------------------------------------
def _token_model(seed=0):
    return rnnfast.Sequential(rnnfast.Embedding(7, 5, dtype="float64", seed=seed),
                              rnnfast.LSTM(5, 6, num_layers=2, dtype="float64", seed=seed),
                              rnnfast.Readout("sequence"), rnnfast.Dropout(0.5, seed=seed),
                              rnnfast.GRU(6, 4, dtype="float64", seed=seed + 1), rnnfast.Readout("sequence"),
                              rnnfast.Linear(4, 7, dtype="float64", seed=seed))


def test_sequential_step_equals_the_forward_one_step_at_a_time():
    model = _token_model().eval()
    ids = np.random.default_rng(0).integers(0, 7, size=(9, 3))               # (T, B)
    y = model(ids)                                                           # (T, B, 7)
    state = None
    for t in range(9):
        y_t, state = model.step(ids[t], state)
        np.testing.assert_allclose(y_t, y[t], rtol=1e-12, atol=1e-12)
    assert len(state) == 2 and isinstance(state[0], tuple)                   # LSTM (h, c), GRU h
    jordan = rnnfast.Sequential(rnnfast.Jordan(3, 5, 3, dtype="float64", seed=1), rnnfast.Readout("last"),
                                rnnfast.Linear(3, 2, dtype="float64", seed=1))
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    state = None
    for t in range(6):
        y_t, state = jordan.step(x[t], state)
    np.testing.assert_allclose(y_t, jordan(x), rtol=1e-12, atol=1e-12)     # "last" after 6 steps
    with pytest.raises(ValueError, match="state must hold 2"):
        model.step(ids[0], [None])
    with pytest.raises(TypeError, match="TimeDelay has no step"):
        rnnfast.Sequential(rnnfast.TimeDelay(2), rnnfast.Linear(4, 1)).step(np.zeros((1, 2)))


def test_generate_from_a_sequential_matches_a_greedy_loop_over_whole_sequences():
    model = _token_model(seed=3)
    prime = np.array([1, 4, 2])
    assert model.training
    out = rnnfast.generate(model, prime, 6, temperature=0)
    assert model.training                                                    # generate leaves the mode alone
    model.eval()                                                             # the reference: no dropout
    seq = list(prime)
    for _ in range(6):                                                       # the reference: full forwards
        logits = model(np.array(seq)[:, None])                               # (T, 1, 7)
        seq.append(int(np.argmax(logits[-1, 0])))
    np.testing.assert_array_equal(out, seq[3:])
    a = rnnfast.generate(model, prime, 20, temperature=1.0, random_state=5)
    b = rnnfast.generate(model, prime, 20, temperature=1.0, random_state=5)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() < 7


def test_generate_values_from_a_sequential_feeds_outputs_back():
    model = rnnfast.Sequential(rnnfast.GRU(2, 5, dtype="float64", seed=0), rnnfast.Readout("sequence"),
                               rnnfast.Linear(5, 2, dtype="float64", seed=0))
    prime = np.random.default_rng(2).standard_normal((4, 2))
    out = rnnfast.generate(model, prime, 5, temperature=None)
    seq = list(prime)
    for _ in range(5):
        seq.append(model(np.array(seq)[:, None, :])[-1, 0])
    np.testing.assert_allclose(out, np.array(seq[4:]), rtol=1e-12, atol=1e-12)
    onehot = rnnfast.Sequential(rnnfast.LSTM(3, 4, seed=0), rnnfast.Readout("sequence"), rnnfast.Linear(4, 3, seed=0))
    ids = rnnfast.generate(onehot, [0, 2], 4, temperature=0)                  # ids fed back one-hot
    assert ids.shape == (4,) and set(ids.tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match="temperature"):
        rnnfast.generate(model, prime, 2, temperature=-1)
    assert rnnfast.generate(model, prime, 0, temperature=None).shape == (0, 2)             # nothing generated
    assert rnnfast.generate(onehot, [0, 2], 0, temperature=0).shape == (0,)
    assert rnnfast.generate(onehot, [0, 2], 2, temperature=np.float32(0.5)).shape == (2,)  # any real number
    for bad in (-1, 3, 1.5):                                   # one-hot ids outside [0, 3), or not integers
        with pytest.raises(ValueError, match=r"prime must hold token ids in \[0, 3\)"):
            rnnfast.generate(onehot, [0, bad], 2, temperature=0)
    tokens = rnnfast.Sequential(rnnfast.Embedding(3, 4, seed=0), rnnfast.LSTM(4, 4, seed=0),
                                rnnfast.Readout("sequence"), rnnfast.Linear(4, 3, seed=0))
    with pytest.raises(ValueError, match="prime must be a sequence of token ids"):
        rnnfast.generate(tokens, [[1, 2]], 2, temperature=0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("what", ["last", "state"])
def test_readout_of_the_state_after_a_packed_sequence_equals_it_after_lengths(what, bidirectional):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((t, 3)) for t in (5, 2, 4)]
    lstm = rnnfast.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, seed=0, dtype="float64")
    readout = rnnfast.Readout(what)
    model = rnnfast.Sequential(lstm, readout)
    results = []
    x, lengths = rnnfast.pad_sequences(seqs, dtype="float64")
    for args in ((rnnfast.pack_sequences(seqs, dtype="float64"),), (x, lengths)):
        y = model(*args)
        model.zero_grad()
        model.backward(np.arange(y.size, dtype=float).reshape(y.shape))
        results.append((y, [p.grad.copy() for p in model.parameters()]))
    (y_packed, g_packed), (y_padded, g_padded) = results
    np.testing.assert_array_equal(y_packed, y_padded)
    for a, b in zip(g_packed, g_padded):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_readout_pooling_a_packed_sequence_says_what_to_do():
    lstm = rnnfast.LSTM(3, 4, seed=0)
    out = lstm(rnnfast.pack_sequences([np.ones((3, 3)), np.ones((2, 3))]))
    with pytest.raises(TypeError, match="padded x with lengths="):
        rnnfast.Readout("mean")(out)


def test_review_fixes_readout_layout_generate_and_tbptt_layer():
    """A pooled Readout given out in the other layout averaged over the batch (the error came only at
    backward); generate at temperature 5e-324 raised "Probabilities contain NaN"; a model whose step gives
    every layer's state was fed back as 12 logits; TruncatedBPTT(Linear) failed only in run."""
    lstm = rnnfast.LSTM(3, 5, batch_first=True, seed=0)
    with pytest.raises(ValueError, match="batch_first"):
        rnnfast.Readout("mean")(lstm(np.zeros((2, 7, 3))))
    model = rnnfast.Sequential(rnnfast.Embedding(6, 4, seed=0), rnnfast.LSTM(4, 6, seed=0),
                               rnnfast.Readout("last"), rnnfast.Linear(6, 6, seed=0))
    greedy = rnnfast.generate(model, [1, 2], 5, temperature=0)
    np.testing.assert_array_equal(rnnfast.generate(model, [1, 2], 5, temperature=5e-324), greedy)
    two_layers = rnnfast.Sequential(rnnfast.Embedding(6, 4, seed=0), rnnfast.LSTM(4, 6, num_layers=2, seed=0),
                                    rnnfast.Readout("state"))
    with pytest.raises(ValueError, match=r"one row of outputs \(1, O\)"):
        rnnfast.generate(two_layers, [1, 2], 3, temperature=0)
    with pytest.raises(TypeError, match="layer must be a recurrent layer"):
        rnnfast.TruncatedBPTT(rnnfast.Linear(3, 2), rnnfast.mse_loss)


def test_generate_names_why_values_cannot_feed_an_embedding():
    model = rnnfast.Sequential(rnnfast.Embedding(6, 4, seed=0), rnnfast.LSTM(4, 6, seed=0),
                               rnnfast.Readout("last"), rnnfast.Linear(6, 6, seed=0))
    with pytest.raises(ValueError, match="temperature=None feeds each output back as it is"):
        rnnfast.generate(model, [1, 2], 3, temperature=None)
