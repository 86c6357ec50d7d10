"""Optimizers and schedules: step-for-step agreement with torch.optim, exact resume, validation."""
import copy

import numpy as np
import pytest

import rnnfast
from rnnfast import Parameter
from rnnfast.optim import SGD, Adam, AdamW, CosineAnnealingLR, ReduceLROnPlateau, RMSprop, StepLR

SHAPES = [(3, 4), (5,), (2, 3, 2)]
N_STEPS = 20

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, centered=True, eps=1e-4)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, momentum=0.5, maximize=True)),
]
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}
CONFIG_IDS = [f"{name}-{'-'.join(kw) or 'defaults'}" for name, kw in CONFIGS]


def _params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s), dtype=dtype) for s in SHAPES]


def _grads(rng):
    return [rng.standard_normal(s) for s in SHAPES]


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad[...] = g


def _steps_beside_torch(torch, params, tparams, opt, topt, steps, seed, after_each=None):
    """`steps` steps of both optimizers on the same random grads, then after_each() if given; asserts the
    parameters agree after every step."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        grads = _grads(rng)
        _set_grads(params, grads)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        if after_each is not None:
            after_each()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    params = _params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = OURS[name](params, **kwargs)
    topt = getattr(torch.optim, name)(tparams, foreach=False, **kwargs)
    _steps_beside_torch(torch, params, tparams, opt, topt, N_STEPS, 1)


@pytest.mark.parametrize("name", list(OURS))
def test_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = OURS[name](_params()).param_groups[0]
    theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).param_groups[0]
    for key, value in ours.items():
        if key != "params":
            assert theirs[key] == value, key


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_state_dict_resume_is_exact(name, kwargs):
    rng = np.random.default_rng(2)
    grads = [_grads(rng) for _ in range(N_STEPS)]

    params = _params()
    opt = OURS[name](params, **kwargs)
    for g in grads:
        _set_grads(params, g)
        opt.step()

    resumed = _params()
    first = OURS[name](resumed, **kwargs)
    for g in grads[:N_STEPS // 2]:
        _set_grads(resumed, g)
        first.step()
    saved = first.state_dict()
    snapshot = [p.data.copy() for p in resumed]  # what a model checkpoint would hold
    _set_grads(resumed, grads[0])
    first.step()  # steps after saving must not leak into the saved state

    fresh_params = [Parameter(data) for data in snapshot]
    second = OURS[name](fresh_params, **kwargs)
    second.load_state_dict(saved)
    for g in grads[N_STEPS // 2:]:
        _set_grads(fresh_params, g)
        second.step()
    for p, q in zip(params, fresh_params):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_restores_hyperparameters_and_checks_shapes():
    params = _params()
    opt = Adam(params, lr=0.5, betas=(0.7, 0.8))
    _set_grads(params, _grads(np.random.default_rng(3)))
    opt.step()
    sd = opt.state_dict()
    other = Adam(_params())
    other.load_state_dict(sd)
    assert other.lr == 0.5 and other.param_groups[0]["betas"] == (0.7, 0.8)
    assert other.state[0]["step"] == 1
    np.testing.assert_array_equal(other.state[1]["exp_avg"], opt.state[1]["exp_avg"])

    wrong = Adam([Parameter(np.zeros(s)) for s in [(4, 3), (5,), (2, 3, 2)]])
    with pytest.raises(ValueError, match="shape"):
        wrong.load_state_dict(sd)
    assert wrong.state == {}
    with pytest.raises(ValueError, match="parameters"):
        Adam(_params()[:2]).load_state_dict(sd)
    with pytest.raises(KeyError, match="hyper-parameters"):
        SGD(_params()).load_state_dict(sd)


def test_params_updated_in_place_and_grads_untouched():
    params = _params(dtype=np.float32)
    before = [p.data for p in params]
    grads = _grads(np.random.default_rng(4))
    _set_grads(params, grads)
    opt = AdamW(params, maximize=True, weight_decay=0.1)
    opt.step()
    opt.step()
    for p, data, g in zip(params, before, grads):
        assert p.data is data and p.data.dtype == np.float32
        np.testing.assert_array_equal(p.grad, g.astype(np.float32))
        assert opt.state[0]["exp_avg"].dtype == np.float32
    opt.zero_grad()
    assert all(np.all(p.grad == 0) for p in params)


def test_lr_property_and_closure():
    torch = pytest.importorskip("torch")
    params = _params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt, topt = SGD(params, lr=0.1, momentum=0.9), torch.optim.SGD(tparams, lr=0.1, momentum=0.9)
    rng = np.random.default_rng(5)
    for step in range(6):
        if step == 3:
            opt.lr = 0.01
            topt.param_groups[0]["lr"] = 0.01
        grads = _grads(rng)
        _set_grads(params, grads)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g)
        assert opt.step(lambda: 42.0) == 42.0
        topt.step()
    assert opt.param_groups[0]["lr"] == 0.01
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("cls, kwargs, match", [
    (SGD, dict(lr=-0.1), "lr"),
    (SGD, dict(momentum=-0.5), "momentum"),
    (SGD, dict(weight_decay=-1), "weight_decay"),
    (SGD, dict(nesterov=True), "nesterov"),
    (SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    (SGD, dict(lr=float("nan")), "lr"),
    (Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (Adam, dict(eps=-1e-8), "eps"),
    (AdamW, dict(weight_decay=-0.01), "weight_decay"),
    (AdamW, dict(lr=-1e-3), "lr"),
    (RMSprop, dict(alpha=-0.1), "alpha"),
    (RMSprop, dict(alpha=1.5), "alpha"),
    (RMSprop, dict(momentum=-0.9), "momentum"),
    (RMSprop, dict(eps=-1.0), "eps"),
])
def test_invalid_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(_params(), **kwargs)


@pytest.mark.parametrize("params", [
    Parameter(np.zeros(3)),            # a single Parameter, not an iterable of them
    [np.zeros(3)],                      # arrays, not Parameters
    np.zeros(3),
    5,
])
def test_params_type_errors(params):
    with pytest.raises(TypeError, match="params"):
        SGD(params)


def test_params_value_errors():
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        Adam([p, p])
    with pytest.raises(ValueError, match="lr"):
        SGD([p]).lr = -1.0


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_a_parameter_without_grad_is_skipped_and_a_bad_grad_changes_nothing(cls):
    kw = dict(lr=0.1, momentum=0.9) if cls is SGD else dict(lr=0.1)
    p, q = Parameter(np.ones(3)), Parameter(np.ones((2, 3)))
    opt = cls([p, q], **kw)
    for s in range(3):                                  # q has a grad every other step, as torch allows
        p.grad = np.arange(3.0) + s
        q.grad = None if s % 2 else np.full((2, 3), 1.0 + s)
        before = q.data.copy()
        opt.step()
        assert (q.data == before).all() if s % 2 else (q.data != before).all()
    if cls is not SGD:
        assert opt.state[0]["step"] == 3 and opt.state[1]["step"] == 2
    q.grad = None
    opt.zero_grad()                                     # leaves a None grad None
    assert q.grad is None and not p.grad.any()
    saved = [p.data.copy(), q.data.copy()], opt.state_dict()
    p.grad = np.ones(3)
    for bad, match in ((np.ones(3), "shape \\(2, 3\\), got an array of shape \\(3,\\)"),
                       (np.ones((2, 3), int), "dtype int64"), ([[1.0] * 3] * 2, "got list")):
        q.grad = bad
        with pytest.raises(ValueError, match="the .grad of parameter 1 must be None or a floating-point array of"):
            opt.step()
        with pytest.raises(ValueError, match=match):
            opt.step()
        assert (p.data == saved[0][0]).all() and (q.data == saved[0][1]).all()      # p, before q, untouched
        assert str(opt.state_dict()) == str(saved[1])


def test_a_parameter_without_grad_is_skipped_as_torch_skips_it():
    torch = pytest.importorskip("torch")
    for cls, kw in ((SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)), (Adam, dict(lr=0.1, amsgrad=True)),
                    (AdamW, dict(lr=0.1)), (RMSprop, dict(lr=0.1, momentum=0.5))):
        ps = [Parameter(np.ones(3)), Parameter(np.ones(3))]
        ts = [torch.ones(3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
        opt, topt = cls(ps, **kw), getattr(torch.optim, cls.__name__)(ts, **kw)
        for s in range(4):
            for k, (p, t) in enumerate(zip(ps, ts)):
                g = None if k == 1 and s % 2 else np.arange(3.0) + s + k
                p.grad, t.grad = g, None if g is None else torch.from_numpy(g.copy())
            opt.step()
            topt.step()
        for p, t in zip(ps, ts):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-14, err_msg=cls.__name__)


# ---- schedules --------------------------------------------------------------------------------
@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (4, 0.9)])
def test_step_lr_matches_torch(step_size, gamma):
    torch = pytest.importorskip("torch")
    opt = SGD(_params(), lr=0.3)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = StepLR(opt, step_size, gamma)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size, gamma)
    assert sched.get_last_lr() == tsched.get_last_lr()
    for _ in range(13):
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert opt.lr == topt.param_groups[0]["lr"]


@pytest.mark.parametrize("T_max, eta_min", [(1, 0.0), (5, 0.0), (7, 0.01)])
def test_cosine_annealing_matches_torch_through_two_periods(T_max, eta_min):
    torch = pytest.importorskip("torch")
    opt = Adam(_params(), lr=0.3)
    topt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = CosineAnnealingLR(opt, T_max, eta_min)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max, eta_min)
    assert sched.get_last_lr() == tsched.get_last_lr()
    for t in range(1, 2 * T_max + 3):
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15, abs=1e-17), t
    sched = CosineAnnealingLR(Adam(_params(), lr=0.3), 10)
    for _ in range(10):
        sched.step()
    assert sched.get_last_lr() == pytest.approx([0.0], abs=1e-17)      # annealed to eta_min at T_max
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt, 0)


def test_a_later_scheduler_anneals_from_the_first_ones_initial_lr_as_torch():
    """torch records each group's "initial_lr" with the first scheduler (not ReduceLROnPlateau), and a later
    scheduler on the same optimizer takes it as its base, not the rate the first one (or the user) left."""
    torch = pytest.importorskip("torch")
    opt = SGD(_params(), lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    plateau, tplateau = ReduceLROnPlateau(opt, patience=0), torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0)
    for metric in (1.0, 2.0, 3.0):
        plateau.step(metric)
        tplateau.step(metric)
    first, tfirst = StepLR(opt, 1, 0.5), torch.optim.lr_scheduler.StepLR(topt, 1, 0.5)
    for _ in range(3):
        topt.step()                                                    # (torch warns of a schedule before it)
        first.step()
        tfirst.step()
    opt.lr = topt.param_groups[0]["lr"] = 0.004                       # and a rate set by hand
    later = CosineAnnealingLR(opt, 2)
    tlater = torch.optim.lr_scheduler.CosineAnnealingLR(topt, 2)
    assert later.base_lrs == tlater.base_lrs and later.get_last_lr() == tlater.get_last_lr()
    for t in range(6):
        topt.step()
        later.step()
        tlater.step()
        assert later.get_last_lr() == pytest.approx(tlater.get_last_lr(), rel=1e-15, abs=1e-17), t
    assert opt.state_dict()["param_groups"][0]["initial_lr"] == topt.state_dict()["param_groups"][0]["initial_lr"]
    fresh = SGD(_params(), lr=0.1)
    fresh.load_state_dict(opt.state_dict())                            # a group with initial_lr loads into one without
    initial = opt.param_groups[0]["initial_lr"]                        # 0.001: the plateau's two cuts came first
    assert fresh.param_groups[0]["initial_lr"] == initial and CosineAnnealingLR(fresh, 2).base_lrs == [initial]


# metric sequences with improvements, plateaus and noise below the threshold
METRICS = [1.0, 0.9, 0.9, 0.95, 0.8999, 0.91, 0.7, 0.7, 0.7, 0.71, 0.69995, 0.5, 0.6, 0.6, 0.6, 0.6,
           0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=0),
    dict(patience=1, factor=0.5),
    dict(patience=2, cooldown=2, factor=0.5),
    dict(mode="max", patience=1),
    dict(threshold_mode="abs", threshold=0.05, patience=1),
    dict(mode="max", threshold_mode="abs", threshold=0.01, patience=0, cooldown=1),
    dict(patience=0, factor=0.5, min_lr=0.02),
    dict(patience=0, factor=0.9, eps=0.007),  # later decays are below eps
])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    opt = SGD(_params(), lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    lrs, tlrs = [], []
    for metric in METRICS:
        sched.step(metric)
        tsched.step(metric)
        lrs.append(sched.get_last_lr())
        tlrs.append(tsched.get_last_lr())
    assert lrs == tlrs
    assert len(set(map(tuple, lrs))) > 1 or kwargs == {}  # the sequence actually exercises a decay


def test_scheduler_state_dict_resume():
    def run(metrics, sched_cls, resume_at=None, **kw):
        opt = SGD(_params(), lr=0.1)
        sched = sched_cls(opt, **kw)
        lrs = []
        for i, m in enumerate(metrics):
            if i == resume_at:
                sd_opt, sd_sched = opt.state_dict(), sched.state_dict()
                opt = SGD(_params(), lr=0.1)
                opt.load_state_dict(sd_opt)
                sched = sched_cls(opt, **kw)
                sched.load_state_dict(sd_sched)
            sched.step(m) if sched_cls is ReduceLROnPlateau else sched.step()
            lrs.append(sched.get_last_lr())
        return lrs

    kw = dict(patience=1, cooldown=1, factor=0.5)
    assert run(METRICS, ReduceLROnPlateau, **kw) == run(METRICS, ReduceLROnPlateau, resume_at=9, **kw)
    assert run(METRICS, StepLR, step_size=3) == run(METRICS, StepLR, resume_at=7, step_size=3)
    with pytest.raises(KeyError):
        StepLR(SGD(_params()), 2).load_state_dict({"last_epoch": 3})


@pytest.mark.parametrize("call, exc, match", [
    (lambda opt: StepLR(opt, 0), ValueError, "step_size"),
    (lambda opt: StepLR(opt, 2.5), TypeError, "step_size"),
    (lambda opt: StepLR(opt, 2, gamma=-1), ValueError, "gamma"),
    (lambda opt: StepLR(object(), 2), TypeError, "optimizer"),
    (lambda opt: ReduceLROnPlateau(opt, factor=1.0), ValueError, "factor"),
    (lambda opt: ReduceLROnPlateau(opt, mode="up"), ValueError, "mode"),
    (lambda opt: ReduceLROnPlateau(opt, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda opt: ReduceLROnPlateau(opt, patience=-1), ValueError, "patience"),
    (lambda opt: ReduceLROnPlateau(opt, min_lr=[0.0, 0.1]), ValueError, "min_lr"),
])
def test_scheduler_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(SGD(_params()))


def test_adam_on_float16_parameters_takes_the_numpy_path():
    """The one-pass kernel is for float32 and float64; float16 parameters update by NumPy, near float64's."""
    p16, p64 = Parameter(np.ones(4, np.float16)), Parameter(np.ones(4))
    opt16, opt64 = Adam([p16], lr=0.1), Adam([p64], lr=0.1)
    for step in range(3):
        p16.grad = np.arange(1, 5, dtype=np.float16) + step          # (a zero would be 0/0: eps underflows)
        p64.grad = p16.grad.astype(np.float64)
        opt16.step()
        opt64.step()
    assert p16.data.dtype == np.float16
    np.testing.assert_allclose(p16.data, p64.data, atol=2e-3)


