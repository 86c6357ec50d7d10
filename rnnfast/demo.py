"""``python -m rnnfast demo``: the "udacity" sequence detector, Elman, LSTM and Jordan networks side by side.

The input is a stream of letters from the seven-letter alphabet of "udacity" (u, d, a, c, i, t, y),
one-hot encoded: random letters, the word "udacity" inserted now and then, and near misses ("udaci",
"udcity", "dacity", ...) inserted as often, so that no short cue gives the word away. The target is 1
exactly on the final "y" of a complete "udacity" (the last seven letters spell it) and 0 elsewhere. A
``SequenceClassifier(output="sequence")`` learns it per step; the detector fires where
P(target) > 0.9, the threshold of the original exercise. Precision and recall are measured on a fresh
stream the models never saw, run through them as one long sequence.

Beside them a Jordan network (``rnnfast.Jordan``), trained by a hand-written loop with the estimator's
recipe (mini-batches of 16, Adam at 3e-3 annealed to 0 along a cosine, clipping to norm 1, the same number
of updates): s_t = tanh(x_t W_ihᵀ + y_{t-1} W_yhᵀ + b_h), y_t = s_t W_hyᵀ + b_y, where y_t[0] is the logit of
P(target) and the other ``--jordan-outputs`` − 1 output units are fed back with it, untrained by the loss but
by BPTT through the feedback: the fed-back outputs are the network's only memory. With a single output
(``--jordan-outputs 1``, the detector's own logit as its whole state) it cannot hold the last six letters
and does not learn to fire.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

from ._threads import thread_limit
from ._validation import int_argument
from .clip import clip_grad_norm_
from .estimators import SequenceClassifier
from .jordan import Jordan
from .losses import bce_with_logits
from .optim import Adam, CosineAnnealingLR

WORD = "udacity"
ALPHABET = "udacity"                      # the one-hot order: u, d, a, c, i, t, y
THRESHOLD = 0.9
NEAR_MISSES = ("ud", "uda", "udac", "udaci", "udacit", "dacity", "acity", "udcity", "udaity", "udacty",
               "uadcity", "udacit", "udaciy", "yudac", "udacityu")


def make_stream(n: int, rng: np.random.Generator, p_word: float = 0.03,
                p_near: float = 0.03) -> tuple[str, np.ndarray]:
    """A stream of ``n`` letters and its targets (n,): 1 where the last seven letters are "udacity"."""
    parts, size = [], 0
    while size < n:
        r = rng.random()
        piece = (WORD if r < p_word else NEAR_MISSES[rng.integers(len(NEAR_MISSES))] if r < p_word + p_near
                 else ALPHABET[rng.integers(len(ALPHABET))])
        parts.append(piece)
        size += len(piece)
    text = "".join(parts)[:n]
    target = np.zeros(n, np.int64)
    for i in range(len(WORD) - 1, n):
        target[i] = text[i - len(WORD) + 1:i + 1] == WORD
    return text, target


def one_hot(text: str) -> np.ndarray:
    """(len(text), 7) float32, one column per letter of ALPHABET."""
    idx = np.fromiter((ALPHABET.index(ch) for ch in text), np.int64, len(text))
    return np.eye(len(ALPHABET), dtype=np.float32)[idx]


def training_set(n_seq: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_seq`` independent streams of ``T`` letters: X (n_seq, T, 7), y (n_seq, T)."""
    streams = [make_stream(T, rng) for _ in range(n_seq)]
    return np.stack([one_hot(s) for s, _ in streams]), np.stack([t for _, t in streams])


def train_jordan(X: np.ndarray, y: np.ndarray, outputs: int, updates: int, seed: int,
                 threads: int) -> tuple[Jordan, list]:
    """A Jordan network (7 → 64 → ``outputs``, output 0 the detector's logit) trained on X (n, T, 7), y (n, T)
    by ``updates`` mini-batches with the estimator's recipe (module docstring); returns it and its losses."""
    net = Jordan(len(ALPHABET), 64, outputs, seed=seed)
    opt = Adam(net.parameters(), lr=3e-3)
    schedule = CosineAnnealingLR(opt, T_max=updates)
    xs = np.ascontiguousarray(X.transpose(1, 0, 2))                     # (T, n, 7)
    targets = y.T[:, :, None].astype(np.float32)                        # (T, n, 1)
    rng, order, losses = np.random.default_rng(seed), np.zeros(0, np.int64), []
    with thread_limit(threads):
        for _ in range(updates):
            if len(order) < 16:                                         # whole epochs, reshuffled
                order = np.concatenate([order, rng.permutation(len(X))])
            batch, order = order[:16], order[16:]
            out, _ = net(xs[:, batch])                                  # (T, 16, outputs)
            loss, dlogit = bce_with_logits(out[..., :1], targets[:, batch])
            dout = np.zeros_like(out)
            dout[..., :1] = dlogit                                      # only output 0 meets the loss
            opt.zero_grad()
            net.backward(dout)
            clip_grad_norm_(net.parameters(), max_norm=1.0)
            opt.step()
            schedule.step()
            losses.append(float(loss))
    return net, losses


def jordan_proba(net: Jordan, X: np.ndarray) -> np.ndarray:
    """P(target) (n, T) of X (n, T, 7): the sigmoid of output 0."""
    out, _ = net(np.ascontiguousarray(X.transpose(1, 0, 2)))            # (T, n, outputs)
    return (1.0 / (1.0 + np.exp(-out[..., 0].astype(np.float64)))).T


