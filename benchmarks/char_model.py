"""A character-level model, Sequential(Embedding, LSTM, Readout("sequence"), Linear), trained by rnnfast and
by torch from the same weights on the same batches in the same order: held-out bits per character and ms
per training step side by side.

Text: Python's own help topics (``pydoc_data.topics``, ~465,000 characters of documentation, shipped with
CPython), in sorted topic order; the first 90% trains, the last 10% is held out. Both models read windows
of ``--seq-len`` characters (non-overlapping, reshuffled by one shared generator each epoch) in batches of
``--batch-size`` and predict the next character at every step. A training step is forward, cross-entropy
(mean over steps and batch), backward, clipping to norm 1, Adam (lr 0.003, cosine-annealed), in float32
on both sides, with the same thread count. The steps of the two libraries alternate, so both see the
same load; ms per step is the median over the steps. Held-out bits per character: the mean cross-entropy
over ``--eval-chars`` held-out characters (windows of ``--seq-len`` from the zero state), in log base 2,
at every quarter of training.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/char_model.py [--steps 400]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

import rnnfast


def load_text() -> str:
    from pydoc_data.topics import topics
    return "".join(topics[k] for k in sorted(topics))


def build(V: int, E: int, H: int) -> rnnfast.Sequential:
    return rnnfast.Sequential(rnnfast.Embedding(V, E, seed=0), rnnfast.LSTM(E, H, seed=0),
                              rnnfast.Readout("sequence"), rnnfast.Linear(H, V, seed=0))


def torch_twin(torch, model: rnnfast.Sequential, V: int, E: int, H: int):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = torch.nn.Sequential(torch.nn.Embedding(V, E), torch.nn.LSTM(E, H), torch.nn.Identity(),
                                           torch.nn.Linear(H, V))

        def forward(self, ids):
            out, _ = self.seq[1](self.seq[0](ids))
            return self.seq[3](out)

    net = Net()
    # the rnnfast Sequential's names are torch's: "0.weight", "1.weight_ih_l0", ..., "3.bias"
    net.seq.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--eval-chars", type=int, default=32768)
    parser.add_argument("--threads", type=int, default=rnnfast.get_num_threads())
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rnnfast.set_num_threads(args.threads)
    text = load_text()
    vocab = sorted(set(text))
    V, T, B = len(vocab), args.seq_len, args.batch_size
    codes = np.searchsorted(vocab, list(text)).astype(np.int64)
    split = int(0.9 * len(codes))
    train, held = codes[:split], codes[split:split + args.eval_chars + 1]
    n_win = (len(train) - 1) // T
    x_all = train[:n_win * T].reshape(n_win, T).T                                # (T, n_win) inputs
    y_all = train[1:n_win * T + 1].reshape(n_win, T).T                            # the next characters
    n_eval = (len(held) - 1) // T
    x_eval = held[:n_eval * T].reshape(n_eval, T).T
    y_eval = held[1:n_eval * T + 1].reshape(n_eval, T).T

    model = build(V, args.embedding, args.hidden)
    net = torch_twin(torch, model, V, args.embedding, args.hidden)
    opt = rnnfast.Adam(model.parameters(), lr=0.003)
    sched = rnnfast.CosineAnnealingLR(opt, args.steps)
    t_opt = torch.optim.Adam(net.parameters(), lr=0.003)
    t_sched = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, args.steps)
    ce = torch.nn.functional.cross_entropy

    def bpc_rnnfast() -> float:
        model.eval()
        loss, _ = rnnfast.cross_entropy(model(x_eval), y_eval)
        model.train()
        return loss / math.log(2)

    def bpc_torch() -> float:
        with torch.no_grad():
            z = net(torch.tensor(x_eval))
            return float(ce(z.reshape(-1, V), torch.tensor(y_eval).reshape(-1))) / math.log(2)

    def step_rnnfast(xb, yb) -> float:
        loss, dz = rnnfast.cross_entropy(model(xb), yb)
        opt.zero_grad()
        model.backward(dz)
        rnnfast.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        sched.step()
        return loss

    def step_torch(xb, yb) -> float:
        z = net(xb)
        loss = ce(z.reshape(-1, V), yb.reshape(-1))
        t_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)
        t_opt.step()
        t_sched.step()
        return loss.item()

    print(f"{len(text)} characters, vocabulary {V}; {n_win} training windows of {T}, {n_eval * T} held out; "
          f"Embedding({V}, {args.embedding}) LSTM({args.embedding}, {args.hidden}) Linear({args.hidden}, {V}), "
          f"batch {B}, {args.steps} steps")
    print(f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}")
    rng = np.random.default_rng(0)
    order = np.empty(0, np.int64)
    times: dict[str, list[float]] = {"rnnfast": [], "torch": []}
    print(f"{'step':>6} {'bpc rnnfast':>12} {'bpc torch':>10}   (held out)")
    print(f"{0:>6} {bpc_rnnfast():12.4f} {bpc_torch():10.4f}")
    for step in range(1, args.steps + 1):
        if len(order) < B:
            order = np.concatenate([order, rng.permutation(n_win)])               # a new epoch, shuffled
        cols, order = order[:B], order[B:]
        xb, yb = x_all[:, cols], y_all[:, cols]
        xt, yt = torch.tensor(xb), torch.tensor(yb)
        for name, run, data in (("rnnfast", step_rnnfast, (xb, yb)), ("torch", step_torch, (xt, yt))):
            start = time.perf_counter()
            run(*data)
            times[name].append(time.perf_counter() - start)
        if step % max(1, args.steps // 4) == 0:
            print(f"{step:>6} {bpc_rnnfast():12.4f} {bpc_torch():10.4f}")
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"ms per training step (median): rnnfast {ms['rnnfast']:.2f}, torch {ms['torch']:.2f}, "
          f"torch/rnnfast {ms['torch'] / ms['rnnfast']:.2f}; load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
