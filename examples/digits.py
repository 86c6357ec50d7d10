"""Classify handwritten digits with an LSTM that reads each 8x8 image row by row (8 steps of 8 pixels).

Uses scikit-learn's load_digits (1797 images, bundled with scikit-learn); prints the test accuracy.
Run: python examples/digits.py
"""
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import rnnfast

X, y = load_digits(return_X_y=True)
X = X.reshape(-1, 8, 8) / 16.0                          # (n_samples, T=8 rows, 8 pixels), scaled to [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)

clf = rnnfast.SequenceClassifier(cell="lstm", hidden_size=64, random_state=0, verbose=1)
start = time.perf_counter()
clf.fit(X_train, y_train)
print(f"trained {clf.n_epochs_} epochs (best {clf.best_epoch_}) in {time.perf_counter() - start:.1f} s")
print(f"validation accuracy at the best epoch: {clf.history_['val_score'][clf.best_epoch_ - 1]:.3f}")
print(f"test accuracy: {clf.score(X_test, y_test):.3f}  ({len(y_test)} images, classes {clf.classes_.tolist()})")
