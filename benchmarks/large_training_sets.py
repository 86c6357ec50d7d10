"""Large training sets: does the estimators' default budget keep up with the data (issue 16)?

The public sets of ``model_quality.py`` hold 20 to 537 training series; the defaults must also serve sets of
10,000 to 100,000. None of that size is bundled offline, so this script draws a task whose accuracy keeps
rising with data and training: 4 classes, each a fixed motif of 12 steps × 3 channels (standard normal, drawn
once), added at 0.8 × its amplitude at a uniformly random place in standard normal noise of 60 steps. Test:
4,000 fresh series. For each training-set size, side by side in one run:

- rnnfast ``SequenceClassifier(random_state=0)``, its defaults (``max_updates="auto"``: 2000 updates, or 10
  epochs where that is more, within a limit on the work that keeps a fit to about 25 s on 2 cores;
  ``batch_size="auto"``: 16, up to 128 on sets of over 16,000 series);
- the same with the budget before that limit (``batch_size=16`` and the epochs of 2000 updates or 10 epochs,
  whichever is more: minutes a fit at 100,000 series);
- 1-NN Euclidean (by BLAS here: aeon's loop would take a quarter of an hour at 100,000) and ridge on the
  flattened series, as ``model_quality.py`` runs it (1 thread);
- with ``--torch``: PyTorch with rnnfast's recipe (``model_quality.torch_same_recipe``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/large_training_sets.py \\
        [--n 1000,10000,100000] [--threads 2] [--torch]
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_quality as mq  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast.bench import blas_kernels  # noqa: E402

CLASSES, T, CHANNELS, MOTIF, AMPLITUDE, N_TEST = 4, 60, 3, 12, 0.8, 4000


def motif_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n series in aeon's layout (n, CHANNELS, T), float32, and their labels (n,)."""
    motifs = np.random.default_rng(0).standard_normal((CLASSES, CHANNELS, MOTIF))     # fixed for every draw
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    X = rng.standard_normal((n, CHANNELS, T)).astype(np.float32)
    where = rng.integers(0, T - MOTIF + 1, n)[:, None] + np.arange(MOTIF)          # (n, MOTIF) time steps
    X[np.arange(n)[:, None, None], np.arange(CHANNELS)[None, :, None], where[:, None, :]] += \
        AMPLITUDE * motifs[y]
    return X, y


class MotifData(mq.Data):
    """``model_quality.Data`` for the motif task: n training series, N_TEST test series."""

    def __init__(self, n: int):                 # noqa: the parent's loader reads files; this draws
        self.name = f"motifs n={n}"
        self.Xtr, self.ytr = motif_task(n, seed=1)
        self.Xte, self.yte = motif_task(N_TEST, seed=2)
        self.regression, self.ragged = False, False
        self.T_min = self.T_max = self.T_eq = T
        self.channels, self.n_classes = CHANNELS, CLASSES
        self.Xtr_eq, self.Xte_eq = self.Xtr, self.Xte


def before_limit(n: int) -> dict:
    """The estimator's budget before its work limit and batch_size="auto": batches of 16, and the epochs of
    2000 updates or 10 epochs, whichever is more."""
    return {"batch_size": 16, "max_updates": None, "max_epochs": max(math.ceil(2000 / math.ceil(n / 16)), 10)}


def knn_ed(data: MotifData) -> dict:
    """1-NN Euclidean: each test series takes the label of its nearest training series,
    argmin_j ‖x_j‖² − 2 x_j·x (the test series' own ‖x‖² does not change the argmin)."""
    flat = lambda X: X.reshape(len(X), -1).astype(np.float64)          # noqa: E731
    train, test = flat(data.Xtr), flat(data.Xte)                        # (n, C·T), (N_TEST, C·T)
    sq = (train * train).sum(axis=1)                                    # (n,)
    nearest = np.concatenate([np.argmin(sq[None, :] - 2.0 * test[i:i + 256] @ train.T, axis=1)
                              for i in range(0, len(test), 256)])
    return mq._score(data, data.ytr[nearest])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1000,10000,100000", help="training-set sizes, comma-separated")
    ap.add_argument("--threads", type=int, default=2, help="rnnfast.set_num_threads (and torch's)")
    ap.add_argument("--torch", action="store_true", help="add PyTorch with rnnfast's recipe")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of the defaults column, repeatable (as model_quality.py's)")
    args = ap.parse_args(argv)
    rnnfast.set_num_threads(args.threads)
    overrides = dict(mq.parse_param(text) for text in args.param)
    info = mq.machine_info(args.threads)
    print(f"# {info['cpu']}; numpy's BLAS {', '.join(blas_kernels()) or '?'}; rnnfast {rnnfast.__version__} on "
          f"{args.threads} threads, baselines on 1; load average {info['loadavg'][0]:.1f}")
    cols = ["rnnfast defaults", "rnnfast, the budget before"] + (["torch, same recipe"] if args.torch else []) + \
        ["1-NN ED", "ridge"]
    print("| n train | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for n in (int(s) for s in args.n.split(",")):
        data = MotifData(n)
        res = {"rnnfast defaults": mq.run_rnnfast(data, overrides),
               "rnnfast, the budget before": mq.run_rnnfast(data, before_limit(n))}
        if args.torch:
            res["torch, same recipe"] = mq.run_torch(data, mq.make_rnnfast(False, {}).get_params(), args.threads)
        with mq.single_threaded_baselines():
            res["1-NN ED"] = mq._timed(lambda: knn_ed(data))
            res["ridge"] = mq._timed(lambda: mq.ridge(data))
        cells = []
        for c in cols:
            r = res[c]
            if r.get("status") != "ok":
                cells.append(r.get("status", "?"))
                continue
            seconds = r.get("fit_seconds", r.get("seconds"))
            epochs = (f", {r['n_epochs_']} epoch{'s' if r['n_epochs_'] != 1 else ''}" if "n_epochs_" in r
                      else "")
            cells.append(f"{r['accuracy']:.3f} ({seconds:.0f} s{epochs})")
        print(f"| {n:,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
