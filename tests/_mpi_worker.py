"""One rank of the MPI test in test_distributed.py: ``mpiexec -n 2 python tests/_mpi_worker.py CONFIG OUTDIR``.

Trains CONFIG (below, shared with the single-process side of the test) with ``comm="auto"`` and writes
OUTDIR/rank<r>.npz: this rank's weights, its loss history, its thread counts (before and after the
communicator was made) and its affinity mask; each rank's stderr goes to OUTDIR/stderr<r>.txt. Every rank
calls ``save(OUTDIR/model.npz)``, which only rank 0 writes.
"""
from __future__ import annotations

import os
import sys

import numpy as np

# The two trainings the test compares, float64 so that "equal up to rounding" is tight. Both have a last
# batch that splits unevenly; "classifier" has ragged lengths, truncated BPTT (chunks where one rank has
# no sequence left), active clipping (so clipping before the allreduce would show), early stopping on a
# validation split, mixup (partners on other ranks); "regressor" scores every step of equal-length
# sequences with two outputs.
CONFIGS = {
    "classifier": dict(n=101, ragged=True, params=dict(
        output="last", readout="last", batch_size=7, tbptt=4, clip_norm=0.1, max_epochs=4, n_iter_no_change=2,
        early_stopping=True, validation_fraction=0.1, mixup=0.4)),
    "regressor": dict(n=50, ragged=False, params=dict(
        output="sequence", batch_size=16, clip_norm=None, max_epochs=3, n_iter_no_change=None,
        validation_fraction=None, optimizer="sgd", lr=0.05)),
}


def data(name: str):
    """The config's (X, y): every rank builds the same data from seed 0."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(0)
    if cfg["ragged"]:
        X = [rng.standard_normal((int(t), 2)) for t in rng.integers(2, 12, size=cfg["n"])]
        y = np.array([int(s[:, 0].sum() > 0) for s in X])
        return X, y
    X = rng.standard_normal((cfg["n"], 9, 3))
    y = np.stack([np.cumsum(X[:, :, 0], axis=1), X[:, :, 1] * X[:, :, 2]], axis=-1)   # (n, T, 2)
    return X, y


def estimator(name: str, comm, **extra):
    import rnnfast

    cls = rnnfast.SequenceClassifier if name == "classifier" else rnnfast.SequenceRegressor
    params = dict(hidden_size=8, dtype="float64", random_state=0, n_threads=1, comm=comm)
    return cls(**{**params, **CONFIGS[name]["params"], **extra})


def main(name: str, outdir: str) -> None:
    import rnnfast
    from rnnfast import distributed

    threads_before = rnnfast.get_num_threads()
    comm = distributed.get_comm("auto")
    sys.stderr = open(os.path.join(outdir, f"stderr{comm.rank}.txt"), "w")
    est = estimator(name, "auto", verbose=1).fit(*data(name))
    est.save(os.path.join(outdir, "model.npz"))
    mask = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    np.savez(os.path.join(outdir, f"rank{comm.rank}.npz"), size=comm.size, local_size=comm.local_size,
             threads_before=threads_before, threads_after=rnnfast.get_num_threads(), mask=np.array(mask),
             loss=np.array(est.history_["loss"]), n_epochs=est.n_epochs_,
             **{f"w/{k}": v for k, v in est._get_weights().items()})
    sys.stderr.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
