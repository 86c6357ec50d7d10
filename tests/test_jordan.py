"""The Jordan network (rnnfast.Jordan, csrc/_jordan.pxi) against its NumPy reference, finite differences in
float64, a hand-written torch autograd loop, and itself at 1 and 2 threads; `step`, Sequential and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import rnnfast
from rnnfast import reference
from rnnfast.jordan import OUTPUT_ACTIVATIONS, Jordan

from conftest import FD_EPS, FD_TOL, assert_close, numerical_gradient

PHIS = ("tanh", "relu", "sigmoid")
PARAMS = ("weight_ih", "weight_yh", "bias_h", "weight_hy", "bias_y")


def problem(T=6, B=5, I=3, H=7, O=4, seed=0):
    """x, y0 and the upstream gradients dy, dy_n of L = Σ y·dy + Σ y_n·dy_n, in float64."""
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal((T, B, I)), y0=rng.standard_normal((1, B, O)),
                dy=rng.uniform(-1, 1, (T, B, O)), dy_n=rng.uniform(-1, 1, (1, B, O)))


def run_layer(net, p):
    """(y, y_n, grads) of a forward and backward of `net` on problem p; grads by parameter name, "x", "y0"."""
    net.zero_grad()
    y, y_n = net(p["x"], p["y0"])
    dx, dy0 = net.backward(p["dy"], p["dy_n"])
    grads = {name: prm.grad.copy() for name, prm in net.named_parameters()}
    grads.update(x=dx, y0=dy0[0])
    return np.array(y), y_n[0], grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("phi", PHIS)
@pytest.mark.parametrize("g", OUTPUT_ACTIVATIONS)
def test_matches_reference(phi, g, dtype):
    p = problem(seed=10 * PHIS.index(phi) + OUTPUT_ACTIVATIONS.index(g))
    net = Jordan(3, 7, 4, nonlinearity=phi, output_activation=g, dtype=dtype, seed=1)
    y, y_n, grads = run_layer(net, p)
    weights = {name: prm.data.astype(np.float64) for name, prm in net.named_parameters()}
    ry, ry_n, cache = reference.jordan_forward(p["x"].astype(dtype), weights, p["y0"][0].astype(dtype), phi, g)
    rgrads = reference.jordan_backward(cache, p["dy"].astype(dtype), p["dy_n"][0].astype(dtype))
    assert_close(y, ry, dtype, "y")
    assert_close(y_n, ry_n, dtype, "y_n")
    for name in (*PARAMS, "x", "y0"):
        assert_close(grads[name], rgrads[name], dtype, name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sizes", [(1, 1, 1, 1, 1), (9, 3, 2, 33, 40), (4, 17, 5, 64, 64), (3, 2, 1, 5, 70)])
def test_sizes_and_no_bias_match_reference(sizes, bias):
    """Odd sizes (packed panels part full, one row, O > H and O < H) with and without the biases."""
    T, B, I, H, O = sizes
    p = problem(T, B, I, H, O, seed=T + B)
    net = Jordan(I, H, O, bias=bias, output_activation="tanh", dtype="float64", seed=2)
    assert [n for n, _ in net.named_parameters()] == (list(PARAMS) if bias else ["weight_ih", "weight_yh",
                                                                                   "weight_hy"])
    y, y_n, grads = run_layer(net, p)
    weights = {name: prm.data for name, prm in net.named_parameters()}
    ry, _, cache = reference.jordan_forward(p["x"], weights, p["y0"][0], "tanh", "tanh")
    rgrads = reference.jordan_backward(cache, p["dy"], p["dy_n"][0])
    assert_close(y, ry, np.float64, "y")
    for name in grads:
        assert_close(grads[name], rgrads[name], np.float64, name)


@pytest.mark.parametrize("phi, g", [("tanh", "identity"), ("sigmoid", "tanh"), ("relu", "sigmoid"),
                                    ("tanh", "relu")])
def test_gradients_finite_differences(phi, g):
    """Every gradient the layer returns against central differences of L = Σ y·dy + Σ y_n·dy_n (float64)."""
    p = problem(T=5, B=3, I=2, H=4, O=3, seed=7)
    net = Jordan(2, 4, 3, nonlinearity=phi, output_activation=g, dtype="float64", seed=3)
    _, _, grads = run_layer(net, p)

    def loss():
        y, y_n = net(p["x"], p["y0"])
        return float(np.sum(y * p["dy"]) + np.sum(y_n * p["dy_n"]))

    if "relu" in (phi, g):       # finite differences are meaningless at relu's kink: keep away from it
        _, _, cache = reference.jordan_forward(p["x"], {n: q.data for n, q in net.named_parameters()},
                                               p["y0"][0], phi, g)
        pre = cache["s_pre"] if phi == "relu" else cache["y_pre"]
        assert np.abs(pre).min() > 10 * FD_EPS
    arrays = {name: prm.data for name, prm in net.named_parameters()}
    arrays.update(x=p["x"], y0=p["y0"])
    for name, arr in arrays.items():
        numeric = numerical_gradient(loss, arr)
        analytic = grads[name] if name != "y0" else grads["y0"][None]
        np.testing.assert_allclose(analytic, numeric, err_msg=name, **FD_TOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("phi, g", [("tanh", "identity"), ("relu", "sigmoid"), ("sigmoid", "tanh")])
def test_matches_torch_autograd(phi, g, dtype):
    """A hand-written torch loop of the same equations, differentiated by autograd."""
    torch = pytest.importorskip("torch")
    p = problem(T=8, B=6, I=3, H=16, O=5, seed=11)
    net = Jordan(3, 16, 5, nonlinearity=phi, output_activation=g, dtype=dtype, seed=4)
    y, y_n, grads = run_layer(net, p)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    w = {name: torch.tensor(prm.data, dtype=tdt, requires_grad=True) for name, prm in net.named_parameters()}
    x = torch.tensor(p["x"].astype(dtype), requires_grad=True)
    y0 = torch.tensor(p["y0"][0].astype(dtype), requires_grad=True)
    acts = dict(tanh=torch.tanh, relu=torch.relu, sigmoid=torch.sigmoid, identity=lambda v: v)
    prev, outs = y0, []
    for t in range(x.shape[0]):
        s = acts[phi](x[t] @ w["weight_ih"].T + prev @ w["weight_yh"].T + w["bias_h"])
        prev = acts[g](s @ w["weight_hy"].T + w["bias_y"])
        outs.append(prev)
    ty = torch.stack(outs)
    loss = (ty * torch.tensor(p["dy"].astype(dtype))).sum() + (prev * torch.tensor(p["dy_n"][0].astype(dtype))).sum()
    loss.backward()
    assert_close(y, ty.detach().numpy(), dtype, "y")
    assert_close(y_n, prev.detach().numpy(), dtype, "y_n")
    for name in PARAMS:
        assert_close(grads[name], w[name].grad.numpy(), dtype, name)
    assert_close(grads["x"], x.grad.numpy(), dtype, "x")
    assert_close(grads["y0"], y0.grad.numpy(), dtype, "y0")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step_gemm", ["packed", "blas"])
def test_threads_and_step_gemm_agree(dtype, step_gemm):
    """1 and 2 threads (batch split across threads, weight gradients split by rows), packed or BLAS step
    products: the same results (the sums over the batch may round in another order). The problem is big
    enough for 2 threads: 4·T·B·H·O flops in the time loop, over 2e6 per thread (_team in csrc/_plan.pxi)."""
    p = problem(T=12, B=64, I=24, H=64, O=48, seed=5)
    results = []
    for threads in (1, 2):
        net = Jordan(24, 64, 48, output_activation="sigmoid", dtype=dtype, seed=6)
        with rnnfast.kernel_options(num_threads=threads, step_gemm=step_gemm):
            results.append(run_layer(net, p))
    (y1, yn1, g1), (y2, yn2, g2) = results
    if step_gemm == "packed":
        np.testing.assert_array_equal(y1, y2)      # rows never mix forward: bit for bit
    else:                                          # BLAS may sum a row by its place in the call (KernelOptions)
        assert_close(y2, y1, dtype, "y")
    for name in g1:
        assert_close(g2[name], g1[name], dtype, name)


@pytest.mark.parametrize("g", ["identity", "sigmoid"])
def test_step_matches_forward(g):
    p = problem(T=7, B=3, I=3, H=8, O=2, seed=9)
    net = Jordan(3, 8, 2, output_activation=g, dtype="float64", seed=5)
    y, y_n = net(p["x"], p["y0"])
    state = p["y0"]
    for t in range(7):
        y_t, state = net.step(p["x"][t], state)
        np.testing.assert_allclose(y_t, y[t], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state, y_n, rtol=1e-12, atol=1e-12)
    y_t, state = net.step(p["x"][0])                                # None: y_0 = 0
    np.testing.assert_allclose(y_t, net(p["x"][:1])[0][0], rtol=1e-12, atol=1e-12)


def test_batch_first_backward_accumulates_and_zero_grad():
    p = problem(T=4, B=3, I=2, H=5, O=3, seed=1)
    tm = Jordan(2, 5, 3, dtype="float64", seed=0)
    bf = Jordan(2, 5, 3, batch_first=True, dtype="float64", seed=0)
    y, _, grads = run_layer(tm, p)
    yb, yb_n = bf(p["x"].transpose(1, 0, 2), p["y0"])
    dxb, _ = bf.backward(p["dy"].transpose(1, 0, 2), p["dy_n"])
    np.testing.assert_allclose(yb, y.transpose(1, 0, 2), rtol=1e-12)
    np.testing.assert_allclose(dxb, grads["x"].transpose(1, 0, 2), rtol=1e-12)
    bf(p["x"].transpose(1, 0, 2), p["y0"])
    bf.backward(p["dy"].transpose(1, 0, 2), p["dy_n"])
    np.testing.assert_allclose(bf.weight_yh.grad, 2 * grads["weight_yh"], rtol=1e-12)
    bf.zero_grad()
    assert all(not q.grad.any() for q in bf.parameters())


def test_empty_batch_and_sequence():
    net = Jordan(2, 4, 3, dtype="float64", seed=0)
    y, y_n = net(np.zeros((0, 2, 2)), np.ones((1, 2, 3)))
    assert y.shape == (0, 2, 3) and np.array_equal(y_n, np.ones((1, 2, 3)))
    dx, dy0 = net.backward(np.zeros((0, 2, 3)), np.full((1, 2, 3), 2.0))
    assert dx.shape == (0, 2, 2) and np.array_equal(dy0, np.full((1, 2, 3), 2.0))
    y, y_n = net(np.zeros((3, 0, 2)))
    dx, dy0 = net.backward(np.zeros((3, 0, 3)))
    assert y.shape == (3, 0, 3) and dx.shape == (3, 0, 2) and dy0.shape == (1, 0, 3)
    assert all(not q.grad.any() for q in net.parameters())


def test_in_sequential_matches_hand_routing():
    """Sequential(Jordan, Readout("last"), Linear): the chain routes the gradient into dy_n."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 3))
    model = rnnfast.Sequential(Jordan(3, 8, 5, dtype="float64", seed=0), rnnfast.Readout("last"),
                               rnnfast.Linear(5, 2, dtype="float64", seed=1))
    assert [n for n, _ in model.named_parameters()][:2] == ["0.weight_ih", "0.weight_yh"]
    logits = model(x)
    loss, dlogits = rnnfast.cross_entropy(logits, np.array([0, 1, 1, 0]))
    model.backward(dlogits)
    net, head = Jordan(3, 8, 5, dtype="float64", seed=0), rnnfast.Linear(5, 2, dtype="float64", seed=1)
    y, y_n = net(x)
    dy_n = head.backward(rnnfast.cross_entropy(head(y_n[0]), np.array([0, 1, 1, 0]))[1])
    net.backward(np.zeros_like(y), dy_n[None])
    for (name, a), b in zip(model.named_parameters(), net.parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="Readout"):
        rnnfast.Sequential(Jordan(3, 8, 5), rnnfast.Linear(5, 2))
    mixed = rnnfast.Sequential(rnnfast.LSTM(3, 4), rnnfast.Readout("sequence"), Jordan(4, 8, 5),
                               rnnfast.Readout("last"))
    assert mixed(x).shape == (4, 5)
    with pytest.raises(ValueError, match="Jordan layer, which runs every sequence T steps"):
        mixed(x, lengths=np.array([6, 5, 4, 3]))


