"""Busy processes beside a benchmark (``--busy N`` of training_loops.py and wait_policy.py): each spins a
core-bound Python loop from the start of the ``with`` block to its end. Imports nothing of rnnfast, so a
parent process that only launches the timed ones stays free of its OpenMP runtime."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()
