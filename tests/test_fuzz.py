"""Fuzzing: the kernels against the NumPy reference over random problems, and the public API against garbage.

1. ``test_random_problems_match_reference``: hypothesis draws every cell (Elman tanh/relu/sigmoid, LSTM, GRU;
   rnnfast.reference covers all of them, bidirectional too) with T 0..6, B 0..5, I, H 1..6, 1..3 layers,
   either direction count and layout, float32/float64 layers fed float16, float32, float64 or integer
   inputs in C, Fortran, strided or read-only memory, with and without lengths, on 1 or 2 threads. Forward
   and backward must equal the float64 reference within the layer dtype's tolerance (conftest.TOL).
2. ``test_garbage_arguments_end_in_python_exceptions``: every public entry point called with garbage
   (None, strings, ragged and nested lists, objects, huge and negative ints, NaN, wrong hx structures,
   dicts, absurd broadcast arrays, ...) in every argument position, and in random combinations. It runs in a
   subprocess, so that a crash fails the test, under an address-space limit, so that an allocation that
   slips through raises MemoryError instead of exhausting the machine.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rnnfast
from rnnfast import reference
from conftest import (CELLS, CHILD_CWD, child_env, DTYPES, assert_outcomes_close, make_problem, mode_of, run_layer, run_reference,
                      time_major)

pytestmark = pytest.mark.usefixtures("single_threaded_blas")   # the reference's many tiny products


def _layout(a, how):
    """The same values as ``a`` in another memory layout."""
    if a is None or how == "c":
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided":                                  # every other element of a larger array
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
        big[::2] = a
        return big[::2]
    a = a.copy()                                          # "readonly"
    a.setflags(write=False)
    return a


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cell=st.sampled_from(CELLS), dtype=st.sampled_from(DTYPES), T=st.integers(0, 6), B=st.integers(0, 5),
       I=st.integers(1, 6), H=st.integers(1, 6), L=st.integers(1, 3), bidirectional=st.booleans(),
       batch_first=st.booleans(), lengths=st.booleans(),
       in_dtype=st.sampled_from(["same", "float16", "float32", "float64", "int"]),
       layout=st.sampled_from(["c", "fortran", "strided", "readonly"]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_random_problems_match_reference(cell, dtype, T, B, I, H, L, bidirectional, batch_first, lengths, in_dtype,
                                         layout, threads, seed):
    p = make_problem(cell, T=T, B=B, I=I, H=H, L=L, batch_first=batch_first, dtype=dtype,
                     lengths=lengths and B > 0 and T > 0, seed=seed, bidirectional=bidirectional)
    if lengths and B == 0:
        p.lengths = np.zeros(0, np.int64)                 # lengths of an empty batch
    if in_dtype == "int":
        p.x = np.random.default_rng(seed).integers(-2, 3, p.x.shape)
    elif in_dtype != "same":
        p.x = p.x.astype(in_dtype)
    layer = p.layer(seed=seed)
    weights = {k: np.asarray(v, np.float64) for k, v in layer.state_dict().items()}
    expected = run_reference(p, weights)                  # the reference reads the same (rounded) input values
    if mode_of(cell) == "relu" and T and B:               # keep float32 rounding from crossing relu's kink
        cache = reference.forward("elman-relu", time_major(np.asarray(p.x, np.float64), batch_first), weights,
                                  np.asarray(p.h0, np.float64), None, p.lengths)[3]
        assume(reference.min_abs_preactivation(cache) > 1e-5)
    p.x, p.h0, p.c0, p.dout = (_layout(a, layout) for a in (p.x, p.h0, p.c0, p.dout))
    saved = rnnfast.get_num_threads()
    rnnfast.set_num_threads(threads)
    try:
        got = run_layer(layer, p)
    finally:
        rnnfast.set_num_threads(saved)
    assert got.out.dtype == np.dtype(dtype)
    assert_outcomes_close(got, expected, dtype)


# ------------------------------------------------------------------------------------------ garbage arguments
# Accepted outcomes: a result, ValueError or TypeError. Documented exceptions: KeyError from load_state_dict
# with missing/unexpected names (as a dict lookup), MemoryError from an allocation that cannot fit (the
# layers check before allocating; NumPy raises it for e.g. Linear on a 10⁹-row broadcast input). Anything
# else is printed as UNEXPECTED and fails the test.
GARBAGE_SCRIPT = textwrap.dedent(r'''
    import collections, random, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY))   # MemoryError, not OOM
    import numpy as np
    import rnnfast
    from rnnfast import optim

    rnnfast.set_num_threads(1)
    HUGE = np.broadcast_to(np.float32(1), (10**6, 10**3, 4))            # 16 GB if materialised
    GARBAGE = [None, "abc", b"x", "", [], [[]], [[1, 2], [3]], [[["a"]]], {}, {"a": 1}, object(), 10**30,
               -10**30, 2**63, -1, 0, 1.5, float("nan"), float("inf"), -float("inf"), True, 1j, (1, 2),
               (None, None), (np.zeros(3),), np.zeros(()), np.zeros((0,)), np.zeros((2, 0, 3)),
               np.full((3, 3, 4), np.nan), np.zeros((3, 3, 4), dtype=object), np.array(["a", "b"]),
               np.zeros((3, 3, 4), dtype=complex), np.zeros((1, 1, 1, 1)), np.ones((2, 3), dtype=bool),
               slice(1), type, print, np.float64(np.nan), np.int64(-5), HUGE, np.zeros((3, 6, 4))[:, ::2],
               np.datetime64("2020-01-01"), np.array([1, 2], dtype="datetime64[s]"), [1, 2, 3], (3, 2, 1),
               np.zeros((3, 3, 4), np.float16), np.zeros((3, 3, 3)), np.zeros((1, 3, 3)), np.zeros((2, 3, 3))]
    outcomes = collections.Counter()
    unexpected = []

    def call(label, f, *args, **kwargs):
        try:
            f(*args, **kwargs)
            outcomes["ok"] += 1
        except (ValueError, TypeError) as e:
            outcomes[type(e).__name__] += 1
        except KeyError as e:
            outcomes["KeyError"] += 1
            if "load_state_dict" not in label:
                unexpected.append(f"{label}: KeyError: {e}")
        except MemoryError as e:
            outcomes["MemoryError"] += 1
        except Exception as e:
            unexpected.append(f"{label}: {type(e).__name__}: {e}"[:300])

    def make_layers():
        return [rnnfast.Elman(4, 3, seed=0), rnnfast.Elman(4, 3, nonlinearity="relu", num_layers=2, seed=0),
                rnnfast.LSTM(4, 3, num_layers=2, seed=0), rnnfast.GRU(4, 3, seed=0, bidirectional=True),
                rnnfast.LSTM(4, 3, batch_first=True, bidirectional=True, dtype="float64", seed=0)]

    # constructors, one argument at a time
    ctor = dict(input_size=4, hidden_size=3, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                bidirectional=False, dtype="float32", seed=0)
    for cls in (rnnfast.Elman, rnnfast.LSTM, rnnfast.GRU):
        for g in GARBAGE:
            for key in ctor:
                call(f"{cls.__name__}({key}=g)", cls, **{**ctor, key: g})
            call(f"{cls.__name__}(g, g)", cls, g, g)
    for g in GARBAGE:
        call("Elman(nonlinearity=g)", rnnfast.Elman, 4, 3, nonlinearity=g)
        call("Linear(g)", rnnfast.Linear, g, 3)
        call("Linear(dtype=g)", rnnfast.Linear, 3, 3, dtype=g)

    # forward / backward / step / load_state_dict, one argument at a time
    x = np.zeros((3, 3, 4))
    for layer in make_layers():
        name = type(layer).__name__
        D = 2 if layer.bidirectional else 1
        h = np.zeros((layer.num_layers * D, 3, 3))
        lstm = isinstance(layer, rnnfast.LSTM)
        hx = (h, h) if lstm else h
        for g in GARBAGE:
            call(f"{name}.forward(x=g)", layer, g)
            call(f"{name}.forward(hx=g)", layer, x, g)
            if lstm:
                call(f"{name}.forward(hx=(g, h))", layer, x, (g, h))
                call(f"{name}.forward(hx=(h, g))", layer, x, (h, g))
            call(f"{name}.forward(lengths=g)", layer, x, hx, lengths=g)
            out, _ = layer(x, hx)
            call(f"{name}.backward(dout=g)", layer.backward, g)
            call(f"{name}.backward(dstate=g)", layer.backward, np.zeros(out.shape), g)
            layer(x)
            call(f"{name}.backward(g, g)", layer.backward, g, g)
            if not layer.bidirectional:
                call(f"{name}.step(x_t=g)", layer.step, g)
                call(f"{name}.step(state=g)", layer.step, x[0], g)
            call(f"{name}.load_state_dict(g)", layer.load_state_dict, g)
            call(f"{name}.load_state_dict(entry=g)", layer.load_state_dict,
                 {**layer.state_dict(), "weight_ih_l0": g})
        layer(x)
        layer.backward(np.zeros(out.shape))
        call(f"{name}.backward twice", layer.backward, np.zeros(out.shape))

    # random combinations of garbage and valid arguments
    rng = random.Random(0)
    layers = make_layers()
    for i in range(3000):
        layer = rng.choice(layers)
        D = 2 if layer.bidirectional else 1
        h = np.zeros((layer.num_layers * D, 3, 3))
        valid = {"x": x, "hx": (h, h) if isinstance(layer, rnnfast.LSTM) else h, "lengths": np.array([3, 1, 2])}
        args = {k: (rng.choice(GARBAGE) if rng.random() < 0.5 else v) for k, v in valid.items()}
        call("random forward", layer, args["x"], args["hx"], lengths=args["lengths"])
        if rng.random() < 0.5:
            call("random backward", layer.backward, rng.choice([rng.choice(GARBAGE), np.zeros((3, 3, 3 * D))]),
                 rng.choice([None, rng.choice(GARBAGE)]))
        elif not layer.bidirectional:
            call("random step", layer.step, rng.choice([x[0], rng.choice(GARBAGE)]), rng.choice(GARBAGE))

    lin = rnnfast.Linear(4, 2, seed=0)
    for g in GARBAGE:
        call("Linear.forward(g)", lin, g)
        lin(x)
        call("Linear.backward(g)", lin.backward, g)

    # losses, optimizers, schedules, clipping, sequences, threads, TBPTT
    p = rnnfast.Parameter(np.zeros(3))
    ps = [p]
    pred = np.zeros((2, 3))
    for g in GARBAGE:
        for fn in (rnnfast.mse_loss, rnnfast.bce_with_logits):
            call(f"{fn.__name__}(pred=g)", fn, g, pred)
            call(f"{fn.__name__}(target=g)", fn, pred, g)
            call(f"{fn.__name__}(mask=g)", fn, pred, pred, mask=g)
            call(f"{fn.__name__}(reduction=g)", fn, pred, pred, reduction=g)
        call("cross_entropy(logits=g)", rnnfast.cross_entropy, g, np.zeros(2, int))
        call("cross_entropy(labels=g)", rnnfast.cross_entropy, pred, g)
        call("cross_entropy(mask=g)", rnnfast.cross_entropy, pred, np.zeros(2, int), mask=g)
        call("cross_entropy(reduction=g)", rnnfast.cross_entropy, pred, np.zeros(2, int), reduction=g)
        for cls, hyper in [(optim.SGD, ["lr", "momentum", "dampening", "weight_decay", "nesterov"]),
                           (optim.Adam, ["lr", "betas", "eps", "weight_decay", "amsgrad"]),
                           (optim.AdamW, ["lr", "betas", "eps", "weight_decay"]),
                           (optim.RMSprop, ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"])]:
            call(f"{cls.__name__}(params=g)", cls, g)
            for key in hyper:
                def make_and_step(cls=cls, key=key, g=g):
                    p.data[...], p.grad[...] = 1.0, 1.0
                    cls(ps, **{key: g}).step()
                    if not np.all(np.isfinite(p.data)):
                        raise AssertionError(f"{cls.__name__}({key}={g!r}) made the weights non-finite")
                call(f"{cls.__name__}({key}=g)", make_and_step)
            opt = cls(ps)
            call(f"{cls.__name__}.load_state_dict(g)", opt.load_state_dict, g)
            call(f"{cls.__name__}.lr = g", setattr, opt, "lr", g)
        opt = optim.SGD(ps, lr=0.1)
        call("StepLR(step_size=g)", optim.StepLR, opt, g)
        call("StepLR(gamma=g)", optim.StepLR, opt, 2, g)
        call("StepLR(optimizer=g)", optim.StepLR, g, 2)
        call("ReduceLROnPlateau.step(g)", optim.ReduceLROnPlateau(opt).step, g)
        for key in ["mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"]:
            call(f"ReduceLROnPlateau({key}=g)", optim.ReduceLROnPlateau, opt, **{key: g})
        call("clip_grad_norm_(params=g)", rnnfast.clip_grad_norm_, g, 1.0)
        call("clip_grad_norm_(max_norm=g)", rnnfast.clip_grad_norm_, ps, g)
        call("clip_grad_norm_(norm_type=g)", rnnfast.clip_grad_norm_, ps, 1.0, g)
        call("clip_grad_value_(params=g)", rnnfast.clip_grad_value_, g, 1.0)
        call("clip_grad_value_(clip_value=g)", rnnfast.clip_grad_value_, ps, g)
        call("pad_sequences(g)", rnnfast.pad_sequences, g)
        call("pad_sequences([g])", rnnfast.pad_sequences, [g])
        call("pad_sequences([ok, g])", rnnfast.pad_sequences, [np.zeros((2, 3)), g])
        call("pad_sequences(dtype=g)", rnnfast.pad_sequences, [np.zeros((2, 3))], dtype=g)
        call("pad_sequences(padding_value=g)", rnnfast.pad_sequences, [np.zeros((2, 3))], padding_value=g)
        call("pad_sequences(int8, padding_value=g)", rnnfast.pad_sequences, [np.zeros(2), np.zeros(1)],
             dtype="int8", padding_value=g)
        call("unpad_sequences(g)", rnnfast.unpad_sequences, g, [1])
        call("unpad_sequences(lengths=g)", rnnfast.unpad_sequences, np.zeros((2, 1, 3)), g)
        call("sequence_mask(g)", rnnfast.sequence_mask, g)
        call("sequence_mask(max_len=g)", rnnfast.sequence_mask, [1, 2], g)
        call("sequence_mask(dtype=g)", rnnfast.sequence_mask, [1, 2], dtype=g)
        call("set_num_threads(g)", rnnfast.set_num_threads, g)
        rnnfast.set_num_threads(1)
        call("TruncatedBPTT(k=g)", rnnfast.TruncatedBPTT, rnnfast.Elman(4, 3), rnnfast.mse_loss, g)
        call("TruncatedBPTT(layer=g)", rnnfast.TruncatedBPTT, g, rnnfast.mse_loss)
        tb = rnnfast.TruncatedBPTT(rnnfast.Elman(4, 3, seed=0), rnnfast.mse_loss, k=2)
        call("TruncatedBPTT.run(x=g)", tb.run, g, np.zeros((3, 3, 3)))
        call("TruncatedBPTT.run(targets=g)", tb.run, np.zeros((3, 3, 4)), g)
        if not (isinstance(g, int) and g > 10**9):        # chunk_bounds(10**30, k) builds a list of 10**30/k pairs
            call("chunk_bounds(g)", rnnfast.chunk_bounds, g, 2)
        call("detach_state(g)", rnnfast.detach_state, g)

    for u in unexpected:
        print("UNEXPECTED", u)
    print("done", sum(outcomes.values()), dict(outcomes))
''')


def test_garbage_arguments_end_in_python_exceptions():
    env = child_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", GARBAGE_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, check=False, cwd=CHILD_CWD)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the fuzz process died (return code {proc.returncode}):\n{report[-3000:]}"
    assert "\ndone " in "\n" + proc.stdout, report[-3000:]
    unexpected = [line for line in proc.stdout.splitlines() if line.startswith("UNEXPECTED")]
    assert not unexpected, "\n".join(unexpected)
