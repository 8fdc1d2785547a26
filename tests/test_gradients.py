"""The gradient tools (issue 10, part 3) against the formulas (``mlkernels.reference``),
NumPy and ``torch.nn.utils.clip_grad_norm_``: clipping by value and by global norm (one
launch for the norm over a list of odd shapes, in place on request), per-layer norms and
statistics, numerical gradients (serial for Python functions, parallel for compiled ones;
``x`` restored exactly) and grad_check."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch

import mlkernels as mk
from conftest import to_device, to_host
from mlkernels import reference as R
from mlkernels._core import cpu
from mlkernels._core.pointers import address

SHAPES = [(1,), (31,), (33,), (1000,), (1009,), (3, 5), (7, 11, 13)]
SIM_SHAPES = [(1,), (33,), (2, 5)]


def _shapes(device):
    return SHAPES if device == "cpu" else SIM_SHAPES


def _list(device, dtype, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    host = [(scale * rng.standard_normal(s)).astype(dtype) for s in _shapes(device)]
    return host, [to_device(g, device) for g in host]


# --------------------------------------------------------------------------------------
# clip_by_value
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_by_value_is_numpy_clip(device, dtype):
    g = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, np.nan, np.inf, -np.inf], dtype)
    got = to_host(mk.clip_by_value(to_device(g, device), -0.5, 0.75))
    np.testing.assert_array_equal(got, R.clip_by_value(g, -0.5, 0.75))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(
        to_host(mk.clip_by_value(to_device(g, device))), np.clip(g, -1, 1)
    )
    if device == "cpu":
        out = mk.clip_by_value(g, out=g)  # in place
        assert out is g
        np.testing.assert_array_equal(g[:7], [-1, -1, -0.5, 0, 0.25, 1, 1])
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        mk.clip_by_value(g, 1.0, -1.0)


# --------------------------------------------------------------------------------------
# clip_by_global_norm
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("max_norm", [1.0, 1e9])  # clipped, and left as it is
def test_clip_by_global_norm_is_the_formula(device, dtype, max_norm):
    host, grads = _list(device, dtype)
    want, want_norm = R.clip_by_global_norm([g.astype(np.float64) for g in host], max_norm)
    got, norm = mk.clip_by_global_norm(grads, max_norm)
    assert len(got) == len(host)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    for g, w, h in zip(got, want, host, strict=True):
        gh = to_host(g)
        assert gh.dtype == np.dtype(dtype) and gh.shape == h.shape
        np.testing.assert_allclose(gh, w, rtol=rtol, atol=1e-30)
    if device == "cpu":
        assert type(norm) is np.dtype(dtype).type
    else:
        assert to_host(norm).shape == () and to_host(norm).dtype == np.dtype(dtype)
    assert float(to_host(norm)) == pytest.approx(want_norm, rel=rtol)
    for g, h in zip(grads, host, strict=True):
        np.testing.assert_array_equal(to_host(g), h)  # not written


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_by_global_norm_in_place_scales_the_arrays_themselves(device, dtype):
    host, grads = _list(device, dtype, seed=1)
    want, want_norm = R.clip_by_global_norm([g.astype(np.float64) for g in host], 0.5)
    pointers = [address(g) for g in grads]
    got, norm = mk.clip_by_global_norm(grads, 0.5, inplace=True)
    assert all(a is b for a, b in zip(got, grads, strict=True))
    assert [address(g) for g in grads] == pointers
    rtol = 1e-6 if dtype == "float32" else 1e-13
    for g, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(to_host(g), w, rtol=rtol, atol=1e-30)
    assert float(to_host(norm)) == pytest.approx(want_norm, rel=rtol)


def test_clip_by_global_norm_equals_torch_and_is_one_pass_per_list(monkeypatch):
    rng = np.random.default_rng(2)
    sizes = [int(n) for n in rng.integers(1, 5000, 40)] + [cpu.FOREACH_CHUNK * 2 + 1]
    grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    tensors = [torch.tensor(g) for g in grads]
    for t in tensors:
        t.grad = t.clone()
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 2.0, foreach=True)
    launches = []
    real = cpu.run_foreach
    monkeypatch.setattr(cpu, "run_foreach", lambda *a, **k: launches.append(1) or real(*a, **k))
    got, norm = mk.clip_by_global_norm(grads, 2.0)
    assert len(launches) == 2  # the norm over all 41 arrays, then the scaling
    assert float(norm) == pytest.approx(float(tnorm), rel=1e-6)
    for g, t in zip(got, tensors, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=2e-6, atol=1e-12)
    exact = math.sqrt(math.fsum(float(x) ** 2 for g in grads for x in g.astype(np.float64)))
    assert float(norm) == pytest.approx(exact, rel=1e-7)  # float64 accumulation


def test_clip_by_global_norm_edge_cases():
    assert mk.clip_by_global_norm([]) == ([], 0.0)
    g = [np.array([3.0, np.nan]), np.array([4.0])]
    got, norm = mk.clip_by_global_norm(g, 1.0)
    want, want_norm = R.clip_by_global_norm(g, 1.0)  # a NaN norm: min(1, nan) is 1
    assert math.isnan(norm) and math.isnan(want_norm)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    got, _ = mk.clip_by_global_norm([np.array([np.inf, 1.0])], 1.0)
    np.testing.assert_array_equal(np.isnan(got[0]), [True, False])  # inf * 0, as the formula
    with pytest.raises(TypeError, match="list"):
        mk.clip_by_global_norm(np.ones(3))
    with pytest.raises(TypeError, match="float32 or all float64"):
        mk.clip_by_global_norm([np.ones(3), np.ones(2, np.float32)])
    with pytest.raises(ValueError, match="max_norm"):
        mk.clip_by_global_norm([np.ones(3)], -1.0)
    strided, whole = np.ones(10)[::2], np.full(3, 5.0)
    with pytest.raises(ValueError, match="in place"):
        mk.clip_by_global_norm([whole, strided], 1.0, inplace=True)
    np.testing.assert_array_equal(whole, 5.0)  # nothing written
    got, _ = mk.clip_by_global_norm([strided], 1.0)  # a strided array is read
    np.testing.assert_allclose(got[0], R.clip_by_global_norm([strided], 1.0)[0][0], rtol=1e-15)


# --------------------------------------------------------------------------------------
# layer_grad_norms, gradient_stats
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_grad_norms_is_the_formula(device, dtype):
    host, grads = _list(device, dtype, seed=3)
    names = [f"layer{i}.weight" for i in range(len(host))]
    got = mk.layer_grad_norms(dict(zip(names, grads, strict=True)))
    want = R.layer_grad_norms(dict(zip(names, [g.astype(np.float64) for g in host], strict=True)))
    assert list(got) == names
    for n in names:
        value = to_host(got[n])
        assert np.shape(value) == () and np.asarray(value).dtype == np.dtype(dtype)
        assert float(value) == pytest.approx(want[n], rel=1e-6 if dtype == "float32" else 1e-13)
    assert mk.layer_grad_norms({}) == {}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_stats_prints_the_formulas_lines_and_returns_the_figures(device, dtype, capsys):
    host, grads = _list(device, dtype, seed=4)
    host[0][...] = 7.0  # one element, a constant: std 0
    grads[0] = to_device(host[0], device)
    names = [f"g{i}" for i in range(len(host))]
    figures = mk.gradient_stats(dict(zip(names, grads, strict=True)))
    ours = capsys.readouterr().out
    R.gradient_stats(dict(zip(names, [g.astype(np.float64) for g in host], strict=True)))
    assert ours == capsys.readouterr().out
    for n, h in zip(names, host, strict=True):
        h64 = h.astype(np.float64)
        assert figures[n]["mean"] == pytest.approx(h64.mean(), rel=1e-12, abs=1e-15)
        assert figures[n]["std"] == pytest.approx(h64.std(), rel=1e-9, abs=1e-12)
        assert figures[n]["max"] == np.abs(h64).max()
    assert mk.gradient_stats({"a": np.ones(3)}, quiet=True) == {
        "a": {"mean": 1.0, "std": 0.0, "max": 1.0}
    }
    assert capsys.readouterr().out == ""


def test_gradient_stats_nan_and_empty():
    stats = mk.gradient_stats({"a": np.array([1.0, np.nan])}, quiet=True)["a"]
    assert all(math.isnan(v) for v in stats.values())
    with pytest.raises(ValueError, match="empty"):
        mk.gradient_stats({"a": np.ones(3), "b": np.zeros((2, 0))})


# --------------------------------------------------------------------------------------
# numerical_gradient, grad_check
# --------------------------------------------------------------------------------------


def _loss(x):
    return float(np.sum(np.sin(x) * x**2))


def _loss_grad(x):
    return np.cos(x) * x**2 + 2 * x * np.sin(x)


@numba.njit(cache=False)
def _loss_compiled(x):  # pragma: no cover - compiled
    s = 0.0
    for v in x.ravel():
        s += math.sin(v) * v * v
    return s


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1,), (17,), (4, 5)])
def test_numerical_gradient_is_the_formula(dtype, shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    x0 = x.copy()
    eps = 1e-3 if dtype == "float32" else 1e-5
    want = R.numerical_gradient(_loss, x.copy(), eps)
    got = mk.numerical_gradient(_loss, x, eps)  # a Python f: serial, as the formula
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, x0)
    parallel = mk.numerical_gradient(_loss_compiled, x, eps)  # compiled: threads, own copies
    np.testing.assert_array_equal(parallel, R.numerical_gradient(_loss_compiled, x.copy(), eps))
    np.testing.assert_array_equal(x, x0)
    if dtype == "float64":
        np.testing.assert_allclose(parallel, _loss_grad(x), rtol=1e-7, atol=1e-9)


def test_numerical_gradient_restores_x_exactly_when_f_raises():
    x = np.linspace(-1, 1, 7)
    x0 = x.copy()
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("boom")
        return float(np.sum(v**3))

    with pytest.raises(RuntimeError, match="boom"):
        mk.numerical_gradient(f, x)
    np.testing.assert_array_equal(x, x0)  # the element being perturbed is put back too


def test_numerical_gradient_of_a_strided_x_and_bad_input():
    base = np.linspace(-2, 2, 24).reshape(4, 6)
    x = base[:, ::2]
    got = mk.numerical_gradient(_loss_compiled, x)
    np.testing.assert_allclose(got, _loss_grad(x), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(base, np.linspace(-2, 2, 24).reshape(4, 6))
    with pytest.raises(ValueError, match="eps"):
        mk.numerical_gradient(_loss, np.ones(3), 0.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        mk.numerical_gradient(_loss, np.ones(3, np.int64))
    with pytest.raises(TypeError, match="CPU"):
        mk.numerical_gradient(_loss, to_device(np.ones(3), "gpu"))


def test_grad_check_prints_as_the_formula_and_returns_the_verdict(capsys):
    x = np.random.default_rng(6).standard_normal(9)
    ok = mk.grad_check(_loss, _loss_grad, x)
    ours = capsys.readouterr().out
    want = R.grad_check(_loss, _loss_grad, x.copy())
    assert ours == capsys.readouterr().out and "PASS" in ours
    assert ok is True and bool(want)
    ok, err = mk.grad_check(_loss, lambda v: 1.01 * _loss_grad(v), x, return_error=True)
    assert ok is False and err == pytest.approx(0.01 / 2.01, rel=1e-3)
    assert "FAIL" in capsys.readouterr().out
    with pytest.raises(ValueError, match="shape"):
        mk.grad_check(_loss, lambda v: np.ones(3), x)
