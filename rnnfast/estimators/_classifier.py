"""SequenceClassifier: softmax over ``classes_`` and cross-entropy, one label per sequence or per step."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..losses import _softmax, cross_entropy
from ._base import _SequenceEstimator
from ._compat import ClassifierMixin
from ._data import _accuracy, _check_labels, _check_target_rows, _column_or_1d, _per_step_targets, _Sequences
from ._docs import PARAMETERS, ATTRIBUTES


class SequenceClassifier(ClassifierMixin, _SequenceEstimator):
    __doc__ = f"""Recurrent sequence classifier: softmax over ``classes_`` and cross-entropy (binary included).

    ``output="last"``: one label per sequence, y (n_samples,). ``output="sequence"``: one label per step,
    y (n_samples, T) or a list of (T_i,) arrays; ``predict`` then returns (n_samples, T) labels (a list for
    ragged X) and ``predict_proba`` (n_samples, T, n_classes).

    Parameters
    ----------
{PARAMETERS}
    class_weight : None, "balanced" or dict {{label: weight}}, default=None
        Weights of the classes in the loss (multiplying ``sample_weight``); "balanced" uses
        n_samples / (n_classes · count(label)), as scikit-learn does; not with ``partial_fit``, whose batches
        hold a part of y each (pass a dict, e.g. from ``sklearn.utils.class_weight.compute_class_weight``), nor
        with ``output="sequence"`` (weight its steps through ``sample_weight``).

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        The labels, sorted.
{ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 20, 2))
    >>> y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> clf = rnnfast.SequenceClassifier(max_updates=200, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    def __init__(self, *, cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0, bidirectional: bool = False,
                 output: str = "last", readout: str = "auto", window: Any = "auto", window_span: Any = "auto",
                 window_offset: Any = "random", random_crop: Any = "auto", predict_offsets: Any = "all",
                 predict_noise: Any = "auto", predict_crops: Any = "auto", scale: Any = True,
                 derivative: Any = "auto", instance_norm: Any = "auto", input_noise: float = 0.3,
                 mixup: Any = "auto", optimizer: str = "adam", lr: float = 0.003, lr_schedule: str = "cosine",
                 weight_decay: float = 0.0, batch_size: Any = "auto", bucket: bool = True,
                 max_updates: Any = "auto",
                 max_epochs: Optional[int] = None, clip_norm: Optional[float] = 1.0, tbptt: Any = "auto",
                 early_stopping: bool = False, validation_fraction: Optional[float] = 0.1,
                 n_iter_no_change: Optional[int] = 10, tol: float = 1e-4, warm_start: bool = False,
                 class_weight: Any = None, random_state: Any = None, n_threads: Optional[int] = None,
                 verbose: int = 0, dtype: str = "float32", comm: Any = None):
        self._init_params(locals())

    _persisted_arrays = _SequenceEstimator._persisted_arrays + ("classes_",)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "SequenceClassifier":
        """One epoch over (X, y) at the constant learning rate ``lr`` (scaled as ``batch_size="auto"`` says for
        this call's batch), from the current model if there is one.

        The first call fixes the model (scaling, window, architecture) and the labels: ``classes`` lists
        every label the later calls may bring (default: the labels of this first y). No early stopping.
        """
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # each call sees part of y, so "balanced" would be recomputed from one batch's counts
            raise ValueError("class_weight='balanced' is not supported by partial_fit, whose calls each see a part "
                             "of y; pass a dict of weights computed over all of y (sklearn.utils.class_weight."
                             "compute_class_weight('balanced', classes=classes, y=y))")
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    def _n_head_outputs(self) -> int:
        return len(self.classes_)

    def _encode_targets(self, y: Any, seqs: _Sequences, first: bool, classes: Any = None,
                        weights: Optional[np.ndarray] = None) -> np.ndarray:
        per_step = self._output == "sequence"
        items = _check_target_rows(y, seqs, per_step)
        if per_step:
            labels = _per_step_targets(items, seqs)                            # (T, n)
            if labels.ndim != 2:
                raise ValueError(f"with output='sequence', y must have one label per step, (n_samples, T), "
                                 f"got per-step targets of shape {labels.shape[2:]}")
            valid = seqs.mask().astype(bool)
            seen = labels[valid]
        else:
            labels = _column_or_1d(np.asarray(items))                          # (n,)
            seen = labels
        _check_labels(seen)
        if first:
            known = np.unique(seen if classes is None else np.asarray(classes))
            if classes is not None and not np.isin(seen, known).all():
                raise ValueError(f"y holds labels that are not in classes: "
                                 f"{sorted(set(np.unique(seen).tolist()) - set(known.tolist()))}")
            if len(known) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but "
                                 f"the data contains only one class: {known[0]!r}")
            self.classes_ = known
        else:
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
                raise ValueError(f"classes={np.unique(np.asarray(classes)).tolist()} is not the same as the fitted "
                                 f"model's classes_ = {self.classes_.tolist()}")
            if not np.isin(seen, self.classes_).all():
                new = sorted(set(np.unique(seen).tolist()) - set(self.classes_.tolist()))
                raise ValueError(f"y holds labels the model was not fitted with: {new}; expected a subset of "
                                 f"classes_ = {self.classes_.tolist()} (to learn them, fit a new model: fit with "
                                 f"warm_start=False)")
        codes = np.searchsorted(self.classes_, labels.ravel()).reshape(labels.shape)
        if per_step:
            codes = np.where(valid, codes, 0)                                   # padding: any valid class
        return codes.astype(np.int64)

    def _loss_weights(self, w: Optional[np.ndarray], targets: np.ndarray) -> Optional[np.ndarray]:
        if self.class_weight is None:
            return w
        per_class = self._class_weights(targets)                                # (n_classes,)
        if self._output == "sequence":
            raise ValueError("class_weight needs output='last' (one label per sequence); weight the steps of "
                             "output='sequence' through sample_weight")
        cw = per_class[targets]                                                 # (n,)
        return cw if w is None else w * cw

    def _class_weights(self, codes: np.ndarray) -> np.ndarray:
        """The weight of each class, from ``class_weight``: "balanced" or a dict label → weight."""
        k = len(self.classes_)
        if isinstance(self.class_weight, str):
            if self.class_weight != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}")
            counts = np.bincount(codes.ravel(), minlength=k).astype(np.float64)
            return np.where(counts > 0, codes.size / (k * np.maximum(counts, 1)), 0.0)
        if not isinstance(self.class_weight, dict):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got "
                             f"{type(self.class_weight).__name__}")
        out = np.ones(k)
        for label, value in self.class_weight.items():
            where = np.flatnonzero(self.classes_ == label)
            if not where.size:
                raise ValueError(f"class_weight names the label {label!r}, which is not in classes_ "
                                 f"{self.classes_.tolist()}")
            try:
                weight = float(value)
            except (TypeError, ValueError):
                weight = math.nan
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"class_weight[{label!r}] must be a finite number >= 0, got {value!r}")
            out[where[0]] = weight
        return out

    def _loss(self, z, target, mask):
        return cross_entropy(z, target, mask=mask)

    def _metric(self, z, target, weights):
        return _accuracy(target, z.argmax(axis=-1), weights)

    def _averaged_outputs(self, zs):
        """The log of the alignments' mean probabilities (softmax gives back that mean)."""
        return np.log(np.mean([_softmax(z) for z in zs], axis=0))

    def predict_proba(self, X: Any):
        """Class probabilities: (n_samples, n_classes); per step (n_samples, T, n_classes) with
        output="sequence" (a list of (T_i, n_classes) arrays for ragged X)."""
        z, seqs = self._predicted(X)
        proba = _softmax(z)
        return proba if self._output == "last" else self._per_sequence(proba, seqs)

    def predict(self, X: Any):
        """The most probable class: (n_samples,), or per step (n_samples, T) / a list for ragged X."""
        z, seqs = self._predicted(X)
        labels = self.classes_[z.argmax(axis=-1)]
        return labels if self._output == "last" else self._per_sequence(labels, seqs)

    def predict_log_proba(self, X: Any):
        """Logarithm of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        if isinstance(proba, list):
            return [np.log(p) for p in proba]
        return np.log(proba)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy: of the sequences' labels ("last") or of every step's label ("sequence")."""
        z, seqs = self._predicted(X)
        sample_weight = self._check_sample_weight(sample_weight, seqs.n)
        pred = self.classes_[z.argmax(axis=-1)]
        if self._output == "last":
            truth = _column_or_1d(np.asarray(_check_target_rows(y, seqs, False)))
            return _accuracy(truth, pred, sample_weight)
        truth = _per_step_targets(_check_target_rows(y, seqs, True), seqs)
        w = seqs.mask() * (1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[None, :])
        return _accuracy(truth.ravel(), pred.ravel(), w.ravel())
