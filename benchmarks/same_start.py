"""rnnfast and PyTorch trained from the same weights on the same batches: do they end at the same model?

The estimators' recipe as it was before ``window_offset`` and the 2,000-update budget, written out as a
plain loop in both frameworks (inputs standardized, windowed to 32 steps on a fixed grid, LSTM 64, the last
step's state, Linear, cross-entropy, Adam 3e-3 with clipping to 1.0, equal batches of at most 16, cosine over
1000 updates, no input noise): torch starts from rnnfast's initial weights and sees
the same batches in the same order. The losses agree to float32 rounding at first; how far the two
trajectories then drift apart, and the test accuracy each ends at, shows how much of a dataset's score is
the luck of rounding rather than the library (used for ArrowHead in issue 16).

    python benchmarks/same_start.py [--dataset ArrowHead] [--seeds 0,1,2]      # needs aeon and torch
"""
import argparse
import math

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ArrowHead")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    import torch
    from aeon.datasets import load_classification

    import rnnfast
    torch.set_num_threads(1)
    rnnfast.set_num_threads(1)
    Xtr, ytr = load_classification(args.dataset, split="train")
    Xte, yte = load_classification(args.dataset, split="test")
    Xtr, Xte = np.asarray(Xtr).transpose(0, 2, 1), np.asarray(Xte).transpose(0, 2, 1)   # (n, T, C)
    classes, y = np.unique(ytr, return_inverse=True)
    y_test = np.searchsorted(classes, yte)
    n, T, C = Xtr.shape
    mean, std = Xtr.reshape(-1, C).mean(0), Xtr.reshape(-1, C).std(0)
    k = math.ceil(T / 32)

    def prep(X):                                   # (n, T, C) -> (⌈T/k⌉, n, k·C) float32, time-major
        Z = (X - mean) / std
        Z = np.concatenate([Z, np.zeros((len(Z), -T % k, C))], 1).reshape(len(Z), -1, k * C)
        return np.ascontiguousarray(Z.transpose(1, 0, 2)).astype(np.float32)

    xtr, xte = prep(Xtr), prep(Xte)
    batches = math.ceil(n / 16)
    epochs = math.ceil(1000 / batches)
    print(f"{args.dataset}: n={n}, T={T}, window {k}, {epochs} epochs of {batches} batches")
    for seed in (int(s) for s in args.seeds.split(",")):
        lstm, head = rnnfast.LSTM(k * C, 64, seed=seed), rnnfast.Linear(64, len(classes), seed=seed + 1)
        tl, th = torch.nn.LSTM(k * C, 64), torch.nn.Linear(64, len(classes))
        with torch.no_grad():
            for name, p in lstm.named_parameters():
                getattr(tl, name).copy_(torch.from_numpy(p.data))
            th.weight.copy_(torch.from_numpy(head.weight.data))
            th.bias.copy_(torch.from_numpy(head.bias.data))
        params = lstm.parameters() + head.parameters()
        opt = rnnfast.Adam(params, lr=3e-3)
        sched = rnnfast.CosineAnnealingLR(opt, epochs * batches)
        tparams = list(tl.parameters()) + list(th.parameters())
        topt = torch.optim.Adam(tparams, lr=3e-3)
        tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, epochs * batches)
        rng = np.random.default_rng(seed)
        first = None
        for _ in range(epochs):
            for idx in np.array_split(rng.permutation(n), batches):
                out, _ = lstm(xtr[:, idx])
                loss, dz = rnnfast.cross_entropy(head(out[-1]), y[idx])
                opt.zero_grad()
                dout = np.zeros_like(out)
                dout[-1] = head.backward(dz)
                lstm.backward(dout)
                rnnfast.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                tout, _ = tl(torch.from_numpy(xtr[:, idx]))
                tloss = torch.nn.functional.cross_entropy(th(tout[-1]), torch.from_numpy(y[idx]))
                topt.zero_grad()
                tloss.backward()
                torch.nn.utils.clip_grad_norm_(tparams, 1.0)
                topt.step()
                tsched.step()
                first = first or (loss, tloss.item())
        acc = float((head(lstm(xte)[0][-1]).argmax(1) == y_test).mean())
        with torch.no_grad():
            tacc = float((th(tl(torch.from_numpy(xte))[0][-1]).argmax(1).numpy() == y_test).mean())
        print(f"seed {seed}: first loss rnnfast {first[0]:.6f} torch {first[1]:.6f}; "
              f"test accuracy rnnfast {acc:.3f}, torch {tacc:.3f}")


if __name__ == "__main__":
    main()
