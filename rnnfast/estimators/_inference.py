"""The estimators' forward pass at inference: the network over prepared (scaled, windowed) sequences, in
chunks, from any number of threads at once."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .._module import no_grad
from .._threads import thread_limit
from ._data import _Sequences

_PREDICT_CHUNK = 1024        # sequences per forward at inference (bounds the memory of predict)


class _Inference:
    """Inference of :class:`~rnnfast.estimators._base._SequenceEstimator` (a mixin)."""

    _output: str
    _arch: dict[str, Any]
    _weights_version: int
    _thread_layers: threading.local
    model_: Any                      # Sequential(rnn_, Readout, head_)
    n_threads: Optional[int]

    if TYPE_CHECKING:                                  # provided by the estimator
        def _loss(self, z: np.ndarray, target: np.ndarray,
                  mask: Optional[np.ndarray]) -> tuple[float, np.ndarray]: ...

        def _metric(self, z: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray]) -> float: ...

        def _make_layers(self, seed_rnn: Optional[int] = None, seed_head: Optional[int] = None) -> Any: ...

    def _forward(self, seqs: _Sequences, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Head outputs z in float64, in eval mode: "last" (n, O), "sequence" (T, n, O) (0 on padding),
        from prepared (scaled, windowed) sequences.

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
        with thread_limit(self.n_threads), no_grad():                      # the inference forward: nothing kept
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

    def _evaluate(self, seqs: _Sequences, targets: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
        """(mean loss, score) on the prepared sequences ``idx``, in eval mode."""
        z = self._forward(seqs, idx)
        if self._output == "last":
            t = targets[idx]
            value, _ = self._loss(z, t, None)
            return float(value), self._metric(z, t, None)
        sub = seqs.mask()[:, idx]                                                  # (T, n_val)
        t = targets[:, idx]
        value, _ = self._loss(z, t, sub)
        flat = sub.ravel() > 0
        return float(value), self._metric(z.reshape((-1,) + z.shape[2:])[flat],
                                          t.reshape((-1,) + t.shape[2:])[flat], None)

    def _per_sequence(self, values: np.ndarray, seqs: _Sequences):
        """Time-major per-step results (T, n, ...) in the user's layout: (n, T, ...) or a ragged list."""
        if seqs.lengths is None:
            return np.ascontiguousarray(np.swapaxes(values, 0, 1))
        return [np.ascontiguousarray(values[:n_b, b]) for b, n_b in enumerate(seqs.lengths)]