# ---- parameter groups (torch's list of dicts) ------------------------------------------------------------
GROUP_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9), [dict(), dict(lr=0.01, nesterov=True, weight_decay=0.1)]),
    ("Adam", dict(lr=0.01), [dict(betas=(0.5, 0.9)), dict(lr=0.1, amsgrad=True, weight_decay=0.2)]),
    ("AdamW", dict(), [dict(weight_decay=0.0), dict(lr=0.05, maximize=True)]),
    ("RMSprop", dict(lr=0.01), [dict(centered=True), dict(momentum=0.5, alpha=0.5)]),
]


def _grouped(params, overrides, scheduler_key="name"):
    """params[:1] in the first group, the rest in the second, each with its overrides (and a key that is
    not a hyper-parameter, which torch keeps)."""
    return [{"params": params[:1], scheduler_key: "rnn", **overrides[0]},
            {"params": params[1:], scheduler_key: "head", **overrides[1]}]


@pytest.mark.parametrize("name, kwargs, overrides", GROUP_CONFIGS, ids=[c[0] for c in GROUP_CONFIGS])
def test_parameter_groups_match_torch(name, kwargs, overrides):
    torch = pytest.importorskip("torch")
    params = _params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = OURS[name](_grouped(params, overrides), **kwargs)
    topt = getattr(torch.optim, name)(_grouped(tparams, overrides), foreach=False, **kwargs)
    for ours, theirs in zip(opt.param_groups, topt.param_groups):
        assert {k: v for k, v in ours.items() if k != "params"} == {
            k: v for k, v in theirs.items() if k in ours and k != "params"}
    _steps_beside_torch(torch, params, tparams, opt, topt, N_STEPS, 1)


