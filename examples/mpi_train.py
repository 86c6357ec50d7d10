"""Data-parallel training over MPI: each rank runs its shard of every mini-batch, one Allreduce per update.

Run:   mpiexec -n 2 python examples/mpi_train.py          (alone, it trains in one process: python ...)
Needs: pip install "rnnfast[mpi]"                        (mpi4py, and the mpich wheel's mpiexec)

Every rank builds the same data (seed 0) and the same estimator. With comm="auto" the estimator finds
the ranks mpiexec started, starts them all from rank 0's weights, and averages the ranks' gradients
before each update, so the model is the one a single process trains on the same seed (up to rounding).
Only rank 0 shows progress, prints and writes the model. Each rank runs on its share of the machine's
cores (rnnfast.get_num_threads() below).
"""
import argparse
import os
import tempfile
import time

import numpy as np

import rnnfast
from rnnfast import distributed

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "rnnfast_mpi_model.npz"))
args = parser.parse_args()

comm = distributed.get_comm("auto")    # MPI under mpiexec (threads set to this rank's share), else one process

# Which of two noisy signals has the larger sum? 4000 sequences of 10-40 steps, the same on every rank.
rng = np.random.default_rng(0)
X = [rng.standard_normal((int(t), 2)) for t in rng.integers(10, 41, size=4000)]
y = np.array([int(s[:, 0].sum() > s[:, 1].sum()) for s in X])
X_train, y_train, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]

clf = rnnfast.SequenceClassifier(hidden_size=32, batch_size=64, lr=0.01, max_epochs=args.epochs,
                                 random_state=0, comm=comm, verbose=int(comm.rank == 0))
start = time.perf_counter()
clf.fit(X_train, y_train)              # collective: every rank calls it with the same data
elapsed = time.perf_counter() - start
clf.save(args.out)                     # rank 0 writes; the other ranks return at once

if comm.rank == 0:
    print(f"{comm.size} rank(s) x {rnnfast.get_num_threads()} thread(s): {clf.n_epochs_} epoch(s) in "
          f"{elapsed:.1f} s; test accuracy {clf.score(X_test, y_test):.3f}; model written to {args.out}")
