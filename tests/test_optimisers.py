"""The optimisers (issue 10, part 1): ``update`` against the NumPy formulas step after step,
``step`` over lists of odd shapes in one launch and in place, against the formulas and
``torch.optim``; state (dtype, device, ``state_dict``), clipping inside ``step``,
schedules as ``lr``; bad input leaves everything untouched.

References: the formulas as the specification writes them (``mlkernels.reference``), run
in float64 on the same data (float32 results are compared with them at rtol 1e-5,
normwise), and ``torch.optim`` (CPU, float64 and float32) where the semantics agree:
Adam, AdamW (the formula decays the OLD theta, as torch does), SGD with momentum and
nesterov (the formula's velocity is ``-lr`` times torch's buffer while ``lr`` is constant;
``NAG.step`` is the look-ahead form, which torch's nesterov SGD also is).
"""

from __future__ import annotations

import copy
import pickle
import zlib

import numpy as np
import pytest
import torch

import mlkernels as mk
from conftest import to_device, to_host
from mlkernels import reference as R
from mlkernels._core import cpu
from mlkernels._core.pointers import address

STEPS = 20
SHAPES = [(1,), (31,), (33,), (1000,), (1009,), (3, 5), (7, 11, 13)]  # 1009 is prime
SIM_SHAPES = [(1,), (33,), (2, 5)]  # the simulator is slow: tiny arrays

