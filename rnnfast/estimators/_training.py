"""The estimators' training loop: epochs of shuffled equal-sized mini-batches, each an update (or, with
``tbptt``, one per chunk) through the shared engine (:mod:`rnnfast._engine`), the cosine schedule, early
stopping, and what a KeyboardInterrupt keeps."""
from __future__ import annotations

import math
import numbers
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .. import distributed, optim
from .._engine import Diverged, Engine
from .._threads import thread_limit
from ..tbptt import chunk_bounds
from ._compat import ConvergenceWarning, warn_at_caller
from ._data import _epoch_batches, _jittered, _Sequences
from ._windows import _offset_windowed, _windowed

_MIN_EPOCH_UPDATES = 20      # early stopping: an epoch of fewer updates counts as a fraction of one
_AUTO_UPDATES = 2000         # max_updates="auto": this many updates ...
_AUTO_MIN_EPOCHS = 10        # ... or this many epochs when that is more (a large training set) ...
# ... but no more epochs than this many multiply-adds of the recurrent layers' forward pass allow (Σ over the
# epochs' real steps), so that a fit stays within seconds. On 2 cores (AMD EPYC Zen 4) that work took 15–35 s,
# by shape: 18 s for 3 epochs of 100,000 series (30 windowed steps of 24 features, LSTM 64, batches of 128;
# benchmarks/large_training_sets.py), 16 s for per-step targets of 1,000 steps (benchmarks/long_sequences.py);
# PigCVP's default fit, the largest of benchmarks/model_quality.py's sets, is 55% of it (none reaches it)
_AUTO_MAX_MACS = 2.5e11
_AUTO_EPOCH_UPDATES = 1000   # batch_size="auto": the smallest of 16, 32, 64, 128 that keeps an epoch to this many
_AUTO_BATCH_SIZES = (16, 32, 64, 128)   # updates (16 up to 16,000 sequences, 128 from 64,001)
_ADAPTIVE = ("adam", "adamw", "rmsprop")   # the optimizers whose lr batch_size="auto" scales
_PROGRESS_LINES = 10         # verbose without tqdm: about this many lines per fit


# the start of the warning of a fit that Ctrl-C ended (the probes of SequenceRegressor's network_weight look for it)
_INTERRUPTED = "Training interrupted by user"


def _warn_interrupted(epochs: int, best: bool) -> None:
    """Warn, as scikit-learn's MLP does, that Ctrl-C ended a fit after ``epochs`` complete epochs, whose best
    (``best``, with early stopping) or last complete epoch's weights the model keeps."""
    warn_at_caller(f"{_INTERRUPTED} after {epochs} epoch(s): the model keeps the weights of its "
                   f"{'best' if best else 'last complete'} epoch.", ConvergenceWarning)


def _planned_epochs(max_updates: Any, max_epochs: Optional[int], updates: float,
                    macs: Optional[float] = None) -> int:
    """The whole epochs a fit plans for ``updates`` updates per epoch: ⌈max_updates / updates⌉ (at least one),
    "auto" ⌈2000 / updates⌉ or 10 epochs, whichever is more, but at most ⌊_AUTO_MAX_MACS / macs⌋ (at least
    one) for an epoch of ``macs`` multiply-adds (None: no such limit), and at most ``max_epochs`` (None: no
    limit)."""
    by_updates: float = (max(math.ceil(_AUTO_UPDATES / updates), _AUTO_MIN_EPOCHS) if max_updates == "auto" else
                         math.ceil(max_updates / updates) if max_updates is not None else math.inf)
    if max_updates == "auto" and macs is not None and macs > 0:
        by_updates = min(by_updates, max(1, math.floor(_AUTO_MAX_MACS / macs)))
    return int(min(max_epochs if max_epochs is not None else math.inf, by_updates))