def test_add_param_group_and_schedules_of_two_groups_match_torch():
    torch = pytest.importorskip("torch")
    params = _params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt, topt = Adam(params[:2], lr=0.01), torch.optim.Adam(tparams[:2], lr=0.01, foreach=False)
    opt.add_param_group({"params": params[2], "lr": 0.1})              # a lone parameter, as torch takes it
    topt.add_param_group({"params": tparams[2], "lr": 0.1})
    sched, tsched = CosineAnnealingLR(opt, 5, eta_min=0.001), torch.optim.lr_scheduler.CosineAnnealingLR(topt, 5, 0.001)

    def schedules():
        sched.step()
        tsched.step()
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-14)
    _steps_beside_torch(torch, params, tparams, opt, topt, 8, 2, schedules)
    assert sched.get_last_lr()[0] != sched.get_last_lr()[1]


def test_state_dict_of_parameter_groups_resumes_exactly():
    overrides = [dict(), dict(lr=0.1, weight_decay=0.1)]
    rng = np.random.default_rng(3)
    grads = [_grads(rng) for _ in range(6)]
    straight = _params()
    opt = Adam(_grouped(straight, overrides), lr=0.01)
    for g in grads:
        _set_grads(straight, g)
        opt.step()
    resumed = _params()
    first = Adam(_grouped(resumed, overrides), lr=0.01)
    for g in grads[:3]:
        _set_grads(resumed, g)
        first.step()
    saved = first.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1, 2]]
    second = Adam(_grouped(resumed, [dict(), dict()]), lr=0.5)                # other rates: the load restores them
    second.load_state_dict(saved)
    assert [g["lr"] for g in second.param_groups] == [0.01, 0.1]
    for g in grads[3:]:
        _set_grads(resumed, g)
        second.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="2 parameter groups, expected 1"):
        Adam(resumed).load_state_dict(saved)