def precision_recall(fired: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    tp = int(np.sum(fired & (target == 1)))
    precision = tp / max(int(fired.sum()), 1)
    recall = tp / max(int(target.sum()), 1)
    return precision, recall


def excerpts(text: str, fired: np.ndarray, target: np.ndarray, n: int = 3, width: int = 60,
             rng: Optional[np.random.Generator] = None) -> list[str]:
    """Annotated windows of the stream: a marker under every step where the detector fired or should have.

    ``^`` fired on a real "udacity", ``!`` fired wrongly (false positive), ``?`` missed (false negative).
    Up to ``n - 1`` windows show mistakes, the others hits; windows do not overlap.
    """
    marks = np.full(len(text), " ")
    marks[fired & (target == 1)] = "^"
    marks[fired & (target == 0)] = "!"
    marks[~fired & (target == 1)] = "?"
    errors = np.flatnonzero((marks == "!") | (marks == "?"))
    hits = np.flatnonzero(marks == "^")
    rng = rng or np.random.default_rng(0)
    centres: list[int] = []
    for c in list(errors[: n - 1]) + list(rng.permutation(hits)) + list(errors[n - 1:]):
        if len(centres) >= n:                        # at most n - 1 windows of mistakes, then hits
            break
        if all(abs(int(c) - o) > width for o in centres):
            centres.append(int(c))
    lines = []
    for c in sorted(centres):
        s = max(0, min(c - width // 2, len(text) - width))
        window, under = text[s:s + width], "".join(marks[s:s + width])
        kinds = {"^": "hit", "!": "false alarm", "?": "miss"}
        found = sorted({kinds[m] for m in under if m in kinds})
        lines.append(f"  [{s:>6}] {window}\n           {under}   {', '.join(found)}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnfast demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int_argument(0), default=0,
                        help="seed of the data and of both models (default 0)")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (a smoke test)")
    parser.add_argument("--threads", type=int_argument(1), default=1,
                        help="kernel threads (default 1: the batches here are too small to share)")
    parser.add_argument("--jordan-outputs", type=int_argument(1), default=8,
                        help="output units of the Jordan network, all fed back; output 0 is the detector (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    n_seq, T, test_len, updates = (200, 50, 5000, 300) if args.quick else (400, 50, 20000, 2000)
    X, y = training_set(n_seq, T, rng)
    test_text, test_target = make_stream(test_len, rng)
    X_test = one_hot(test_text)[None]                                   # (1, test_len, 7): one long stream

    print(f'rnnfast demo: detect "{WORD}" in a stream of its own letters ({", ".join(ALPHABET)})')
    print(f"  training: {n_seq} streams x {T} letters, {int(y.sum())} words; near misses like "
          f"{', '.join(NEAR_MISSES[3:7])} inserted as often as the word")
    print(f"  test: a fresh stream of {test_len} letters with {int(test_target.sum())} words; "
          f"the detector fires where P(target) > {THRESHOLD}")
    results: dict[str, tuple[Any, np.ndarray]] = {}
    total = 0.0
    if not args.no_progress:
        print(f"training Elman, LSTM and Jordan ({updates} updates each) ...", file=sys.stderr, flush=True)
    for name, cell in (("Elman", "elman"), ("LSTM", "lstm")):
        # the estimator's defaults, but for one label per step (and a shorter budget with --quick)
        model = SequenceClassifier(cell=cell, output="sequence", max_updates=updates, random_state=args.seed,
                                   n_threads=args.threads)
        t0 = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - t0
        total += seconds
        proba = model.predict_proba(X_test)[0, :, list(model.classes_).index(1)]   # (test_len,)
        fired = proba > THRESHOLD
        precision, recall = precision_recall(fired, test_target)
        results[name] = (model, fired)
        print(f"{name:>5}: {model.n_updates_} updates ({model.n_epochs_} epochs), final training loss "
              f"{model.loss_curve_[-1]:.4f}, training accuracy per step {model.score(X, y):.4f}, {seconds:.1f} s")
        print(f"{'':>5}  precision {precision:.3f}  recall {recall:.3f}  "
              f"(fired {int(fired.sum())} times, {int(test_target.sum())} words in the test stream)")
    t0 = time.perf_counter()
    net, losses = train_jordan(X, y, args.jordan_outputs, updates, args.seed, args.threads)
    seconds = time.perf_counter() - t0
    total += seconds
    with thread_limit(args.threads):
        fired = jordan_proba(net, X_test)[0] > THRESHOLD
        accuracy = float(np.mean((jordan_proba(net, X) > 0.5) == y))
    precision, recall = precision_recall(fired, test_target)
    results["Jordan"] = (net, fired)
    print(f"Jordan: {updates} updates ({updates * 16 // n_seq} epochs), {args.jordan_outputs} outputs fed back, "
          f"final training loss {losses[-1]:.4f}, training accuracy per step {accuracy:.4f}, {seconds:.1f} s")
    print(f"{'':>5}  precision {precision:.3f}  recall {recall:.3f}  "
          f"(fired {int(fired.sum())} times, {int(test_target.sum())} words in the test stream)")
    for name in ("LSTM", "Elman", "Jordan"):
        model, fired = results[name]
        print(f"\n{name} on the test stream (^ fired on a word, ! false alarm, ? missed word):")
        print("\n".join(excerpts(test_text, fired, test_target, rng=np.random.default_rng(args.seed))))
    print(f"\ntraining time: {total:.1f} s for the three models ({args.threads} thread(s))")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
