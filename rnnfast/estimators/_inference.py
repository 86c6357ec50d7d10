"""The estimators' forward pass at inference: the network over prepared (scaled, windowed) sequences, in
chunks, from any number of threads at once; and what predict averages over (the window's alignments,
``predict_offsets``, draws of the training noise, ``predict_noise``, and of the training crops,
``predict_crops``)."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .._module import no_grad
from .._threads import thread_limit
from .._validation import check_auto_or, check_choice, check_int
from ._data import _check_feature_names, _check_n_threads, _check_X, _Sequences
from ._windows import _cropped_windowed, _windowed

_PREDICT_CHUNK = 1024        # sequences per forward at inference (bounds the memory of predict)

# predict's alignments of the window: a few sequences' crops for several φ go through one forward of up to this
# many sequences (1 series of 2,000 steps, k = 63: 68 → 10.5 ms; 4 series: 89 → 37 ms); larger batches of
# crops were slower (a cap of 128, 64 series two alignments a forward: 606 → 881 ms), out of the caches
_ALIGNMENT_BATCH = 64


def _check_offsets(value: Any) -> Any:
    """``predict_offsets``: "all" or an integer m >= 0 (checked as ``window`` and ``max_updates`` are: a string
    among the choices, else an integer)."""
    if value is None or isinstance(value, str):
        return check_choice("predict_offsets", value, ("all",))
    return check_int("predict_offsets", value, 0)


def _check_draws(name: str, value: Any) -> Any:
    """``predict_noise`` and ``predict_crops``: "auto" or an integer m >= 0."""
    return check_auto_or(name, value, lambda name, v: check_int(name, v, 0))


def _crop_bounds(j: int, T: np.ndarray, crop: float) -> tuple[np.ndarray, np.ndarray]:
    """Predict's j-th draw of the training crop for sequences of T_b steps (T: (n,)): (s_b, ℓ_b), each
    sequence's segment s_b … s_b + ℓ_b − 1, ℓ_b = max(1, ⌈(1 − crop + crop·u_j)·T_b⌉) (fit's ⌈u·T_b⌉ with u
    uniform in [1 − crop, 1]) and s_b = ⌊v_j·(T_b − ℓ_b + 1)⌋, u_j and v_j uniform in [0, 1) from a fixed seed
    per j: the same fraction of every sequence at the same relative place, so that a prediction depends on
    its own sequence alone."""
    u, v = np.random.default_rng((0xC409, j)).uniform(size=2)
    keep = np.maximum(1, np.ceil((1.0 - crop + crop * u) * T)).astype(np.intp)    # (n,) ℓ_b
    return np.floor(v * (T - keep + 1)).astype(np.intp), keep


def _noise_pattern(j: int, steps: int, width: int, sigma: float, dtype: Any) -> np.ndarray:
    """Predict's j-th draw of the input noise, σ·z (steps, width), one pattern for every sequence of a pass:
    a fixed seed per j, and a draw made row by row, so that the first rows are the same for any ``steps``
    and a sequence's prediction depends on that sequence alone (not on the others predicted beside it)."""
    return (sigma * np.random.default_rng((0x5EED, j)).standard_normal((steps, width))).astype(dtype)