def test_parameter_group_errors():
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [p, q]}])
    opt = SGD([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match="'params'"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([q])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [q], "lr": -1.0})
    with pytest.raises(ValueError, match="nesterov"):
        SGD([{"params": [p], "nesterov": True}], momentum=0.9, dampening=0.5)
    with pytest.raises(TypeError, match="betas"):
        Adam([{"params": [p], "betas": 0.9}])
    with pytest.raises(TypeError, match=r"params\[1\] must be a parameter group"):
        Adam([{"params": [p]}, q])
    with pytest.raises(TypeError, match="single dict"):
        Adam({"params": [p]})
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [p]     # the failed adds left it
    opt.add_param_group({"params": q, "lr": 0.5})
    assert opt.param_groups[1]["params"] == [q] and opt.param_groups[1]["momentum"] == opt.defaults["momentum"]
    assert "group 1: lr=0.5" in repr(opt)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")
def test_schedules_reach_a_group_added_later_as_torchs_do():
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler

    def rates(opt, make, add, metric):
        sched = make(opt)
        add(opt)
        for _ in range(3):
            sched.step(*metric)
        return [g["lr"] for g in opt.param_groups]

    def ours(make, metric=()):
        return rates(SGD([Parameter(np.zeros(2))], lr=0.1), make,
                     lambda o: o.add_param_group({"params": [Parameter(np.zeros(2))], "lr": 0.2}), metric)

    def theirs(make, metric=()):
        return rates(torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1), make,
                     lambda o: o.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": 0.2}), metric)

    np.testing.assert_allclose(ours(lambda o: CosineAnnealingLR(o, 5)), theirs(lambda o: L.CosineAnnealingLR(o, 5)),
                               rtol=1e-14)
    np.testing.assert_allclose(ours(lambda o: ReduceLROnPlateau(o, patience=0, factor=0.5), (1.0,)),
                               theirs(lambda o: L.ReduceLROnPlateau(o, patience=0, factor=0.5), (1.0,)), rtol=1e-14)
    np.testing.assert_allclose(ours(lambda o: StepLR(o, 2)), theirs(lambda o: L.StepLR(o, 2)), rtol=1e-14)
    with pytest.raises(RuntimeError, match="min_lrs"):          # one min_lr each, and a group without its own
        ours(lambda o: ReduceLROnPlateau(o, patience=0, factor=0.5, min_lr=[0.0]), (1.0,))
    with pytest.raises(ValueError, match="initial lr"):          # the trough's climb needs each group's
        opt = SGD([Parameter(np.zeros(2))], lr=0.1)
        sched = CosineAnnealingLR(opt, 1)
        opt.add_param_group({"params": [Parameter(np.zeros(2))]})
        for _ in range(3):
            sched.step()


