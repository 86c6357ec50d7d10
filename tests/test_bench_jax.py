"""``rnnfast bench --jax``: the JAX contender computes what rnnfast's layer computes (loss, the four parameter
gradients and dx), checked against the layer, the float64 reference and torch; the command prints its columns
and the thread pool it held JAX to; ``import rnnfast`` never imports JAX, and without JAX ``--jax`` says how to
install it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import CHILD_CWD, assert_close, child_env
from rnnfast import reference
import rnnfast.bench as bench

SHAPE = dict(B=3, T=5, I=4, H=6)
TINY = ["--quick", "--shapes", "2x5x8", "--only", "train", "--repeat", "1", "--min-time", "0.001", "--settle", "0",
        "--no-memory", "--no-extras"]


def _problem(cell, seed=0):
    """bench's float32 layer (I != H, to catch a transposed weight) and random x (T, B, I), dout (T, B, H)."""
    B, T, I, H = SHAPE["B"], SHAPE["T"], SHAPE["I"], SHAPE["H"]
    rng = np.random.default_rng(seed)
    return (bench.make_layer(cell, I, H, seed), rng.standard_normal((T, B, I), dtype=np.float32),
            rng.standard_normal((T, B, H), dtype=np.float32))


def _rnnfast(layer, x, dout):
    """Loss Σ out ⊙ dout (in float64), the parameter gradients and dx of rnnfast's forward + backward."""
    layer.zero_grad()
    out, _ = layer(x)
    dx, _ = layer.backward(dout)
    grads = {name: p.grad.copy() for name, p in layer.named_parameters()}
    grads["x"], grads["loss"] = np.array(dx), float(np.sum(out.astype(np.float64) * dout))
    return grads


def _assert_same(got, want, what):
    assert set(got) == set(want)
    for name in want:      # float32 tolerance (rtol 1e-4, atol 1e-5 × the array's scale), as every layer test
        assert_close(got[name], want[name], np.float32, f"{what}: {name}")


@pytest.mark.parametrize("cell", bench.CELLS)
def test_jax_step_matches_rnnfast_the_reference_and_torch(cell):
    pytest.importorskip("jax")
    from rnnfast import _bench_jax

    layer, x, dout = _problem(cell)
    sd = layer.state_dict()
    got = _bench_jax.loss_and_grads(cell, sd, x, dout)
    assert got["x"].shape == x.shape and got["weight_hh_l0"].dtype == np.float32

    _assert_same(got, _rnnfast(layer, x, dout), "jax vs rnnfast")

    f64 = {k: np.asarray(v, np.float64) for k, v in sd.items()}            # the specification, in float64
    ref = reference.run(cell, x.astype(np.float64), f64, dout=dout.astype(np.float64))
    want = {k: v for k, v in ref.grads.items() if k not in ("h0", "c0")}     # the zero state's: not asked for
    want["loss"] = float(np.sum(ref.out * dout))
    _assert_same(got, want, "jax vs reference")

    torch = pytest.importorskip("torch")
    mod = bench._make_torch(torch, cell, SHAPE["I"], SHAPE["H"], sd)
    xt = torch.from_numpy(x).requires_grad_(True)
    out, _ = mod(xt)
    loss = (out * torch.from_numpy(dout)).sum()
    loss.backward()
    want = {name: p.grad.numpy() for name, p in mod.named_parameters()}
    want["x"], want["loss"] = xt.grad.numpy(), float(loss.detach())
    _assert_same(got, want, "jax vs torch")


def test_bench_jax_prints_its_columns_and_the_pool_it_held_jax_to():
    """In a fresh process, so that the bench starts JAX's backend itself and sizes its pool (1 thread here)."""
    pytest.importorskip("jax")
    proc = subprocess.run([sys.executable, "-m", "rnnfast", "bench", "--jax", "--threads", "1", "--no-torch",
                           "--cells", "elman"] + TINY, capture_output=True, text=True, cwd=CHILD_CWD,
                          env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("cell "))
    assert "jax ms" in header and "jax/rnnfast" in header
    row = dict(zip(header.split("  "), next(line for line in lines if line.startswith("elman")).split()))
    assert float(row["jax ms"]) > 0 and float(row["jax/rnnfast"]) > 0
    assert any("XLA CPU thread pool of 1 (PJRT_NPROC=1 when its backend started)" in line and "cores busy" in line
               for line in lines)


def test_bench_jax_json_has_its_fields_and_no_jax_leaves_the_output_alone(capsys):
    pytest.importorskip("jax")
    bench.main(["--jax", "--json", "--no-torch", "--cells", "gru"] + TINY)
    res = json.loads(capsys.readouterr().out)
    row, = res["train"]
    assert row["jax_ms"] > 0 and row["jax_over_rnnfast"] == pytest.approx(row["jax_ms"] / row["rnnfast_ms"])
    assert row["jax_cores_busy"] > 0 and len(row["samples_ms"]["jax"]) == 1
    info = res["environment"]["jax"]
    assert info["version"] and isinstance(info["held"], bool)   # held: False when earlier tests started JAX
    bench.main(["--no-torch", "--cells", "gru"] + TINY)
    out = capsys.readouterr().out
    assert "rnnfast/floor" in out and "jax" not in out


def test_bench_jax_without_jax_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)          # `import jax` raises ImportError
    with pytest.raises(SystemExit) as exc:
        bench.main(["--jax", "--no-torch", "--cells", "elman"] + TINY)
    assert 'pip install "jax[cpu]"' in str(exc.value.code)


def test_import_rnnfast_does_not_import_jax():
    code = ("import sys, rnnfast, rnnfast.bench, rnnfast._bench_jax; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CHILD_CWD,
                          env=child_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
