"""What both estimators share: parameters, ``fit`` / ``partial_fit``, the training loop and inference."""
from __future__ import annotations

import math
import os
from typing import Any, Iterator, Optional

import numpy as np

from .. import distributed, optim
from ..persist import save
from .._module import resolve_dtype
from .._validation import (check_auto_or, check_choice, check_int, check_nonnegative, check_positive,
                           check_real)
from .._cells import ALIASES, CELL_NAMES, cell_spec
from ..compose import _POOLED, Readout, Sequential, _modules_in
from ..layers import Linear, recurrent_layer
from ._compat import BaseEstimator, NotFittedError
from ._inference import _check_draws, _check_offsets, _Inference
from ._windows import _auto_window
from ._training import _Interrupted, _TrainingLoop
from ._data import (_check_feature_names, _check_n_threads, _check_X, _checked_sample_weight, _input_scaling,
                    _InputScaling, _instance_normalized, _make_rng, _own_moments, _scaled, _scales_differ,
                    _Sequences, _with_differences)

_CELLS = {**{name: name for name in CELL_NAMES}, **ALIASES}    # family names, and "rnn" for "elman"
_NONLINEARITIES = ("tanh", "relu", "sigmoid")
_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
_OUTPUTS = ("last", "sequence")
_READOUTS = ("auto", "last") + _POOLED          # rnnfast.Readout's many-to-one choices, and "auto"
_SCHEDULES = ("cosine", "constant")
_SGD_MOMENTUM = 0.9          # optimizer="sgd" uses momentum, as scikit-learn's MLP does


def _optimizer(params: list, p: dict[str, Any]) -> optim.Optimizer:
    """The update rule the parameters ``p`` name ("optimizer", "lr", "weight_decay") over ``params``."""
    lr, wd = p["lr"], p["weight_decay"]
    if p["optimizer"] == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    if p["optimizer"] == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd)
    if p["optimizer"] == "sgd":
        return optim.SGD(params, lr=lr, momentum=_SGD_MOMENTUM, weight_decay=wd)
    return optim.RMSprop(params, lr=lr, weight_decay=wd)


def _weight_names(model: Sequential, value: Any) -> dict[str, Any]:
    """``value(parameter)`` of every parameter of an estimator's ``Sequential(rnn, Readout, head)``, under the
    names its files and pickles use: ``rnn.<torch name>`` and ``head.weight`` / ``head.bias``."""
    return {f"{part}.{name}": value(p) for part, module in (("rnn", model[0]), ("head", model[2]))
            for name, p in module.named_parameters()}


def _recurrent_weight_spec(prefix: str, arch: dict[str, Any], input_size: int,
                           dtype: str) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of a recurrent stack's weights, ``<prefix>.<torch name>``, from an ``_arch``
    (cell, nonlinearity, hidden_size, num_layers, bidirectional) and its input width: what ``load`` checks a
    file against before it allocates anything."""
    G = cell_spec(arch["cell"], arch.get("nonlinearity")).gates
    H, L = check_int("hidden_size", arch["hidden_size"], 1), check_int("num_layers", arch["num_layers"], 1)
    D = 2 if arch.get("bidirectional", False) else 1
    for k in range(L):
        width = input_size if k == 0 else D * H
        for suffix in ("", "_reverse")[:D]:
            yield f"{prefix}.weight_ih_l{k}{suffix}", (G * H, width), dtype
            yield f"{prefix}.weight_hh_l{k}{suffix}", (G * H, H), dtype
            yield f"{prefix}.bias_ih_l{k}{suffix}", (G * H,), dtype
            yield f"{prefix}.bias_hh_l{k}{suffix}", (G * H,), dtype


def _copy_weights(own: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
    """Copy ``weights`` into the parameters ``own`` (name → Parameter); every name, shape and dtype must match,
    checked before anything is copied."""
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    arrays = {name: np.asarray(weights[name]) for name in own}
    for name, param in own.items():
        arr = arrays[name]
        if arr.shape != param.shape or arr.dtype != param.dtype:
            raise ValueError(f"weight {name!r} has shape {arr.shape} and dtype {arr.dtype}, expected "
                             f"{param.shape} and {param.dtype}")
    for name, param in own.items():
        param.data[...] = arrays[name]


class _FitSnapshot:
    """An estimator as it was before a call of fit or partial_fit, to put back when the call fails: its
    attributes and, when the call continues a model in place, the weights, the optimizer's state and the
    random stream. ``params()`` gives the model's parameters by name (``_copy_weights``' ``own``)."""

    def __init__(self, est: Any, continuing: bool, params: Any) -> None:
        self.attrs = dict(est.__dict__)
        self.params = params
        self.weights = est._get_weights() if continuing else None     # copies, under params()' names
        opt, rng = getattr(est, "_optimizer", None), getattr(est, "_rng", None)
        self.optimizer = opt.state_dict() if continuing and opt is not None else None
        self.rng = rng.bit_generator.state if continuing and rng is not None else None
        # the layers' own streams (dropout's masks), which a failed call moved on too
        self.layer_rngs = ([(m, m._rng.bit_generator.state) for m in _modules_in(est.model_)
                            if isinstance(getattr(m, "_rng", None), np.random.Generator)]
                           if continuing and hasattr(est, "model_") else [])

    def restore(self, est: Any) -> None:
        est.__dict__.clear()
        est.__dict__.update(self.attrs)
        if self.weights is not None:                # trained in place: the weights, optimizer and stream it had
            _copy_weights(self.params(), self.weights)
            if self.optimizer is not None:
                est._optimizer.load_state_dict(self.optimizer)
            if self.rng is not None:
                est._rng.bit_generator.state = self.rng
            for m, state in self.layer_rngs:
                m._rng.bit_generator.state = state


def _reload_seeds(random_state: Any, n: int) -> list:
    """Seeds of the n layer groups that load or unpickling rebuild (their dropout streams): drawn from an int
    ``random_state``, so that two loads of one model continue training alike (fresh without one)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return [int(v) >> 1 for v in np.random.SeedSequence([int(random_state), 1]).generate_state(n, np.uint64)]
    return [None] * n


