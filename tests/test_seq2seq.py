"""EncoderDecoder: teacher forcing against torch autograd with the same weights and finite differences in
float64; free-running decoding against teacher forcing on its own outputs; beam search against greedy and
against exhaustive search; argument checks."""
from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import rnnfast
from conftest import DTYPES, assert_close, numerical_gradient

CELLS = ("lstm", "gru", "elman")
KINDS = (("real", "real"), ("tokens", "tokens"), ("real", "tokens"), ("tokens", "real"))


def make(cell, source, output, dtype=np.float64, num_layers=1, seed=0, **kw):
    I, O = (5, 6) if (source, output) == ("tokens", "tokens") else (3, 2)
    if source == "tokens":
        I = 5
    if output == "tokens":
        O = 6
    return rnnfast.EncoderDecoder(I, O, hidden_size=4, cell=cell, num_layers=num_layers, source=source,
                                  output=output, embedding_dim=3, dtype=dtype, seed=seed, **kw)


def problem(model, S=5, T=4, B=3, seed=1):
    """src, tgt, src_lengths and an upstream gradient dz defining L = Σ z · dz."""
    rng = np.random.default_rng(seed)
    src = (rng.integers(0, model.input_size, (S, B)) if model.source == "tokens"
           else rng.standard_normal((S, B, model.input_size)))
    tgt = (rng.integers(0, model.output_size, (T, B)) if model.output == "tokens"
           else rng.standard_normal((T, B, model.output_size)))
    lengths = rng.integers(1, S + 1, B)
    lengths[0] = S
    dz = rng.standard_normal((T, B, model.output_size))
    return src, tgt, lengths, dz


def torch_twin(torch, model):
    """torch modules with the same structure and names, holding the model's weights (float64)."""
    nn = torch.nn
    cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(model.encoder.cell.family)

    def rnn(layer):
        kw = dict(num_layers=layer.num_layers, dtype=torch.float64)
        if cls is None:
            return nn.RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **kw)
        return cls(layer.input_size, layer.hidden_size, **kw)

    parts = dict(encoder=rnn(model.encoder), decoder=rnn(model.decoder),
                 head=nn.Linear(model.hidden_size, model.output_size, dtype=torch.float64))
    if model.source_embedding is not None:
        parts["source_embedding"] = nn.Embedding(model.input_size, model.embedding_dim, dtype=torch.float64)
    if model.target_embedding is not None:
        parts["target_embedding"] = nn.Embedding(model.output_size, model.embedding_dim, dtype=torch.float64)
    twin = nn.ModuleDict(parts)
    twin.load_state_dict({k: torch.tensor(np.asarray(v, np.float64)) for k, v in model.state_dict().items()})
    return twin


def torch_teacher_forcing(torch, twin, model, src, tgt, lengths, start=None):
    """z (T, B, O) of the twin under teacher forcing, with the source's lengths through a packed sequence."""
    pack = torch.nn.utils.rnn.pack_padded_sequence
    if model.source == "tokens":
        x = twin["source_embedding"](torch.tensor(src))
    else:
        x = torch.tensor(np.asarray(src, np.float64), requires_grad=True)
    _, state = twin["encoder"](pack(x, torch.tensor(lengths), enforce_sorted=False))
    B = tgt.shape[1]
    if model.output == "tokens":
        prev = np.concatenate([np.full((1, B), model.start_token), tgt[:-1]])
        d_in = twin["target_embedding"](torch.tensor(prev))
    else:
        y0 = np.zeros((1, B, model.output_size)) if start is None else np.broadcast_to(start, (1, B, model.output_size))
        d_in = torch.tensor(np.concatenate([y0, tgt[:-1]]))
    out, _ = twin["decoder"](d_in, state)
    return twin["head"](out), x


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
@pytest.mark.parametrize("kind", KINDS, ids=["-".join(k) for k in KINDS])
@pytest.mark.parametrize("cell", CELLS)
def test_teacher_forcing_matches_torch(cell, kind, dtype):
    torch = pytest.importorskip("torch")
    model = make(cell, *kind, dtype=dtype, num_layers=2)
    src, tgt, lengths, dz = problem(model)
    start = np.array([0.5, -1.0]) if model.output == "real" else None
    z = model(src, tgt, src_lengths=lengths, start=start)
    model.zero_grad()
    dsrc = model.backward(dz)

    twin = torch_twin(torch, model)
    z_t, x_t = torch_teacher_forcing(torch, twin, model, src, tgt, lengths, start)
    (z_t * torch.tensor(dz)).sum().backward()
    assert_close(z, z_t.detach().numpy(), dtype, "z")
    grads = dict(twin.named_parameters())
    assert set(grads) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert_close(p.grad, grads[name].grad.numpy(), dtype, f"grad {name}")
    if model.source == "tokens":
        assert dsrc is None
    else:
        assert_close(dsrc, x_t.grad.numpy(), dtype, "dsrc")