def test_state_dict_and_repr():
    net = Jordan(3, 8, 5, nonlinearity="relu", output_activation="sigmoid", seed=0)
    other = Jordan(3, 8, 5, nonlinearity="relu", output_activation="sigmoid", seed=1)
    other.load_state_dict(net.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_array_equal(other(x)[0], net(x)[0])
    assert repr(net) == "Jordan(3, 8, 5, nonlinearity='relu', output_activation='sigmoid', dtype='float32', seed=0)"
    with pytest.raises(AttributeError, match="fixed"):
        net.hidden_size = 4


def test_bad_input():
    net = Jordan(3, 8, 5, seed=0)
    with pytest.raises(ValueError, match="x must be a 3-D"):
        net(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="input_size = 3"):
        net(np.zeros((4, 2, 2)))
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        net(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"y0 must have shape \(1, B, output_size\)"):
        net(np.zeros((4, 2, 3)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="backward needs a forward"):
        net.backward(np.zeros((4, 2, 5)))
    net(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="dy must have shape"):
        net.backward(np.zeros((4, 2, 4)))
    with pytest.raises(ValueError, match="dy_n must have shape"):
        net.backward(np.zeros((4, 2, 5)), np.zeros((1, 3, 5)))
    with pytest.raises(ValueError, match="x_t must have shape"):
        net.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        Jordan(3, 8, 5, nonlinearity="softmax")
    with pytest.raises(ValueError, match="output_activation"):
        Jordan(3, 8, 5, output_activation="softmax")
    with pytest.raises(ValueError, match="output_size"):
        Jordan(3, 8, 0)
    net.weight_hy.data = np.zeros((8, 5), np.float32)          # replaced by one of the wrong shape
    with pytest.raises(ValueError, match="weight_hy.data must be"):
        net(np.zeros((4, 2, 3)))


def test_pickle_and_deepcopy_keep_the_weights():
    import copy
    import pickle

    net = Jordan(3, 8, 5, output_activation="tanh", seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    y, _ = net(x)
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        np.testing.assert_array_equal(clone(x)[0], y)
        clone.backward(np.ones_like(y))                          # its own forward cache and workspace
        assert clone.weight_hy.grad.any() and not net.weight_hy.grad.any()
        clone.weight_hy.data[...] = 0                            # the kernels read the clone's parameters
        assert not np.array_equal(clone(x)[0], y)
