r"""scikit-learn estimators that train rnnfast's recurrent layers: ``fit`` / ``predict`` without a loop.

Model (one network, two heads of the same shape)::

    x̃_t = (x_t − μ) / σ                     per-feature standardization learned in fit (``scale``)
    x'_τ = [x̃_{kτ−(m−1)k}, …, x̃_{kτ+k−1}]   time-delay window: m·k steps, stride k (``window`` k,
                                             ``window_span`` m: 2 by default; zeros before the first step)
    h_τ = Elman, LSTM or GRU stack (``cell``, ``hidden_size``, ``num_layers``) over x'_1 … x'_T'   (T', B, D·H)
    f   = readout(h): [h at each sequence's own last step, mean of h, max of h] (``readout="auto"``)   (B, 3F)
    z   = f Wᵀ + b                                                                        (B, O)

``output="sequence"`` (many-to-many, no window) reads z_t = h_t Wᵀ + b at every step t ≤ T_b instead.
Objective, a (weighted) mean over the N scored entries of a batch:

    SequenceClassifier:  L = Σ w·(−log softmax(z)_y) / Σ w        (O = n_classes; binary is 2-class softmax)
    SequenceRegressor:   L = Σ w·½ (z − ỹ)² / Σ w                 (ỹ: standardized targets; N counts outputs)

with w the sequences' ``sample_weight`` × ``class_weight`` (1 by default).

Prediction averages P passes (``output="last"``; the classifier averages softmax(z) rather than z)::

    ẑ(x) = (1/P) Σ_{j<P} z(c_j(x)'^{(φ_j)} + σ·ε_j)      P = a·⌈max(m, m_c)/a⌉,  φ_j = the (j mod a)-th alignment

over the a alignments φ of the window grid (x'^{(φ)}: each sequence's windows starting at its step φ;
``predict_offsets``: all k of them by default, a model trained on random offsets), m draws ε_j of the
training noise (``predict_noise``, σ = ``input_noise``; each ε_j one fixed standard-normal draw shared by
every sequence; "auto": m = 8 for the regressor, 0 for the classifier; m = 0: ε_j = 0) and m_c draws c_j of
the training crop (``predict_crops``, for a model trained with ``random_crop_`` c > 0: c_j keeps
⌈(1 − c + c·u_j)·T_b⌉ steps of each sequence from the fraction v_j of its room, (u_j, v_j) fixed uniform draws
shared by every sequence; c_0 and m_c = 0 keep the whole sequence; "auto": m_c = 16 for the classifier, 0 for
the regressor). With m = m_c = 0, P = a.

Training (``rnnfast._engine``, shared with :class:`~rnnfast.TruncatedBPTT`): mini-batches reshuffled every
epoch (each sequence cut afresh to a random segment of ⌈u·T_b⌉ steps, u ~ U[1 − c, 1] (``random_crop``;
"auto": c = 0.3 for the classifier's windowed sequences, else 0), its windows starting at a random step
0 … k − 1 (``window_offset``), its inputs jittered by σ·N(0, 1) each time (``input_noise``); with
``output="last"`` each batch then mixed, x_b := λ·x_b + (1 − λ)·x_π(b) with λ ~ Beta(α, α) and π a random
pairing of the batch, the loss λ·L(y_b) + (1 − λ)·L(y_π(b)) (``mixup``; "auto": α = 0.2 for the
classifier, none for the regressor)), BPTT through
each whole sequence (or truncated every ``tbptt`` steps: the state flows on, the gradient stops at chunk
boundaries and each chunk makes one update; "auto": chunks of at most 128 steps with
``output="sequence"``), clipping to ``clip_norm``, an optimizer step, and the learning rate annealed
along a cosine over the budget of ``max_updates`` mini-batches (whole epochs: a training set of 40
sequences trains as many updates as one of 4,000).
Early stopping is off by default, as in scikit-learn's MLP. All randomness (initial weights, dropout,
shuffling, the validation split) comes from ``random_state``, so the same seed gives the same model bit for
bit on the same thread count. A KeyboardInterrupt ends training cleanly after one complete epoch: the
model keeps that epoch's (or the best epoch's) weights, its attributes describe it, and it warns.

Data-parallel training (``comm``, see :mod:`rnnfast.distributed`): run the same script on every rank
(``mpiexec -n 4 python train.py``) with the same X, y and an int ``random_state``. The ranks draw the same
batches and each runs its shard of every mini-batch; each update averages the ranks' gradients (weighted
by their scored entries, one Allreduce), then clips and steps, so the model equals single-process
training on the same seed up to float rounding (with ``dropout`` > 0 the ranks draw different masks, so
it is a different sample of the same training). Rank 0's initial weights are broadcast, every rank ends
with the same model; only rank 0 shows progress and writes ``save``. ``comm=None`` (the default) trains
in this process alone and never imports mpi4py; ``comm="auto"`` uses MPI when an MPI launcher started
more than one rank and mpi4py is installed, and is the same as None otherwise.

Inputs ``X``: a float array (n_samples, T, n_features); a 2-D array (n_samples, T) of univariate
sequences; or a list of (T_i, n_features) / (T_i,) arrays of different lengths, padded internally and
run with the kernels' ``lengths``. ``n_features_in_`` is the number of features per step, except for a
2-D X, where it is X's number of columns (T), as scikit-learn's contract for tables requires (predict
then needs the same number of columns; a 3-D X of one feature may have any T).

scikit-learn is optional: with it installed the estimators inherit its ``BaseEstimator`` and mixins (and
pass ``check_estimator``); without it a minimal base class provides the same ``get_params``,
``set_params`` and ``repr``.
"""
from ._classifier import SequenceClassifier
from ._compat import NotFittedError, _MinimalBaseEstimator  # noqa: F401  (the stand-in, for its tests)
from ._forecaster import SequenceForecaster
from ._regressor import SequenceRegressor
from ..persist import register

register(SequenceClassifier, SequenceRegressor, SequenceForecaster)   # rnnfast.load knows them by name

__all__ = ["SequenceClassifier", "SequenceRegressor", "SequenceForecaster", "NotFittedError"]
