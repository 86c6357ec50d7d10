r"""One-to-many: run a fitted sequence model on its own outputs, one step at a time.

For a model trained with ``output="sequence"`` to predict the next step, ``generate`` primes the
recurrent state on a given sequence, then repeats::

    h_t, state = rnn.step(x_t, state)          # the layer's streaming step, (1, H)
    z_t        = head(h_t)
    y_t        = sample(softmax(z_t / temperature))   (classifier; argmax when temperature == 0)
               = z_t                                   (regressor)
    x_{t+1}    = feedback(y_t)                 # default: one-hot of y_t (classifier), y_t itself (regressor)

and returns y_1 … y_n. A :class:`rnnfast.Sequential` runs the same way through its ``step``: its outputs are
logits over tokens, sampled as the classifier's (the token's id fed back: as it is to a model that starts
with an ``Embedding``, else one-hot), or with ``temperature=None`` values fed back as they are.

The classifier's default feedback is the one-hot vector at ``y_t``'s position in
``classes_`` when the model has one input per class; when the labels are the integers 0 … I−1 (a
vocabulary index, say) it is the one-hot vector at ``y_t`` itself, which also holds when some index never
occurred as a target.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Optional

import numpy as np

from ._module import no_grad
from .compose import Sequential
from .embedding import Embedding
from .losses import _softmax

__all__ = ["generate"]


def _default_feedback(est: Any) -> Callable[[Any], np.ndarray]:
    I = est.input_size_
    if not hasattr(est, "classes_"):                     # a SequenceRegressor
        if est.n_outputs_ != I:
            raise ValueError(f"the regressor has {est.n_outputs_} outputs but {I} inputs per step; pass a "
                             f"feedback function mapping an output to the next input")
        return lambda y: np.asarray(y, np.float64).reshape(I)
    classes = est.classes_
    if len(classes) == I:
        index = {c: i for i, c in enumerate(classes.tolist())}
    elif classes.dtype.kind in "iu" and classes.min() >= 0 and classes.max() < I:
        index = {c: c for c in classes.tolist()}
    else:
        raise ValueError(f"the classifier has {len(classes)} classes but {I} inputs per step, and its labels "
                         f"are not input indices 0..{I - 1}; pass a feedback function mapping a label to "
                         f"the next input")

    def one_hot(label: Any) -> np.ndarray:
        x = np.zeros(I)
        try:
            x[index[label.item() if isinstance(label, np.generic) else label]] = 1.0
        except KeyError:
            raise ValueError(f"label {label!r} has no input position; pass a feedback function") from None
        return x

    return one_hot


def generate(estimator: Any, prime: Any, n_steps: int, *, feedback: Optional[Callable[[Any], Any]] = None,
             temperature: Optional[float] = 1.0, random_state: Any = None) -> np.ndarray:
    """Generate ``n_steps`` outputs from a fitted ``output="sequence"`` estimator, or from a
    :class:`rnnfast.Sequential`, feeding each back in.

    Parameters
    ----------
    estimator : a fitted SequenceClassifier or SequenceRegressor with ``output="sequence"``, or a
        Sequential with one output per step (recurrent layers followed by ``Readout("sequence")``).
    prime : the sequence to start from: inputs (T0, n_features), or (T0,) with one feature; for a
        classifier also a 1-D sequence of labels (each encoded by ``feedback``), e.g. ``list("the ")``;
        for a Sequential of tokens, their ids (T0,).
    n_steps : the number of outputs to generate (>= 0).
    feedback : maps one output (a label, or a (k,) vector) to the next input (n_features,); for a
        Sequential, a token id to the next input (an id for an ``Embedding``, else a vector).
    temperature : classifier (or a Sequential's logits): sample from softmax(z / temperature); 0 takes the
        most probable label. A Sequential with ``temperature=None`` outputs values, fed back as they are.
    random_state : seed of the sampling.

    Returns labels (n_steps,) for a classifier (token ids for a Sequential), values (n_steps, k) for a
    regressor or a Sequential with ``temperature=None`` ((n_steps,) if k = 1).
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                                    or not temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0 (or None for a Sequential's values), got "
                         f"{temperature!r}")
    if isinstance(estimator, Sequential):
        return _generate_from_sequential(estimator, prime, int(n_steps), feedback, temperature,
                                         np.random.default_rng(random_state))
    # (the estimators, with scikit-learn, are imported here: rnnfast imports this module for Sequentials too)
    from .estimators import SequenceClassifier, SequenceRegressor
    from .estimators._data import _check_X
    from .estimators._windows import _windowed
    if not isinstance(estimator, (SequenceClassifier, SequenceRegressor)):
        raise TypeError(f"estimator must be an rnnfast SequenceClassifier, SequenceRegressor or Sequential, got "
                        f"{type(estimator).__name__}")
    estimator._check_fitted()
    if estimator._output != "sequence":
        raise ValueError("generate needs a model fitted with output='sequence' (one prediction per step)")
    if temperature is None:
        raise ValueError("temperature=None is for a Sequential's values; an estimator knows its outputs")
    classifier = isinstance(estimator, SequenceClassifier)
    feed = feedback if feedback is not None else _default_feedback(estimator)
    I = estimator.input_size_

    p = np.asarray(prime) if not isinstance(prime, str) else np.array(list(prime))
    if classifier and p.ndim == 1 and (p.dtype.kind in "OUS" or I > 1):
        p = np.stack([np.asarray(feed(v), np.float64) for v in p]) if len(p) else np.zeros((0, I))
    elif p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[1] != I or len(p) == 0:
        raise ValueError(f"prime must be a non-empty sequence of inputs (T0, {I}) or of labels, got shape "
                         f"{np.shape(prime)}")
    if p.dtype.kind not in "biuf" or not np.isfinite(p.astype(np.float64)).all():
        raise ValueError("prime must hold finite numbers (or labels the feedback encodes)")

    rng = np.random.default_rng(random_state)
    rnn, head = estimator.rnn_, estimator.head_
    rnn.eval()

    span = getattr(estimator, "window_span_", 1)                       # each step reads the last span steps

    def features(steps: np.ndarray) -> np.ndarray:
        """Inputs (t, I), unscaled, as the network reads them after fit's pipeline: (t, 1, span·F)."""
        return _windowed(estimator._scaled_steps(_check_X([steps], np.dtype(np.float64))), 1, span).x

    x0 = features(p.astype(np.float64))                                # (T0, 1, span·F) as fit
    with no_grad():                                                    # the inference forward: nothing kept
        out, state = rnn(x0.astype(rnn.dtype))                        # prime: (T0, 1, F) → state after T0
    recent = p[-(span + 1):].astype(np.float64)                        # (≤ span + 1, I) the last inputs, unscaled
    h = np.asarray(out[-1], np.float64)                                # (1, H)
    assert head.bias is not None                                       # the estimators' head has a bias
    W, b = head.weight.data.astype(np.float64), head.bias.data.astype(np.float64)
    results = []
    for _ in range(n_steps):
        z = (h @ W.T + b)[0]                                           # (O,)
        if classifier:
            y = estimator.classes_[_sample(z, temperature, rng)]
        else:
            y = estimator._unscaled(z)                                 # in the targets' units
        results.append(y)
        x = np.asarray(feed(y), np.float64).reshape(1, I)
        # the step's features from it and the span steps before (derivative_ reads x_t − x_{t−1}); the
        # window of the last step reads the last span feature steps, each the step before it
        recent = np.concatenate([recent, x])[-(span + 1):]
        x = features(recent)[-1]                                                     # (1, span·F)
        h_t, state = rnn.step(x.astype(rnn.dtype), state)
        h = np.asarray(h_t, np.float64)
    if classifier:
        return np.array(results, dtype=estimator.classes_.dtype)
    return _values(results, n_steps, estimator.n_outputs_)


def _sample(z: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """An index drawn from softmax(z / temperature) (O,); the largest z at temperature 0."""
    if temperature == 0:
        return int(np.argmax(z))
    with np.errstate(over="ignore"):
        scaled = z / temperature
    if np.all(np.isfinite(z)) and not np.all(np.isfinite(scaled)):
        return int(np.argmax(z))        # a temperature so small that z / temperature overflows: its limit, greedy
    return int(rng.choice(len(z), p=_softmax(scaled)))


def _generate_from_sequential(model: Sequential, prime: Any, n_steps: int, feedback: Optional[Callable[[Any], Any]],
                              temperature: Optional[float], rng: np.random.Generator) -> np.ndarray:
    """generate() for a Sequential: prime the states through ``model.step``, then sample and feed back."""
    if len(model) == 0:
        raise ValueError("the Sequential is empty")
    first = model[0]
    ids_in = isinstance(first, Embedding)
    width = getattr(first, "input_size", getattr(first, "in_features", None))
    if ids_in and temperature is None and feedback is None:
        raise ValueError("temperature=None feeds each output back as it is, which the model's first module, an "
                         "Embedding, cannot read: sample token ids (temperature >= 0) or pass feedback")

    def to_input(v: Any) -> np.ndarray:                    # one step's input, batch of 1
        if feedback is not None:
            v = feedback(v)
        if ids_in:
            if np.ndim(v) != 0:
                raise ValueError(f"prime must be a sequence of token ids for a model that starts with an "
                                 f"Embedding, got an entry of shape {np.shape(v)}")
            return np.asarray(v).reshape(1)
        if temperature is None or feedback is not None:
            return np.asarray(v, np.float64).reshape(1, -1)
        if width is None:                                  # a token id, fed back one-hot
            raise ValueError("pass a feedback function: the first module's input size is unknown")
        if np.ndim(v) != 0 or not 0 <= v < width or v != int(v):
            raise ValueError(f"prime must hold token ids in [0, {width}) (fed back one-hot), got {v!r}")
        one_hot = np.zeros((1, width))
        one_hot[0, int(v)] = 1.0
        return one_hot

    p = np.asarray(prime)
    if p.ndim == 0 or len(p) == 0:
        raise ValueError(f"prime must be a non-empty sequence, got shape {p.shape}")
    state, y = None, None
    results = []
    for v in p:                                            # the prime, a step at a time
        y, state = model.step(to_input(v), state)         # (step runs dropout as in eval mode)
    shape = np.shape(np.asarray(y))                        # (p is not empty: y is the prime's last output)
    if len(shape) != 2 or shape[0] != 1:
        raise ValueError(f"generate needs a model whose step gives one row of outputs (1, O) for a batch of 1; "
                         f"this one gives {shape} (a Readout('state') gives every layer's state: read "
                         f"'last' or 'sequence')")
    for _ in range(n_steps):
        z = np.asarray(y, np.float64).reshape(-1)          # (O,): the last step's output, batch of 1
        out: Any = z.copy() if temperature is None else _sample(z, temperature, rng)
        results.append(out)
        y, state = model.step(to_input(out), state)
    if temperature is not None:
        return np.array(results, dtype=np.int64)
    return _values(results, n_steps, np.asarray(y).size)


def _values(results: list, n_steps: int, k: int) -> np.ndarray:
    """Generated values (n_steps, k), or (n_steps,) when k = 1 (k known before any step: n_steps may be 0)."""
    values = np.array(results, np.float64).reshape(n_steps, k)
    return values[:, 0] if values.shape[1] == 1 else values
