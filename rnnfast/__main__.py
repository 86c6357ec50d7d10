"""``python -m rnnfast COMMAND [options]``: the package's command line.

Each command lives in its own module with a ``main(argv) -> int``; add one by adding a line to
``COMMANDS`` (for example ``"bench": ("rnnfast.bench", "time the kernels")``). ``python -m rnnfast
COMMAND --help`` shows the command's own options.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# name -> (module with main(argv), one-line help)
COMMANDS = {
    "demo": ("rnnfast.demo", 'train Elman and LSTM "udacity" detectors side by side'),
    "bench": ("rnnfast.bench", "time the training step beside PyTorch, NumPy and the GEMM floor"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnfast", description="rnnfast's command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)   # the command parses its own options
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
