"""A character-level LSTM on the Zen of Python, built as PyTorch users build one: Sequential(Embedding, LSTM,
Linear), trained by forward, loss, backward, clip, step; then one-to-many generation through the LSTM's `step`.

The text ships with Python: the `this` module keeps the Zen ROT13-encoded (`codecs.decode(this.s, "rot13")`).
The model reads character ids and predicts the next character at every step (Readout("sequence")). The Zen is
too short to hold part of it out (a model of 800 characters memorises them), so the loss is the training loss;
benchmarks/char_model.py trains this model beside torch's (same weights, same batches) on Python's help topics
and reports held-out bits per character and ms per step.
Run: python examples/char_model.py
"""
import codecs
import contextlib
import io
import math
import time

import numpy as np

import rnnfast

with contextlib.redirect_stdout(io.StringIO()):   # importing `this` prints the Zen
    import this
text = codecs.decode(this.s, "rot13")
vocab = sorted(set(text))
V = len(vocab)
codes = np.array([vocab.index(ch) for ch in text])

T, stride, batch_size = 50, 4, 16                     # overlapping windows of 50 characters
windows = np.stack([codes[s:s + T + 1] for s in range(0, len(codes) - T - 1, stride)], axis=1)
X, Y = windows[:-1], windows[1:]                      # (T, n) ids and (T, n) the next characters

model = rnnfast.Sequential(
    rnnfast.Embedding(V, 32, seed=0),                 # ids (T, B) -> (T, B, 32)
    rnnfast.LSTM(32, 96, seed=0),
    rnnfast.Readout("sequence"),                      # every step's output (T, B, 96)
    rnnfast.Linear(96, V, seed=0),                    # logits (T, B, V)
)
opt = rnnfast.Adam(model.parameters(), lr=0.01)
rng = np.random.default_rng(0)


start = time.perf_counter()
for epoch in range(1, 26):
    order, total = rng.permutation(X.shape[1]), 0.0
    for b in range(0, len(order), batch_size):
        cols = order[b:b + batch_size]
        loss, dlogits = rnnfast.cross_entropy(model(X[:, cols]), Y[:, cols])
        opt.zero_grad()
        model.backward(dlogits)
        rnnfast.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        total += loss * len(cols)
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}: training loss {total / len(order) / math.log(2):.3f} bits/char")
print(f"{len(text)} characters, vocabulary of {V}; trained in {time.perf_counter() - start:.1f} s")

embedding, lstm, _, head = model
model.eval()


def generate(prime, n, temperature):
    """Prime the LSTM on `prime`, then feed each sampled character back in, one `step` at a time."""
    out, state = lstm(embedding(np.array([vocab.index(ch) for ch in prime]))[:, None])   # (T0, 1, 96)
    h, chars = out[-1], []
    for _ in range(n):
        z = head(h)[0].astype(np.float64)                                             # (V,) logits
        if temperature == 0:
            k = int(np.argmax(z))
        else:
            p = np.exp((z - z.max()) / temperature)
            k = int(rng.choice(V, p=p / p.sum()))
        chars.append(vocab[k])
        h, state = lstm.step(embedding(np.array([k])), state)                          # (1, 96)
    return "".join(chars)


for temperature in (0.0, 0.5):
    print(f"\n--- generated, temperature {temperature} ---\nBeautiful is{generate('Beautiful is', 200, temperature)}")
