r"""SequenceForecaster: multi-step forecasting with an encoder–decoder (:class:`rnnfast.EncoderDecoder`).

Given a window of the past x_1 … x_T (n_features per step), predict the next ``horizon`` values
y_1 … y_h (k outputs per step):

    x̃_t = (x_t − μ_x) / σ_x,   ỹ_j = (y_j − μ_y) / σ_y           standardization learned in fit (``scale``)
    state = Encoder(x̃_1 … x̃_T)
    ỹ_0   = the last input step in the targets' units, (x_T − μ_y) / σ_y, when k = n_features (the series
            forecast is the series read); zeros otherwise
    ŷ_j   = Head(Decoder(ỹ_{j−1}, state_{j−1}))                     j = 1 … h

Training minimises the mean of ½ (ŷ_j − ỹ_j)² over the horizon with teacher forcing (the decoder reads the
true ỹ_{j−1}, jittered by ``input_noise`` like the encoder's inputs, so it learns to read imperfect
values); ``predict`` runs free, each forecast fed back as the next input. Mini-batches are reshuffled every
epoch, gradients clipped to ``clip_norm``, the learning rate annealed along a cosine over ``max_updates``
updates (whole epochs), as in the other estimators.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import numpy as np

from .. import optim
from .._module import resolve_dtype
from .._threads import thread_limit
from .._validation import check_choice, check_int, check_nonnegative, check_positive, check_real
from ..clip import clip_grad_norm_
from ..losses import mse_loss
from ..persist import save
from ..seq2seq import EncoderDecoder
from ._base import (_CELLS, _check_unchanged, _copy_weights, _FitSnapshot, _optimizer, _recurrent_weight_spec,
                    _reload_seeds)
from ._compat import BaseEstimator, NotFittedError, RegressorMixin
from ._data import (_check_feature_names, _check_n_threads, _check_X, _checked_sample_weight, _finite_or_raise,
                    _input_scaling, _jittered, _make_rng, _mean_and_scale, _r2, _Sequences, _standardized)
from ._inference import _ConcurrentForward
from ._training import _planned_epochs, _Progress, _restart_lr, _warn_interrupted

_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
_PREDICT_CHUNK = 1024        # windows per encoder–decoder pass at inference


class SequenceForecaster(_ConcurrentForward, RegressorMixin, BaseEstimator):
    """Forecast the next ``horizon`` values of a series from a window of its past, with an encoder–decoder.

    ``fit(X, y)``: X the input windows (n_samples, T, n_features), (n_samples, T) for a univariate series,
    or a list of (T_i[, n_features]) windows of different lengths; y the values that follow each window,
    (n_samples, horizon) or (n_samples, horizon, k). ``predict(X)`` returns y's shape.

    Parameters
    ----------
    horizon : int, default=12
        h, the steps ahead to predict.
    cell : {"lstm", "gru", "elman"}, default="lstm"
        The cell of the encoder and the decoder.
    hidden_size : int, default=64
        Units of each layer's state.
    num_layers : int, default=1
        Stacked layers in the encoder and in the decoder.
    dropout : float, default=0.0
        Dropout between stacked layers during training.
    scale : bool, default=True
        Standardize the inputs (per feature) and the targets (per output) with the training set's mean and
        standard deviation; ``predict`` undoes it.
    input_noise : float, default=0.1
        Standard deviation of the Gaussian noise added, in the standardized units, to the encoder's inputs
        and to the decoder's teacher-forced inputs in every training batch (0: off).
    optimizer : {"adam", "adamw", "sgd", "rmsprop"}, default="adam"
    lr : float, default=0.003
    lr_schedule : {"cosine", "constant"}, default="cosine"
    weight_decay : float, default=0.0
    batch_size : int, default=8
        Windows per update (the estimators' 16 overfit the small sets forecasting is often given).
    max_updates : int or None, default=1500
        The training budget in mini-batch updates (rounded up to whole epochs).
    max_epochs : int or None, default=None
        An upper limit on the epochs.
    clip_norm : float or None, default=1.0
        Clip each update's gradient to this total 2-norm.
    early_stopping : bool, default=True
        Hold out the last ``validation_fraction`` of the windows, in the order given (for windows cut from
        one series in time order, the most recent ones), forecast them free-running after every epoch,
        stop when their error has not improved for ``n_iter_no_change`` epochs, and keep the best epoch's
        weights. Small training sets overfit long before the update budget is spent.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    warm_start : bool, default=False
        Continue from the fitted model (weights, standardization, horizon, optimizer state) instead of
        starting over; the learning-rate schedule restarts over the new call's budget. ``partial_fit``
        always continues (one epoch at the constant ``lr``, no early stopping).
    random_state : None, int or numpy Generator, default=None
        Seeds the weights, the noise and the shuffling.
    n_threads : int or None, default=None
        Kernel threads during fit and predict (``predict`` may be called from several threads at once).
    verbose : int, default=0
    dtype : {"float32", "float64"}, default="float32"

    Attributes
    ----------
    model_ : rnnfast.EncoderDecoder
        The trained network (in the standardized units).
    n_features_in_ : int
        Features per input step (for a 2-D X, its number of columns T, as scikit-learn's tables count them).
    feature_names_in_ : ndarray of str (n_features_in_,), object dtype
        The column names of a DataFrame X at fit whose names are all strings (else not defined); predict on
        X with other names raises a ValueError, with names on one side only warns (scikit-learn's convention).
    input_size_, n_outputs_ : int
        Features per input step, outputs per forecast step (k).
    input_mean_, input_scale_, target_mean_, target_scale_ : ndarray or None
        The standardization (None with ``scale=False``).
    loss_curve_ : list of float
        The mean training loss of each epoch (standardized units).
    validation_scores_ : list of float or None
        With ``early_stopping``: each epoch's validation loss (½ squared error of the free-running
        forecasts, standardized units).
    best_epoch_ : int
        The epoch whose weights the model keeps (the last one without early stopping).
    n_iter_, n_updates_ : int
        Epochs and mini-batch updates trained (over every ``partial_fit`` / warm-started ``fit``).
    horizon_ : int
        The horizon the model forecasts.

    Examples
    --------
    >>> import numpy as np, rnnfast
    >>> series = np.sin(np.arange(400) / 5)
    >>> windows = np.lib.stride_tricks.sliding_window_view(series, 30)       # (371, 30)
    >>> X, y = windows[:, :20], windows[:, 20:]                               # 20 in, 10 ahead
    >>> f = rnnfast.SequenceForecaster(horizon=10, max_updates=200, random_state=0).fit(X, y)
    >>> f.predict(X[:2]).shape
    (2, 10)
    """

    # the learned attributes rnnfast.persist saves besides the weights
    _persisted_attrs: tuple[str, ...] = ("horizon_", "n_features_in_", "input_size_", "n_outputs_", "fit_layout_",
                                         "input_mean_", "input_scale_", "target_mean_", "target_scale_",
                                         "loss_curve_", "validation_scores_", "best_epoch_", "n_iter_",
                                         "n_updates_", "_y_ndim", "_arch")
    _persisted_float_arrays: tuple[str, ...] = ("input_mean_", "input_scale_", "target_mean_", "target_scale_")
    _persisted_arrays: tuple[str, ...] = ("feature_names_in_",)     # (object arrays, kept as arrays)
    model_: EncoderDecoder
    horizon_: int
    n_outputs_: int
    loss_curve_: list[float]
    validation_scores_: Optional[list[float]]
    n_updates_: int
    input_mean_: Optional[np.ndarray]
    input_scale_: Optional[np.ndarray]
    target_mean_: Optional[np.ndarray]
    target_scale_: Optional[np.ndarray]

    def __init__(self, horizon: int = 12, *, cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 dropout: float = 0.0, scale: bool = True, input_noise: float = 0.1, optimizer: str = "adam",
                 lr: float = 0.003, lr_schedule: str = "cosine", weight_decay: float = 0.0, batch_size: int = 8,
                 max_updates: Optional[int] = 1500, max_epochs: Optional[int] = None,
                 clip_norm: Optional[float] = 1.0, early_stopping: bool = True,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10, warm_start: bool = False,
                 random_state: Any = None, n_threads: Optional[int] = None, verbose: int = 0,
                 dtype: str = "float32"):
        self.horizon = horizon
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.scale = scale
        self.input_noise = input_noise
        self.optimizer = optimizer
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_updates = max_updates
        self.max_epochs = max_epochs
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        return tags

    # ---- parameters -------------------------------------------------------------------------------
    def _checked_params(self) -> dict[str, Any]:
        p = dict(
            horizon=check_int("horizon", self.horizon, 1),
            hidden_size=check_int("hidden_size", self.hidden_size, 1),
            num_layers=check_int("num_layers", self.num_layers, 1),
            dropout=check_real("dropout", self.dropout, 0.0, 1.0, high_inclusive=False),
            scale=check_choice("scale", self.scale, (False, True)),
            input_noise=check_nonnegative("input_noise", self.input_noise),
            optimizer=check_choice("optimizer", self.optimizer, _OPTIMIZERS),
            lr=check_positive("lr", self.lr),
            lr_schedule=check_choice("lr_schedule", self.lr_schedule, ("cosine", "constant")),
            weight_decay=check_nonnegative("weight_decay", self.weight_decay),
            batch_size=check_int("batch_size", self.batch_size, 1),
            max_updates=None if self.max_updates is None else check_int("max_updates", self.max_updates, 1),
            max_epochs=None if self.max_epochs is None else check_int("max_epochs", self.max_epochs, 1),
            clip_norm=None if self.clip_norm is None else check_positive("clip_norm", self.clip_norm),
            early_stopping=check_choice("early_stopping", self.early_stopping, (False, True)),
            validation_fraction=check_real("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                           high_inclusive=False),
            n_iter_no_change=check_int("n_iter_no_change", self.n_iter_no_change, 1),
            warm_start=check_choice("warm_start", self.warm_start, (False, True)),
            n_threads=_check_n_threads(self.n_threads),
            verbose=check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool) else self.verbose, 0),
        )
        if not isinstance(self.cell, str) or self.cell not in ("lstm", "gru", "elman", "rnn"):
            raise ValueError(f"cell must be one of 'lstm', 'gru', 'elman', got {self.cell!r}")
        if p["max_updates"] is None and p["max_epochs"] is None:
            raise ValueError("max_updates and max_epochs are both None: set at least one training budget")
        try:
            p["dtype"] = resolve_dtype(self.dtype)
        except ValueError as exc:
            raise ValueError(f"dtype: {exc}") from None
        return p

    # ---- data -------------------------------------------------------------------------------------
    def _targets(self, y: Any, n: int, horizon: int) -> np.ndarray:
        """y as float64 (n, h, k)."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        t = np.asarray(y)
        if t.dtype.kind not in "biuf":
            raise ValueError(f"y must hold real numbers, got dtype {t.dtype}")
        t = t.astype(np.float64)
        if t.ndim not in (2, 3) or t.shape[:2] != (n, horizon):
            raise ValueError(f"y must have shape (n_samples, horizon) = ({n}, {horizon}) or (n_samples, horizon, k), "
                             f"got {t.shape}")
        _finite_or_raise(t, "y")
        return t if t.ndim == 3 else t[:, :, None]

    def _last_steps(self, seqs: _Sequences) -> np.ndarray:
        """Each window's last input step (n, I), in the inputs' units."""
        return np.asarray(seqs.x[seqs.ends(), np.arange(seqs.n)], np.float64)

    def _encoder_inputs(self, seqs: _Sequences) -> np.ndarray:
        x = seqs.x.astype(np.float64)
        if self.input_mean_ is not None:
            x = _standardized(x, self.input_mean_, self.input_scale_)
            if seqs.lengths is not None:
                x *= seqs.mask()[:, :, None]                                        # the padding stays 0
        return x                                                                    # (T, n, I)

    def _starts(self, seqs: _Sequences) -> np.ndarray:
        """ỹ_0 (n, k): the last input step in the targets' units when k = n_features, else zeros."""
        if self.n_outputs_ != self.input_size_:
            return np.zeros((seqs.n, self.n_outputs_))
        last = self._last_steps(seqs)
        return last if self.target_mean_ is None else _standardized(last, self.target_mean_, self.target_scale_)

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> "SequenceForecaster":
        """Train on input windows X and the ``horizon`` values after each, y; returns self.

        With ``warm_start=True`` and a fitted model, training continues from its weights, standardization
        and optimizer state (a new learning-rate schedule over this call's budget)."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X: Any, y: Any) -> "SequenceForecaster":
        """One epoch over (X, y) at the constant learning rate ``lr``, from the current model if there is one.

        The first call fixes the model (standardization, architecture, horizon). No early stopping."""
        return self._fit(X, y, partial=True)

    def _fit(self, X: Any, y: Any, partial: bool) -> "SequenceForecaster":
        p = self._checked_params()
        continuing = (partial or p["warm_start"]) and hasattr(self, "model_")
        if continuing:
            _check_unchanged(*self._fixed_at_fit(p))
        # A call that fails (bad input, a divergence, an interrupt before its first epoch is complete) leaves the
        # estimator as it was; one interrupted later keeps its last complete epoch (_fit_call).
        snapshot = _FitSnapshot(self, continuing, lambda: dict(self.model_.named_parameters()))
        try:
            _check_feature_names(self, X, reset=not continuing)         # names before values, as scikit-learn
            self._fit_call(X, y, partial, p, continuing)
        except BaseException:
            snapshot.restore(self)
            if continuing:
                self._concurrent_inference()         # the weights trained in place were put back
            raise
        self._concurrent_inference()                 # new weights: predicting threads copy them afresh
        return self

    def _fixed_at_fit(self, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parameters the fitted model was built from: (as fitted, as the checked ``p`` has them now)."""
        a = self._arch
        fitted = {k: a[k] for k in ("cell", "hidden_size", "num_layers", "dropout", "dtype")}
        fitted.update(horizon=self.horizon_, scale=self.input_mean_ is not None)
        now = {k: p[k] for k in ("hidden_size", "num_layers", "dropout", "horizon")}
        now.update(cell=_CELLS[self.cell], dtype=p["dtype"].name, scale=bool(p["scale"]))
        return fitted, now

    def _fit_call(self, X: Any, y: Any, partial: bool, p: dict[str, Any], continuing: bool) -> "SequenceForecaster":
        seqs = _check_X(X, np.dtype(np.float64))
        if continuing:
            self._check_X_fitted(seqs)
        t = self._targets(y, seqs.n, self.horizon_ if continuing else p["horizon"])   # (n, h, k)
        if continuing and t.shape[2] != self.n_outputs_:
            raise ValueError(f"y has {t.shape[2]} outputs per step, but {type(self).__name__} is expecting "
                             f"{self.n_outputs_}")
        if not continuing:
            self._start(seqs, t, y, p)
        elif getattr(self, "_optimizer", None) is None:     # unpickled or loaded: a new optimizer (and stream)
            self._optimizer = _optimizer(self.model_.parameters(), p)
            self._rng = getattr(self, "_rng", None) or _make_rng(self.random_state)
        rng, model, opt = self._rng, self.model_, self._optimizer
        _restart_lr(opt, p["lr"])
        dtype = model.dtype
        x = self._encoder_inputs(seqs).astype(dtype)                                # (T, n, I)
        t_scaled = t if self.target_mean_ is None else _standardized(t, self.target_mean_, self.target_scale_)
        tgt = np.ascontiguousarray(t_scaled.transpose(1, 0, 2), dtype=dtype)       # (h, n, k) time-major
        starts = self._starts(seqs).astype(dtype)                                   # (n, k)

        n = seqs.n
        n_val = math.ceil(p["validation_fraction"] * n) if p["early_stopping"] and not partial else 0
        if n_val and n - n_val < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no training window: "
                             f"n_samples={n}; pass more samples or early_stopping=False")
        train_idx, val_idx = np.arange(n - n_val), np.arange(n - n_val, n)          # the last windows validate
        batches = math.ceil(len(train_idx) / p["batch_size"])
        epochs = 1 if partial else _planned_epochs(p["max_updates"], p["max_epochs"], batches)
        scheduler = (optim.CosineAnnealingLR(opt, epochs * batches)
                     if p["lr_schedule"] == "cosine" and not partial else None)
        noise = float(p["input_noise"])
        curve: list[float] = list(self.loss_curve_) if continuing else []
        val_curve: list[float] = list(self.validation_scores_ or []) if continuing and n_val else []
        done_before = len(curve)
        best, best_epoch, best_state, last_state = math.inf, 0, None, None
        interrupted = False
        progress = _Progress(p["verbose"] > 0, epochs, "SequenceForecaster")
        try:
            with thread_limit(p["n_threads"]):
                for epoch in range(done_before + 1, done_before + epochs + 1):
                    model.train()
                    total = 0.0
                    for idx in np.array_split(train_idx[rng.permutation(len(train_idx))], batches):
                        lens = None if seqs.lengths is None else seqs.lengths[idx]
                        T = seqs.T if lens is None else int(lens.max())
                        xb, tb, sb = x[:T, idx], tgt[:, idx], starts[idx]
                        if noise > 0:       # jitter what the network reads: the inputs and the fed-back values
                            xb = _jittered(xb, noise, rng)
                            if lens is not None:
                                xb *= (np.arange(T)[:, None] < lens[None, :])[:, :, None]
                            fed = _jittered(tb, noise, rng)
                            sb = _jittered(sb, noise, rng)
                        else:
                            fed = tb
                        z = model(xb, fed, src_lengths=lens, start=sb)                  # (h, B, k)
                        loss, dz = mse_loss(z, tb)
                        if not math.isfinite(loss):
                            raise FloatingPointError(f"training diverged in epoch {epoch} (loss {loss}); the "
                                                     f"estimator is left as it was before this call. Lower lr "
                                                     f"(now {self.lr}) or train in dtype='float64'")
                        opt.zero_grad()
                        model.backward(dz)
                        if p["clip_norm"] is not None:
                            clip_grad_norm_(model.parameters(), p["clip_norm"])
                        opt.step()
                        if scheduler is not None:
                            scheduler.step()
                        total += float(loss) * len(idx)
                    metrics = {"loss": total / len(train_idx)}
                    if n_val:
                        # the validation windows forecast as predict does: free running
                        lens = None if seqs.lengths is None else seqs.lengths[val_idx]
                        z = model.decode(x[:, val_idx], self.horizon_, src_lengths=lens, start=starts[val_idx])
                        metrics["val_loss"] = float(mse_loss(z, tgt[:, val_idx])[0])
                    # the epoch is complete: record it and the weights it ends with, together
                    last_state = model.state_dict()
                    curve.append(metrics["loss"])
                    if n_val:
                        val_curve.append(metrics["val_loss"])
                        if val_curve[-1] < best:
                            best, best_epoch, best_state = val_curve[-1], epoch, last_state
                    progress.update(epoch - done_before, metrics)
                    if n_val and epoch - max(best_epoch, done_before) >= p["n_iter_no_change"]:
                        break
        except KeyboardInterrupt:
            if last_state is None:          # no complete epoch: _fit puts the estimator back as it was
                raise
            interrupted = True
        finally:
            progress.close()
        # keep the best epoch's weights (early stopping), or the last complete epoch's after an interrupt
        kept = best_state if best_state is not None else (last_state if interrupted else None)
        if kept is not None:
            model.load_state_dict(kept)
        model.eval()
        self.loss_curve_ = curve
        self.validation_scores_ = val_curve if n_val else None
        self.best_epoch_ = best_epoch if n_val else len(curve)
        self.n_iter_ = len(curve)
        self.n_updates_ = (self.n_updates_ if continuing else 0) + (len(curve) - done_before) * batches
        if interrupted:
            _warn_interrupted(len(curve) - done_before, kept is best_state)
        return self

    def _start(self, seqs: _Sequences, t: np.ndarray, y: Any, p: dict[str, Any]) -> None:
        """Fix what a new model is made of (input shape, standardization, architecture) and build it, with
        its optimizer."""
        for name in self._persisted_attrs + ("model_",):
            self.__dict__.pop(name, None)                     # from an earlier fit
        self._rng = _make_rng(self.random_state)
        seed = int(self._rng.integers(0, 2**62))
        self.horizon_ = p["horizon"]
        self.n_features_in_ = seqs.T if seqs.layout == "2d" else seqs.x.shape[2]
        self.input_size_ = seqs.x.shape[2]
        self.n_outputs_ = t.shape[2]
        self.fit_layout_ = seqs.layout
        self._y_ndim = np.ndim(y)
        if p["scale"]:
            # standardization alone: the decoder's inputs are targets, in the inputs' units
            _, _, self.input_mean_, self.input_scale_ = _input_scaling(seqs, heavy_tails=False)
            self.target_mean_, self.target_scale_ = _mean_and_scale(t.reshape(-1, self.n_outputs_), None)
        else:
            self.input_mean_ = self.input_scale_ = self.target_mean_ = self.target_scale_ = None
        self._arch = {"cell": _CELLS[self.cell], "nonlinearity": "tanh", "hidden_size": p["hidden_size"],
                      "num_layers": p["num_layers"], "dropout": p["dropout"], "dtype": p["dtype"].name}
        self.model_ = self._make_layers(seed)
        self._optimizer = _optimizer(self.model_.parameters(), p)

    def _make_layers(self, seed_rnn: Optional[int] = None, seed_head: Optional[int] = None) -> EncoderDecoder:
        """The encoder–decoder that ``_arch``, ``input_size_`` and ``n_outputs_`` (fixed at fit) describe, its
        encoder, decoder and head all seeded by ``seed_rnn`` (``seed_head``, of the other estimators' two groups
        of layers, is unused; ``_ConcurrentForward._forward`` builds predicting threads' copies with neither)."""
        a = self._arch
        return EncoderDecoder(self.input_size_, self.n_outputs_, a["hidden_size"], cell=a["cell"],
                              num_layers=a["num_layers"], nonlinearity=a["nonlinearity"], dropout=a["dropout"],
                              dtype=a["dtype"], seed=seed_rnn)

    # ---- weights, pickling, saving ----------------------------------------------------------------
    def _get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every weight under the model's names: ``encoder.<torch name>``, ``decoder.…``, ``head.…``."""
        return self.model_.state_dict()

    def _weight_spec(self) -> Iterator[tuple[str, tuple[int, ...], str]]:
        """(name, shape, dtype) of every weight ``_set_weights`` takes, from ``_arch``, ``input_size_`` and
        ``n_outputs_``, without building a layer (``load`` checks a file against it first)."""
        a = self._arch
        dtype = resolve_dtype(a["dtype"]).name
        k = check_int("n_outputs_", self.n_outputs_, 1)
        yield from _recurrent_weight_spec("encoder", a, check_int("input_size_", self.input_size_, 1), dtype)
        yield from _recurrent_weight_spec("decoder", a, k, dtype)
        yield "head.weight", (k, check_int("hidden_size", a["hidden_size"], 1)), dtype
        yield "head.bias", (k,), dtype

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Rebuild ``model_`` from ``_arch`` with these weights; names, shapes and dtypes must match."""
        model = self._make_layers(*_reload_seeds(self.random_state, 1))
        _copy_weights(dict(model.named_parameters()), weights)
        model.eval()
        self.model_ = model
        self._concurrent_inference()

    def __getstate__(self) -> dict[str, Any]:
        # not the optimizer (it holds the model's parameters): a warm start after unpickling starts a new one;
        # nor the threads' state (_ConcurrentForward's)
        state = super().__getstate__()
        state.pop("_optimizer", None)
        return state

    def save(self, path: Any) -> str:
        """Write the fitted model to ``path`` (.npz of weights + JSON metadata); see :func:`rnnfast.load`."""
        return save(self, path)

    # ---- predict ----------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 f"appropriate arguments before using this estimator.")

    def _check_X_fitted(self, seqs: _Sequences) -> _Sequences:
        """``seqs`` checked against the shape the model was fitted on."""
        if seqs.layout == "2d" and self.fit_layout_ == "2d" and seqs.T != self.n_features_in_:
            raise ValueError(f"X has {seqs.T} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        if seqs.x.shape[2] != self.input_size_:
            raise ValueError(f"X has {seqs.x.shape[2]} features per step, but {type(self).__name__} is "
                             f"expecting {self.input_size_}")
        return seqs

    def _forecast(self, X: Any) -> np.ndarray:
        """Free-running forecasts (n, h, k) in the targets' units, from any number of threads at once
        (``_ConcurrentForward._forward``: a thread that finds ``model_`` in use decodes with its own copy)."""
        self._check_fitted()
        _check_feature_names(self, X, reset=False)
        z = self._forward(self._check_X_fitted(_check_X(X, np.dtype(np.float64))))   # (n, h, k)
        if self.target_mean_ is not None:
            z = z * np.asarray(self.target_scale_) + np.asarray(self.target_mean_)
        return z

    def _forward_with(self, model: EncoderDecoder, seqs: _Sequences, idx: Optional[np.ndarray]) -> np.ndarray:
        """``model``'s free-running forecasts of the windows ``idx`` of ``seqs`` (all for None), (n, h, k) in
        float64, standardized units, in chunks of ``_PREDICT_CHUNK`` windows."""
        idx = np.arange(seqs.n) if idx is None else idx
        model.eval()
        x = self._encoder_inputs(seqs).astype(model.dtype)                          # (T, n, I)
        starts = self._starts(seqs).astype(model.dtype)                             # (n, k)
        parts = []
        with thread_limit(_check_n_threads(self.n_threads)):
            for s in range(0, len(idx), _PREDICT_CHUNK):
                rows = idx[s:s + _PREDICT_CHUNK]
                lens = None if seqs.lengths is None else seqs.lengths[rows]
                T = seqs.T if lens is None else int(lens.max())
                z = model.decode(x[:T, rows], self.horizon_, src_lengths=lens, start=starts[rows])  # (h, B, k)
                parts.append(np.asarray(z, np.float64).transpose(1, 0, 2))
        return np.concatenate(parts)                                                # (n, h, k)

    def predict(self, X: Any) -> np.ndarray:
        """Forecasts (float64) shaped like the y of fit: (n_samples, horizon) or (n_samples, horizon, k)."""
        z = self._forecast(X)
        return z[:, :, 0] if self._y_ndim == 2 else z

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of the forecasts, each (horizon step, output) a column, averaged uniformly."""
        z = self._forecast(X)
        sample_weight = _checked_sample_weight(sample_weight, len(z))
        t = self._targets(y, len(z), z.shape[1])
        return _r2(t.reshape(len(t), -1), z.reshape(len(z), -1), sample_weight)
