"""Sequence transduction with rnnfast.EncoderDecoder: learn to reverse a sequence of symbols.

Source: 3 to 8 symbols drawn from 10 (ids 2..11), of different lengths (``src_lengths``); target: the same
symbols in reverse order, then the end token (id 1); the decoder starts from the start token (id 0).
Training is teacher forcing with a cross-entropy masked after each target's end token; evaluation runs the
decoder free on 1,000 new sources and reports exact-match accuracy (the whole sequence, end token included)
of greedy decoding and of beam search, and how often the beam found a sequence the model scores higher.
Run: python examples/reverse.py [--updates 1500]
"""
import argparse
import time

import numpy as np

import rnnfast

START, END, N_SYMBOLS, MIN_LEN, MAX_LEN = 0, 1, 10, 3, 8
V = N_SYMBOLS + 2                                           # the start and end tokens, then the symbols


def batch(rng, n):
    """src (MAX_LEN, n) ids padded with END, lengths (n,), tgt (MAX_LEN + 1, n) = reversed + END, padded."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    src = np.full((MAX_LEN, n), END)
    tgt = np.full((MAX_LEN + 1, n), END)
    for b, n_b in enumerate(lengths):
        symbols = rng.integers(2, V, n_b)
        src[:n_b, b] = symbols
        tgt[:n_b, b] = symbols[::-1]
    mask = (np.arange(MAX_LEN + 1)[:, None] <= lengths[None, :]).astype(np.float64)   # through the END
    return src, lengths, tgt, mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--beam-width", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = rnnfast.EncoderDecoder(V, V, hidden_size=64, cell="lstm", source="tokens", output="tokens",
                                   embedding_dim=16, start_token=START, end_token=END, seed=0)
    opt = rnnfast.Adam(model.parameters(), lr=0.01)
    sched = rnnfast.CosineAnnealingLR(opt, args.updates)
    start = time.perf_counter()
    for step in range(1, args.updates + 1):
        src, lengths, tgt, mask = batch(rng, 64)
        logits = model(src, tgt, src_lengths=lengths)                   # teacher forcing, (9, 64, V)
        loss, dlogits = rnnfast.cross_entropy(logits, tgt, mask=mask)
        opt.zero_grad()
        model.backward(dlogits)
        rnnfast.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        sched.step()
        if step % (args.updates // 5) == 0:
            print(f"update {step}: loss {loss:.3f} nats/symbol")
    print(f"trained {args.updates} updates of 64 sequences in {time.perf_counter() - start:.1f} s")

    src, lengths, tgt, mask = batch(np.random.default_rng(1), 1000)   # new sources
    greedy = model.decode(src, MAX_LEN + 1, src_lengths=lengths)
    beam, _ = model.beam_search(src, MAX_LEN + 1, beam_width=args.beam_width, src_lengths=lengths)
    # both scored the same way (teacher forcing), so float32 rounding of the two paths does not count
    greedy_scores = model.log_prob(src, greedy, src_lengths=lengths)
    beam_scores = model.log_prob(src, beam, src_lengths=lengths)
    exact = lambda ids: float(np.mean((ids == tgt).all(axis=0)))      # noqa: E731
    print(f"exact match on 1000 new sources: greedy {exact(greedy):.3f}, beam search (width "
          f"{args.beam_width}) {exact(beam):.3f}")
    print(f"beam found a higher-scored sequence than greedy for {np.mean(beam_scores > greedy_scores + 1e-4):.3f} "
          f"of the sources")
    b = 0
    print(f"e.g. source {src[:lengths[b], b].tolist()} -> greedy {greedy[:lengths[b], b].tolist()}")


if __name__ == "__main__":
    main()