def test_parameter_groups_review_points_as_torch():
    torch = pytest.importorskip("torch")
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    with pytest.raises(TypeError, match="not a set"):               # torch: "ordered collections"
        SGD({p, q})
    with pytest.raises(TypeError, match="parameter group 1's params must be an ordered collection"):
        SGD([{"params": [p]}, {"params": {q}}])
    with pytest.raises(ValueError, match="parameter group 1: lr"):    # which group's hyper-parameter
        Adam([{"params": [p]}, {"params": [q], "lr": -1.0}])
    # a saved dict's extra keys load, as torch's load takes the saved groups
    tagged = Adam([{"params": [p], "tag": "rnn"}], lr=0.01)
    plain = Adam([Parameter(np.zeros(2))], lr=0.5)
    plain.load_state_dict(tagged.state_dict())
    assert plain.param_groups[0]["tag"] == "rnn" and plain.lr == 0.01
    tplain = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.5)
    tplain.load_state_dict({"state": {}, "param_groups": [{**tagged.state_dict()["param_groups"][0],
                                                           **{k: v for k, v in tplain.defaults.items()
                                                              if k not in tagged.defaults}}]})
    assert tplain.param_groups[0]["tag"] == "rnn"
    lacking = tagged.state_dict()
    del lacking["param_groups"][0]["eps"]
    with pytest.raises(KeyError, match=r"lack Adam's hyper-parameters \['eps'\]"):
        plain.load_state_dict(lacking)