OPTIMISERS = {
    "SGDMomentum": ({"lr": 0.05, "momentum": 0.9}, R.SGDMomentum),
    "Adam": ({"lr": 0.01}, R.Adam),
    "AdamW": ({"lr": 0.01, "weight_decay": 0.1}, R.AdamW),
    "Adam-custom": ({"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}, R.Adam),
}


def _cls(name):
    return getattr(mk, name.split("-")[0])


def _shapes(device):
    return SHAPES if device == "cpu" else SIM_SHAPES


def _rel(got, want) -> float:
    """Normwise relative error, on the scale of parameters of order 1 at least (a tiny
    parameter moved by float32 steps of ~lr carries their rounding, ~1e-7 lr each)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1.0))


def _tol(dtype) -> float:
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def _grads(rng, shape, dtype, steps=STEPS):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


# --------------------------------------------------------------------------------------
# update: the formula, step after step
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_update_follows_the_formula_for_20_steps(device, name, dtype):
    kwargs, formula = OPTIMISERS[name]
    for shape in _shapes(device):
        rng = np.random.default_rng(zlib.crc32(repr((name, shape)).encode()))
        theta0 = rng.standard_normal(shape).astype(dtype)
        grads = _grads(rng, shape, dtype, STEPS if device == "cpu" else 4)
        opt, ref = _cls(name)(**kwargs), formula(**kwargs)
        theta, want = to_device(theta0, device), theta0.astype(np.float64)
        for g in grads:
            before = to_host(theta).copy()
            new = opt.update(theta, to_device(g, device))
            np.testing.assert_array_equal(to_host(theta), before)  # theta is read only
            theta, want = new, ref.update(want, g.astype(np.float64))
            got = to_host(theta)
            assert got.dtype == np.dtype(dtype) and got.shape == shape
            assert _rel(got, want) <= _tol(dtype), (shape, _rel(got, want))
        if name.startswith("Adam"):
            assert opt.t == ref.t == len(grads)
            assert _rel(to_host(opt.m), ref.m) <= _tol(dtype)
            assert _rel(to_host(opt.v), ref.v) <= 10 * _tol(dtype)
        else:
            assert _rel(to_host(opt.v), ref.v) <= _tol(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nag_update_takes_the_gradient_at_the_look_ahead_point(device, dtype):
    """NAG.update(theta, grad_fn): grad_fn sees theta + beta v, as in the formula."""
    rng = np.random.default_rng(3)
    shape = (33,)
    a = rng.uniform(0.5, 2.0, shape)  # f = sum(a x² / 2 - b x): grad = a x - b
    b = rng.standard_normal(shape)
    seen = []

    def grad_fn(x):
        xh = to_host(x).astype(np.float64)
        seen.append(xh)
        return to_device((a * xh - b).astype(dtype), device)

    def grad_ref(x):
        return a * x - b

    opt, ref = mk.NAG(lr=0.1, momentum=0.8), R.NAG(lr=0.1, momentum=0.8)
    theta0 = rng.standard_normal(shape).astype(dtype)
    theta, want = to_device(theta0, device), theta0.astype(np.float64)
    for _ in range(STEPS if device == "cpu" else 4):
        theta, want = opt.update(theta, grad_fn), ref.update(want, grad_ref)
        assert _rel(to_host(theta), want) <= _tol(dtype)
    look = to_host(theta).astype(np.float64) + 0.8 * to_host(opt.v)
    theta = opt.update(theta, grad_fn)
    assert _rel(seen[-1], look) <= _tol(dtype)
    with pytest.raises(TypeError, match="grad_fn"):
        opt.update(theta, np.zeros(shape, dtype))


def test_sgd_update_is_the_formula_and_may_write_in_place():
    rng = np.random.default_rng(5)
    theta, grad = rng.standard_normal(1009), rng.standard_normal(1009)
    want = R.sgd_update(theta, grad, 0.3)
    tol = {"rtol": 1e-15, "atol": 1e-16}  # FMA may round a cancelling difference otherwise
    np.testing.assert_allclose(mk.sgd_update(theta, grad, 0.3), want, **tol)
    np.testing.assert_allclose(mk.sgd_update(theta, grad), R.sgd_update(theta, grad), **tol)
    out = mk.sgd_update(theta, grad, lr=0.3, out=theta)
    assert out is theta
    np.testing.assert_allclose(theta, want, **tol)
    with pytest.raises(ValueError, match="lr"):
        mk.sgd_update(theta, grad, -1.0)


# --------------------------------------------------------------------------------------
# step: in place, over lists, one launch
# --------------------------------------------------------------------------------------


def _launches(monkeypatch, backend):
    calls = []
    real = backend.run_foreach

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "run_foreach", spy)
    return calls


def _backend(device):
    if device == "cpu":
        return cpu
    from mlkernels._core import gpu

    return gpu


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_step_over_a_list_is_the_formula_per_array_in_one_launch_in_place(
    monkeypatch, device, name, dtype
):
    kwargs, formula = OPTIMISERS[name]
    shapes = _shapes(device)
    rng = np.random.default_rng(11)
    params0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [to_device(p, device) for p in params0]
    pointers = [address(p) for p in params]
    refs = [formula(**kwargs) for _ in shapes]
    want = [p.astype(np.float64) for p in params0]
    opt = _cls(name)(**kwargs)
    launches = _launches(monkeypatch, _backend(device))
    steps = 6 if device == "cpu" else 3
    for _ in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        assert opt.step(params, [to_device(g, device) for g in grads]) is None
        want = [
            r.update(w, g.astype(np.float64)) for r, w, g in zip(refs, want, grads, strict=True)
        ]
    assert len(launches) == steps  # one launch per step for the whole list
    for p, w, ptr in zip(params, want, pointers, strict=True):
        got = to_host(p)
        assert got.dtype == np.dtype(dtype)
        assert _rel(got, w) <= _tol(dtype)
        assert address(p) == ptr  # the same buffer: updated in place
    assert opt.t == steps and len(opt.state) == len(shapes)
    for s, shape in zip(opt.state, shapes, strict=True):
        for a in s.values():
            assert tuple(a.shape) == shape and np.dtype(a.dtype) == np.dtype(dtype)
            assert hasattr(a, "copy_to_host") == (device == "gpu")  # on the params' device


def test_step_over_fifty_arrays_of_odd_sizes_and_one_array_alone():
    rng = np.random.default_rng(12)
    sizes = [int(n) for n in rng.integers(1, 3000, 50)] + [cpu.FOREACH_CHUNK + 7]
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    want = [p.astype(np.float64) for p in params]
    refs = [R.AdamW(lr=0.01, weight_decay=0.05) for _ in sizes]
    opt = mk.AdamW(lr=0.01, weight_decay=0.05)
    for _ in range(5):
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        opt.step(params, grads)
        want = [
            r.update(w, g.astype(np.float64)) for r, w, g in zip(refs, want, grads, strict=True)
        ]
    assert max(_rel(p, w) for p, w in zip(params, want, strict=True)) <= 1e-5
    one = rng.standard_normal(1009)  # one array, not a list
    ref, opt, want = R.Adam(), mk.Adam(), one.copy()
    for _ in range(5):
        g = rng.standard_normal(1009)
        opt.step(one, g)
        want = ref.update(want, g)
    np.testing.assert_allclose(one, want, rtol=1e-10, atol=1e-14)


def test_step_takes_strided_and_read_only_grads():
    rng = np.random.default_rng(13)
    p, g2 = rng.standard_normal((6, 8)), rng.standard_normal((8, 6))
    g = g2.T  # Fortran order
    g.flags.writeable = False
    ref, opt, want = R.Adam(), mk.Adam(), p.copy()
    opt.step(p, g)
    np.testing.assert_allclose(p, ref.update(want, np.ascontiguousarray(g)), rtol=1e-12)


# --------------------------------------------------------------------------------------
# against torch.optim
# --------------------------------------------------------------------------------------

TORCH = {
    "Adam": (lambda ps: torch.optim.Adam(ps, lr=0.01), lambda: mk.Adam(lr=0.01)),
    "Adam fused": (lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True), lambda: mk.Adam(lr=0.01)),
    "AdamW": (
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        lambda: mk.AdamW(lr=0.01, weight_decay=0.1),
    ),
    "SGD momentum": (
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda: mk.SGDMomentum(lr=0.05, momentum=0.9),
    ),
    "SGD nesterov": (
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda: mk.NAG(lr=0.05, momentum=0.9),
    ),
    "SGD": (lambda ps: torch.optim.SGD(ps, lr=0.05), lambda: mk.SGD(lr=0.05)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(TORCH))
def test_step_equals_torch_optim(name, dtype):
    make_torch, make_mk = TORCH[name]
    rng = np.random.default_rng(21)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    topt, opt = make_torch(tensors), make_mk()
    for _ in range(STEPS):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        for t, g in zip(tensors, grads, strict=True):
            t.grad = torch.from_numpy(g.copy())
        topt.step()
        opt.step(params, grads)
    tol = 1e-5 if dtype == "float32" else 1e-11
    for p, t in zip(params, tensors, strict=True):
        assert _rel(p, t.detach().numpy()) <= tol


# --------------------------------------------------------------------------------------
# state: dtype, state_dict, schedules, clipping
# --------------------------------------------------------------------------------------


def test_float64_state_for_float32_parameters():
    rng = np.random.default_rng(31)
    p = rng.standard_normal(1000).astype(np.float32)
    grads = _grads(rng, (1000,), np.float32)
    opt = mk.Adam(lr=0.01, state_dtype="float64")
    ref = R.Adam(lr=0.01)
    want = p.astype(np.float64)
    for g in grads:
        opt.step(p, g)
        want = ref.update(want, g.astype(np.float64))
    assert opt.m.dtype == np.float64 and opt.v.dtype == np.float64 and p.dtype == np.float32
    np.testing.assert_allclose(opt.m, ref.m, rtol=1e-12, atol=1e-15)  # moments in float64
    assert _rel(p, want) <= 1e-6
    with pytest.raises(TypeError, match="state_dtype"):
        mk.Adam(state_dtype="int32")


@pytest.mark.parametrize("name", ["SGDMomentum", "NAG", "Adam", "AdamW"])
def test_state_dict_saves_and_restores_the_run(name):
    """Five steps, save (through pickle), restore into a new optimiser, five more: the
    same bits as ten steps straight; the saved arrays are copies."""
    rng = np.random.default_rng(32)
    shapes = [(7,), (3, 4)]
    params0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(10)]
    straight, opt = [p.copy() for p in params0], getattr(mk, name)(lr=0.01)
    for g in grads:
        opt.step(straight, g)
    first, pa = getattr(mk, name)(lr=0.01), [p.copy() for p in params0]
    for g in grads[:5]:
        first.step(pa, g)
    saved = pickle.loads(pickle.dumps(first.state_dict()))
    keep = copy.deepcopy(saved)
    assert saved["state"][0]["step"] == 5 and saved["param_groups"][0]["params"] == [0, 1]
    resumed = getattr(mk, name)(lr=0.5)  # its lr comes from the dict
    resumed.load_state_dict(saved)
    assert resumed.lr == 0.01 and resumed.t == 5
    pb = [p.copy() for p in pa]
    for g in grads[5:]:
        first.step(pa, g)
        resumed.step(pb, g)
    for x, y, z in zip(pa, pb, straight, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    for i, arrays in saved["state"].items():  # not changed by the later steps
        for k, a in arrays.items():
            np.testing.assert_array_equal(a, keep["state"][i][k])
    with pytest.raises(ValueError, match="param_groups"):
        resumed.load_state_dict({"state": {}})
    bad = first.state_dict()
    bad["state"][0].pop(next(k for k in bad["state"][0] if k != "step"))
    with pytest.raises(ValueError, match=r"state\[0\]"):
        resumed.load_state_dict(bad)
    assert resumed.t == 10  # a refused dict changes nothing


def test_a_schedule_as_lr_is_evaluated_at_the_steps_taken_before():
    rng = np.random.default_rng(33)
    p = rng.standard_normal(100)
    sched = mk.schedule("warmup_cosine", T_warmup=3, T_total=12, lr_max=0.05, lr_min=0.001)
    opt, ref, want = mk.AdamW(lr=sched, weight_decay=0.1), R.AdamW(weight_decay=0.1), p.copy()
    for t in range(15):
        g = rng.standard_normal(100)
        ref.lr = R.warmup_cosine(t, 3, 12, lr_max=0.05, lr_min=0.001)
        opt.step(p, g)
        want = ref.update(want, g)
        assert opt.last_lr == pytest.approx(ref.lr, rel=1e-15, abs=0)
    np.testing.assert_allclose(p, want, rtol=1e-10, atol=1e-13)
    assert pickle.loads(pickle.dumps(opt.state_dict()))["param_groups"][0]["lr"] == sched


def test_a_schedule_that_gives_a_bad_rate_raises_before_anything_is_written():
    p = np.ones(4)
    opt = mk.SGD(lr=lambda t: -1.0)
    with pytest.raises(ValueError, match="schedule"):
        opt.step(p, np.ones(4))
    np.testing.assert_array_equal(p, np.ones(4))
    assert opt.t == 0


@pytest.mark.parametrize("name", ["SGD", "SGDMomentum", "Adam"])
def test_max_grad_norm_clips_the_whole_list_inside_step(monkeypatch, device, name):
    rng = np.random.default_rng(34)
    shapes = _shapes(device)
    params0 = [rng.standard_normal(s) for s in shapes]
    grads = [5 * rng.standard_normal(s) for s in shapes]
    clipped, norm = R.clip_by_global_norm(grads, 0.5)
    ref_opt, ref_params = getattr(mk, name)(lr=0.01), [p.copy() for p in params0]
    ref_opt.step(ref_params, clipped)
    opt = getattr(mk, name)(lr=0.01, max_grad_norm=0.5)
    params = [to_device(p, device) for p in params0]
    launches = _launches(monkeypatch, _backend(device))
    opt.step(params, [to_device(g, device) for g in grads])
    assert len(launches) == 2  # the norm, then the update (the factor stays on the device)
    for p, w in zip(params, ref_params, strict=True):
        np.testing.assert_allclose(to_host(p), w, rtol=1e-12, atol=1e-15)
    assert float(to_host(opt.last_grad_norm)) == pytest.approx(norm, rel=1e-12)
    with pytest.raises(ValueError, match="max_grad_norm"):
        mk.Adam(max_grad_norm=0)


def test_a_nan_gradient_propagates_as_in_the_formula():
    p, g = np.zeros(5), np.array([0.0, np.nan, 1.0, 0.0, 0.0])
    opt = mk.Adam()
    opt.step(p, g)
    want = R.Adam().update(np.zeros(5), g)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(want))
    assert np.isnan(opt.m[1]) and np.isnan(opt.v[1])


# --------------------------------------------------------------------------------------
# bad input: a clear error, nothing written
# --------------------------------------------------------------------------------------


def _untouched(opt, params, before, state_before, t_before):
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(to_host(p), b)
    assert opt.t == t_before
    for s, sb in zip(opt.state, state_before, strict=True):
        for k in s:
            np.testing.assert_array_equal(to_host(s[k]), sb[k])


def test_bad_input_raises_before_anything_is_written():
    rng = np.random.default_rng(41)
    params = [rng.standard_normal(5), rng.standard_normal((2, 3))]
    grads = [rng.standard_normal(5), rng.standard_normal((2, 3))]
    opt = mk.Adam(max_grad_norm=1.0)
    opt.step(params, grads)  # state exists now
    before = [p.copy() for p in params]
    state_before = [{k: v.copy() for k, v in s.items()} for s in opt.state]
    bad_calls = [
        (ValueError, "2 params but 1 grads", (params, grads[:1])),
        (ValueError, r"grads\[1\] has shape", (params, [grads[0], np.zeros((3, 2))])),
        (TypeError, r"grads\[0\] has dtype float32", (params, [grads[0].astype("f4"), grads[1]])),
        (TypeError, r"params\[1\] has dtype", (params[:1] + [params[1].astype("f4")], grads)),
        (TypeError, "both be lists", (params, grads[0])),
        (ValueError, "state holds 2 arrays", (params[:1], grads[:1])),
        (ValueError, r"state\[0\]\['m'\]", ([np.zeros(6), params[1]], [np.zeros(6), grads[1]])),
        (TypeError, "complex", ([p.astype(complex) for p in params], grads)),
    ]
    for exc, match, args in bad_calls:
        with pytest.raises(exc, match=match):
            opt.step(*args)
        _untouched(opt, params, before, state_before, 1)
    strided = np.zeros(10)[::2]
    with pytest.raises(ValueError, match=r"params\[0\] must be a writeable C-contiguous"):
        opt.step([strided, params[1]], grads)
    read_only = params[0].copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        opt.step([read_only, params[1]], grads)
    with pytest.raises(TypeError, match="arrays"):
        mk.SGD().step([[1.0, 2.0]], [np.ones(2)])
    _untouched(opt, params, before, state_before, 1)


def test_host_and_device_arrays_mixed_raise_before_anything_is_written():
    p, g = np.ones(4), np.ones(4)
    opt = mk.Adam()
    with pytest.raises(mk.DeviceMismatchError, match="params"):
        opt.step([p], [to_device(g, "gpu")])
    np.testing.assert_array_equal(p, np.ones(4))
    opt.step([p], [g])  # host state now
    with pytest.raises(mk.DeviceMismatchError, match="state"):
        opt.step([to_device(p, "gpu")], [to_device(g, "gpu")])
    assert opt.t == 1


def test_hyper_parameters_are_checked():
    for bad in ({"lr": -1.0}, {"beta1": 1.0}, {"beta2": -0.1}, {"eps": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            mk.Adam(**bad)
    with pytest.raises(TypeError, match="momentum"):
        mk.SGDMomentum(momentum="0.9")
    with pytest.raises(ValueError, match="weight_decay"):
        mk.AdamW(weight_decay=-1)
    with pytest.raises(TypeError, match="list"):
        mk.Adam().update([np.ones(3)], [np.ones(3)])
    assert "Adam(lr=0.001" in repr(mk.Adam())


@pytest.mark.parametrize("name", ["SGDMomentum", "NAG", "Adam", "AdamW"])
def test_the_first_step_of_a_fresh_state_is_the_general_step_from_zeros(name):
    """A fresh optimiser's first step writes the state without reading zeros
    (``_first``): the values of the general step from a zero state (loaded): the same
    moments, the parameters to rounding (fast-math may reassociate the update in one
    kernel and not in the other: a few ulps where the update cancels the parameter)."""
    rng = np.random.default_rng(51)
    p, g = rng.standard_normal((7, 300)).astype(np.float32), rng.standard_normal((7, 300))
    g = g.astype(np.float32)
    fresh, loaded = getattr(mk, name)(lr=0.01), getattr(mk, name)(lr=0.01)
    names = ("m", "v") if name.startswith("Adam") else ("v",)
    zeros = {"state": {0: {"step": 0, **{n: np.zeros_like(p) for n in names}}},
             "param_groups": [{"lr": 0.01}]}  # fmt: skip
    loaded.load_state_dict(zeros)
    a, b = p.copy(), p.copy()
    fresh.step(a, g)
    loaded.step(b, g)
    assert _rel(a, b) <= 2e-7
    for n in names:
        np.testing.assert_array_equal(fresh.state[0][n], loaded.state[0][n])
    c = getattr(mk, name)(lr=0.01).update(p, g) if name != "NAG" else a
    assert _rel(c, a) <= 2e-7


def test_state_dict_of_a_state_on_the_device_stays_on_the_device(device):
    rng = np.random.default_rng(61)
    p0 = [rng.standard_normal(s) for s in _shapes(device)]
    grads = [[rng.standard_normal(s) for s in _shapes(device)] for _ in range(4)]
    a, pa = mk.Adam(lr=0.01), [to_device(p, device) for p in p0]
    for g in grads[:2]:
        a.step(pa, [to_device(x, device) for x in g])
    saved = a.state_dict()
    for arrays in saved["state"].values():  # copies, on the state's device
        assert all(hasattr(v, "copy_to_host") == (device == "gpu")
                   for k, v in arrays.items() if k != "step")  # fmt: skip
    b = mk.Adam()
    b.load_state_dict(saved)
    pb = [to_device(to_host(p).copy(), device) for p in pa]
    for g in grads[2:]:
        a.step(pa, [to_device(x, device) for x in g])
        b.step(pb, [to_device(x, device) for x in g])
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(to_host(x), to_host(y))


def test_sgd_keeps_no_state_and_takes_any_list():
    rng = np.random.default_rng(62)
    opt = mk.SGD(lr=0.1)
    for n in (1, 3, 2):  # lists of other lengths, one after the other
        ps = [rng.standard_normal(5) for _ in range(n)]
        gs = [rng.standard_normal(5) for _ in range(n)]
        want = [R.sgd_update(p, g, 0.1) for p, g in zip(ps, gs, strict=True)]
        opt.step(ps, gs)
        for p, w in zip(ps, want, strict=True):
            np.testing.assert_allclose(p, w, rtol=1e-15, atol=1e-16)
    assert opt.state == [] and opt.t == 3
    resumed = mk.SGD(lr=mk.schedule("exp_decay", lr0=0.1))
    resumed.load_state_dict(opt.state_dict())  # the step count survives (for a schedule)
    assert resumed.t == 3 and resumed.lr == 0.1