def _alignments(k: int, offsets: Any) -> list[int]:
    """The window offsets φ that predict averages over, for a window of k steps: all k for "all", else the
    m = min(offsets, k) offsets φ_i = ⌊i·k/m⌋ (i = 0 … m − 1), spread evenly over the window and starting at
    the grid from step 0 (0 and 1: that grid alone)."""
    m = k if offsets == "all" else max(1, min(offsets, k))
    return [(i * k) // m for i in range(m)]


class _ConcurrentForward:
    """A fitted model's forward at inference from any number of threads at once (a mixin of the estimators):
    the subclass gives ``_forward_with`` (the forward of one copy of the model) and ``_make_layers`` (a new
    copy), and calls ``_concurrent_inference`` whenever ``model_`` gets new weights."""

    _weights_version: int
    _thread_layers: threading.local
    model_: Any

    if TYPE_CHECKING:                                  # provided by the estimator
        def _make_layers(self, seed_rnn: Optional[int] = None, seed_head: Optional[int] = None) -> Any: ...

        def _forward_with(self, model: Any, seqs: _Sequences, idx: Optional[np.ndarray]) -> np.ndarray: ...

    def _forward(self, seqs: _Sequences, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """``_forward_with`` the model of this thread: the estimators' head outputs z in float64, in eval mode,
        "last" (n, O), "sequence" (T, n, O) (0 on padding), from prepared (scaled, windowed) sequences.

        Safe to call from several threads at once: the first takes the model's own ``model_``, the others
        each run a copy of it that their thread keeps (a layer holds its activations between calls)."""
        lock = self.__dict__.get("_predict_lock")
        if lock is None or lock.acquire(blocking=False):
            try:
                return self._forward_with(self.model_, seqs, idx)
            finally:
                if lock is not None:
                    lock.release()
        local = self._thread_layers
        if getattr(local, "version", None) != self._weights_version:
            model = self._make_layers()
            model.load_state_dict(self.model_.state_dict())
            local.model, local.version = model, self._weights_version
        return self._forward_with(local.model, seqs, idx)

    def _concurrent_inference(self) -> None:
        """A new version of the weights: threads that predict beside another make fresh copies of them."""
        self._predict_lock = threading.Lock()
        self._thread_layers = threading.local()
        self._weights_version = getattr(self, "_weights_version", 0) + 1

    def __getstate__(self) -> dict[str, Any]:
        # not the lock and the threads' copies, which no pickle holds: unpickling makes them afresh
        getstate = getattr(super(), "__getstate__", None)
        state = dict(getstate() if getstate is not None else self.__dict__)
        for name in ("_predict_lock", "_thread_layers", "_weights_version"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        setstate = getattr(super(), "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            self.__dict__.update(state)
        if "model_" in state:
            self._concurrent_inference()


class _Inference(_ConcurrentForward):
    """Inference of :class:`~rnnfast.estimators._base._SequenceEstimator` (a mixin)."""

    _output: str
    _arch: dict[str, Any]
    model_: Any                      # Sequential(rnn_, Readout, head_)
    n_threads: Optional[int]
    window_offset: Any
    input_noise: float
    random_crop_: float              # the crop fit trained with (0: none)
    _auto_predict_noise: int         # predict_noise="auto" with output="last" (the estimator's class says)
    _auto_predict_crops: int         # predict_crops="auto" with output="last" (likewise)

    if TYPE_CHECKING:                                  # provided by the estimator
        def _loss(self, z: np.ndarray, target: np.ndarray,
                  mask: Optional[np.ndarray]) -> tuple[float, np.ndarray]: ...

        def _metric(self, z: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray]) -> float: ...

        def _check_fitted(self) -> None: ...

        def _check_X_fitted(self, seqs: _Sequences) -> _Sequences: ...

        def _scaled_steps(self, seqs: _Sequences) -> _Sequences: ...

        @property
        def rnn_(self) -> Any: ...

    def _predicted(self, X: Any) -> tuple[np.ndarray, _Sequences]:
        """(head outputs z in float64, X prepared as fit learned it, before the window: the same sequences, their
        number and, where outputs are per step (no window), their steps as the outputs'). z averages the outputs of
        several passes where there are (``_averaged_outputs``; the classifier averages probabilities):
        - with a window (k > 1), ``output="last"`` and ``predict_offsets="all"``, the k alignments of the
          window grid, each sequence's windows starting at step φ = 0 … k − 1 (an integer m: the m alignments
          :func:`_alignments` spreads over the window), the alignments that ``window_offset="random"`` trained
          on, so that no prediction hangs on one of them (with ``window_offset=0`` the model trained on the
          grid alone, and predicts on it alone);
        - with ``predict_noise`` m > 0 (and ``input_noise`` σ > 0), at least m passes, pass j with its own
          draw of the training noise, σ·z_j (:func:`_noise_pattern`), added to every sequence's prepared
          input, as fit adds it;
        - with ``predict_crops`` m > 0 (and ``random_crop_`` > 0), at least m passes, pass j ≥ 1 reading its
          own draw of the training crop (:func:`_crop_bounds`) of every sequence, as fit crops them;
        with several passes, pass j reads alignment j mod a of the a alignments, a·⌈m/a⌉ passes for the larger
        m, so that every alignment weighs the same (pass 0: the grid from step 0, uncropped)."""
        self._check_fitted()
        _check_feature_names(self, X, reset=False)                  # names before values, as scikit-learn
        steps = self._scaled_steps(self._check_X_fitted(_check_X(X, np.dtype(np.float64))))   # (see _fit)
        k, span = getattr(self, "window_", 1), getattr(self, "window_span_", 1)
        seqs = _windowed(steps, k, span)
        phases = [0]
        if self._output == "last" and self._trained_with("window_offset") == "random":
            phases = _alignments(k, _check_offsets(getattr(self, "predict_offsets", 0)))
        draws = self._predict_draws("predict_noise", self._auto_predict_noise, self._trained_with("input_noise"))
        crops = self._predict_draws("predict_crops", self._auto_predict_crops, getattr(self, "random_crop_", 0.0))
        passes = len(phases) * max(1, -(-max(draws, crops) // len(phases)))    # each alignment ⌈m/a⌉ passes
        z = self._forward(self._noisy(seqs, [0], draws))
        if passes == 1:
            return z, steps
        zs, rest = [z], list(range(1, passes))
        if self._output == "sequence":                              # no crops: every pass reads the grid
            zs += [self._forward(self._noisy(seqs, [j], draws)) for j in rest]
        else:
            n, T = steps.n, steps.ends() + 1                                       # T: (n,) T_b
            side_by_side = max(1, _ALIGNMENT_BATCH // n)           # passes batched together in one forward
            for start in range(0, len(rest), side_by_side):
                group = rest[start:start + side_by_side]          # each sequence once per pass of the group
                first = np.repeat([phases[j % len(phases)] for j in group], n)      # (len(group)·n,) φ
                stops = None
                if crops:                                  # pass j: segment s_b … s_b + ℓ_b − 1 of draw j
                    bounds = [_crop_bounds(j, T, self.random_crop_) for j in group]
                    first = first + np.concatenate([s for s, _ in bounds])
                    stops = np.concatenate([s + keep for s, keep in bounds])
                crop = _cropped_windowed(steps, np.tile(np.arange(n), len(group)), first, k, stops=stops,
                                         span=span)
                zs.extend(np.split(self._forward(self._noisy(crop, group, draws)), len(group)))  # (n, O) a pass
        return self._averaged_outputs(zs), steps

    def _trained_with(self, name: str) -> Any:
        """The value of parameter ``name`` (``input_noise``, ``window_offset``) the last fit trained with: its
        ``name_`` attribute, or the parameter in a model saved before fit kept them (then never changed)."""
        return getattr(self, name + "_", getattr(self, name))

    def _predict_draws(self, name: str, auto: int, trained_with: float) -> int:
        """How many draws of a training augmentation predict averages over: ``predict_noise`` (of the input
        noise) or ``predict_crops`` (of the crop), "auto" being ``auto`` with output="last"; none for a model
        that trained without it (``trained_with``, its σ or crop, is 0)."""
        m = _check_draws(name, getattr(self, name, 0))
        if m == "auto":
            m = auto if self._output == "last" else 0
        return m if trained_with > 0 else 0

    def _noisy(self, seqs: _Sequences, passes: list[int], draws: int) -> _Sequences:
        """``seqs``, the sequences of len(passes) passes side by side (T', len(passes)·n, I'), with each pass
        j's draw of the input noise added to all of its sequences (``seqs`` itself when draws is 0)."""
        if not draws:
            return seqs
        T, width = seqs.x.shape[0], seqs.x.shape[2]
        x = seqs.x.reshape(T, len(passes), -1, width).copy()                       # (T', passes, n, I')
        for i, j in enumerate(passes):
            x[:, i] += _noise_pattern(j, T, width, self._trained_with("input_noise"), x.dtype)[:, None]
        return seqs._replace(x=x.reshape(seqs.x.shape))

    def _averaged_outputs(self, zs: list[np.ndarray]) -> np.ndarray:
        """One output from the outputs of several passes (each (n, O), or (T, n, O) with output="sequence"):
        their mean (the classifier averages probabilities instead)."""
        return np.mean(zs, axis=0)

    def _forward_with(self, model: Any, seqs: _Sequences, idx: Optional[np.ndarray]) -> np.ndarray:
        """``model`` = Sequential(rnn, readout, head) over the sequences ``idx``: the recurrent layer and the
        readout in the model's dtype, the head's affine map in float64 (the returned z is float64)."""
        idx = np.arange(seqs.n) if idx is None else idx
        rnn, readout, head = model
        model.eval()
        W = head.weight.data.astype(np.float64)                                     # (O, F')
        assert head.bias is not None                                                # _make_layers: bias=True
        b = head.bias.data.astype(np.float64)
        parts = []
        n_threads = _check_n_threads(self.n_threads)
        with thread_limit(n_threads), no_grad():                           # the inference forward: nothing kept
            for start in range(0, len(idx), _PREDICT_CHUNK):
                rows = idx[start:start + _PREDICT_CHUNK]
                lengths = None if seqs.lengths is None else seqs.lengths[rows]
                T = seqs.T if lengths is None else int(lengths.max())
                feats = readout(rnn(seqs.x[:T, rows], lengths=lengths), lengths=lengths)  # (B, F') or (T, B, F)
                if self._output == "last":
                    parts.append(feats.astype(np.float64) @ W.T + b)
                else:
                    z = feats.astype(np.float64) @ W.T + b                               # (T, B, O)
                    if T < seqs.T:
                        z = np.concatenate([z, np.zeros((seqs.T - T,) + z.shape[1:])])
                    parts.append(z)
        return np.concatenate(parts, axis=0 if self._output == "last" else 1)

    def _evaluate(self, seqs: _Sequences, targets: np.ndarray, idx: np.ndarray,
                  weights: Optional[np.ndarray] = None) -> tuple[float, float]:
        """(mean loss, score) on the prepared sequences ``idx``, in eval mode, each sequence weighted by its
        loss weight in ``weights`` (n,) as in training (as scikit-learn's MLP scores its validation split
        with its sample weights); unweighted where those of ``idx`` are all 0 or there are none."""
        z = self._forward(seqs, idx)
        w = None if weights is None or not np.any(weights[idx]) else weights[idx]    # (n_val,)
        if self._output == "last":
            t = targets[idx]
            value, _ = self._loss(z, t, w)
            return float(value), self._metric(z, t, w)
        sub = seqs.mask()[:, idx]                                                  # (T, n_val)
        if w is not None:
            sub = sub * w[None, :].astype(sub.dtype)
        t = targets[:, idx]
        value, _ = self._loss(z, t, sub)
        flat = sub.ravel() > 0
        return float(value), self._metric(z.reshape((-1,) + z.shape[2:])[flat],
                                          t.reshape((-1,) + t.shape[2:])[flat], sub.ravel()[flat])

    def _per_sequence(self, values: np.ndarray, seqs: _Sequences):
        """Time-major per-step results (T, n, ...) in the user's layout: (n, T, ...) or a ragged list."""
        if seqs.lengths is None:
            return np.ascontiguousarray(np.swapaxes(values, 0, 1))
        return [np.ascontiguousarray(values[:n_b, b]) for b, n_b in enumerate(seqs.lengths)]