def test_reduce_on_plateau_loads_a_state_dict_saved_before_default_min_lr():
    opt = SGD(_params(), lr=0.1)
    sched = ReduceLROnPlateau(opt, patience=0, factor=0.5)
    older = sched.state_dict()
    del older["default_min_lr"]                                        # as written before that attribute
    fresh = ReduceLROnPlateau(SGD(_params(), lr=0.1), patience=0, factor=0.5, min_lr=0.2)
    fresh.load_state_dict(older)
    assert fresh.default_min_lr is None and fresh.min_lrs == [0.0]


def test_load_state_dict_checks_each_parameters_buffers_and_takes_torchs():
    """A state missing a buffer (Adam without "step" or "exp_avg_sq", SGD's buffer in Adam's place) loaded and
    resumed wrongly; the saved groups' parameter ids were ignored; torch's own state dict (step a 0-d tensor)
    was refused; nesterov="False" read as True."""
    rng = np.random.default_rng(0)
    w = rnnfast.Parameter(rng.standard_normal(3))
    w.grad[...] = rng.standard_normal(3)
    opt = rnnfast.Adam([w], lr=0.1)
    opt.step()
    good = opt.state_dict()
    for drop in ("step", "exp_avg_sq"):
        bad = copy.deepcopy(good)
        del bad["state"][0][drop]
        with pytest.raises(KeyError, match=f"missing \\['{drop}'\\]"):
            rnnfast.Adam([w], lr=0.1).load_state_dict(bad)
    bad = copy.deepcopy(good)
    bad["state"][0] = {"momentum_buffer": np.zeros(3)}
    with pytest.raises(KeyError, match="unexpected \\['momentum_buffer'\\]"):
        rnnfast.Adam([w], lr=0.1).load_state_dict(bad)
    moved = copy.deepcopy(good)
    moved["param_groups"][0]["params"] = [5]
    moved["state"] = {5: moved["state"][0]}                         # ids are the saved groups' own
    again = rnnfast.Adam([w], lr=0.1)
    again.load_state_dict(moved)
    np.testing.assert_array_equal(again.state[0]["exp_avg"], opt.state[0]["exp_avg"])
    bad = copy.deepcopy(good)
    bad["param_groups"][0]["params"] = [7]
    with pytest.raises(ValueError, match="parameter id 0"):
        rnnfast.Adam([w], lr=0.1).load_state_dict(bad)
    with pytest.raises(TypeError, match="nesterov must be True or False"):
        rnnfast.SGD([w], lr=0.1, momentum=0.9, nesterov="False")
    torch = pytest.importorskip("torch")
    tw = torch.nn.Parameter(torch.tensor(w.data.copy()))
    tw.grad = torch.tensor(w.grad.copy())
    topt = torch.optim.Adam([tw], lr=0.1)
    topt.step()
    mine = rnnfast.Adam([rnnfast.Parameter(w.data.copy())], lr=0.1)
    mine.load_state_dict(topt.state_dict())
    assert mine.state[0]["step"] == 1
    np.testing.assert_allclose(mine.state[0]["exp_avg_sq"], topt.state[tw]["exp_avg_sq"].numpy(), rtol=1e-12)