def _auto_batch_size(n: int) -> int:
    """batch_size="auto" for n training sequences: the smallest of 16, 32, 64 and 128 that cuts an epoch into
    at most 1000 batches (128 beyond): larger batches cost less per sequence, and a large set still gets
    thousands of updates at them. The fit then scales lr by √(B / 16), the square-root rule for adaptive
    optimizers (Malladi et al. 2022): on benchmarks/large_training_sets.py's 100,000 series, 3 epochs at 128
    gave accuracy 0.922 at lr, 0.936 at lr·√8 (0.942 for 10 epochs at 16, in 6 times the time); on 30,000 at
    32, 0.932 and 0.936."""
    return next((b for b in _AUTO_BATCH_SIZES if math.ceil(n / b) <= _AUTO_EPOCH_UPDATES), _AUTO_BATCH_SIZES[-1])


def _batch_and_lr(p: dict[str, Any], n: int) -> tuple[int, float]:
    """The largest mini-batch for n training sequences and the learning rate it trains at, from the checked
    parameters ``p``: batch_size="auto" resolved by _auto_batch_size, and then, above 16 with an adaptive
    optimizer, lr · √(B / 16) (the square-root rule for them)."""
    if p["batch_size"] != "auto":
        return p["batch_size"], p["lr"]
    batch_size = _auto_batch_size(n)
    return batch_size, p["lr"] * (math.sqrt(batch_size / 16) if p["optimizer"] in _ADAPTIVE else 1.0)


def _recurrent_macs(steps: float, input_size: int, p: dict[str, Any]) -> float:
    """Multiply-adds of the recurrent layers' forward pass over ``steps`` steps of ``input_size`` features:
    per step, layer and direction, gates·H·(I + H), with 4 gates for an LSTM, 3 for a GRU, 1 for Elman."""
    gates = {"lstm": 4, "gru": 3}.get(p["cell"], 1)
    dirs, H = (2 if p["bidirectional"] else 1), p["hidden_size"]
    per_step = sum(dirs * gates * H * ((input_size if layer == 0 else dirs * H) + H)
                   for layer in range(p["num_layers"]))
    return float(steps) * per_step


def _rows_of(output: tuple[np.ndarray, Any], rows: np.ndarray) -> tuple[np.ndarray, Any]:
    """A recurrent layer's ``(out, state)`` restricted to the batch rows ``rows``: out (k, B, F) → (k, m, F),
    each state (L, B, H) → (L, m, H)."""
    out, state = output
    pick = (lambda a: a[:, rows])
    return pick(out), (tuple(pick(a) for a in state) if isinstance(state, tuple) else pick(state))


def _scatter_rows(grad: tuple[np.ndarray, Any], rows: np.ndarray, output: tuple[np.ndarray, Any]
                  ) -> tuple[np.ndarray, Any]:
    """The ``(dout, dstate)`` of the batch rows ``rows`` placed in zeros shaped as the whole ``output``
    (the other rows did not reach the loss); a None state gradient stays None."""
    def place(g: np.ndarray, like: np.ndarray) -> np.ndarray:
        full = np.zeros(like.shape, like.dtype)                # (k or L, B, F or H)
        full[:, rows] = g
        return full

    (dout, dstate), (out, state) = grad, output
    if isinstance(state, tuple):
        dstate = tuple(None if g is None else place(g, a) for a, g in zip(state, dstate or (None,) * len(state)))
    elif dstate is not None:
        dstate = place(dstate, state)
    return place(dout, out), dstate