@pytest.mark.parametrize("kind", KINDS[:2], ids=["-".join(k) for k in KINDS[:2]])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(cell, kind):
    model = make(cell, *kind, dtype=np.float64)
    src, tgt, lengths, dz = problem(model, S=4, T=3, B=2)

    def loss():
        return float(np.sum(model(src, tgt, src_lengths=lengths) * dz))

    loss()
    model.zero_grad()
    dsrc = model.backward(dz)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, numerical_gradient(loss, p.data), rtol=1e-5, atol=1e-7, err_msg=name)
    if model.source == "real":
        src = np.array(src, np.float64)
        np.testing.assert_allclose(dsrc, numerical_gradient(loss, src), rtol=1e-5, atol=1e-7)


def test_backward_reaches_the_encoder_through_the_decoder_state_only():
    """The encoder's outputs are not read, so its gradient is exactly what flows through the state."""
    model = make("lstm", "real", "real")
    src, tgt, _, dz = problem(model)
    model(src, tgt)
    model.zero_grad()
    model.backward(dz)
    assert np.abs(model.encoder.weight_hh_l0.grad).sum() > 0
    model.zero_grad()
    model(src, tgt)
    model.backward(np.zeros_like(dz))
    assert all(not p.grad.any() for p in model.parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_free_running_real_outputs_are_teacher_forcing_on_themselves(cell):
    model = make(cell, "real", "real")
    src, _, lengths, _ = problem(model, T=6)
    start = np.array([0.3, -0.2])
    free = model.decode(src, steps=6, src_lengths=lengths, start=start)      # (6, B, 2)
    forced = model(src, free, src_lengths=lengths, start=start)              # fed its own outputs
    np.testing.assert_allclose(forced, free, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_tokens_are_the_argmax_under_teacher_forcing_and_beam_width_one(cell):
    model = make(cell, "tokens", "tokens", end_token=1)
    rng = np.random.default_rng(3)
    src = rng.integers(0, model.input_size, (5, 16))
    greedy = model.decode(src, steps=7)
    ids, scores = model.beam_search(src, steps=7, beam_width=1)
    np.testing.assert_array_equal(ids, greedy)
    np.testing.assert_allclose(scores, model.log_prob(src, greedy), rtol=1e-10)
    z = model(src, greedy)                                                    # (7, 16, V)
    running = np.cumsum(greedy == 1, axis=0) - (greedy == 1) == 0             # up to and with the first end
    np.testing.assert_array_equal(z.argmax(-1)[running], greedy[running])
    assert (greedy[~running] == 1).all()                                      # padded with end_token


def test_beam_search_finds_higher_scored_sequences_than_greedy():
    """A random float64 model (seed 3) where greedy is myopic on some sources: a beam as wide as V^(T−1) is
    exhaustive search, so it finds the best of all V^T sequences, and beats greedy there."""
    V, T = 3, 4
    model = rnnfast.EncoderDecoder(4, V, hidden_size=6, cell="gru", source="tokens", output="tokens",
                                   embedding_dim=4, dtype="float64", seed=3)
    src = np.random.default_rng(0).integers(0, 4, (3, 12))
    greedy = model.decode(src, steps=T)
    g_score = model.log_prob(src, greedy)
    ids, b_score = model.beam_search(src, steps=T, beam_width=V ** (T - 1))
    np.testing.assert_allclose(b_score, model.log_prob(src, ids), rtol=1e-10)
    every = np.array(list(itertools.product(range(V), repeat=T))).T            # (T, V^T) all sequences
    best = np.array([model.log_prob(np.repeat(src[:, [b]], every.shape[1], 1), every).max()
                     for b in range(src.shape[1])])
    np.testing.assert_allclose(b_score, best, rtol=1e-10)
    assert (b_score >= g_score - 1e-12).all()
    assert (b_score > g_score + 1e-3).any(), "the constructed case has a source where greedy is not optimal"
    narrow = model.beam_search(src, steps=T, beam_width=2)[1]
    assert (narrow >= g_score - 1e-12).all() and (narrow <= b_score + 1e-12).all()


def test_end_token_finishes_a_beam():
    model = make("lstm", "tokens", "tokens", end_token=2)
    model.head.bias.data[2] = 50.0                                            # end_token is all but certain
    ids, scores = model.beam_search(np.zeros((3, 2), np.int64), steps=5, beam_width=3)
    assert (ids == 2).all()
    np.testing.assert_allclose(scores, model.log_prob(np.zeros((3, 2), np.int64), ids))


def test_parameters_state_dict_and_pickle():
    model = make("gru", "tokens", "tokens", end_token=1)
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["encoder.weight_ih_l0", "encoder.weight_hh_l0"]
    assert "source_embedding.weight" in names and "target_embedding.weight" in names and "head.bias" in names
    other = make("gru", "tokens", "tokens", end_token=1, seed=5)
    other.load_state_dict(model.state_dict())
    src = np.arange(6).reshape(3, 2) % 5
    np.testing.assert_array_equal(other.decode(src, 4), model.decode(src, 4))
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.beam_search(src, 4, 2)[0], model.beam_search(src, 4, 2)[0])


def test_a_forward_that_raises_after_the_encoder_leaves_no_backward():
    real = make("lstm", "real", "real")
    z = real(np.zeros((4, 2, 3)), np.zeros((3, 2, 2)))
    for bad in (dict(tgt=np.zeros((3, 5, 2))), dict(start=np.zeros(5))):
        with pytest.raises(ValueError, match="tgt" if "tgt" in bad else "start"):
            real(np.ones((4, 2, 3)), **{"tgt": np.zeros((3, 2, 2)), **bad})
        with pytest.raises(ValueError, match="backward needs a forward first"):
            real.backward(np.ones_like(z))


def test_bad_arguments_name_themselves():
    real = make("lstm", "real", "real")
    tok = make("lstm", "tokens", "tokens")
    with pytest.raises(ValueError, match="src"):
        real(np.zeros((4, 2, 7)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="tgt"):
        real(np.zeros((4, 2, 3)), np.zeros((3, 5, 2)))
    with pytest.raises(ValueError, match="start"):
        real(np.zeros((4, 2, 3)), np.zeros((3, 2, 2)), start=np.zeros(5))
    with pytest.raises(TypeError, match="src"):
        tok(np.zeros((4, 2)), np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="tgt"):
        tok(np.zeros((4, 2), np.int64), np.full((3, 2), 9))
    with pytest.raises(ValueError, match="beam_search"):
        real.beam_search(np.zeros((4, 2, 3)), 3)
    with pytest.raises(ValueError, match="steps"):
        tok.decode(np.zeros((4, 2), np.int64), 0)
    with pytest.raises(ValueError, match="beam_width"):
        tok.beam_search(np.zeros((4, 2), np.int64), 3, beam_width=0)
    with pytest.raises(ValueError, match="end_token"):
        rnnfast.EncoderDecoder(3, 2, end_token=1)
    with pytest.raises(ValueError, match="start_token"):
        rnnfast.EncoderDecoder(3, 2, output="tokens", start_token=2)
    with pytest.raises(ValueError, match="backward needs a forward"):
        real.backward(np.zeros((3, 2, 2)))
    real(np.zeros((4, 2, 3)), np.zeros((3, 2, 2)))
    real.decode(np.zeros((4, 5, 3)), 3)                  # inference replaces the encoder's kept forward
    with pytest.raises(ValueError, match="backward needs a forward"):
        real.backward(np.zeros((3, 2, 2)))
