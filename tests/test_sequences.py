"""pad_sequences / unpad_sequences / sequence_mask: layout, errors, and padded batches through the layers
(each sequence alone, and torch's pack_padded_sequence path)."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast.sequences import pad_sequences, sequence_mask, unpad_sequences

CELLS = ("elman", "lstm")


def make(cell, I, H, L, seed, batch_first=False):
    cls = rnnfast.LSTM if cell == "lstm" else rnnfast.Elman
    return cls(I, H, num_layers=L, batch_first=batch_first, dtype="float64", seed=seed)


def random_sequences(rng, lengths, F):
    return [rng.standard_normal((n, F)) for n in lengths]


# ---- layout ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_layout_values_and_lengths(batch_first):
    rng = np.random.default_rng(0)
    seqs = random_sequences(rng, [3, 1, 5], 2)
    padded, lengths = pad_sequences(seqs, dtype="float64", batch_first=batch_first, padding_value=-7.0)
    assert lengths.dtype == np.int64 and lengths.tolist() == [3, 1, 5]
    assert padded.shape == ((3, 5, 2) if batch_first else (5, 3, 2)) and padded.dtype == np.float64
    tm = padded.swapaxes(0, 1) if batch_first else padded
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(tm[:len(s), b], s)
        assert np.all(tm[len(s):, b] == -7.0)
    back = unpad_sequences(padded, lengths, batch_first=batch_first)
    for a, s in zip(back, seqs):
        np.testing.assert_array_equal(a, s)


def test_pad_default_dtype_1d_and_integer_labels():
    padded, lengths = pad_sequences([[1.5, 2.5], [3.0]])
    assert padded.dtype == np.float32 and padded.shape == (2, 2)
    np.testing.assert_array_equal(padded, [[1.5, 3.0], [2.5, 0.0]])
    labels, _ = pad_sequences([np.array([1, 2, 3]), np.array([4])], dtype="int64", padding_value=-100)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels[:, 1], [4, -100, -100])
    gen, lens = pad_sequences(np.ones((n, 2)) for n in (2, 4))      # any iterable, a generator too
    assert gen.shape == (4, 2, 2) and lens.tolist() == [2, 4]


def test_sequence_mask():
    lengths = np.array([2, 4, 1])
    m = sequence_mask(lengths)
    assert m.shape == (4, 3)
    for t in range(4):
        for b in range(3):
            assert m[t, b] == (1.0 if t < lengths[b] else 0.0)
    np.testing.assert_array_equal(sequence_mask(lengths, max_len=6, batch_first=True), np.pad(m, ((0, 2), (0, 0))).T)
    with pytest.raises(ValueError, match="max_len"):
        sequence_mask(lengths, max_len=3)


def test_masked_loss_ignores_padding():
    losses = pytest.importorskip("rnnfast.losses")
    rng = np.random.default_rng(1)
    preds = random_sequences(rng, [4, 2, 3], 2)
    targets = random_sequences(rng, [4, 2, 3], 2)
    p, lengths = pad_sequences(preds, dtype="float64", padding_value=1e3)
    t, _ = pad_sequences(targets, dtype="float64")
    value, grad = losses.mse_loss(p, t, mask=sequence_mask(lengths, dtype="float64"), reduction="sum")
    expected = sum(0.5 * np.sum((a - b) ** 2) for a, b in zip(preds, targets))
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert not np.any(grad[sequence_mask(lengths) == 0])


# ---- errors ------------------------------------------------------------------------------------------
def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="sequences is empty"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"sequences\[1\] has length 0"):
        pad_sequences([np.ones((2, 3)), np.ones((0, 3))])
    with pytest.raises(ValueError, match=r"sequences\[2\] has shape \(2, 4\)"):
        pad_sequences([np.ones((2, 3)), np.ones((1, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        pad_sequences([np.ones((2, 3)), np.ones(3)])                 # (T, F) and (T,) mixed
    with pytest.raises(TypeError, match=r"sequences\[1\] must be an array of real numbers"):
        pad_sequences([np.ones(2), np.array(["a", "b"])])
    with pytest.raises(TypeError, match=r"sequences\[0\]"):
        pad_sequences([np.array([1 + 2j])])
    with pytest.raises(ValueError, match=r"sequences\[0\] must have a time axis"):
        pad_sequences([3.0])
    with pytest.raises(TypeError, match="sequences must be a list"):
        pad_sequences(5)
    with pytest.raises(TypeError, match="sequences must be a list"):
        pad_sequences("abc")
    with pytest.raises(TypeError, match="dtype"):
        pad_sequences([np.ones(2)], dtype="U3")
    with pytest.raises(TypeError, match="padding_value"):
        pad_sequences([np.ones(2)], padding_value="x")
    with pytest.raises(ValueError, match="padding_value"):
        pad_sequences([np.ones(2)], dtype="int32", padding_value=0.5)
    with pytest.raises(TypeError, match="lengths"):
        unpad_sequences(np.ones((3, 2)), [1.5, 2.0])
    with pytest.raises(ValueError, match="lengths"):
        unpad_sequences(np.ones((3, 2)), [1, 4])


# ---- through the layers --------------------------------------------------------------------------------
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_equals_each_sequence_alone(cell, num_layers):
    rng = np.random.default_rng(2)
    I, H = 3, 5
    seqs = random_sequences(rng, [4, 7, 1, 5], I)
    layer = make(cell, I, H, num_layers, seed=2)
    x, lengths = pad_sequences(seqs, dtype="float64")
    T, B = x.shape[:2]
    dout = rng.standard_normal((T, B, H))                          # also on the padding: must be ignored
    layer.zero_grad()
    out, state = layer(x, lengths=lengths)
    dx, _ = layer.backward(dout)
    h_n = state[0] if cell == "lstm" else state
    batch_out, batch_dx = unpad_sequences(out, lengths), unpad_sequences(dx, lengths)
    batch_grads = {n: p.grad.copy() for n, p in layer.named_parameters()}

    summed = {n: np.zeros_like(g) for n, g in batch_grads.items()}
    for b, s in enumerate(seqs):
        layer.zero_grad()
        o, st = layer(s[:, None, :])
        d, _ = layer.backward(dout[:len(s), b:b + 1])
        np.testing.assert_allclose(batch_out[b], o[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h_n[:, b], (st[0] if cell == "lstm" else st)[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(batch_dx[b], d[:, 0], rtol=1e-12, atol=1e-13)
        for n, p in layer.named_parameters():
            summed[n] += p.grad
    for n in summed:
        np.testing.assert_allclose(batch_grads[n], summed[n], rtol=1e-10, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_matches_torch_packed_sequences(cell, batch_first):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(3)
    I, H, L = 3, 4, 2
    seqs = random_sequences(rng, [2, 6, 3], I)
    layer = make(cell, I, H, L, seed=3, batch_first=batch_first)
    x, lengths = pad_sequences(seqs, dtype="float64", batch_first=batch_first)
    out, state = layer(x, lengths=lengths)

    tcls = torch.nn.LSTM if cell == "lstm" else torch.nn.RNN
    tl = tcls(I, H, num_layers=L, batch_first=batch_first).double()
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    packed = pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    with torch.no_grad():
        t_out, t_state = tl(packed)
    T = x.shape[1 if batch_first else 0]
    t_out, t_lengths = pad_packed_sequence(t_out, batch_first=batch_first, total_length=T)
    np.testing.assert_array_equal(t_lengths.numpy(), lengths)
    np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(state[0], t_state[0].numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state[1], t_state[1].numpy(), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(state, t_state.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("value", [float("nan"), 0.5, 2**70])
def test_unpack_refuses_a_padding_value_that_the_data_dtype_cannot_hold(value):
    packed = rnnfast.pack_sequences([np.arange(3)[:, None], np.arange(2)[:, None]], dtype="int64")
    with pytest.raises(ValueError, match="not representable in dtype int64"):
        rnnfast.unpack(packed, padding_value=value)
    padded, lengths = rnnfast.unpack(packed, padding_value=-1)
    assert padded[2, 1, 0] == -1 and list(lengths) == [3, 2]


def test_packed_sequence_takes_torchs_two_argument_form():
    packed = rnnfast.PackedSequence(np.arange(3.0)[:, None], np.array([2, 1]))
    assert packed.sorted_indices is None and packed.unsorted_indices is None
    padded, lengths = rnnfast.unpack(packed)
    np.testing.assert_array_equal(padded[:, :, 0], [[0.0, 1.0], [2.0, 0.0]])
    assert list(lengths) == [2, 1]


def test_bool_data_pads_with_a_bool_as_torch_does():
    packed = rnnfast.pack_sequences([np.ones((3, 1), bool), np.ones((1, 1), bool)], dtype=bool)
    padded, _ = rnnfast.unpack(packed, padding_value=True)
    assert padded.dtype == bool and padded.all()
    with pytest.raises(TypeError, match="padding_value"):
        rnnfast.unpack(rnnfast.pack_sequences([np.ones((2, 1))]), padding_value=True)


def test_packed_layout_lengths_from_batch_sizes():
    """A PackedSequence's lengths, read from its batch_sizes in O(B log T) (a (B, T) table of them took
    1.6 GB for one sequence of 40,000 steps beside 39,999 of one step)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(1, 12, size=int(rng.integers(1, 9)))
        order = rng.permutation(lengths.size)
        packed = rnnfast.pack_sequences(np.zeros((lengths.max(), lengths.size, 1)), lengths)
        for bs in (packed.batch_sizes, packed.batch_sizes.astype(np.uint8)):
            layout = rnnfast.PackedSequence(packed.data, bs, order, np.argsort(order)).layout()
            want = np.empty(lengths.size, np.int64)
            want[order] = np.sort(lengths)[::-1]                # the i-th longest is sequence order[i]
            np.testing.assert_array_equal(layout.lengths(), want)
    n = 40_000
    layout = rnnfast.PackedSequence(np.zeros((2 * n - 1, 1)), np.array([n] + [1] * (n - 1))).layout()
    assert layout.rows == 2 * n - 1 and layout.lengths()[0] == n and layout.lengths()[1:].max() == 1


def test_a_layer_tells_packed_batches_apart_by_their_batch_sizes_dtype():
    """The layout a layer keeps for its last PackedSequence is keyed by batch_sizes' values, not their bytes:
    int16 [257] and int8 [1, 1] have the same bytes."""
    layer = rnnfast.GRU(1, 2, seed=0)
    wide = rnnfast.PackedSequence(np.ones((257, 1)), np.array([257], np.int16))     # 257 sequences, 1 step
    long = rnnfast.PackedSequence(np.ones((2, 1)), np.array([1, 1], np.int8))       # 1 sequence, 2 steps
    with rnnfast.no_grad():
        assert layer(wide)[1].shape == (1, 257, 2)
        np.testing.assert_array_equal(layer(long)[1], rnnfast.GRU(1, 2, seed=0)(long)[1])
        layer(wide)
        with pytest.raises(ValueError, match="x.data"):     # 257 rows against batch_sizes summing to 2
            layer(rnnfast.PackedSequence(np.ones((257, 1)), np.array([1, 1], np.int8)))