def _check_unchanged(fitted: dict[str, Any], now: dict[str, Any]) -> None:
    """Raise ValueError naming each parameter whose value ``now`` differs from the ``fitted`` model's, for a
    warm start or ``partial_fit``, which continue that model."""
    changed = [f"{k}={now[k]!r} (fitted with {fitted[k]!r})" for k in fitted if now[k] != fitted[k]]
    if changed:
        raise ValueError(f"warm_start and partial_fit continue the fitted model, which these parameters no "
                         f"longer describe: {', '.join(changed)}; fit with warm_start=False to build a new one")


# tbptt="auto": with output="sequence" (unidirectional), an update every this many steps or fewer, the state
# carried on. Per-step targets of sequences of 1,000 and 3,000 steps (benchmarks/long_sequences.py, 100
# training series): an exponential filter of a nonlinearity (regressor) R² 0.951 and 0.950 in 14 and 13 s,
# against 0.954 and 0.955 in 123 and 332 s through whole sequences for the same 2000 updates, and 0.860 and
# 0.660 through whole sequences in the work max_updates="auto" allows; Markov regimes (classifier) 0.849 and
# 0.858 in 5 s against 0.845 and 0.858 in 45 and 121 s. A running sum of the whole sequence loses (0.181
# against 0.900 in 105 s at T = 1,000): it needs whole sequences and more than the 30 s a fit may take.
_AUTO_TBPTT = 128


def _check_max_updates(value: Any) -> Any:
    """``max_updates``: "auto", None or an integer >= 1."""
    if value is None or isinstance(value, str) and check_choice("max_updates", value, ("auto",)):
        return value
    return check_int("max_updates", value, 1)


