"""scikit-learn's own estimator checks, every one, on both estimators with their defaults (one thread), one
test per check.

One check compares fitting with integer sample weights against fitting with the samples repeated, to rtol
1e-7. That holds for full-batch training only (scikit-learn checks its MLP with lbfgs for the same reason):
the repeated set splits into other mini-batches and draws other input noise and other window offsets (the
regressor's window="auto" windows the check's 30-step rows), and in float32 the two sum the gradient in another
order (and the classifier's mixup pairs them otherwise), and the regressor's linear part (``ridge``) picks its
penalty by leave-one-out error, where a repeated sample is not left out with its copies (as scikit-learn's
RidgeCV). So it is an expected failure on the defaults, and runs again with one batch per epoch, no input noise,
no mixup, windows from step 0, no linear part, in float64, where it must pass. (A 2-D X is sklearn's table: its
columns are the timesteps of univariate sequences, and n_features_in_ counts them, as the checks require.)
"""
import warnings

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,  # noqa: E402
                                            parametrize_with_checks)

from rnnfast import SequenceClassifier, SequenceRegressor  # noqa: E402

MINI_BATCHES = "mini-batches of the repeated set differ, and float32 rounding (checked full-batch in float64)"


@parametrize_with_checks([SequenceClassifier(n_threads=1), SequenceRegressor(n_threads=1)],
                         expected_failed_checks=lambda est: {
                             "check_sample_weight_equivalence_on_dense_data": MINI_BATCHES})
def test_sklearn_check_on_the_defaults(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.parametrize("Estimator", [SequenceClassifier, SequenceRegressor])
def test_sample_weight_equivalence_full_batch_in_float64(Estimator):
    # the regressor's network alone: the linear part's leave-one-out and network_weight's held-out split
    # cannot treat a repeated sample as its copies (nor can scikit-learn's RidgeCV)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_sample_weight_equivalence_on_dense_data(
            Estimator.__name__, Estimator(n_threads=1, max_updates=50, batch_size=10**6, dtype="float64",
                                          input_noise=0.0, window_offset=0, mixup=0.0,
                                          **({"ridge": False, "network_weight": 1.0}
                                             if Estimator is SequenceRegressor else {})))