class _Progress:
    """Progress on stderr: a tqdm bar when tqdm is installed, else about ``_PROGRESS_LINES`` plain lines."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        self.enabled, self.total, self.desc = enabled, total, desc
        self.every = max(1, math.ceil(total / _PROGRESS_LINES))
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=True)

    def update(self, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self.bar.update(1)
        elif epoch % self.every == 0 or epoch == self.total:
            parts = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"{self.desc}: epoch {epoch}/{self.total}: {parts}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """One line before the epochs (the plan of the fit)."""
        if self.enabled:
            print(f"{self.desc}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _restart_lr(opt: optim.Optimizer, lr: float) -> None:
    """Each call's schedule starts from ``lr``: set it, and drop the "initial_lr" an earlier call's schedule
    recorded (a scheduler takes its base from there, as torch's does)."""
    opt.lr = lr
    for group in opt.param_groups:
        group.pop("initial_lr", None)


class _Interrupted(Exception):
    """A KeyboardInterrupt during fit, carried to where the estimator's state is settled."""


class _TrainingLoop:
    """The training loop of :class:`~rnnfast.estimators._base._SequenceEstimator` (a mixin: the estimator
    provides the layers, the optimizer, the loss and the attributes it reads)."""

    _rng: np.random.Generator
    _optimizer: optim.Optimizer
    _output: str
    _arch: dict[str, Any]
    _auto_crop: float                # random_crop="auto"'s crop where a window is used
    model_: Any                      # Sequential(rnn_, Readout, head_)
    rnn_: Any
    head_: Any
    history_: dict[str, list[float]]
    lr: float
    clip_norm: Optional[float]
    random_state: Any
    validation_fraction: Optional[float]
    _stop: Optional[threading.Event] = None   # set by another thread: stop as at a KeyboardInterrupt (probe fits)

    if TYPE_CHECKING:                                  # provided by the estimator
        def _loss(self, z: np.ndarray, target: np.ndarray,
                  mask: Optional[np.ndarray]) -> tuple[float, np.ndarray]: ...

        def _evaluate(self, seqs: _Sequences, targets: np.ndarray, idx: np.ndarray,
                      weights: Optional[np.ndarray] = None) -> tuple[float, float]: ...

    def _mixed_loss(self, z: np.ndarray, target: np.ndarray, partner: np.ndarray, lam: float,
                    weights: Optional[np.ndarray], partner_weights: Optional[np.ndarray]
                    ) -> tuple[float, float, np.ndarray]:
        """mixup's loss of outputs z (m, O) of mixed inputs, each label weighted by its own sequence's weight:
            L = Σ_b [λ·w_b·ℓ(z_b, y_b) + (1 − λ)·w_π(b)·ℓ(z_b, y_π(b))] / W,   W = Σ_b λ·w_b + (1 − λ)·w_π(b)
        (w = 1 without weights: λ·L(y) + (1 − λ)·L(y'); for softmax cross-entropy the loss against the soft
        target λ·e_y + (1 − λ)·e_y'). Returns (L, W, ∂L/∂z)."""
        if weights is None and partner_weights is None:     # the shares λ and 1 − λ of W = m
            w1 = w2 = None
            share, total = lam, float(z.shape[0])
        else:
            w1 = lam * (np.ones(z.shape[0]) if weights is None else weights)                    # (m,)
            w2 = (1.0 - lam) * (np.ones(z.shape[0]) if partner_weights is None else partner_weights)
            total = float(w1.sum() + w2.sum())
            share = float(w1.sum()) / total                 # of the first labels in W
        value, dz = self._loss(z, target, w1) if share > 0 else (0.0, np.zeros_like(z))
        dz = share * dz                                     # a copy: the loss returns the same buffer each call
        if share < 1:
            value2, dz2 = self._loss(z, partner, w2)
            dz += (1.0 - share) * dz2
            value = share * value + (1.0 - share) * value2
        return value, total, dz

    def _beside_training(self, p: dict[str, Any], planned: float, partial: bool, continuing: bool) -> Optional[int]:
        """Start what runs beside the training about to run (planned: its work in multiply-adds): nothing here,
        SequenceRegressor's probe fits. Returns the kernel threads the training itself runs on."""
        return p["n_threads"]

    def _train(self, steps: _Sequences, targets: np.ndarray, weights: Optional[np.ndarray], p: dict[str, Any],
               comm: Optional[distributed.Communicator], partial: bool, continuing: bool) -> Optional[float]:
        """Train on ``steps``, the scaled sequences before the time-delay window: the batches are windowed
        from them (at a random offset with ``window_offset="random"``), the validation set on the fixed grid.
        Returns the work planned, the multiply-adds of the recurrent layers' forward passes over its epochs, or
        None after an interrupt (the user asked to stop)."""
        rng = self._rng
        k = getattr(self, "window_", 1)
        seqs = _windowed(steps, k, getattr(self, "window_span_", 1))
        # each batch windowed afresh: at random offsets, or from random crops
        crop = self.random_crop_ = self._resolved_crop(p, k)
        self.input_noise_, self.window_offset_ = p["input_noise"], p["window_offset"]     # predict follows them
        crop_from = steps if (p["window_offset"] == "random" and k > 1) or crop > 0 else None
        if comm is not None:
            data = [seqs.x, targets] + ([] if seqs.lengths is None else [seqs.lengths])
            distributed.check_same_on_all_ranks(comm, data, "X and y")
            if not isinstance(self.random_state, numbers.Integral):
                rng = self._rng = np.random.default_rng(distributed.shared_seed(comm, rng))
        n = seqs.n
        validating = p["early_stopping"] and not partial
        n_val = math.ceil(p["validation_fraction"] * n) if validating and p["validation_fraction"] > 0 else 0
        early = validating and p["n_iter_no_change"] is not None          # stop and keep the best epoch
        if n_val and n - n_val < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no training sequence: "
                             f"n_samples={n}; pass more samples or validation_fraction=None")
        order = rng.permutation(n) if n_val else np.arange(n)
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        targets = self._network_targets(steps, targets, weights, train_idx, val_idx, continuing, p)
        params = self.model_.parameters()                                 # the layer's, then the head's
        # data-parallel: rank 0's initial weights everywhere, and the gradients in one flat buffer
        dp = None if comm is None else distributed.DataParallel(params, comm)
        opt = self._optimizer
        batch_size, lr = _batch_and_lr(p, len(train_idx))
        self.batch_size_ = batch_size
        lr_now = f"{self.lr}" + (f", trained at {lr:.3g} for batches of {batch_size}" if lr != p["lr"] else "")
        _restart_lr(opt, lr)
        if p["balanced_chunks"]:       # tbptt="auto": ⌈T/128⌉ chunks of k = ⌈T / ⌈T/128⌉⌉ steps, no short tail
            T_max = seqs.T if seqs.lengths is None else int(seqs.lengths.max(initial=1))
            p = {**p, "tbptt": -(-T_max // -(-T_max // p["tbptt"]))}
        self.tbptt_ = p["tbptt"]
        engine = Engine(self.model_, None, opt, p["clip_norm"], dp, check_finite=True)
        batches = math.ceil(len(train_idx) / batch_size)                  # per epoch
        epoch_steps = len(train_idx) * seqs.T if seqs.lengths is None else int(seqs.lengths[train_idx].sum())
        epoch_updates = self._steps_per_epoch(seqs, weights, train_idx, batches, p)
        epoch_macs = _recurrent_macs(epoch_steps, seqs.x.shape[2], p)
        epochs = 1 if partial else _planned_epochs(p["max_updates"], p["max_epochs"], epoch_updates, epoch_macs)
        uncapped = 1 if partial else _planned_epochs(p["max_updates"], p["max_epochs"], epoch_updates)
        threads = self._beside_training(p, epochs * epoch_macs, partial, continuing)
        scheduler = (optim.CosineAnnealingLR(opt, epochs * batches)
                     if p["lr_schedule"] == "cosine" and not partial else None)
        patience = (p["n_iter_no_change"] or 0) * max(1.0, _MIN_EPOCH_UPDATES / batches)   # in epochs

        loss_curve = list(getattr(self, "loss_curve_", [])) if continuing else []
        val_scores = list(getattr(self, "validation_scores_", None) or []) if continuing else []
        val_losses = list(self.history_.get("val_loss", [])) if continuing and hasattr(self, "history_") else []
        n_updates = getattr(self, "n_updates_", 0) if continuing else 0
        seen = getattr(self, "t_", 0) if continuing else 0
        done_before = len(loss_curve)
        best, best_epoch, best_val_score, since_best = math.inf, 0, None, 0.0
        best_state = last_state = None
        interrupted = False
        progress = _Progress(p["verbose"] > 0 and (comm is None or comm.rank == 0), epochs,
                             f"{type(self).__name__}[{p['cell']}]")
        progress.note(f"{epochs} epoch{'s' if epochs != 1 else ''} of {batches} batches of at most {batch_size} "
                      f"sequences, lr {lr:.3g}" + (f", tbptt {p['tbptt']}" if p["tbptt"] is not None else "") +
                      (f"; max_updates='auto' stopped at its work limit ({_AUTO_MAX_MACS:.2g} multiply-adds), "
                       f"{uncapped} epochs without it" if epochs < uncapped else "") + self._plan_note())
        try:
            with thread_limit(threads):
                for epoch in range(1, epochs + 1):
                    self.model_.train()
                    perm = train_idx[rng.permutation(len(train_idx))]
                    total, count = 0.0, 0.0
                    for batch, idx in enumerate(_epoch_batches(perm, batches, seqs.lengths, p["bucket"], rng), 1):
                        if self._stop is not None and self._stop.is_set():
                            raise KeyboardInterrupt
                        try:
                            s, c, updates = self._train_batch(seqs, targets, weights, idx, engine, p, crop_from,
                                                              crop)
                        except Diverged as exc:
                            self.model_.eval()
                            raise FloatingPointError(
                                f"training diverged in epoch {epoch}, batch {batch}: the loss is {exc.loss} or a "
                                f"gradient is not finite; the model keeps the weights from before that update. "
                                f"Lower lr (now {lr_now}), set clip_norm (now {self.clip_norm}), shorten the "
                                f"recurrence (window, tbptt) or train in dtype='float64'") from None
                        if scheduler is not None:
                            scheduler.step()
                        total, count = total + s, count + c
                        n_updates += updates
                        seen += len(idx)
                    if count == 0:          # nothing weighed anything (a zero-weight partial_fit batch): no
                        continue            # update was made, so no epoch to record
                    epoch_loss = total / count
                    if not math.isfinite(epoch_loss):
                        raise FloatingPointError(
                            f"the training loss diverged to {epoch_loss} in epoch {epoch}; lower lr (now "
                            f"{lr_now}), shorten the recurrence (window, tbptt) or train in dtype='float64'")
                    monitored = epoch_loss
                    if n_val:
                        val_loss, val_score = self._evaluate(seqs, targets, val_idx, weights)
                        monitored = val_loss
                    # the epoch is complete: record it and the weights it ends with, together
                    loss_curve.append(epoch_loss)
                    if n_val:
                        val_losses.append(val_loss)
                        val_scores.append(val_score)
                    last_state = (self.model_.state_dict(), n_updates, seen)
                    progress.update(epoch, {"loss": epoch_loss, **({"val_loss": val_loss, "val_score": val_score}
                                                                    if n_val else {})})
                    if early:
                        since_best = 0.0 if monitored < best - p["tol"] else since_best + 1
                        if monitored < best:
                            best, best_epoch, best_state = monitored, done_before + epoch, last_state
                            best_val_score = val_score if n_val else None
                        if since_best >= patience:
                            break
        except KeyboardInterrupt:
            if last_state is None:
                raise _Interrupted from None
            interrupted = True
        finally:
            progress.close()
        # keep the best epoch's weights (early stopping), or the last complete epoch's after an interrupt
        kept = best_state if early and best_state is not None else (last_state if interrupted else None)
        if kept is not None:
            self.model_.load_state_dict(kept[0])
        self.model_.eval()
        if interrupted:
            assert last_state is not None
            n_updates, seen = last_state[1], last_state[2]
        self.loss_curve_ = loss_curve
        # the scores of the epochs that had a validation split, this call's and those before (a warm start
        # after a fit without one has fewer than loss_curve_; partial_fit's epochs add none)
        self.validation_scores_ = val_scores if n_val or val_scores else None
        self.best_validation_score_ = float(best_val_score) if best_val_score is not None else None
        self.best_loss_ = None if n_val or not loss_curve else float(min(loss_curve))
        self.n_iter_ = self.n_epochs_ = len(loss_curve)
        self.n_updates_, self.t_ = n_updates, seen
        self.history_ = {"loss": list(loss_curve)}
        if n_val or val_losses:
            self.history_.update(val_loss=val_losses, val_score=list(val_scores))
        if early and best_epoch:
            self.best_epoch_ = best_epoch
        else:
            self.__dict__.pop("best_epoch_", None)
        if interrupted and not (self._stop is not None and self._stop.is_set()):    # (a probe told to stop: no one
            _warn_interrupted(len(loss_curve) - done_before, kept is best_state)       # asked, no one to tell)
        return None if interrupted else epochs * epoch_macs

    def _network_targets(self, steps: _Sequences, targets: np.ndarray, weights: Optional[np.ndarray],
                         train_idx: np.ndarray, val_idx: np.ndarray, continuing: bool,
                         p: dict[str, Any]) -> np.ndarray:
        """The targets the network learns, from the encoded ``targets`` (the regressor's ``ridge`` fits its
        linear part on the training rows ``train_idx`` here, after the validation split, and returns its
        residuals); these are the targets themselves."""
        return targets

    def _plan_note(self) -> str:
        """What verbose=1's plan line adds about the targets the network learns (the regressor's ridge)."""
        return ""

    def _resolved_crop(self, p: dict[str, Any], k: int) -> float:
        """``random_crop`` of the checked parameters ``p`` for a window of k steps: "auto" is ``_auto_crop``
        where the sequences get a window (k > 1), else 0."""
        if p["random_crop"] != "auto":
            return p["random_crop"]
        return self._auto_crop if k > 1 else 0.0

    def _steps_per_epoch(self, seqs: _Sequences, weights: Optional[np.ndarray], train_idx: np.ndarray,
                         batches: int, p: dict[str, Any]) -> int:
        """The optimizer steps an epoch makes (at least 1), counted on one draw of its batches (_train_batch):
        a batch steps after each chunk that scores, and only its sequences of nonzero weight score. A chunk
        is the whole batch without ``tbptt`` k, else k steps: ``output="sequence"`` scores in every chunk up
        to its longest sequence's end, ⌈max T_b/k⌉ steps, ``output="last"`` in each chunk where one of its
        sequences ends."""
        lengths = np.full(seqs.n, seqs.T) if seqs.lengths is None else seqs.lengths                    # (n,)
        k = p["tbptt"] if p["tbptt"] is not None else max(int(lengths.max(initial=1)), 1)
        steps = 0
        plan_rng = np.random.default_rng(0)                     # (the fit's own stream stays untouched)
        for idx in _epoch_batches(plan_rng.permutation(train_idx), batches, seqs.lengths, p["bucket"], plan_rng):
            scoring = idx if weights is None else idx[weights[idx] > 0]
            if scoring.size:
                chunks = -(-lengths[scoring] // k)                          # (m,) the chunk where each one ends
                steps += int(chunks.max()) if self._output == "sequence" else len(np.unique(chunks))
        return max(steps, 1)

    def _train_batch(self, seqs: _Sequences, targets: np.ndarray, weights: Optional[np.ndarray],
                     idx: np.ndarray, engine: Engine, p: dict[str, Any],
                     crop_from: Optional[_Sequences] = None, crop: float = 0.0) -> tuple[float, float, int]:
        """One mini-batch: one update per truncation chunk (one chunk = full BPTT). ``seqs`` are windowed;
        with ``crop_from`` (the same sequences before the window) the batch is windowed afresh from each
        sequence's own random offset instead (``window_offset="random"``), and first cropped to a random
        segment with ``crop`` > 0 (``random_crop``, resolved).

        Data-parallel (``engine.dp``): ``idx`` is the whole batch, which fixes the chunks and the updates;
        this rank runs its shard of it (possibly none of a chunk's sequences) and each update first
        averages the ranks' gradients. Returns (Σ loss·entries, entries) over the chunks of the whole
        batch, for the epoch's mean training loss, and the optimizer steps made (the chunks that scored).
        """
        dp = engine.dp
        idx_global = idx
        cols = idx                                                                 # (B,) the batch's columns of seqs
        if crop_from is not None:
            seqs = _offset_windowed(crop_from, idx, getattr(self, "window_", 1), self._rng,
                                    p["window_offset"] == "random", crop, getattr(self, "window_span_", 1))
            cols = np.arange(len(idx))
        lengths = None if seqs.lengths is None else seqs.lengths[cols]            # (B,)
        T = seqs.T if lengths is None else int(lengths.max())
        batch_ends = np.full(len(idx), T, np.int64) if lengths is None else lengths   # (B,) steps per sequence
        bounds = chunk_bounds(T, p["tbptt"] if p["tbptt"] is not None else max(T, 1))
        alpha = p["mixup"]                                                         # (output="last" only)
        lam, partner = 1.0, None
        if alpha > 0:                   # mixup: each position b of the batch mixed with position perm[b]
            lam = float(self._rng.beta(alpha, alpha))
            partner = self._rng.permutation(len(idx))                              # (B_global,)
        sigma = p["input_noise"]
        noise = None
        if sigma > 0 and dp is not None:   # the whole batch's draw, so each rank adds its columns of it
            noise = np.zeros((T, len(idx), seqs.x.shape[2]), seqs.x.dtype)        # (T, B_global, I)
            _jittered(noise, sigma, self._rng, out=noise)                          # σ·z in place
        pos = np.arange(len(idx)) if dp is None else dp.shard(np.arange(len(idx)))  # (B,) this rank's positions

        def batch_x(at: np.ndarray) -> np.ndarray:
            """The (jittered) inputs of the batch's positions ``at`` (T, len(at), I), a copy (single process:
            the whole batch, its own fresh draw; data-parallel: these positions' columns of the batch's draw)."""
            if dp is None and crop_from is not None and at is pos:     # the batch's own fresh crop: no copy
                x = seqs.x[:T]                                                     # (T, B, I)
            else:
                x = seqs.x[:T, cols[at]]                                           # (T, B, I)
            if sigma > 0:                                    # jittered inputs: a fresh sample every update
                if noise is None:                            # x is this batch's own copy: jittered in place
                    x = _jittered(x, sigma, self._rng, out=x if x.flags.c_contiguous else None)
                else:                                        # these positions' columns of the whole draw
                    x = x + noise[:, at]
                if lengths is not None:                      # the padding stays 0
                    for b in np.flatnonzero(batch_ends[at] < T).tolist():
                        x[batch_ends[at][b]:, b] = 0
            return x

        x = batch_x(pos)                                                           # (T, B, I)
        if partner is not None:         # x_b := λ·x_b + (1 − λ)·x_perm[b], running to the longer one's end
            x_partner = x[:, partner] if dp is None else batch_x(partner[pos])     # (T, B, I) with their noise
            x *= lam
            x += (1.0 - lam) * x_partner
            batch_ends = np.maximum(batch_ends, batch_ends[partner])              # (B_global,)
            if lengths is not None:
                lengths = batch_ends
        idx, ends = (idx, batch_ends) if dp is None else (dp.shard(idx), dp.shard(batch_ends))  # this rank's
        tgt = targets[idx] if self._output == "last" else targets[:T, idx]
        mates = None if partner is None else idx_global[partner[pos]]             # (B,) the partners' sequences
        tgt_mix = None if mates is None else targets[mates]                        # (B,) their targets
        w = None if weights is None else weights[idx]                              # (B,)
        w_mix = None if weights is None or mates is None else weights[mates]       # (B,) their weights
        L, B, H = p["num_layers"] * (2 if p["bidirectional"] else 1), len(idx), p["hidden_size"]
        lstm = p["cell"] == "lstm"
        h = np.zeros((L, B, H), p["dtype"])                                        # state carried over chunks
        c = np.zeros((L, B, H), p["dtype"]) if lstm else None
        loss_sum, entries, steps = 0.0, 0.0, 0
        for s, e in bounds:
            running = batch_ends > s
            if not running.any():
                break
            # the batch updates after a chunk that scores something: every step, or a sequence's last step
            update = self._output == "sequence" or bool(np.any(running & (batch_ends <= e)))
            rows = np.flatnonzero(ends > s)                                        # sequences still running
            all_rows = rows.size == B
            lens = np.minimum(ends[rows] - s, e - s)                               # (B',) steps in this chunk

            def objective(output: tuple[np.ndarray, Any]) -> tuple[float, float, Optional[tuple[Any, Any]]]:
                # model_ = Sequential(rnn_, Readout, head_): the layer ran in the engine, the rest runs here
                readout, head = self.model_[1], self.model_[2]
                if self._output == "last":
                    done = np.flatnonzero(ends[rows] <= e)                         # sequences ending here
                    wd = None if w is None else w[rows[done]]
                    if not done.size or (wd is not None and not wd.any()):
                        return 0.0, 0.0, None                                      # nothing scored here
                    whole = done.size == output[0].shape[1]
                    z = head(readout(output if whole else _rows_of(output, done), lengths=lens[done]))  # (m, O)
                    if tgt_mix is None:
                        value, dz = self._loss(z, tgt[rows[done]], wd)
                        n_scored = float(done.size if wd is None else wd.sum())
                    else:
                        value, n_scored, dz = self._mixed_loss(z, tgt[rows[done]], tgt_mix[rows[done]], lam, wd,
                                                               None if w_mix is None else w_mix[rows[done]])
                    grad = readout.backward(head.backward(dz))                     # (dout, dstate) of the m
                    return value, n_scored, grad if whole else _scatter_rows(grad, done, output)
                z = head(readout(output, lengths=lens))                            # (k, B', O)
                t_chunk = tgt[s:e] if all_rows else tgt[s:e, rows]
                mask = (np.arange(e - s)[:, None] < lens[None, :]).astype(np.float64) \
                    if lengths is not None else None
                if w is not None:
                    mask = (np.ones((e - s, rows.size)) if mask is None else mask) * w[rows][None, :]
                    if not mask.any():
                        return 0.0, 0.0, None                                      # every entry weighs 0
                value, dz = self._loss(z, t_chunk, mask)
                n_scored = float(lens.sum() if mask is None else mask.sum())
                return value, n_scored, readout.backward(head.backward(dz))       # ((k, B', D·H), None)

            engine.zero_grad()
            value, n_scored, new_state = 0.0, 0.0, None
            if rows.size:
                xc = x[s:e] if all_rows else x[s:e, rows]                          # (k, B', I)
                if all_rows:
                    state = (h, c) if lstm else h
                else:
                    state = (h[:, rows], c[:, rows]) if lstm else h[:, rows]       # type: ignore[index]
                value, n_scored, new_state = engine.backprop(
                    xc, state, objective, None if lengths is None else lens)
            if update:
                value, n_scored = engine.update(value, n_scored)
                loss_sum += value * n_scored
                entries += n_scored
                steps += n_scored > 0                                              # (n = 0: no step)
            if rows.size:
                assert new_state is not None                                      # set exactly when rows.size
                hn, cn = new_state if lstm else (new_state, None)
                if all_rows:
                    h, c = hn, cn
                else:
                    h[:, rows] = hn
                    if lstm:
                        assert c is not None
                        c[:, rows] = cn
        return loss_sum, entries, steps