class _SequenceEstimator(_TrainingLoop, _Inference, BaseEstimator):
    """Training and inference shared by both estimators; subclasses define the targets, head and loss."""

    # window="auto" cuts sequences to at most this many recurrent steps (SequenceRegressor: 16)
    _window_steps = 32
    # random_crop="auto": the crop of sequences that get a window (k > 1); SequenceRegressor: 0
    _auto_crop = 0.3
    # predict_noise="auto": predict's draws of the input noise with output="last"; SequenceRegressor: 8
    _auto_predict_noise = 0
    # predict_crops="auto": predict's draws of the training crop with output="last"; SequenceRegressor: 0 (it
    # trains uncropped). 3-fold cross-validation inside the training splits, over the 11 classification sets
    # with a window: mean accuracy 0.833, 0.830, 0.835 with 16 draws at seeds 0-2 against 0.822, 0.815, 0.821
    _auto_predict_crops = 16
    # mixup="auto": α of mixup with output="last"; SequenceRegressor: 0 (none). 3-fold cross-validation inside
    # the training splits: mean accuracy 0.864, 0.859, 0.863 at seeds 0-2 against 0.852, 0.848, 0.853 without
    _auto_mixup = 0.2

    # Learned attributes that describe a fit, restored when a fit is interrupted before its first epoch
    # (the weights, model_, included) and saved by rnnfast.persist (besides the weights).
    # parameters added after files and pickles of this class were first written, with the value that
    # reproduces how such a model trained (rnnfast.load and unpickling fill them in)
    _earlier_defaults: dict[str, Any] = {"window_offset": 0, "instance_norm": False, "predict_offsets": 0,
                                         "derivative": False, "random_crop": 0.0, "window_span": 1,
                                         "predict_noise": 0, "mixup": 0.0, "predict_crops": 0}
    _persisted_attrs: tuple[str, ...] = ("n_features_in_", "input_size_", "fit_layout_", "window_", "window_span_",
                        "derivative_", "instance_norm_", "random_crop_", "input_noise_", "window_offset_",
                        "input_asinh_center_", "input_asinh_scale_",
                        "input_mean_", "input_scale_",
                        "loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_", "n_iter_",
                        "n_updates_", "t_", "history_", "n_epochs_", "best_epoch_", "batch_size_", "tbptt_",
                        "_output", "_arch")
    # of those, the float64 arrays (or None) that rnnfast.load gives back as arrays rather than JSON's lists
    _persisted_float_arrays: tuple[str, ...] = ("input_asinh_center_", "input_asinh_scale_", "input_mean_",
                                                "input_scale_")
    # learned arrays kept as arrays: feature_names_in_ (of objects, as the classifier's classes_ may be)
    _persisted_arrays: tuple[str, ...] = ("feature_names_in_",)
    input_asinh_center_: Optional[np.ndarray]
    input_asinh_scale_: Optional[np.ndarray]
    input_mean_: Optional[np.ndarray]
    input_scale_: Optional[np.ndarray]
    history_: dict[str, list[float]]

    # Each estimator's __init__ (SequenceClassifier's, SequenceRegressor's: their defaults differ in hidden_size,
    # instance_norm, and the class_weight and ridge of one each) sets its arguments with _init_params, as
    # scikit-learn's convention asks: each one an attribute of its own name, unchanged.
    def _init_params(self, arguments: dict[str, Any]) -> None:
        """Set each constructor argument (``locals()`` of an ``__init__``) as the attribute of its name."""
        for name, value in arguments.items():
            if name != "self":
                setattr(self, name, value)

    # ---- scikit-learn metadata --------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True         # (n_samples, T, n_features)
        return tags

    # ---- parameters -------------------------------------------------------------------------------
    def _checked_params(self) -> dict[str, Any]:
        """The constructor parameters, validated (each error names its parameter); they stay unchanged."""
        p = dict(
            cell=_CELLS[check_choice("cell", self.cell, tuple(_CELLS))],
            hidden_size=check_int("hidden_size", self.hidden_size, 1),
            num_layers=check_int("num_layers", self.num_layers, 1),
            nonlinearity=check_choice("nonlinearity", self.nonlinearity, _NONLINEARITIES),
            dropout=check_real("dropout", self.dropout, 0.0, 1.0, high_inclusive=False),
            bidirectional=check_choice("bidirectional", self.bidirectional, (False, True)),
            output=check_choice("output", self.output, _OUTPUTS),
            readout=check_choice("readout", self.readout, _READOUTS),
            scale=check_choice("scale", self.scale, (False, True, "standard")),
            derivative=check_choice("derivative", self.derivative, ("auto", False, True)),
            instance_norm=check_choice("instance_norm", self.instance_norm, ("auto", False, True)),
            input_noise=check_real("input_noise", self.input_noise, 0.0, math.inf, high_inclusive=False),
            optimizer=check_choice("optimizer", self.optimizer, _OPTIMIZERS),
            lr=check_real("lr", self.lr, 0.0, math.inf, low_inclusive=False, high_inclusive=False),
            lr_schedule=check_choice("lr_schedule", self.lr_schedule, _SCHEDULES),
            weight_decay=check_real("weight_decay", self.weight_decay, 0.0, math.inf, high_inclusive=False),
            batch_size=check_auto_or("batch_size", self.batch_size, lambda name, v: check_int(name, v, 1)),
            bucket=check_choice("bucket", self.bucket, (False, True)),
            max_updates=_check_max_updates(self.max_updates),
            max_epochs=None if self.max_epochs is None else check_int("max_epochs", self.max_epochs, 1),
            clip_norm=None if self.clip_norm is None else check_positive("clip_norm", self.clip_norm),
            tbptt=check_auto_or("tbptt", self.tbptt, lambda name, v: None if v is None else check_int(name, v, 1)),
            early_stopping=check_choice("early_stopping", self.early_stopping, (False, True)),
            validation_fraction=(0.0 if self.validation_fraction is None else
                                 check_real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                            high_inclusive=False)),
            n_iter_no_change=(None if self.n_iter_no_change is None
                              else check_int("n_iter_no_change", self.n_iter_no_change, 1)),
            tol=check_nonnegative("tol", self.tol),
            warm_start=check_choice("warm_start", self.warm_start, (False, True)),
            n_threads=_check_n_threads(self.n_threads),
            verbose=check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool) else self.verbose, 0),
        )
        p["window"] = check_auto_or("window", self.window, lambda name, v: 1 if v is None else check_int(name, v, 1))
        p["window_span"] = check_auto_or("window_span", self.window_span, lambda name, v: check_int(name, v, 1))
        p["window_offset"] = check_choice("window_offset", self.window_offset, ("random", 0))
        p["random_crop"] = check_auto_or("random_crop", self.random_crop,
                                         lambda name, v: check_real(name, v, 0.0, 1.0, high_inclusive=False))
        p["predict_offsets"] = _check_offsets(self.predict_offsets)
        p["predict_noise"] = _check_draws("predict_noise", self.predict_noise)
        p["predict_crops"] = _check_draws("predict_crops", self.predict_crops)
        p["mixup"] = check_auto_or("mixup", self.mixup,
                                   lambda name, v: check_real(name, v, 0.0, math.inf, high_inclusive=False))
        if p["mixup"] == "auto":
            p["mixup"] = self._auto_mixup if p["output"] == "last" else 0.0
        if p["mixup"] > 0 and p["output"] != "last":
            raise ValueError(f"mixup={self.mixup!r} mixes whole sequences and their one target each; use "
                             f"mixup=0 with output='sequence'")
        if p["max_updates"] is None and p["max_epochs"] is None:
            raise ValueError("max_updates and max_epochs are both None: set at least one training budget")
        # tbptt="auto": per-step outputs of long sequences get an update every 128 steps or fewer (the fit cuts
        # its longest sequence into equal chunks, _train)
        p["balanced_chunks"] = p["tbptt"] == "auto" and p["output"] == "sequence" and not p["bidirectional"]
        if p["tbptt"] == "auto":
            p["tbptt"] = _AUTO_TBPTT if p["balanced_chunks"] else None
        if p["bidirectional"] and p["tbptt"] is not None:
            raise ValueError("tbptt: truncated BPTT needs a unidirectional cell (the reverse direction reads "
                             "each whole sequence); use tbptt=None with bidirectional=True")
        if p["readout"] == "auto":            # pooled unless truncated BPTT, which cannot backpropagate a pool
            p["readout"] = "last" if p["tbptt"] is not None else "lastmeanmax"
        if p["output"] == "last" and p["tbptt"] is not None and p["readout"] != "last":
            raise ValueError(f"readout={self.readout!r} pools over every step, which truncated BPTT cannot "
                             f"backpropagate through; use readout='last' with tbptt, or tbptt=None")
        if p["output"] == "sequence" and p["instance_norm"] is True:
            raise ValueError("instance_norm=True: output='sequence' predicts each step from the steps so far, and "
                             "a sequence's own mean and deviation come from all of its steps; use instance_norm="
                             "False (instance_norm='auto' is False there)")
        if p["output"] == "sequence" and p["random_crop"] != "auto" and p["random_crop"] > 0:
            raise ValueError(f"random_crop={self.random_crop!r}: output='sequence' scores every step, so its "
                             "sequences are not cropped; use random_crop=0")
        if p["output"] == "sequence" and isinstance(p["window"], int) and p["window"] > 1:
            raise ValueError(f"window={self.window!r}: output='sequence' needs one output per input step; use "
                             f"window=1 (window='auto' is 1 there)")
        try:
            p["dtype"] = resolve_dtype(self.dtype)
        except ValueError as exc:
            raise ValueError(f"dtype: {exc}") from None
        return p

    # ---- subclass hooks ---------------------------------------------------------------------------
    def _encode_targets(self, y: Any, seqs: _Sequences, first: bool, classes: Any = None,
                        weights: Optional[np.ndarray] = None) -> np.ndarray:
        """The targets encoded for the loss ("last": (n,) or (n, k); "sequence": (T, n) or (T, n, k),
        time-major); ``first``: this fit starts a model, so store what the targets teach (classes_, …,
        with the sequences' ``weights``)."""
        raise NotImplementedError

    def _loss_weights(self, weights: Optional[np.ndarray], targets: np.ndarray) -> Optional[np.ndarray]:
        """Per-sequence loss weights (n,) or None (all 1): the sample weights (the classifier adds its
        class weights)."""
        return weights

    _check_sample_weight = staticmethod(_checked_sample_weight)

    def _loss(self, z: np.ndarray, target: np.ndarray, mask: Optional[np.ndarray]) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _metric(self, z: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray]) -> float:
        raise NotImplementedError

    def _n_head_outputs(self) -> int:
        raise NotImplementedError

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_SequenceEstimator":
        """Train on sequences ``X`` with targets ``y`` for the update budget; returns self.

        With ``warm_start=True`` and a fitted model, training continues from its weights, scaling, window
        and optimizer state (a new learning-rate schedule over this call's budget). ``sample_weight``
        (n_samples,) weights each sequence's loss (the mean over a batch is weighted).
        """
        return self._fit(X, y, sample_weight, partial=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, partial: bool, classes: Any = None) -> "_SequenceEstimator":
        p = self._checked_params()
        continuing = (partial or p["warm_start"]) and hasattr(self, "model_")
        if continuing:
            _check_unchanged(*self._fixed_at_fit(p))
        # The estimator as it was: a fit that fails or is interrupted before one epoch is complete leaves it so
        # (but for a divergence in training: the model then keeps the weights from before the update that broke
        # them, as its error says).
        snapshot = _FitSnapshot(self, continuing, lambda: _weight_names(self.model_, lambda q: q))
        training = False
        try:
            _check_feature_names(self, X, reset=not continuing)         # names before values, as scikit-learn
            # float64 until scaled (_scaled_features casts to the model's dtype): a float32 X of values near 1e9
            # holds steps of 64, and its unit-size signal was gone before the standardization could recover it
            seqs = _check_X(X, np.dtype(np.float64))
            sw = self._check_sample_weight(sample_weight, seqs.n, partial)
            if continuing:
                seqs = self._scaled_steps(self._check_X_fitted(seqs))
                targets = self._encode_targets(y, seqs, first=False, classes=classes)
            else:
                learn_w = sw if sw is None or sw.any() else None    # all 0 (partial_fit): scale unweighted
                features = self._start(seqs, p, learn_w)
                targets = self._encode_targets(y, seqs, first=True, classes=classes, weights=learn_w)
                seqs = self._scaled_features(features)
            weights = self._loss_weights(sw, targets)
            if weights is not None and not np.any(weights) and not partial:    # no update would run (a
                # partial_fit batch of a stream may weigh nothing, as SGDClassifier's may: it makes no update)
                raise ValueError("the loss weights (sample_weight times class_weight) are zero for every sample")
            comm = self._comm()
            if not continuing:
                self._build(self._rng, rank=0 if comm is None else comm.rank)
                self._optimizer = self._make_optimizer(p)
            elif getattr(self, "_optimizer", None) is None:     # unpickled or loaded: a new optimizer (and stream)
                self._optimizer = self._make_optimizer(p)
                if getattr(self, "_rng", None) is None:
                    self._rng = _make_rng(self.random_state)
            training = True
            planned = self._train(seqs, targets, weights, p, comm, partial, continuing)    # windows itself
            self._after_training(X, y, sample_weight, p, partial, continuing, planned)
            self._concurrent_inference()
        except BaseException as exc:
            if training and isinstance(exc, FloatingPointError):
                raise
            snapshot.restore(self)
            if continuing:
                self._concurrent_inference()
            if isinstance(exc, _Interrupted):
                raise KeyboardInterrupt from None
            raise
        return self

    def _after_training(self, X: Any, y: Any, sample_weight: Any, p: dict[str, Any], partial: bool,
                        continuing: bool, planned: Optional[float]) -> None:
        """What a fit does once its model is trained (``planned``: the work its training planned, in
        multiply-adds; None after an interrupt): nothing here; SequenceRegressor sets the weight of its
        network's part."""

    # What a fitted model is built from: a warm start or partial_fit continues that model, so these parameters
    # must be as they were (the window's, the slopes' and the own scales' only when set, not "auto").
    _FIXED_AT_FIT = ("cell", "hidden_size", "num_layers", "nonlinearity", "dropout", "bidirectional", "readout",
                     "scale")
    _FIXED_WHEN_SET = {"window": "window_", "window_span": "window_span_", "derivative": "derivative_",
                       "instance_norm": "instance_norm_"}

    def _fixed_at_fit(self, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parameters the fitted model was built from: (as fitted, as the checked ``p`` has them now)."""
        fitted = {k: self._arch[k] for k in self._FIXED_AT_FIT if k in self._arch
                  and not (k == "readout" and self._output == "sequence")}       # (which reads every step)
        fitted.update(output=self._output, dtype=self._arch["dtype"])
        fitted.update({k: getattr(self, attr) for k, attr in self._FIXED_WHEN_SET.items()
                       if p[k] != "auto" and hasattr(self, attr)})
        now = {k: p[k].name if k == "dtype" else p[k] for k in fitted}
        if "scale" not in fitted:       # a model saved before _arch kept it: whether it scales its inputs
            fitted["scale"], now["scale"] = getattr(self, "input_mean_", None) is not None, bool(p["scale"])
        return fitted, now

    def _start(self, seqs: _Sequences, p: dict[str, Any], weights: Optional[np.ndarray]) -> _Sequences:
        """Fix what a new model is made of: the input's shape, scaling, window and architecture. Returns the
        features the network reads, unscaled: the sequences with their first differences (``derivative_``)
        and then each one's own standardization (``instance_norm_``) appended where fit chose them."""
        for name in self._persisted_attrs + ("classes_", "n_outputs_"):
            self.__dict__.pop(name, None)                     # from an earlier fit
        self._rng = _make_rng(self.random_state)
        self._output = p["output"]
        self.n_features_in_ = seqs.T if seqs.layout == "2d" else seqs.x.shape[2]
        self.input_size_ = seqs.x.shape[2]
        self.fit_layout_ = seqs.layout
        self.derivative_ = p["derivative"] if p["derivative"] != "auto" else p["output"] == "last"
        with_slopes = self._differences_added(seqs)
        moments = None                                        # each sequence's own, computed once for both uses
        if p["instance_norm"] is True or (p["instance_norm"] == "auto" and p["output"] == "last"):
            moments = _own_moments(with_slopes)
        self.instance_norm_ = (p["instance_norm"] if p["instance_norm"] != "auto"
                               else p["output"] == "last" and _scales_differ(with_slopes, moments))
        features = self._own_scales_added(with_slopes, moments)
        if p["scale"]:
            (self.input_asinh_center_, self.input_asinh_scale_, self.input_mean_, self.input_scale_) = \
                _input_scaling(features, weights, heavy_tails=p["scale"] != "standard")
        else:
            self.input_asinh_center_ = self.input_asinh_scale_ = self.input_mean_ = self.input_scale_ = None
        self.window_ = self._resolved_window(p, seqs.T if seqs.lengths is None else int(seqs.lengths.max()))
        self.window_span_ = self._resolved_span(p)
        self._arch = {k: p[k] for k in ("cell", "hidden_size", "num_layers", "nonlinearity", "dropout",
                                        "bidirectional", "readout")}
        self._arch["dtype"] = p["dtype"].name
        self._arch["scale"] = p["scale"]                    # the learned scaling follows it (warm_start checks)
        return features

    def _resolved_window(self, p: dict[str, Any], longest: int) -> int:
        """``window`` of the checked parameters ``p`` for training sequences of at most ``longest`` steps:
        "auto" is ⌈longest / _window_steps⌉, or 1 with ``output="sequence"``."""
        if p["window"] != "auto":
            return p["window"]
        return 1 if p["output"] == "sequence" else _auto_window(longest, self._window_steps)

    @staticmethod
    def _resolved_span(p: dict[str, Any]) -> int:
        """``window_span`` of the checked parameters ``p``: "auto" is 2 for ``output="last"``, else 1."""
        if p["window_span"] != "auto":
            return p["window_span"]
        return 2 if p["output"] == "last" else 1

    def _learned_scaling(self) -> Optional[_InputScaling]:
        """What fit learned for ``scale``; None with ``scale=False`` (or from a version-1 file)."""
        mean, scale = getattr(self, "input_mean_", None), getattr(self, "input_scale_", None)
        if mean is None or scale is None:
            return None
        return _InputScaling(getattr(self, "input_asinh_center_", None), getattr(self, "input_asinh_scale_", None),
                             mean, scale)

    def _scale_inputs(self, x: np.ndarray) -> np.ndarray:
        """Steps (…, I) scaled as fit learned (unchanged with ``scale=False``)."""
        scaling = self._learned_scaling()
        return x if scaling is None else scaling(x)

    def _differences_added(self, seqs: _Sequences) -> _Sequences:
        """The sequences with each feature's first difference appended when fit chose it (``derivative_``)."""
        return _with_differences(seqs) if getattr(self, "derivative_", False) else seqs

    def _own_scales_added(self, seqs: _Sequences, moments: Optional[tuple[np.ndarray, np.ndarray]] = None
                          ) -> _Sequences:
        """The sequences with each one's own standardization appended when fit chose it (``instance_norm_``);
        ``moments``: their ``_own_moments``, when already computed."""
        return _instance_normalized(seqs, moments) if getattr(self, "instance_norm_", False) else seqs

    @property
    def _network_input_size(self) -> int:
        """Features per step the recurrent layer reads: ``input_size_``, twice that with ``derivative_``,
        twice that again with ``instance_norm_``, times the window, times ``window_span_``."""
        features = (check_int("input_size_", self.input_size_, 1) * (2 if getattr(self, "derivative_", False) else 1)
                    * (2 if getattr(self, "instance_norm_", False) else 1))
        return (features * check_int("window_", getattr(self, "window_", 1), 1)
                * check_int("window_span_", getattr(self, "window_span_", 1), 1))

    def _check_learned_inputs(self) -> None:
        """ValueError unless the learned attributes of the input side agree with each other, as fit leaves
        them: what ``rnnfast.load`` checks in a file's metadata (one edited by hand) before it builds a model."""
        n_in, size = check_int("n_features_in_", self.n_features_in_, 1), check_int("input_size_", self.input_size_, 1)
        two_d = getattr(self, "fit_layout_", None) == "2d"       # then the features are the steps, of 1 value
        if (size != 1) if two_d else (n_in != size):
            raise ValueError(f"n_features_in_ ({n_in}) and input_size_ ({size}) do not agree with fit_layout_ "
                             f"{getattr(self, 'fit_layout_', None)!r}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and (np.shape(names) != (n_in,) or not all(isinstance(v, str) for v in names)):
            raise ValueError(f"feature_names_in_ must hold n_features_in_ ({n_in}) strings, got {names!r}")
        classes = getattr(self, "classes_", None)
        if classes is not None and (len(classes) < 2 or np.any(np.asarray(classes[1:]) <= np.asarray(classes[:-1]))):
            raise ValueError(f"classes_ must hold two or more labels, sorted and unique, as fit leaves them; got "
                             f"{classes!r}")
        for name in ("derivative_", "instance_norm_"):
            if not isinstance(getattr(self, name, False), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        width = (check_int("input_size_", self.input_size_, 1) * (2 if getattr(self, "derivative_", False) else 1)
                 * (2 if getattr(self, "instance_norm_", False) else 1))              # features before the window
        for name in ("input_asinh_center_", "input_asinh_scale_", "input_mean_", "input_scale_"):
            value = getattr(self, name, None)
            if value is None:
                continue
            if np.shape(value) != (width,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must hold {width} finite numbers (one per feature), got {value!r}")
            if name == "input_scale_" and np.any(np.asarray(value) <= 0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
            if name == "input_asinh_scale_" and np.any(np.asarray(value) < 0):
                raise ValueError(f"{name} must be >= 0 (0: a feature left as it is), got {value!r}")

    def _scaled_steps(self, seqs: _Sequences) -> _Sequences:
        """The sequences' steps as fit learned to scale them (first differences appended with
        ``derivative_``, then each one's own standardization with ``instance_norm_``, then ``scale``; the
        padding stays 0), before the window."""
        return self._scaled_features(self._own_scales_added(self._differences_added(seqs)))

    def _scaled_features(self, features: _Sequences) -> _Sequences:
        """``scale`` as fit learned it, on the features the network reads (own standardization appended), in
        float64, then in the model's dtype."""
        scaling = self._learned_scaling()
        scaled = features if scaling is None else _scaled(features, scaling)
        return _Sequences(scaled.x.astype(self._arch["dtype"], copy=False), scaled.lengths, scaled.layout)

    def _comm(self) -> Optional[distributed.Communicator]:
        """The communicator of data-parallel training; None when this process trains alone."""
        if self.comm is None:
            return None
        try:
            comm = distributed.get_comm(self.comm)
        except ValueError as exc:
            raise ValueError(f"comm: {exc}") from None
        return comm if comm.size > 1 else None

    def _build(self, rng: np.random.Generator, rank: int = 0) -> None:
        """Fresh layers with seeds drawn from ``rng`` (initial weights and dropout masks)."""
        seed_rnn, seed_head = (int(v) for v in rng.integers(0, 2**63 - 1, size=2))
        if rank:    # data-parallel: rank 0's weights are broadcast; each rank draws its own dropout masks
            seed_rnn = int(np.random.SeedSequence([seed_rnn, rank]).generate_state(1, np.uint64)[0] >> 1)
        self.model_ = self._make_layers(seed_rnn, seed_head)

    def _make_layers(self, seed_rnn: Optional[int] = None, seed_head: Optional[int] = None) -> Sequential:
        """The network that ``_arch`` (fixed at fit) describes: ``Sequential(recurrent stack, Readout, Linear
        head)``, the readout ``readout`` for ``output="last"`` and ``"sequence"`` for ``output="sequence"``."""
        a = self._arch
        common = dict(dropout=a["dropout"], bidirectional=a.get("bidirectional", False), dtype=a["dtype"],
                      seed=seed_rnn)
        rnn = recurrent_layer(a["cell"], self._network_input_size, a["hidden_size"], num_layers=a["num_layers"],
                              nonlinearity=a["nonlinearity"], **common)
        readout = Readout(a.get("readout", "last") if self._output == "last" else "sequence")
        width = readout.width(a["hidden_size"] * (2 if common["bidirectional"] else 1))
        return Sequential(rnn, readout, Linear(width, self._n_head_outputs(), dtype=a["dtype"], seed=seed_head))

    @property
    def rnn_(self) -> Any:
        """The recurrent stack: ``model_[0]``."""
        return self.model_[0]

    @property
    def head_(self) -> Linear:
        """The Linear head: ``model_[2]``."""
        return self.model_[2]

    def _make_optimizer(self, p: dict[str, Any]) -> optim.Optimizer:
        return _optimizer(self.model_.parameters(), p)

    # ---- inference --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 f"appropriate arguments before using this estimator.")

    def _check_X_fitted(self, seqs: _Sequences) -> _Sequences:
        """``seqs`` checked against the shape the model was fitted on."""
        name = type(self).__name__
        if seqs.layout == "2d" and self.fit_layout_ == "2d" and seqs.T != self.n_features_in_:
            raise ValueError(f"X has {seqs.T} features, but {name} is expecting {self.n_features_in_} "
                             f"features as input. (A 2-D X, or a list of 1-D series of one length, is a table "
                             f"whose columns are the steps, as at fit; give series of another length as a list "
                             f"of (T_i, 1) arrays or as X (n_samples, T, 1).)")
        if seqs.x.shape[2] != self.input_size_:
            got = ("X is 2-D (univariate sequences: 1 feature per step)" if seqs.layout == "2d"
                   else f"X has {seqs.x.shape[2]} features per step")
            raise ValueError(f"{got}, but {name} is expecting {self.input_size_} features per step as input.")
        return seqs

    # ---- weights, pickling, saving ----------------------------------------------------------------
    def _get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every weight, named ``rnn.<torch name>`` and ``head.weight`` / ``head.bias``."""
        return _weight_names(self.model_, lambda p: p.data.copy())

    def _weight_spec(self) -> Iterator[tuple[str, tuple[int, ...], str]]:
        """(name, shape, dtype) of every weight ``_set_weights`` takes, from ``_arch``, ``input_size_``,
        ``window_`` and the head's outputs, without building a layer: ``load`` checks a file against it
        before it allocates anything."""
        self._check_learned_inputs()
        a = self._arch
        H, D = check_int("hidden_size", a["hidden_size"], 1), 2 if a.get("bidirectional", False) else 1
        dtype = resolve_dtype(a["dtype"]).name
        yield from _recurrent_weight_spec("rnn", a, self._network_input_size, dtype)
        O = self._n_head_outputs()
        head_in = Readout(a.get("readout", "last")).width(D * H) if self._output == "last" else D * H
        yield "head.weight", (O, head_in), dtype
        yield "head.bias", (O,), dtype

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Rebuild ``model_`` from ``_arch`` with these weights; names, shapes and dtypes must match."""
        model = self._make_layers(*_reload_seeds(self.random_state, 2))
        _copy_weights(_weight_names(model, lambda p: p), weights)
        self.model_ = model.eval()
        self._concurrent_inference()

    def __getstate__(self) -> dict[str, Any]:
        # Pickle the weights, not the layer objects with their scratch buffers and caches (nor the
        # optimizer, which holds the layers' parameters: a warm start after unpickling starts a new one).
        state = super().__getstate__()                      # (_ConcurrentForward's: without the threads' state)
        state.pop("_optimizer", None)
        if "model_" in state:
            state["_weights"] = self._get_weights()
            del state["model_"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = {**self._earlier_defaults, **state}
        weights = state.pop("_weights", None)
        super().__setstate__(state)
        if weights is not None:
            self._set_weights(weights)

    def save(self, path: Any) -> str:
        """Write the fitted model to ``path`` (.npz of weights + JSON metadata); see :func:`rnnfast.load`.

        In data-parallel training (``comm``) only rank 0 writes; the other ranks return ``path`` at once.
        """
        comm = self._comm()
        if comm is not None and comm.rank != 0:
            return os.fspath(path)
        return save(self, path)