def test_scheduler_load_state_dict_checks_the_values():
    """Only the key names were checked: step_size=0 or T_max=0 loaded and the next step divided by zero, a
    one-group state loaded into a scheduler over two groups, mode='bogus' and patience=-3 were taken."""
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    opt = SGD([p], lr=0.1)
    two = SGD([{"params": [p]}, {"params": [q]}], lr=0.1)
    for sched, key, value, match in [
            (StepLR(opt, step_size=2), "step_size", 0, "step_size'\\] must be >= 1"),
            (CosineAnnealingLR(opt, T_max=4), "T_max", 0, "T_max'\\] must be >= 1"),
            (ReduceLROnPlateau(opt), "mode", "bogus", "mode"),
            (ReduceLROnPlateau(opt), "patience", -3, "patience'\\] must be >= 0")]:
        state = sched.state_dict()
        state[key] = value
        fresh = type(sched)(opt, **({"step_size": 2} if key == "step_size" else {"T_max": 4} if key == "T_max"
                                    else {}))
        before = fresh.state_dict()
        with pytest.raises(ValueError, match=match):
            fresh.load_state_dict(state)
        assert fresh.state_dict() == before                         # nothing changed
    with pytest.raises(ValueError, match="one rate per parameter group \\(2\\)"):
        CosineAnnealingLR(two, T_max=4).load_state_dict(CosineAnnealingLR(opt, T_max=4).state_dict())
    with pytest.raises(KeyError, match=r"state_dict keys \['last_epoch'\] do not match"):
        ReduceLROnPlateau(opt).load_state_dict({"last_epoch": 0})      # the caller's keys, not ours added
