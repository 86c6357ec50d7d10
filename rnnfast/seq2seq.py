r"""Many-to-many, not aligned: an encoder–decoder (sequence to sequence) of two recurrent layers.

An encoder reads the source x_1 … x_S; its final state initialises a decoder of the same cell, which emits
an output sequence y_1 … y_T of another length through a per-timestep linear head:

    e_s          = x_s, or E_src[x_s] for token ids                        (S, B, I or E)
    _, state_S   = Encoder(e_1 … e_S)          each sequence's state at its own last step (``src_lengths``)
    d_t          = y_{t−1}, or E_tgt[y_{t−1}] for token ids;  y_0 = the start value / start token
    h_t, state_t = Decoder(d_t, state_{t−1}),  state_0 = state_S
    z_t          = h_t W_headᵀ + b_head                                    (T, B, O)

``output`` is ``"real"`` (z_t is the prediction ŷ_t, fed back as the next d_t) or ``"tokens"`` (z_t are
logits over O tokens, p(y_t | y_<t, x) = softmax(z_t)).

Training (:meth:`EncoderDecoder.forward`, teacher forcing): the decoder reads the true previous target,
the targets shifted right by one step behind the start value. :meth:`EncoderDecoder.backward` chains
BPTT through the head and the decoder, then hands the decoder's ∂L/∂state_0 to the encoder as its
∂L/∂h_n (and ∂L/∂c_n), so one call trains both layers (and the embeddings).

Inference runs free, one ``step`` of the decoder at a time, each output fed back as the next input:

    greedy (:meth:`EncoderDecoder.decode`):   real: y_t = z_t;   tokens: y_t = argmax_v log p(v | y_<t, x)
    beam search (:meth:`EncoderDecoder.beam_search`, tokens): keep the ``beam_width`` prefixes of highest
        score Σ_t log p(y_t | y_<t, x); a prefix that has emitted ``end_token`` is finished and continues
        with ``end_token`` at log-probability 0, so finished and running prefixes compete on one score.

With ``beam_width=1`` beam search is greedy decoding exactly (same steps, same tie-break: the lowest id).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from ._module import Container, Module, one_thread_at_a_time, resolve_dtype
from ._threads import blas_single_thread
from ._validation import as_real_array, check_choice, check_int
from .embedding import Embedding
from .layers import Linear, recurrent_layer

__all__ = ["EncoderDecoder"]

_KINDS = ("real", "tokens")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64 (stable: the max is subtracted first)."""
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class EncoderDecoder(Container):
    """Encoder–decoder of two recurrent layers (same cell) and a per-timestep Linear head.

    Parameters
    ----------
    input_size : int
        Features of each source step (``source="real"``), or the source vocabulary (``source="tokens"``).
    output_size : int
        O: features of each target step (``output="real"``), or the target vocabulary (``"tokens"``).
    hidden_size : int, default 64
        H, the units of the encoder's and the decoder's state.
    cell : {"lstm", "gru", "elman"}, default "lstm"
        The cell of both layers (``"rnn"`` and keys such as ``"elman-relu"`` are accepted).
    num_layers : int, default 1
        Layers of each stack; decoder layer k starts from encoder layer k's final state.
    source, output : {"real", "tokens"}, default "real"
        Whether the source steps (the targets) are feature vectors or integer token ids. Token ids are
        embedded by ``source_embedding`` / ``target_embedding`` (``embedding_dim`` wide).
    embedding_dim : int, default 32
        E, the width of the embeddings (unused when neither side is tokens).
    start_token : int, default 0
        ``output="tokens"``: y_0, the decoder's first input.
    end_token : int, optional
        ``output="tokens"``: the token that ends a sequence in :meth:`decode` and :meth:`beam_search`.
    nonlinearity : {"tanh", "relu", "sigmoid"}, default "tanh"
        The Elman cell's φ.
    dropout : float, default 0
        Dropout between stacked layers (``num_layers > 1``), in ``train()`` mode only.
    dtype : {"float32", "float64"}, default "float32"
    seed : int, optional
        Seeds every part's initialisation (each gets its own seed drawn from it).

    Attributes
    ----------
    encoder, decoder : Elman, LSTM or GRU
    head : Linear (H → O)
    source_embedding, target_embedding : Embedding or None

    Parameters are named ``"encoder.weight_ih_l0"``, ``"decoder.…"``, ``"head.weight"``,
    ``"source_embedding.weight"``, ``"target_embedding.weight"`` (as torch names a module's children).

    Shapes
    ------
    src : (S, B, input_size) real, or (S, B) ids; tgt : (T, B, O) real, or (T, B) ids; z : (T, B, O).

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> model = rnnfast.EncoderDecoder(3, 2, hidden_size=8, seed=0)
    >>> src = np.zeros((5, 4, 3)); tgt = np.ones((7, 4, 2))          # S = 5 steps in, T = 7 out
    >>> z = model(src, tgt)                                          # teacher forcing, (7, 4, 2)
    >>> loss, dz = rnnfast.mse_loss(z, tgt)
    >>> dsrc = model.backward(dz)                                    # into every .grad, (5, 4, 3)
    >>> model.decode(src, steps=7).shape                             # free running
    (7, 4, 2)
    """

    _transient = {**Module._transient, "_cache": lambda: None}

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 64, *, cell: Any = "lstm",
                 num_layers: int = 1, source: str = "real", output: str = "real", embedding_dim: int = 32,
                 start_token: int = 0, end_token: Optional[int] = None, nonlinearity: str = "tanh",
                 dropout: float = 0.0, dtype: Any = "float32", seed: Optional[int] = None):
        super().__init__()
        self.input_size = check_int("input_size", input_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.source = check_choice("source", source, _KINDS)
        self.output = check_choice("output", output, _KINDS)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        tokens_out = self.output == "tokens"
        self.start_token = check_int("start_token", start_token, 0)
        if tokens_out and self.start_token >= self.output_size:
            raise ValueError(f"start_token must lie in [0, output_size) = [0, {self.output_size}), got "
                             f"{start_token}")
        self.end_token = None if end_token is None else check_int("end_token", end_token, 0)
        if self.end_token is not None and (not tokens_out or self.end_token >= self.output_size):
            raise ValueError(f"end_token needs output='tokens' and must lie in [0, output_size) = "
                             f"[0, {self.output_size}), got {end_token} with output={self.output!r}")
        seeds: list = [None] * 5 if seed is None else [int(s) for s in
                                                       np.random.default_rng(seed).integers(0, 2**62, 5)]
        common = dict(num_layers=num_layers, nonlinearity=nonlinearity, dropout=dropout, dtype=self.dtype)
        enc_in = self.embedding_dim if self.source == "tokens" else self.input_size
        dec_in = self.embedding_dim if tokens_out else self.output_size
        self.encoder = recurrent_layer(cell, enc_in, self.hidden_size, seed=seeds[0], **common)
        self.decoder = recurrent_layer(cell, dec_in, self.hidden_size, seed=seeds[1], **common)
        self.head = Linear(self.hidden_size, self.output_size, dtype=self.dtype, seed=seeds[2])
        self.source_embedding = (Embedding(self.input_size, self.embedding_dim, dtype=self.dtype, seed=seeds[3])
                                 if self.source == "tokens" else None)
        self.target_embedding = (Embedding(self.output_size, self.embedding_dim, dtype=self.dtype, seed=seeds[4])
                                 if tokens_out else None)
        self._cache: Optional[dict] = None

    def _children(self) -> Iterator[Tuple[str, Module]]:
        for name in ("encoder", "decoder", "head", "source_embedding", "target_embedding"):
            m = getattr(self, name)
            if m is not None:
                yield name, m

    def train(self, mode: bool = True) -> "EncoderDecoder":
        """Training mode for this and every part (dropout between layers on) when ``mode``, else eval."""
        super().train(mode)
        for _, m in self._children():
            m.train(mode)
        return self

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Evaluation mode for the duration (inference never drops out), then the mode as it was.

        Inference runs the encoder, which replaces what it kept of the last training forward, so a
        ``backward`` after it raises instead of using the wrong activations."""
        mode = self.training
        self.train(False)
        try:
            yield
        finally:
            self.train(mode)
            self._cache = None

    # ---- inputs -----------------------------------------------------------------------------------
    def _ids(self, name: str, value: Any, vocab: int, ndim: int) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
        if arr.ndim != ndim:
            raise ValueError(f"{name} must be a {ndim}-D array of token ids, got shape {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= vocab):
            raise ValueError(f"{name} ids must lie in [0, {vocab}), got min {arr.min()}, max {arr.max()}")
        return arr

    def _encode(self, src: Any, src_lengths: Any) -> Tuple[Any, Tuple[int, ...], int]:
        """Run the encoder: (its final state, the shape of its ``out``, B)."""
        if self.source_embedding is not None:
            x = self.source_embedding(self._ids("src", src, self.input_size, 2))     # (S, B, E)
        else:
            x = as_real_array("src", src, self.dtype)                                 # (S, B, I)
            if x.ndim != 3 or x.shape[2] != self.input_size:
                raise ValueError(f"src must have shape (S, B, input_size = {self.input_size}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("src must have at least one step (S >= 1)")
        out, state = self.encoder(x, lengths=src_lengths)
        return state, out.shape, x.shape[1]

    def _start_values(self, start: Any, B: int) -> np.ndarray:
        """The real decoder's first input y_0 (B, O): ``start`` broadcast, zeros by default."""
        if start is None:
            return np.zeros((B, self.output_size), self.dtype)
        arr = as_real_array("start", start, self.dtype)
        if arr.shape not in ((self.output_size,), (B, self.output_size)):
            raise ValueError(f"start must have shape (output_size,) = ({self.output_size},) or (B, output_size) "
                             f"= ({B}, {self.output_size}), got {arr.shape}")
        return np.ascontiguousarray(np.broadcast_to(arr, (B, self.output_size)))

    def _target(self, tgt: Any, B: int) -> np.ndarray:
        if self.output == "tokens":
            arr = self._ids("tgt", tgt, self.output_size, 2)
            shape_ok = arr.shape[1] == B
        else:
            arr = as_real_array("tgt", tgt, self.dtype)
            shape_ok = arr.ndim == 3 and arr.shape[1:] == (B, self.output_size)
        if not shape_ok or arr.shape[0] == 0:
            want = "(T, B)" if self.output == "tokens" else f"(T, B, output_size = {self.output_size})"
            raise ValueError(f"tgt must have shape {want} with T >= 1 and the source's B = {B}, got {arr.shape}")
        return arr

    # ---- training: teacher forcing ----------------------------------------------------------------
    @one_thread_at_a_time
    def forward(self, src: Any, tgt: Any, src_lengths: Any = None, start: Any = None) -> np.ndarray:
        """Teacher forcing: the decoder reads the true previous target; returns every step's head output.

        Parameters
        ----------
        src : array_like (S, B, input_size), or ids (S, B) with ``source="tokens"``
        tgt : array_like (T, B, output_size), or ids (T, B) with ``output="tokens"``
            The targets; the decoder reads y_0 (the start), y_1 … y_{T−1}.
        src_lengths : array_like of int (B,), optional
            Each source's length in [1, S]; the decoder starts from the encoder's state at that step.
        start : array_like (output_size,) or (B, output_size), optional
            ``output="real"``: y_0, the decoder's first input (zeros by default).

        Returns
        -------
        z : ndarray (T, B, output_size)
            Predictions (real) or logits (tokens), in the model's dtype.
        """
        self._cache = None              # a forward that raises below leaves no backward (the encoder has run)
        state, enc_shape, B = self._encode(src, src_lengths)
        y = self._target(tgt, B)
        if self.target_embedding is not None:
            if start is not None:
                raise ValueError("start is for output='real'; tokens start with start_token")
            prev = np.concatenate([np.full((1, B), self.start_token, y.dtype), y[:-1]])  # (T, B) ids
            d_in = self.target_embedding(prev)                                          # (T, B, E)
        else:
            d_in = np.concatenate([self._start_values(start, B)[None], y[:-1]])         # (T, B, O)
        out, _ = self.decoder(d_in, state)                                              # (T, B, H)
        self._cache = dict(enc_shape=enc_shape)
        return self.head(out)

    __call__ = forward

    @one_thread_at_a_time
    def backward(self, dz: Any) -> Optional[np.ndarray]:
        """BPTT through the head, the decoder, and (through the decoder's initial state) the encoder.

        Parameters
        ----------
        dz : array_like (T, B, output_size)
            ∂L/∂z of the last :meth:`forward` (once per forward).

        Returns
        -------
        dsrc : ndarray (S, B, input_size), or None with ``source="tokens"`` (ids have no gradient)

        Every part adds its parameters' gradients into their ``.grad``. The decoder's inputs are the
        targets, so no gradient flows into them (the target embedding's rows get theirs).
        """
        if self._cache is None:
            raise ValueError("backward needs a forward first (and runs once per forward)")
        enc_shape = self._cache["enc_shape"]
        self._cache = None
        d_in, dstate0 = self.decoder.backward(self.head.backward(dz))   # ∂L/∂d (T, B, ·), ∂L/∂state_0
        if self.target_embedding is not None:
            self.target_embedding.backward(d_in)
        # the decoder's state_0 is the encoder's final state: its gradient is the encoder's ∂L/∂h_n (∂L/∂c_n)
        dx, _ = self.encoder.backward(np.zeros(enc_shape, self.dtype), dstate0)
        if self.source_embedding is not None:
            self.source_embedding.backward(dx)
            return None
        return dx

    # ---- inference: free running ------------------------------------------------------------------
    def _head(self, h: np.ndarray) -> np.ndarray:
        """z = h W_headᵀ + b_head for one step (B, O), without touching the head's forward cache."""
        with blas_single_thread():
            z = h @ self.head.weight.data.T
        return z + self.head.bias.data if self.head.bias is not None else z

    def _step(self, prev: np.ndarray, state: Any) -> Tuple[np.ndarray, Any]:
        """One decoder step from the previous outputs (ids (B,) or values (B, O)): (z (B, O), state)."""
        x = self.target_embedding.weight.data[prev] if self.target_embedding is not None else prev
        h, state = self.decoder.step(x, state)
        return self._head(h), state

    def _check_steps(self, steps: Any) -> int:
        return check_int("steps", steps, 1)

    def decode(self, src: Any, steps: int, src_lengths: Any = None, start: Any = None) -> np.ndarray:
        """Greedy free-running decoding: each output fed back as the next input, one ``step`` at a time.

        Parameters
        ----------
        src, src_lengths, start
            As in :meth:`forward`.
        steps : int
            T, the outputs to emit (>= 1).

        Returns
        -------
        ndarray (T, B, output_size) of predictions (real), or (T, B) of token ids (tokens): the most
        probable token at each step; after ``end_token`` a sequence continues with ``end_token``.
        """
        steps = self._check_steps(steps)
        with self._evaluating():
            state, _, B = self._encode(src, src_lengths)
            if self.output == "real":
                prev = self._start_values(start, B)
                out = np.empty((steps, B, self.output_size), self.dtype)
                for t in range(steps):
                    z, state = self._step(prev, state)
                    out[t] = z
                    prev = np.ascontiguousarray(z, dtype=self.dtype)
                return out
            if start is not None:
                raise ValueError("start is for output='real'; tokens start with start_token")
            ids, _ = self._beam(state, B, steps, 1)
            return ids

    def beam_search(self, src: Any, steps: int, beam_width: int = 4,
                    src_lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """The most probable output sequences that a beam of ``beam_width`` prefixes finds (tokens only).

        Parameters
        ----------
        src, src_lengths
            As in :meth:`forward`.
        steps : int
            T, the longest output (>= 1); a sequence that emits ``end_token`` is padded with it.
        beam_width : int, default 4
            K prefixes kept per source; 1 is greedy decoding.

        Returns
        -------
        ids : ndarray (T, B) of int
            Each source's best sequence.
        scores : ndarray (B,) float64
            Its log-probability Σ_t log p(y_t | y_<t, x), up to and including its ``end_token``
            (:meth:`log_prob` of ``ids``).
        """
        if self.output != "tokens":
            raise ValueError("beam_search needs output='tokens' (a softmax over tokens); use decode for "
                             "real-valued outputs")
        steps = self._check_steps(steps)
        K = check_int("beam_width", beam_width, 1)
        with self._evaluating():
            state, _, B = self._encode(src, src_lengths)
            return self._beam(state, B, steps, K)

    def _beam(self, state: Any, B: int, steps: int, K: int) -> Tuple[np.ndarray, np.ndarray]:
        """Beam search of width K from the encoder's final ``state`` (module docstring); K = 1 is greedy."""
        V, end = self.output_size, self.end_token
        lstm = isinstance(state, tuple)
        beams = np.repeat(np.arange(B), K)                                # (B·K,) each beam's source
        state = tuple(s[:, beams] for s in state) if lstm else state[:, beams]   # (L, B·K, H)
        scores = np.full((B, K), -np.inf)
        scores[:, 0] = 0.0                                                # one live prefix to start
        finished = np.zeros((B, K), bool)
        prev = np.full(B * K, self.start_token, np.intp)
        tokens, parents = [], []                                          # per step, (B, K) each
        for _ in range(steps):
            z, state = self._step(prev, state)
            logp = _log_softmax(z).reshape(B, K, V)                       # (B, K, V)
            if end is not None and finished.any():
                logp[finished] = -np.inf                                  # a finished prefix goes on with
                logp[finished, end] = 0.0                                 # end_token, at no cost
            cand = (scores[:, :, None] + logp).reshape(B, K * V)          # (B, K·V)
            best = np.argsort(-cand, axis=1, kind="stable")[:, :K]        # ties: the lowest beam, then id
            parent, tok = best // V, best % V                             # (B, K)
            scores = np.take_along_axis(cand, best, axis=1)
            finished = np.take_along_axis(finished, parent, axis=1)
            if end is not None:
                finished |= tok == end
            rows = (np.arange(B)[:, None] * K + parent).ravel()          # (B·K,) the parents' rows
            state = tuple(s[:, rows] for s in state) if lstm else state[:, rows]
            prev = tok.ravel().astype(np.intp)
            tokens.append(tok)
            parents.append(parent)
            if finished.all():
                break
        beam = np.argmax(scores, axis=1)                                  # (B,) the best prefix
        final = scores[np.arange(B), beam]
        fill = end if end is not None else 0
        ids = np.full((steps, B), fill, np.int64)
        for t in reversed(range(len(tokens))):                            # follow the back-pointers
            ids[t] = tokens[t][np.arange(B), beam]
            beam = parents[t][np.arange(B), beam]
        return ids, final

    def log_prob(self, src: Any, tgt: Any, src_lengths: Any = None) -> np.ndarray:
        """log p(tgt | src) = Σ_t log p(y_t | y_<t, x) under teacher forcing, up to and including each
        sequence's first ``end_token`` (tokens only); (B,) float64."""
        if self.output != "tokens":
            raise ValueError("log_prob needs output='tokens'")
        with self._evaluating():
            z = self.forward(src, tgt, src_lengths)                        # (T, B, V)
        y = np.asarray(tgt)
        lp = np.take_along_axis(_log_softmax(z), y[..., None], axis=-1)[..., 0]   # (T, B)
        if self.end_token is not None:
            ended = np.cumsum(y == self.end_token, axis=0)                # ends seen up to and with t
            after = (ended - (y == self.end_token)) > 0                   # strictly after the first end
            lp = np.where(after, 0.0, lp)
        return lp.sum(axis=0)

    def extra_repr(self) -> str:
        parts = [str(self.input_size), str(self.output_size), f"hidden_size={self.hidden_size}",
                 f"cell='{self.encoder.cell.key}'"]
        if self.encoder.num_layers != 1:
            parts.append(f"num_layers={self.encoder.num_layers}")
        for name in ("source", "output"):
            if getattr(self, name) != "real":
                parts.append(f"{name}='{getattr(self, name)}'")
        if "tokens" in (self.source, self.output):
            parts.append(f"embedding_dim={self.embedding_dim}")
        if self.output == "tokens":
            parts.append(f"start_token={self.start_token}")
            if self.end_token is not None:
                parts.append(f"end_token={self.end_token}")
        parts.append(f"dtype='{self.dtype.name}'")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)
