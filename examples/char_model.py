"""A character-level LSTM on the Zen of Python, then one-to-many generation with rnnfast.generate.

The text ships with Python: the `this` module keeps the Zen ROT13-encoded (`codecs.decode(this.s, "rot13")`).
The model reads one-hot characters and predicts the next character at every step (output="sequence");
`rnnfast.generate` then primes it on a few words and feeds each sampled character back as the next input.
Run: python examples/char_model.py
"""
import codecs
import contextlib
import io
import time

import numpy as np

import rnnfast

with contextlib.redirect_stdout(io.StringIO()):   # importing `this` prints the Zen
    import this
text = codecs.decode(this.s, "rot13")
vocab = sorted(set(text))
onehot = np.eye(len(vocab), dtype=np.float32)
codes = np.array([vocab.index(ch) for ch in text])

T, stride = 50, 4                                     # overlapping windows of 50 characters
starts = range(0, len(text) - T - 1, stride)
X = np.stack([onehot[codes[s:s + T]] for s in starts])              # (n, T, V)
y = np.stack([np.array(list(text[s + 1:s + T + 1])) for s in starts])   # (n, T) the next characters

model = rnnfast.SequenceClassifier(cell="lstm", hidden_size=96, output="sequence", lr=0.01, batch_size=16,
                                   max_epochs=25, validation_fraction=None, random_state=0, verbose=1)
start = time.perf_counter()
model.fit(X, y)
print(f"{len(text)} characters, vocabulary of {len(vocab)}; trained {model.n_epochs_} epochs in "
      f"{time.perf_counter() - start:.1f} s, final loss {model.history_['loss'][-1]:.3f} nats/char")


def feedback(ch):                                     # a generated character -> the next input
    return onehot[vocab.index(ch)]


for temperature in (0.0, 0.5):
    out = rnnfast.generate(model, "Beautiful is", 200, feedback=feedback, temperature=temperature,
                           random_state=0)
    print(f"\n--- generated, temperature {temperature} ---\nBeautiful is{''.join(out)}")
